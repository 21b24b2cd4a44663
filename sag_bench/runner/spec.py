"""Experiment specs: declarative TOML files saying what to run (dataset, systems, embedders, protocol, RTF).

Example (see ``sag_bench/experiments/*.toml``)::

    name = "tiny"
    table = "table1"                     # which paper table to print beside ours
    seed = 0
    device = "cpu"
    [data]
    name = "chorales"                    # builder from the dataset registry
    dir = "results/data/chorales-tiny"   # built here when missing and the builder runs offline
    build = { preset = "tiny" }
    split = "test"
    max_clips = 12
    [protocol]
    gain = 0.9
    degrade = "none"                     # or a vocoder/codec backbone name: the "degraded reference"
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
    options = { steps = 20 }
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sag_bench import registry
from sag_bench.audio import MIX_GAIN
from sag_bench.config import from_table
from sag_bench.errors import SpecError

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
    gain: float = MIX_GAIN
    degrade: str = "none"


@dataclass
class EvaluationSpec:
    embedders: list[str] = field(default_factory=list)
    coherence: bool = False
    bootstrap: int = 0
    inf: bool = False
    batch_size: int = 8
    apa: bool = False  # APA per embedder, reference pairs from ``reference_split``
    reference_split: str = "train"  # APA's (and validation's FAD) reference pairs: song-disjoint from the run's split
    measures: list[str] | None = None  # coherence measures (None: the validated defaults)
    coherence_bootstrap: int = 2000  # resamples for per-clip measures in a validation run
    validation: str | None = None  # a validation.csv gating the table (None: the committed reference, if any)


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
    raise SpecError(f"{spec}: no such spec file (built-in specs: "
                    f"{', '.join(p.stem for p in sorted(EXPERIMENTS_DIR.glob('*.toml')))})")


def load_spec(spec: str | Path) -> Spec:
    """Parse and validate a spec file: unknown keys, unknown systems/datasets and duplicate rows are errors."""
    path = resolve_spec_path(spec)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML ({error})") from None
    sections = {"data": DataSpec, "protocol": ProtocolSpec, "evaluation": EvaluationSpec, "rtf": RTFSpec}
    if "data" not in raw or "systems" not in raw:
        raise SpecError(f"{path}: a spec needs a [data] table and at least one [[systems]] entry")
    parsed: dict[str, Any] = {key: from_table(cls, raw.pop(key), str(path), f"[{key}]", SpecError)
                              for key, cls in sections.items() if key in raw}
    systems = [from_table(SystemSpec, entry, str(path), f"[[systems]] #{i + 1}", SpecError)
               for i, entry in enumerate(raw.pop("systems"))]
    spec_obj: Spec = from_table(Spec, {**raw, **parsed, "systems": systems, "source": str(path)}, str(path),
                                 "the top level", SpecError)
    _validate(spec_obj, path)
    return spec_obj


def _validate(spec: Spec, path: Path) -> None:
    keys = [system.key for system in spec.systems]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise SpecError(f"{path}: systems listed twice: {', '.join(duplicates)} (give one a distinct label)")
    try:
        registry.entry("datasets", spec.data.name)
        for system in spec.systems:
            registry.entry("systems", system.name)
    except registry.UnknownComponentError as error:
        raise SpecError(f"{path}: {error}") from None
    if not 0.0 < spec.protocol.gain <= 2.0:
        raise SpecError(f"{path}: [protocol] gain must be in (0, 2], got {spec.protocol.gain}")
