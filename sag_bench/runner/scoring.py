"""Evaluation stage of a run: real-time factor, FAD per embedder, coherence (mixes: :mod:`sag_bench.runner.mixing`). Every result is a file, so a
resumed run skips what is done; embeddings are cached by content hash, so regenerated audio is never scored stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from sag_bench.audio import load_audio
from sag_bench.datasets.manifest import ClipDataset, ClipRecord
from sag_bench.runner.spec import EvaluationSpec, RTFSpec
from sag_bench.runs import RunStore
from sag_bench.store import atomic_write_text, read_json, write_json
from sag_bench.systems.base import System


FLOOR_MIN_CLIPS = 4  # the split-half floor needs two halves of at least two clips


@dataclass(frozen=True)
class Clips:
    """What every stage of a run works on: the run store, the dataset, and the clips evaluated."""

    store: RunStore
    dataset: ClipDataset
    records: list[ClipRecord]


def measure_system_rtf(clips: Clips, key: str, system: System, rtf: RTFSpec, seed: int, device: str) -> None:
    """End-to-end and model-only RTF of a loaded system on the first ``rtf.clips`` clips, saved in the run store
    with the network calls per clip where the system reports them (``network_calls(samples)``)."""
    from sag_bench.evaluation.rtf import END_TO_END, MODEL_ONLY, measure_end_to_end_rtf, measure_rtf

    store, timed = clips.store, clips.records[: rtf.clips]
    if not timed:
        return
    ids = [record.id for record in timed]
    vocals = {record.id: clips.dataset.load_vocals(record) for record in timed}
    counter = getattr(system, "network_calls", None)
    calls = counter(len(vocals[ids[0]])) if callable(counter) else None
    measures = {
        MODEL_ONLY: lambda: measure_rtf(system, list(vocals.values()), warmup=rtf.warmup, batch_size=rtf.batch_size,
                                        seed=seed, device=device, clip_ids=ids),
        END_TO_END: lambda: measure_end_to_end_rtf(system, [record.vocals for record in timed],
                                                   store.rtf_outputs_dir(key), warmup=rtf.warmup,
                                                   seed=seed, device=device, clip_ids=ids),
    }
    for scope, measure in measures.items():
        path = store.rtf_path(key, scope)
        if not path.is_file():
            result = measure()
            result.network_calls = calls
            write_json(path, result.to_dict())


def score_fad(clips: Clips, keys: list[str], evaluation: EvaluationSpec, seed: int, device: str,
              floors: Sequence[str] = ()) -> pd.DataFrame:
    """FAD of every (system, embedder), cached per pair in the run store; returns metrics rows.

    CIs are the paired bootstrap over clips (:func:`~sag_bench.evaluation.fad.bootstrap_ci`: clip ``i`` of the
    reference and of the system resampled together). The rows of ``floors`` (the ground truth, whose mixes are the
    reference up to the 0.9 gain) report the split-half floor (:func:`~sag_bench.evaluation.fad.score_floor`)
    instead of a near-zero FAD, with the central 95 % range of the splits as CI (``kind`` says which); with fewer than
    ``FLOOR_MIN_CLIPS`` clips there are no halves to compare and the row keeps its FAD.
    """
    from sag_bench.evaluation.embedders import load_embedder
    from sag_bench.evaluation.fad import score, score_floor

    store = clips.store
    rows = []
    for embedder_name in evaluation.embedders:
        embedder = None
        for key in tqdm(keys, desc=f"FAD {embedder_name}", unit="system"):
            reference = [store.reference_mix(key, record.id) for record in clips.records]  # its own path
            floor = key in floors and len(reference) >= FLOOR_MIN_CLIPS  # too few clips: its plain FAD
            path = store.floor_path(embedder_name) if floor else store.fad_path(embedder_name, key)
            if not path.is_file():
                embedder = embedder or load_embedder(embedder_name, device=device)
                if floor:
                    floor = score_floor(reference, embedder, store.cache_dir, seed=seed)
                    write_json(path, {**floor.to_dict(), "score": floor.score, "ci_low": floor.low,
                                      "ci_high": floor.high, "kind": "floor"})
                else:
                    result = score(reference, [store.mix(key, record.id) for record in clips.records], embedder,
                                   cache_dir=store.cache_dir, inf=evaluation.inf, bootstrap=evaluation.bootstrap,
                                   seed=seed)
                    write_json(path, {**result.to_dict(), "kind": "fad"})
            rows.append({**read_json(path), "system": key, "embedder": embedder_name})
    return pd.DataFrame(rows)


def _mean_row(key: str, measure: str, values: np.ndarray) -> dict:
    sem = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"system": key, "measure": measure, "mean": values.mean(), "sem": sem, "n": len(values)}


def score_coherence(clips: Clips, keys: list[str], evaluation: EvaluationSpec) -> pd.DataFrame:
    """Coherence measures (``evaluation.measures``, default the validated ones) of each system's (vocals,
    accompaniment) pairs, cached in the run store."""
    from sag_bench.evaluation.coherence import score_pairs

    store, dataset = clips.store, clips.dataset
    rows = []
    vocals: dict[str, np.ndarray] = {}  # the same vocals under every system: decoded once ...
    vocal_cache: dict = {}  # ... and their features computed once

    def vocals_of(record: ClipRecord) -> np.ndarray:
        if record.id not in vocals:
            vocals[record.id] = dataset.load_vocals(record)
        return vocals[record.id]

    for key in tqdm(keys, desc="coherence", unit="system"):
        path = store.coherence_path(key)
        if not path.is_file():
            pairs = [(vocals_of(record), load_audio(store.generated(key, record.id), dataset.sample_rate),
                      dataset.sample_rate) for record in clips.records]
            scores = score_pairs(pairs, evaluation.measures, vocal_cache=vocal_cache)
            write_json(path, {measure: list(map(float, values)) for measure, values in scores.items()})
        rows += [_mean_row(key, measure, np.asarray(values, dtype=np.float64))
                 for measure, values in read_json(path).items()]
    return pd.DataFrame(rows)


def apa_reference_records(clips: Clips, split: str) -> list[ClipRecord]:
    """APA's reference pairs: the clips of ``split``, which must exist and share no song with the evaluated clips
    (were R the evaluated clips, the ground truth would score APA 1 by construction)."""
    from sag_bench.errors import SpecError

    records = clips.dataset.records(split)
    if not records:
        raise SpecError(f"{clips.dataset.root}: APA's reference split {split!r} has no clips "
                        f"(set [evaluation] reference_split to one of {', '.join(clips.dataset.splits())})")
    shared = sorted({r.song for r in records} & {r.song for r in clips.records})
    if shared:
        raise SpecError(f"{clips.dataset.root}: APA's reference split {split!r} shares songs with the evaluated "
                        f"clips ({', '.join(shared[:3])}); choose a song-disjoint [evaluation] reference_split")
    return records


def score_apa(clips: Clips, keys: list[str], evaluation: EvaluationSpec, gain: float, seed: int,
              device: str) -> pd.DataFrame:
    """APA of every (system, embedder) against the reference pairs of ``evaluation.reference_split``, with a
    seeded percentile bootstrap CI over the evaluated clips (the reference fixed), cached in the run store;
    returns rows (system, measure ``apa/<embedder>``, mean = APA, ci_low, ci_high, n)."""
    from sag_bench.evaluation.apa import apa_reference, pair_embeddings
    from sag_bench.evaluation.embedders import load_embedder
    from sag_bench.evaluation.validation import interval, set_bootstrap

    store, dataset = clips.store, clips.dataset
    references = apa_reference_records(clips, evaluation.reference_split)
    vocals = [dataset.load_vocals(record) for record in clips.records]
    rows = []
    for embedder_name in evaluation.apa_embedder_names():
        reference = None
        for key in tqdm(keys, desc=f"APA {embedder_name}", unit="system"):
            path = store.apa_path(embedder_name, key)
            if not path.is_file():
                if reference is None:
                    embedder = load_embedder(embedder_name, device=device)
                    pairs = [dataset.load(record) for record in references]
                    reference = apa_reference(embedder, [p.vocals for p in pairs], [p.accompaniment for p in pairs],
                                              [p.song for p in pairs], dataset.sample_rate, seed=seed, gain=gain)
                generated = [load_audio(store.generated(key, record.id), dataset.sample_rate)
                             for record in clips.records]
                moments = reference.moments(pair_embeddings(embedder, vocals, generated, dataset.sample_rate, gain))
                boot = set_bootstrap(lambda w: reference.score(moments, w), len(vocals), seed, evaluation.bootstrap)
                low, high = interval(boot.boots) if evaluation.bootstrap > 0 else (float("nan"), float("nan"))
                write_json(path, {"apa": boot.point, "ci_low": low, "ci_high": high, "n": len(vocals),
                                  "reference_split": evaluation.reference_split, "n_reference": len(references)})
            data = read_json(path)
            rows.append({"system": key, "measure": f"apa/{embedder_name}", "mean": data["apa"],
                         "ci_low": data["ci_low"], "ci_high": data["ci_high"], "n": data["n"]})
    return pd.DataFrame(rows)


def collect_rtf(store: RunStore, keys: list[str]) -> pd.DataFrame:
    """One row per (system, scope) with RTF statistics and per-stage RTF columns (``stage:<name>``)."""
    from sag_bench.evaluation.rtf import SCOPES

    rows = []
    for key in keys:
        for scope in SCOPES:
            path = store.rtf_path(key, scope)
            if path.is_file():
                data = read_json(path)
                stages = {f"stage:{name}": value for name, value in data.get("stage_rtf", {}).items()}
                scalars = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
                rows.append({**scalars, "system": key, "scope": scope, **stages})  # the run's key, not the class's
    return pd.DataFrame(rows)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV atomically."""
    atomic_write_text(path, frame.to_csv(index=False))
