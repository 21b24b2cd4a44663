"""Configuration from TOML: one strict dataclass-from-table builder and one presets reader.

Every configuration in sag-bench (experiment specs, FastSAG and SingSong presets, configs stored in checkpoints, the
dataset presets) is a TOML table read through these two functions, so unknown keys, missing keys and unknown
presets fail the same way: one line naming the source and the problem. Paper constants live beside the code that
uses them (audio.py for the shared audio facts, each system's ``config.py`` for its own), each named once with its
source.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from importlib import resources
from typing import Any, TypeVar

from sag_bench.errors import UserError

T = TypeVar("T")


def from_table(cls: type[T], table: dict[str, Any], source: str, section: str,
               error: type[Exception] = UserError) -> T:
    """``cls(**table)`` for a dataclass, strictly: unknown or missing keys raise ``error`` naming ``source`` (a file
    or what the table is) and ``section`` (where in it).

    Lists given for ``tuple``-typed fields become tuples (TOML and JSON have no tuples).
    """
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise error(f"{source}: unknown key(s) {', '.join(unknown)} in {section}; known: {', '.join(sorted(known))}")
    values = {key: tuple(value) if isinstance(value, list) and str(known[key].type).startswith("tuple") else value
              for key, value in table.items()}
    try:
        return cls(**values)
    except TypeError as problem:
        raise error(f"{source}: {section}: {problem}") from None


def package_toml(package: str, filename: str = "presets.toml") -> dict[str, Any]:
    """The tables of the TOML file ``filename`` shipped inside ``package`` (e.g. ``sag_bench.systems.fastsag``)."""
    return tomllib.loads(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))


def preset_table(package: str, name: str, what: str) -> dict[str, Any]:
    """Table ``name`` of ``package``'s ``presets.toml``; an unknown name raises :class:`UserError` listing the known.

    A preset with ``extends = "other"`` is ``other``'s table with its own keys merged over it (tables key by key)."""
    presets = package_toml(package)
    if name not in presets:
        raise UserError(f"unknown {what} preset {name!r}; presets: {', '.join(sorted(presets))}")
    table = dict(presets[name])
    base = table.pop("extends", None)
    return _merged(preset_table(package, base, what), table) if base is not None else table


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
