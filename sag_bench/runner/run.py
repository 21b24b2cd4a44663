"""``sag-bench run``: one experiment spec -> generated audio, metrics, tables and plots in a run directory.

Layout of ``<out>/``: ``manifest.json`` (spec, clips, data_dir, git commit, packages, device, seeds, systems and
backbones), ``generated/<system>/<clip>.wav``, ``mixes/{reference,<system>}/<clip>.wav``, ``status/<system>.json``,
``rtf/<system>.json``, ``fad/<embedder>/<system>.json``, ``coherence/<system>.json``, ``metrics.csv``,
``timings.csv``, ``coherence.csv``, ``tables/*.{csv,md,tex}``, ``plots/*.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sag_bench import registry
from sag_bench.datasets.manifest import MANIFEST_NAME, ClipDataset, ClipRecord, DatasetError
from sag_bench.runner import scoring
from sag_bench.runner.generation import SystemRun, run_generation
from sag_bench.runner.spec import Spec, SpecError
from sag_bench.store import RunDir

OFFLINE_BUILDERS = ("chorales",)


@dataclass
class RunResult:
    """What a finished run produced."""

    root: Path
    metrics: pd.DataFrame
    timings: pd.DataFrame
    coherence: pd.DataFrame
    status: dict[str, dict[str, Any]]
    tables: dict[str, Path]


def ensure_dataset(spec: Spec) -> ClipDataset:
    """The spec's dataset folder, built first when missing and its builder works offline."""
    data_dir = Path(spec.data.dir)
    if not (data_dir / MANIFEST_NAME).is_file():
        if spec.data.name not in OFFLINE_BUILDERS:
            raise DatasetError(f"{data_dir}: dataset {spec.data.name!r} is not built; build it first with "
                               f"`sag-bench data build {spec.data.name} --out {data_dir}`")
        registry.build("datasets", spec.data.name, out_dir=data_dir, **spec.data.build)
    return ClipDataset(data_dir)


def select_clips(spec: Spec, dataset: ClipDataset) -> list[ClipRecord]:
    """The clips the spec evaluates: one split, in manifest order, at most ``max_clips``."""
    records = dataset.records(spec.data.split)
    if not records:
        raise SpecError(f"{spec.source}: split {spec.data.split!r} of {dataset.root} has no clips "
                        f"(splits: {', '.join(dataset.splits())})")
    return records[: spec.data.max_clips] if spec.data.max_clips else records


def check_resumable(run: RunDir, spec: Spec, records: list[ClipRecord], resume: bool) -> None:
    """Refuse to mix a new spec into an existing run, or to overwrite one without --resume."""
    previous = run.read_manifest()
    if not previous:
        return
    if not resume:
        raise SpecError(f"{run.root}: a run already exists here; pass --resume to continue it or choose --out")
    if previous.get("clips") != [record.id for record in records] or previous.get("spec", {}).get("seed") != spec.seed:
        raise SpecError(f"{run.root}: the existing run used other clips or another seed; resume it with its own spec")


def run_experiment(spec: Spec, out: str | Path, resume: bool = False) -> RunResult:
    """Generate, evaluate and tabulate one experiment; resumable after any interruption."""
    from sag_bench import tables

    torch.manual_seed(spec.seed)
    dataset = ensure_dataset(spec)
    records = select_clips(spec, dataset)
    run = RunDir(Path(out))
    check_resumable(run, spec, records, resume)
    seeds = {"run": spec.seed, "generation": spec.seed, "bootstrap": spec.seed}
    run.write_manifest(spec.to_dict(), seeds, device=spec.device, data_dir=str(dataset.root.resolve()),
                       clips=[record.id for record in records], dataset=dataset.name)

    for system_spec in spec.systems:
        system = run_generation(spec, system_spec, run.root, dataset, records, None)
        if system is not None:
            try:
                scoring.measure_system_rtf(spec, run.root, system_spec.key, system, dataset, records)
            except Exception as error:  # an RTF failure is reported, the audio is kept
                SystemRun(run.root, system_spec.key).write_status(rtf_error=f"{type(error).__name__}: {error}")
            del system

    status = {s.key: SystemRun(run.root, s.key).status() for s in spec.systems}
    done = [key for key, state in status.items() if state.get("state") == "done"]
    run.write_manifest(spec.to_dict(), seeds, device=spec.device, data_dir=str(dataset.root.resolve()),
                       clips=[record.id for record in records], dataset=dataset.name,
                       systems={key: state.get("system", {}) for key, state in status.items()})
    scoring.write_mixes(spec, run.root, dataset, records, done)
    metrics = scoring.score_fad(spec, run.root, records, done)
    coherence = (scoring.score_coherence(spec, run.root, dataset, records, done)
                 if spec.evaluation.coherence else pd.DataFrame())
    timings = scoring.collect_rtf(run.root, done)
    for name, frame in (("metrics", metrics), ("timings", timings), ("coherence", coherence)):
        scoring.write_csv(run.root / f"{name}.csv", frame)
    written = tables.render_run(run.root, spec, metrics, timings, coherence, status)
    return RunResult(run.root, metrics, timings, coherence, status, written)
