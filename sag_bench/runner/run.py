"""``sag-bench run``: one experiment spec -> generated audio, metrics, tables and plots in a run directory.

Everything goes into a run folder laid out by :class:`sag_bench.runs.RunStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sag_bench import registry
from sag_bench.datasets.manifest import DATASET_MANIFEST, ClipDataset, ClipRecord, DatasetError
from sag_bench.runner import scoring
from sag_bench.runner.generation import run_generation
from sag_bench.runner.spec import Spec, SpecError
from sag_bench.runs import RunManifest, RunStore

OFFLINE_BUILDERS = ("chorales",)


@dataclass
class RunResult:
    """What a finished run produced."""

    store: RunStore
    metrics: pd.DataFrame
    timings: pd.DataFrame
    coherence: pd.DataFrame
    status: dict[str, dict[str, Any]]
    tables: dict[str, Path]


def ensure_dataset(spec: Spec) -> ClipDataset:
    """The spec's dataset folder, built first when missing and its builder works offline."""
    data_dir = Path(spec.data.dir)
    if not (data_dir / DATASET_MANIFEST).is_file():
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


def check_resumable(store: RunStore, spec: Spec, records: list[ClipRecord], resume: bool) -> None:
    """Refuse to mix a new spec into an existing run, or to overwrite one without --resume."""
    previous = store.read_manifest()
    if previous is None:
        return
    if not resume:
        raise SpecError(f"{store.root}: a run already exists here; pass --resume to continue it or choose --out")
    if previous.clips != [record.id for record in records] or previous.spec.get("seed") != spec.seed:
        raise SpecError(f"{store.root}: the existing run used other clips or another seed; resume it with its own spec")


def run_experiment(spec: Spec, out: str | Path, resume: bool = False) -> RunResult:
    """Generate, evaluate and tabulate one experiment; resumable after any interruption."""
    from sag_bench.reporting.tables import render_run

    torch.manual_seed(spec.seed)
    dataset = ensure_dataset(spec)
    records = select_clips(spec, dataset)
    store = RunStore(Path(out))
    check_resumable(store, spec, records, resume)
    manifest = RunManifest(spec=spec.to_dict(), seeds={"run": spec.seed, "generation": spec.seed,
                                                       "bootstrap": spec.seed},
                           data_dir=str(dataset.root.resolve()), dataset=dataset.name,
                           clips=[record.id for record in records])
    store.write_manifest(manifest, device=spec.device)
    if spec.table == "validation":  # ground truth and perturbations, scored into the metric-validation table
        from sag_bench.evaluation.validation import run_validation

        table, paths = run_validation(spec, store)
        return RunResult(store, table, pd.DataFrame(), pd.DataFrame(), {}, {path.name: path for path in paths})
    clips = scoring.Clips(store, dataset, records)

    for system_spec in spec.systems:
        system = run_generation(spec, system_spec, store, dataset, records, None)
        if system is not None:
            try:
                scoring.measure_system_rtf(clips, system_spec.key, system, spec.rtf, spec.seed, spec.device)
            except Exception as error:  # an RTF failure is reported, the audio is kept
                store.write_status(system_spec.key, rtf_error=f"{type(error).__name__}: {error}")
            del system

    status = {s.key: store.status(s.key) for s in spec.systems}
    done = [key for key, state in status.items() if state.get("state") == "done"]
    manifest.systems = {key: state.get("system", {}) for key, state in status.items()}
    store.write_manifest(manifest, device=spec.device)
    scoring.write_mixes(clips, done, spec.protocol, spec.device)
    floors = [s.key for s in spec.systems if s.name == "groundtruth"]  # its mixes are the reference: FAD 0
    metrics = scoring.score_fad(clips, done, spec.evaluation, spec.seed, spec.device, floors=floors)
    coherence = pd.concat([
        scoring.score_coherence(clips, done, spec.evaluation) if spec.evaluation.coherence else pd.DataFrame(),
        scoring.score_apa(clips, done, spec.evaluation, spec.protocol.gain, spec.seed, spec.device)
        if spec.evaluation.apa else pd.DataFrame()], ignore_index=True)
    timings = scoring.collect_rtf(store, done)
    for name, frame in (("metrics", metrics), ("timings", timings), ("coherence", coherence)):
        scoring.write_csv(store.csv_path(name), frame)
    written = render_run(store, spec, metrics, timings, coherence, status)
    return RunResult(store, metrics, timings, coherence, status, written)
