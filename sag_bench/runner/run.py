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
from sag_bench.evaluation.degradation import NONE, resolve
from sag_bench.executors import Executor
from sag_bench.runner import mixing, scoring, tasks
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
    if previous.spec.get("protocol", spec.to_dict()["protocol"]) != spec.to_dict()["protocol"]:
        raise SpecError(f"{store.root}: the existing run was mixed with another [protocol]; resume it with its own spec")


def run_experiment(spec: Spec, out: str | Path, resume: bool = False, executor: Executor | None = None) -> RunResult:
    """Generate, evaluate and tabulate one experiment; resumable after any interruption.

    ``executor`` runs the tasks (:mod:`sag_bench.runner.tasks`; default: the spec's ``executor``, else in-process);
    an executor given stays open for its owner, one made here is closed at the end.
    """
    owned = None if executor is not None else tasks.executor_for(spec)
    try:
        return _run(spec, out, resume, executor or owned)
    finally:
        if owned is not None:
            owned.close()


def _run(spec: Spec, out: str | Path, resume: bool, executor: Executor) -> RunResult:
    from sag_bench.reporting.tables import render_run

    torch.manual_seed(spec.seed)
    dataset = ensure_dataset(spec)
    records = select_clips(spec, dataset)
    store = RunStore(Path(out))
    check_resumable(store, spec, records, resume)
    manifest = RunManifest(spec=spec.to_dict(), seeds={"run": spec.seed, "generation": spec.seed,
                                                       "bootstrap": spec.seed},
                           data_dir=str(dataset.root.resolve()), dataset=dataset.name,
                           clips=[record.id for record in records], executor=executor.describe())
    store.write_manifest(manifest, device=spec.device)
    if spec.table == "validation":  # ground truth and perturbations, scored into the metric-validation table
        from sag_bench.evaluation.validation import run_validation

        table, paths = run_validation(spec, store)
        return RunResult(store, table, pd.DataFrame(), pd.DataFrame(), {}, {path.name: path for path in paths})
    clips = scoring.Clips(store, dataset, records)

    tasks.run_generation(executor, spec, store, dataset, records)
    done = [s.key for s in spec.systems if store.status(s.key).get("state") == "done"]
    tasks.run_rtf(executor, spec, clips, done)
    for system_spec in spec.systems:
        if system_spec.key in done:  # mixes in the driver; a system is built only when its path needs its vocoder
            try:
                mixing.write_system_mixes(clips, system_spec, None, spec.protocol, spec.device)
            except Exception as error:  # no mixes, no scores: reported like a failed generation
                store.write_status(system_spec.key, state="failed", error=f"mixing: {type(error).__name__}: {error}")
    mixing.write_path_mixes(clips, resolve(NONE), spec.protocol)  # the clean reference, always (report page)

    status = {s.key: store.status(s.key) for s in spec.systems}
    done = [key for key, state in status.items() if state.get("state") == "done"]
    manifest.systems = {key: state.get("system", {}) for key, state in status.items()}
    manifest.mixing = {key: state["mixing"] for key, state in status.items() if "mixing" in state}
    store.write_manifest(manifest, device=spec.device)
    tasks.run_embedding(executor, spec, clips, done)
    floors = [s.key for s in spec.systems if s.name == "groundtruth"]  # the human accompaniment: a floor, not a score
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
