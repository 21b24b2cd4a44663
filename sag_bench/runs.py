"""The run store: the one owner of the layout of a run folder ``results/<run>/`` and of its typed run manifest.

Layout (every other module asks a :class:`RunStore` for a path instead of spelling it)::

    manifest.json                        RunManifest: spec, data dir, clips, seeds, per-system provenance, machine
    generated/<system>/<clip>.wav        what each system generated
    mixes/<system>/<clip>.wav            each system's evaluation mix (path(vocals) + 0.9 x levelled accompaniment)
    mixes/reference[-<path>]/<clip>.wav  reference mixes, one folder per distinct reference path (``reference``:
                                         none), keyed by content (see sag_bench.evaluation.degradation)
    status/<system>.json                 running / done / failed, with the system's description
    rtf/<scope>/<system>.json            real-time factor, scope end-to-end (file in -> file out) or model-only
    rtf/outputs/<system>/<clip>.wav      the files the end-to-end measurement wrote
    fad/<embedder>/<system>.json         FAD of one (system, embedder)
    coherence/<system>.json              per-clip coherence measures
    cache/                               embeddings cached by content hash
    metrics.csv, timings.csv, coherence.csv
    tables/<table>{,_paper,_with_paper}.{csv,md,tex}
    plots/*.png
    study/                               the listening study the demo builds from the mixes

The *run* manifest (this file) is not the *dataset* manifest (:mod:`sag_bench.datasets.manifest`, the clip list of
a dataset folder); both are called ``manifest.json`` on disk, in different folders.
"""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sag_bench.store import read_json, write_json

RESULTS_DIR = Path("results")
RUN_MANIFEST = "manifest.json"
REFERENCE = "reference"  # the mixes of the true accompaniment, beside the systems' mixes
RECORDED_PACKAGES = ("sag-bench", "torch", "torchaudio", "numpy", "transformers", "fadtk", "demucs", "bigvgan",
                     "encodec", "x-transformers", "scipy", "pandas")


def default_run_dir(name: str) -> Path:
    """Where a run called ``name`` goes unless told otherwise: ``results/<name>``."""
    return RESULTS_DIR / name


