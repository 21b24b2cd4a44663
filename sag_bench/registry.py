"""One generic, lazy registry for every kind of pluggable component.

Components are discovered through Python entry points (``sag_bench.systems``, ``sag_bench.datasets``,
``sag_bench.embedders``, ``sag_bench.backbones``). Built-ins register exactly like third-party plugins.

An entry point may target either
  * an :class:`Entry` - a light record (name, one-line summary, ``"module:attr"`` target, keyword arguments)
    that lets ``sag-bench systems`` list components without importing torch-heavy code; or
  * any callable (typically a class); its summary is then the first line of its docstring.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

from sag_bench.errors import UnknownComponentError

KINDS = ("systems", "datasets", "embedders", "backbones")


@dataclass(frozen=True)
class Entry:
    """A lazily imported component: ``target`` is ``"package.module:attribute"``, built with ``kwargs``."""

    name: str
    summary: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Any]:
        """Import and return the object named by ``target``."""
        module_name, _, attr = self.target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def build(self, **overrides: Any) -> Any:
        """Construct the component with the entry's kwargs updated by ``overrides``."""
        return self.resolve()(**{**self.kwargs, **overrides})


def _summary_of(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def _group(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
    return f"sag_bench.{kind}"


def names(kind: str) -> list[str]:
    """Sorted names registered for ``kind`` (reads package metadata only, imports nothing)."""
    return sorted({ep.name for ep in entry_points(group=_group(kind))})


def entry(kind: str, name: str) -> Entry:
    """The :class:`Entry` registered as ``name``; raises :class:`UnknownComponentError` listing known names."""
    matches = [ep for ep in entry_points(group=_group(kind)) if ep.name == name]
    if not matches:
        known = ", ".join(names(kind)) or "(none)"
        raise UnknownComponentError(f"unknown {kind[:-1]} {name!r}; known {kind}: {known}")
    loaded = matches[0].load()
    if isinstance(loaded, Entry):
        return loaded
    return Entry(name=name, summary=_summary_of(loaded), target=matches[0].value)


def listing(kind: str) -> list[tuple[str, str]]:
    """(name, summary) for every registered component of ``kind``."""
    return [(name, entry(kind, name).summary) for name in names(kind)]


def build(kind: str, name: str, **overrides: Any) -> Any:
    """Construct the component registered as ``name`` with ``overrides`` as keyword arguments."""
    return entry(kind, name).build(**overrides)
