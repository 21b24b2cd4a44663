"""Changing a spec without editing it: ``--set KEY=VALUE`` overrides, and exporting a spec as a TOML file.

Keys are dotted paths into the spec's tables; ``systems.NAME`` picks the system row whose label (or name) is NAME:
``data.dir=/data/musdb``, ``device=cuda``, ``systems.fastsag.options.steps=20``, ``evaluation.embedders=["vggish"]``.
A value is read as a TOML value when it parses as one (``20``, ``true``, ``["a", "b"]``), else as a plain string.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from sag_bench.errors import SpecError
from sag_bench.store import atomic_write_text


def parse_value(text: str) -> Any:
    """``text`` as a TOML value, or the text itself when it is not one (a bare path, a name)."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _system_row(raw: dict[str, Any], key: str, path: Path, setting: str) -> dict[str, Any]:
    rows = raw.get("systems", [])
    for row in rows:
        if row.get("label", row.get("name")) == key:
            return row
    known = [row.get("label", row.get("name")) for row in rows]
    raise SpecError(f"{path}: --set {setting}: no system {key!r} in the spec; its systems: {', '.join(known)}")


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], path: Path) -> None:
    """Apply ``KEY=VALUE`` settings to the spec tables ``raw`` (in place); type checks happen when the spec is parsed."""
    for setting in overrides:
        key, sep, text = setting.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise SpecError(f"{path}: --set {setting!r}: expected KEY=VALUE, e.g. data.dir=/data/musdb18")
        table = raw
        if parts[0] == "systems":
            if len(parts) < 3:
                raise SpecError(f"{path}: --set {setting}: name a system and a key, e.g. systems.fastsag.options.steps=20")
            table, parts = _system_row(raw, parts[1], path, setting), parts[2:]
        for part in parts[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise SpecError(f"{path}: --set {setting}: {part} is not a table")
        table[parts[-1]] = parse_value(text.strip())


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _table(values: dict[str, Any]) -> list[str]:
    return [f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None]


def spec_toml(spec: Any, folder: Path) -> str:
    """The spec as TOML for a file in ``folder``: relative paths rewritten so they still point at the same places."""

    def relative(value: str | None) -> str | None:
        if value is None or value.startswith("builtin:") or Path(value).expanduser().is_absolute():
            return value
        return os.path.relpath(Path(value).resolve(), folder.resolve())

    data = asdict(spec)
    data["data"]["dir"] = relative(data["data"]["dir"])
    if "root" in data["data"]["build"]:
        data["data"]["build"]["root"] = relative(data["data"]["build"]["root"])
    lines = [f"# Exported from {spec.source} by `sag-bench run --export-spec`; relative paths are relative to this file.",
             *_table({key: data[key] for key in ("name", "table", "seed", "device", "batch_size")})]
    for section in ("data", "protocol", "evaluation", "rtf"):
        lines += ["", f"[{section}]", *_table(data[section])]
    for system in data["systems"]:
        system["checkpoint"] = relative(system["checkpoint"])
        lines += ["", "[[systems]]", *_table({k: v for k, v in system.items() if v not in ({}, [])})]
    return "\n".join(lines) + "\n"


def export_spec(spec: Any, destination: str | Path) -> Path:
    """Write ``spec`` (a loaded :class:`~sag_bench.runner.spec.Spec`) to ``destination`` as a spec file to extend."""
    destination = Path(destination)
    return atomic_write_text(destination, spec_toml(spec, destination.parent))
