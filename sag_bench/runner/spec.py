"""Experiment specs: declarative TOML files saying what to run (dataset, systems, embedders, protocol, RTF).

Example (see ``sag_bench/experiments/*.toml``)::

    name = "tiny"
    table = "table1"                     # which paper table to print beside ours
    seed = 0
    device = "cpu"
    executor = { name = "inprocess" }    # or { name = "ray", workers = 8 } / { name = "ray", address = ... }
    [data]
    name = "chorales"                    # builder from the dataset registry
    dir = "results/data/chorales-tiny"   # built here when missing and the builder runs offline
    build = { preset = "tiny" }
    split = "test"
    max_clips = 12
    [protocol]                           # README, "Evaluation protocol"
    gain = 0.9                           # generated mix = vocals + 0.9 x accompaniment (reference: no gain)
    degrade = "system"                   # each system's own reference path; or "none", or one backbone name
    levels = "authors"                   # stems min-max rescaled to [-0.8, 0.8] before mixing; or "raw"
    [evaluation]
    embedders = ["dsp-spectral"]
    coherence = true
    bootstrap = 200
    [rtf]
    clips = 2
    warmup = 1
    [[systems]]
    name = "fastsag"
    checkpoint = "builtin:fastsag.pt"    # or a path; builtin: = sag_bench/checkpoints/
    options = { steps = 20 }             # keyword parameters of the system's constructor, checked before a run

Relative paths (``data.dir``, ``data.build.root``, a system's ``checkpoint``) resolve against the spec file's folder;
those of the built-in specs (``tiny``, ``table1``, ...) against the current folder, so ``results/`` and ``data/``
land where ``sag-bench`` is run. Value types are checked against the fields below, and a system's options against
its constructor, so a misspelt or mistyped setting fails at load (``--dry-run``) with one line naming file and key.
"""

from __future__ import annotations

import inspect
import os
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from sag_bench import registry
from sag_bench.audio import MIX_GAIN
from sag_bench.config import from_table
from sag_bench.errors import SpecError
from sag_bench.evaluation.degradation import NONE, SYSTEM
from sag_bench.evaluation.protocol import LEVELS

BUILTIN_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"


@dataclass
class DataSpec:
    name: str
    dir: str
    split: str = "test"
    max_clips: int | None = None
    build: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProtocolSpec:
    """How the FAD mixes are made (:mod:`sag_bench.evaluation.protocol`, :mod:`sag_bench.evaluation.degradation`)."""

    gain: float = MIX_GAIN
    degrade: str = "system"
    levels: str = "authors"


@dataclass
class EvaluationSpec:
    embedders: list[str] = field(default_factory=list)
    coherence: bool = False
    bootstrap: int = 0
    inf: bool = False
    batch_size: int = 8
    apa: bool = False  # APA per embedder, reference pairs from ``reference_split``
    apa_embedders: list[str] | None = None  # APA's embedders (None: the FAD embedders)
    reference_split: str = "train"  # APA's (and validation's FAD) reference pairs: song-disjoint from the run's split
    measures: list[str] | None = None  # coherence measures (None: the validated defaults)
    coherence_bootstrap: int = 2000  # resamples for per-clip measures in a validation run
    validation: str | None = None  # a validation.csv gating the table (None: the committed reference, if any)

    def apa_embedder_names(self) -> list[str]:
        """The embedders APA is computed over when ``apa`` is on: ``apa_embedders``, else the FAD embedders."""
        return list(self.embedders if self.apa_embedders is None else self.apa_embedders)


@dataclass
class RTFSpec:
    clips: int = 0
    warmup: int = 1
    batch_size: int = 1


@dataclass
class SystemSpec:
    name: str
    checkpoint: str | None = None
    label: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    backbones: list[str] = field(default_factory=list)  # pretrained parts the checkpoint needs (checked by --dry-run)

    @property
    def key(self) -> str:
        """The folder/table name of this system in a run (label, else registry name)."""
        return self.label or self.name

    def checkpoint_path(self) -> Path | None:
        """The checkpoint as a path (``builtin:`` resolves inside the package)."""
        if self.checkpoint is None:
            return None
        if self.checkpoint.startswith("builtin:"):
            return BUILTIN_CHECKPOINTS / self.checkpoint.removeprefix("builtin:")
        return Path(self.checkpoint)