def package_versions(packages: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that determine results."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current git commit (with ``-dirty`` when the tree has changes), or None outside a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_description(device: str = "cpu") -> dict[str, Any]:
    """What a result depends on about the machine: device name, threads, platform."""
    import torch

    info: dict[str, Any] = {"device": device, "threads": torch.get_num_threads(), "platform": platform.platform(),
                            "processor": platform.processor() or platform.machine()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def write_provenance(path: str | Path, spec: dict[str, Any], seeds: dict[str, int], device: str = "cpu",
                     **extra: Any) -> dict[str, Any]:
    """Merge spec, seeds, git commit, package versions, machine and ``extra`` into the JSON file ``path``.

    Used for run manifests and for training folders (``sag-bench train --out``).
    """
    path = Path(path)
    previous = read_json(path) if path.is_file() else {}
    record = {**previous, "spec": spec, "seeds": seeds, "git_commit": git_commit(), "packages": package_versions(),
              "device": device_description(device), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    write_json(path, record)
    return record


@dataclass
class RunManifest:
    """What a run folder holds and how it was made (``manifest.json`` of a run)."""

    spec: dict[str, Any]
    seeds: dict[str, int]
    data_dir: str = ""
    dataset: str = ""
    clips: list[str] = field(default_factory=list)
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> the system's own description
    mixing: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> levels, gains, reference path of its mixes
    executor: dict[str, Any] = field(default_factory=dict)  # where tasks ran (name, settings); never changes outputs
    git_commit: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    updated: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunManifest":
        """Read a stored manifest (keys this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``manifest.json``."""
        return asdict(self)


@dataclass(frozen=True)
class RunStore:
    """A run folder ``results/<run>/``: every path inside it, and its manifest."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # manifest
    @property
    def manifest_path(self) -> Path:
        return self.root / RUN_MANIFEST

    def read_manifest(self) -> RunManifest | None:
        """The run's manifest, or None for a new run."""
        return RunManifest.from_dict(read_json(self.manifest_path)) if self.manifest_path.is_file() else None

    def write_manifest(self, manifest: RunManifest, device: str = "cpu") -> RunManifest:
        """Store ``manifest`` with fresh provenance (git commit, packages, machine, time)."""
        data = manifest.to_dict()
        for key in ("git_commit", "packages", "device", "updated"):
            data.pop(key)
        stored = write_provenance(self.manifest_path, device=device, **data)
        return RunManifest.from_dict(stored)

    # one system's outputs
    def generated_dir(self, key: str) -> Path:
        """Folder of what system ``key`` generated."""
        return self.root / "generated" / key

    def generated(self, key: str, clip_id: str) -> Path:
        """The accompaniment system ``key`` generated for ``clip_id``."""
        return self.generated_dir(key) / f"{clip_id}.wav"

    def status_path(self, key: str) -> Path:
        return self.root / "status" / f"{key}.json"

    def status(self, key: str) -> dict[str, Any]:
        """State of system ``key`` in this run (empty when it never started)."""
        path = self.status_path(key)
        return read_json(path) if path.is_file() else {}

    def write_status(self, key: str, **status: Any) -> None:
        """Update the state of system ``key``."""
        write_json(self.status_path(key), {**self.status(key), **status})

    def rtf_path(self, key: str, scope: str) -> Path:
        """RTF of system ``key`` measured at ``scope`` (``end-to-end`` or ``model-only``)."""
        return self.root / "rtf" / scope / f"{key}.json"

    def rtf_outputs_dir(self, key: str) -> Path:
        """Where the end-to-end RTF measurement of ``key`` writes its files (file in -> file out)."""
        return self.root / "rtf" / "outputs" / key

    # evaluation
    def mixes_dir(self, key: str) -> Path:
        """Folder of the evaluation mixes of ``key`` (a system, or :data:`REFERENCE`); the listening test reads it."""
        return self.root / "mixes" / key

    def mix(self, key: str, clip_id: str) -> Path:
        """The evaluation mix of ``clip_id`` for ``key`` (a system, or :data:`REFERENCE`)."""
        return self.mixes_dir(key) / f"{clip_id}.wav"

    def reference_mixes_dir(self, path_key: str) -> Path:
        """Folder of the reference mixes made through the reference path ``path_key`` (``none``: :data:`REFERENCE`)."""
        return self.mixes_dir(REFERENCE if path_key == "none" else f"{REFERENCE}-{path_key}")

    def reference_path_key(self, key: str) -> str:
        """The reference path system ``key``'s mixes were made with (its status' ``mixing`` record; else none)."""
        return self.status(key).get("mixing", {}).get("reference_path", "none")

    def reference_mix(self, key: str, clip_id: str) -> Path:
        """The reference mix that system ``key`` is scored against for ``clip_id`` (same levels and path)."""
        return self.reference_mixes_dir(self.reference_path_key(key)) / f"{clip_id}.wav"

    def fad_path(self, embedder: str, key: str) -> Path:
        return self.root / "fad" / embedder / f"{key}.json"

    def coherence_path(self, key: str) -> Path:
        return self.root / "coherence" / f"{key}.json"

    def apa_path(self, embedder: str, key: str) -> Path:
        return self.root / "apa" / embedder / f"{key}.json"

    def floor_path(self, embedder: str) -> Path:
        return self.root / "fad" / embedder / "floor.json"

    @property
    def cache_dir(self) -> Path:
        """Embeddings cached by content hash."""
        return self.root / "cache"

    # summaries
    def csv_path(self, name: str) -> Path:
        """``metrics``, ``timings`` or ``coherence`` CSV of the run."""
        return self.root / f"{name}.csv"

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    def table(self, name: str, suffix: str = "md") -> Path:
        """A rendered table, e.g. ``table("table1")`` or ``table("table1_paper", "tex")``."""
        return self.tables_dir / f"{name}.{suffix}"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def plots(self) -> list[Path]:
        """The plots written so far."""
        return sorted(self.plots_dir.glob("*.png"))

    @property
    def study_dir(self) -> Path:
        """Where ``sag-bench demo`` builds the run's listening study."""
        return self.root / "study"
