"""One generic, lazy registry for every kind of pluggable component.

Components are discovered through Python entry points (``sag_bench.systems``, ``sag_bench.datasets``,
``sag_bench.embedders``, ``sag_bench.backbones``). Built-ins register exactly like third-party plugins.

An entry point may target
  * an :class:`Entry` - a light record (name, one-line summary, ``"module:attr"`` target, keyword arguments, and
    optional roles: trainer, paper row, reference degradation) that lets ``sag-bench systems`` list components without
    importing torch-heavy code; its entry-point name must equal ``Entry.name``;
  * a :class:`Family` (or a plain list of :class:`Entry`) - several components declared once, in one place; the
    entry-point name is then only a label (the built-ins use ``builtin``), each member is registered by its own name;
  * any callable (typically a class); its summary is then the first line of its docstring.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable

from sag_bench.errors import UnknownComponentError

KINDS = ("systems", "datasets", "embedders", "backbones")


@dataclass(frozen=True)
class Entry:
    """A lazily imported component: ``target`` is ``"package.module:attribute"``, built with ``kwargs``.

    Optional roles (systems):
      * ``trainer`` - ``"module:function"`` that ``sag-bench train NAME`` calls with a
        :class:`sag_bench.training.TrainRequest`; it returns the lines to print. None: not trainable.
      * ``paper_row`` - the row of this system in the FastSAG paper's tables (numbers in
        ``sag_bench/systems/paper.toml``), printed beside ours. None: no paper row.
      * ``degradation`` - the reference path of this system (FastSAG section 4.2, "degraded reference"): ``vocoder``
        (its own vocoder), ``codec:N`` (its own codec from N codebooks) or a backbone name; None: clean stems.
        Used when the spec says ``[protocol] degrade = "system"`` (:mod:`sag_bench.evaluation.degradation`).
    """

    name: str
    summary: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    trainer: str | None = None
    paper_row: str | None = None
    degradation: str | None = None

    def resolve(self) -> Callable[..., Any]:
        """Import and return the object named by ``target``."""
        return _import(self.target)

    def build(self, **overrides: Any) -> Any:
        """Construct the component with the entry's kwargs updated by ``overrides``."""
        return self.resolve()(**{**self.kwargs, **overrides})

    def resolve_trainer(self) -> Callable[..., Any] | None:
        """The trainer function, imported, or None when the component is not trainable."""
        return _import(self.trainer) if self.trainer else None


class Family:
    """Components declared once as a group; may be lazy (``find`` accepts names that ``entries`` does not list)."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._entries = {entry.name: entry for entry in entries}

    def entries(self) -> list[Entry]:
        """The members to list."""
        return list(self._entries.values())

    def find(self, name: str) -> Entry | None:
        """The member called ``name``, or None."""
        return self._entries.get(name)

    def hint(self) -> str:
        """What else the family accepts beyond its listed names (for error messages); empty by default."""
        return ""


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _summary_of(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def _group(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
    return f"sag_bench.{kind}"


def _sources(kind: str) -> list[Family]:
    """Every entry point of ``kind`` as a family (a single component is a family of one)."""
    families = []
    for point in entry_points(group=_group(kind)):
        loaded = point.load()
        if isinstance(loaded, Family):
            families.append(loaded)
        elif isinstance(loaded, (list, tuple)):
            families.append(Family(loaded))
        elif isinstance(loaded, Entry):
            families.append(Family([loaded]))
        else:
            families.append(Family([Entry(point.name, _summary_of(loaded), point.value)]))
    return families


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean a, b?"`` for the known names close to ``name`` (or starting with ``name-``), else ``""``."""
    known = list(known)
    close = [k for k in known if k.startswith(f"{name}-")] + difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(dict.fromkeys(close))}?" if close else ""


def names(kind: str) -> list[str]:
    """Sorted names registered for ``kind`` (imports only the light catalog modules, no component)."""
    return sorted({entry.name for family in _sources(kind) for entry in family.entries()})


def entry(kind: str, name: str) -> Entry:
    """The :class:`Entry` registered as ``name``; raises :class:`UnknownComponentError` listing known names."""
    families = _sources(kind)
    for family in families:
        found = family.find(name)
        if found is not None:
            return found
    known = sorted({member.name for family in families for member in family.entries()})
    suggestion = did_you_mean(name, known)
    hints = "".join(f"; {hint}" for hint in (family.hint() for family in families) if hint)
    raise UnknownComponentError(f"unknown {kind[:-1]} {name!r}{suggestion}; known {kind}: "
                                f"{', '.join(known) or '(none)'}{hints}")


def listing(kind: str) -> list[tuple[str, str]]:
    """(name, summary) for every registered component of ``kind``."""
    members = {member.name: member.summary for family in _sources(kind) for member in family.entries()}
    return sorted(members.items())


def build(kind: str, name: str, **overrides: Any) -> Any:
    """Construct the component registered as ``name`` with ``overrides`` as keyword arguments."""
    return entry(kind, name).build(**overrides)