@dataclass
class Spec:
    name: str
    data: DataSpec
    systems: list[SystemSpec]
    protocol: ProtocolSpec = field(default_factory=ProtocolSpec)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    rtf: RTFSpec = field(default_factory=RTFSpec)
    table: str = "table1"
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 4
    executor: dict[str, Any] = field(default_factory=dict)  # {name = "ray", address = ..., workers = N}; see tasks
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the run manifest."""
        return asdict(self)


def resolve_spec_path(spec: str | Path) -> Path:
    """A spec path, or the name of a built-in spec (``tiny``, ``table1``, ``table2``)."""
    path = Path(spec)
    if path.is_file():
        return path
    builtin = EXPERIMENTS_DIR / f"{path.stem}.toml"
    if path.suffix in ("", ".toml") and builtin.is_file() and not path.parent.name:
        return builtin
    builtins = [p.stem for p in sorted(EXPERIMENTS_DIR.glob("*.toml"))]
    raise SpecError(f"{spec}: no such spec file{registry.did_you_mean(path.stem, builtins)} "
                    f"(built-in specs: {', '.join(builtins)})")


def is_builtin(path: Path) -> bool:
    """Whether ``path`` is one of the specs shipped with sag-bench."""
    return path.resolve().parent == EXPERIMENTS_DIR


def read_raw(spec: str | Path) -> tuple[Path, dict[str, Any]]:
    """The spec's path and its TOML tables, relative paths made relative to the current folder (see module doc)."""
    path = resolve_spec_path(spec)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML ({error})") from None
    if not is_builtin(path):
        _rebase_paths(raw, path.parent)
    return path, raw


def _rebase(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or value.startswith("builtin:") or Path(value).expanduser().is_absolute():
        return value
    return os.path.normpath(base / value)


def _rebase_paths(raw: dict[str, Any], base: Path) -> None:
    data = raw.get("data")
    if isinstance(data, dict):
        if "dir" in data:
            data["dir"] = _rebase(data["dir"], base)
        if isinstance(data.get("build"), dict) and "root" in data["build"]:
            data["build"]["root"] = _rebase(data["build"]["root"], base)
    for system in raw.get("systems", []) if isinstance(raw.get("systems"), list) else []:
        if isinstance(system, dict) and "checkpoint" in system:
            system["checkpoint"] = _rebase(system["checkpoint"], base)


def load_spec(spec: str | Path, overrides: Sequence[str] = ()) -> Spec:
    """Parse and validate a spec file: unknown keys, wrong value types, unknown systems/datasets, options a system
    does not take and duplicate rows are errors. ``overrides`` are ``KEY=VALUE`` settings (``--set``) applied first.
    """
    from sag_bench.runner.spec_overrides import apply_overrides

    path, raw = read_raw(spec)
    apply_overrides(raw, overrides, path)
    return parse_spec(raw, path)


def parse_spec(raw: dict[str, Any], path: Path) -> Spec:
    """A validated :class:`Spec` from the TOML tables ``raw`` of the spec file ``path``."""
    sections = {"data": DataSpec, "protocol": ProtocolSpec, "evaluation": EvaluationSpec, "rtf": RTFSpec}
    if "data" not in raw or "systems" not in raw:
        raise SpecError(f"{path}: a spec needs a [data] table and at least one [[systems]] entry")
    raw = dict(raw)
    parsed: dict[str, Any] = {key: _typed(cls, raw.pop(key), path, f"[{key}]") for key, cls in sections.items()
                              if key in raw}
    systems = [_typed(SystemSpec, entry, path, f"[[systems]] #{i + 1}") for i, entry in enumerate(raw.pop("systems"))]
    spec_obj: Spec = _typed(Spec, {**raw, **parsed, "systems": systems, "source": str(path)}, path, "the top level")
    _validate(spec_obj, path)
    return spec_obj


def _typed(cls: type, table: Any, path: Path, section: str) -> Any:
    """``from_table`` plus a check of every value against the field's type."""
    if not isinstance(table, dict):
        raise SpecError(f"{path}: {section} must be a table, not {table!r}")
    obj = from_table(cls, table, str(path), section, SpecError)
    hints = typing.get_type_hints(cls)
    for item in fields(cls):
        if item.name in table and not matches_type(table[item.name], hints[item.name]):
            raise SpecError(f"{path}: {section} {item.name} = {table[item.name]!r}: expected {_type_name(hints[item.name])}")
    return obj


def matches_type(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a type hint (ints fit floats; bools fit only bools; unknown hints fit anything)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches_type(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint in (int, float):
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return True  # fixed-length tuples: not used by specs
        return all(matches_type(item, args[0]) for item in value) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is Path:
        return isinstance(value, (str, Path))
    return True


def _type_name(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if typing.get_origin(hint) is None else None
    return text or str(hint).replace("typing.", "")


def system_options(name: str) -> tuple[dict[str, Any], bool]:
    """The options system ``name`` takes, ``{option: type hint}``: the named keyword parameters of its class's
    constructor and of the classes it passes ``**options`` to, plus its declared ``extra_options``; and whether it
    takes any option at all (a plain callable with ``**kwargs``)."""
    target = registry.entry("systems", name).resolve()
    classes = [klass for klass in inspect.getmro(target) if "__init__" in vars(klass)] if inspect.isclass(target) \
        else [target]
    accepted: dict[str, Any] = {}
    for owner in classes:
        function = owner.__init__ if inspect.isclass(owner) else owner
        try:
            hints = typing.get_type_hints(function)
        except (NameError, TypeError):
            hints = {}
        parameters = inspect.signature(function).parameters.values()
        for parameter in parameters:
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY) and \
                    parameter.name not in ("self", "checkpoint"):
                accepted.setdefault(parameter.name, hints.get(parameter.name, Any))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return accepted, False
        if not inspect.isclass(owner):
            return accepted, True
    accepted.update({option: Any for option in getattr(target, "extra_options", ())})
    return accepted, False


def _check_options(system: SystemSpec, path: Path, index: int) -> None:
    if not system.options:
        return
    accepted, anything = system_options(system.name)
    for option, value in system.options.items():
        where = f"{path}: [[systems]] #{index} ({system.key}) options.{option} = {value!r}"
        if option not in accepted and not anything:
            raise SpecError(f"{where}: {system.name} takes no option {option!r}"
                            f"{registry.did_you_mean(option, list(accepted))}; its options: "
                            f"{', '.join(sorted(accepted)) or '(none)'}")
        if option in accepted and not matches_type(value, accepted[option]):
            raise SpecError(f"{where}: expected {_type_name(accepted[option])}")


def _validate(spec: Spec, path: Path) -> None:
    keys = [system.key for system in spec.systems]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise SpecError(f"{path}: systems listed twice: {', '.join(duplicates)} (give one a distinct label)")
    try:
        registry.entry("datasets", spec.data.name)
        for system in spec.systems:
            registry.entry("systems", system.name)
            for backbone in system.backbones:
                registry.entry("backbones", backbone)
        for embedder in {*spec.evaluation.embedders, *spec.evaluation.apa_embedder_names()}:
            registry.entry("embedders", embedder)
    except registry.UnknownComponentError as error:
        raise SpecError(f"{path}: {error}") from None
    for index, system in enumerate(spec.systems, start=1):
        _check_options(system, path, index)
    if not 0.0 < spec.protocol.gain <= 2.0:
        raise SpecError(f"{path}: [protocol] gain must be in (0, 2], got {spec.protocol.gain}")
    if spec.protocol.levels not in LEVELS:
        raise SpecError(f"{path}: [protocol] levels must be one of {', '.join(LEVELS)}, got {spec.protocol.levels!r}")
    if spec.protocol.degrade not in (SYSTEM, NONE):
        try:
            registry.entry("backbones", spec.protocol.degrade)
        except registry.UnknownComponentError as error:
            raise SpecError(f"{path}: [protocol] degrade is 'system', 'none' or a backbone name: {error}") from None
