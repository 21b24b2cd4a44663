"""Evaluation stage of a run: mixes, real-time factor, FAD per embedder, coherence. Every result is a file, so a
resumed run skips what is done; embeddings are cached by content hash, so regenerated audio is never scored stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from sag_bench import registry
from sag_bench.audio import load_audio, mel_spectrogram, save_audio
from sag_bench.backbones.base import Codec, Vocoder
from sag_bench.datasets.manifest import ClipDataset, ClipRecord
from sag_bench.runner.generation import SystemRun
from sag_bench.runner.spec import Spec
from sag_bench.store import atomic_write_text, read_json, write_json
from sag_bench.systems.base import System

REFERENCE = "reference"


def degrader(name: str, device: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The "degraded reference" transform: resynthesis through a vocoder or codec backbone, or None for "none"."""
    if name == "none":
        return None
    backbone = registry.build("backbones", name).to(device)

    def resynthesise(audio: np.ndarray) -> np.ndarray:
        wav = torch.from_numpy(audio)[None].to(device)
        with torch.inference_mode():
            if isinstance(backbone, Vocoder):
                out = backbone.decode(mel_spectrogram(wav))
            elif isinstance(backbone, Codec):
                out = backbone.decode(backbone.encode(wav))
            else:
                raise TypeError(f"backbone {name!r} is neither a vocoder nor a codec; it cannot degrade a reference")
        out = out[0].float().cpu().numpy()[: len(audio)]
        return np.pad(out, (0, len(audio) - len(out)))

    return resynthesise


def mix_path(root: Path, key: str, clip_id: str) -> Path:
    """Where the mix of ``clip_id`` for ``key`` (a system, or ``reference``) lives."""
    return root / "mixes" / key / f"{clip_id}.wav"


def write_mixes(spec: Spec, root: Path, dataset: ClipDataset, records: list[ClipRecord], keys: list[str]) -> None:
    """Reference mixes and each system's eval mixes (protocol of the papers), skipping those already written.

    Each clip is decoded (and its vocals degraded) once, then mixed for every system that still lacks its mix.
    """
    from sag_bench.evaluation.protocol import eval_mix, reference_mix

    missing = {record.id: [key for key in [REFERENCE, *keys] if not mix_path(root, key, record.id).is_file()]
               for record in records}
    todo = [record for record in records if missing[record.id]]
    if not todo:
        return
    degrade = degrader(spec.protocol.degrade, spec.device)
    for record in tqdm(todo, desc="mixes", unit="clip"):
        pair = dataset.load(record)
        vocals = degrade(pair.vocals) if degrade else pair.vocals
        for key in missing[record.id]:
            if key == REFERENCE:
                mixed = reference_mix(vocals, pair.accompaniment, gain=spec.protocol.gain, degrade=degrade)
            else:
                generated = load_audio(SystemRun(root, key).output(record.id), dataset.sample_rate)
                mixed = eval_mix(vocals, generated, gain=spec.protocol.gain)
            save_audio(mix_path(root, key, record.id), mixed, dataset.sample_rate)


def measure_system_rtf(spec: Spec, root: Path, key: str, system: System, dataset: ClipDataset,
                       records: list[ClipRecord]) -> None:
    """Real-time factor of a loaded system on the first ``spec.rtf.clips`` clips, saved to ``rtf/<key>.json``."""
    from sag_bench.evaluation.rtf import measure_rtf

    target = SystemRun(root, key)
    if spec.rtf.clips <= 0 or target.rtf_path.is_file():
        return
    clips = [dataset.load_vocals(record) for record in records[: spec.rtf.clips]]
    result = measure_rtf(system, clips, warmup=spec.rtf.warmup, batch_size=spec.rtf.batch_size, seed=spec.seed,
                         device=spec.device, clip_ids=[record.id for record in records[: spec.rtf.clips]])
    write_json(target.rtf_path, result.to_dict())


def score_fad(spec: Spec, root: Path, records: list[ClipRecord], keys: list[str]) -> pd.DataFrame:
    """FAD of every (system, embedder), cached per pair in ``fad/<embedder>/<system>.json``; returns metrics rows."""
    from sag_bench.evaluation.embedders import load_embedder
    from sag_bench.evaluation.fad import score

    rows = []
    for embedder_name in spec.evaluation.embedders:
        embedder = None
        reference = [mix_path(root, REFERENCE, record.id) for record in records]
        for key in tqdm(keys, desc=f"FAD {embedder_name}", unit="system"):
            path = root / "fad" / embedder_name / f"{key}.json"
            if not path.is_file():
                embedder = embedder or load_embedder(embedder_name, device=spec.device)
                result = score(reference, [mix_path(root, key, record.id) for record in records], embedder,
                               cache_dir=root / "cache", inf=spec.evaluation.inf,
                               bootstrap=spec.evaluation.bootstrap, seed=spec.seed)
                write_json(path, result.to_dict())
            rows.append({**read_json(path), "system": key, "embedder": embedder_name})
    return pd.DataFrame(rows)


def score_coherence(spec: Spec, root: Path, dataset: ClipDataset, records: list[ClipRecord],
                    keys: list[str]) -> pd.DataFrame:
    """Coherence measures of each system's (vocals, accompaniment) pairs, cached in ``coherence/<system>.json``."""
    from sag_bench.evaluation.coherence import score_pairs

    rows = []
    vocals: dict[str, np.ndarray] = {}  # the same vocals under every system: decoded once ...
    vocal_cache: dict = {}  # ... and their features computed once

    def vocals_of(record: ClipRecord) -> np.ndarray:
        if record.id not in vocals:
            vocals[record.id] = dataset.load_vocals(record)
        return vocals[record.id]

    for key in tqdm(keys, desc="coherence", unit="system"):
        path = root / "coherence" / f"{key}.json"
        if not path.is_file():
            pairs = [(vocals_of(record), load_audio(SystemRun(root, key).output(record.id), dataset.sample_rate),
                      dataset.sample_rate) for record in records]
            scores = score_pairs(pairs, vocal_cache=vocal_cache)
            write_json(path, {measure: list(map(float, values)) for measure, values in scores.items()})
        for measure, values in read_json(path).items():
            values = np.asarray(values, dtype=np.float64)
            sem = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
            rows.append({"system": key, "measure": measure, "mean": values.mean(), "sem": sem, "n": len(values)})
    return pd.DataFrame(rows)


def collect_rtf(root: Path, keys: list[str]) -> pd.DataFrame:
    """One row per system with RTF statistics and per-stage RTF columns (``stage:<name>``)."""
    rows = []
    for key in keys:
        path = SystemRun(root, key).rtf_path
        if path.is_file():
            data = read_json(path)
            stages = {f"stage:{name}": value for name, value in data.get("stage_rtf", {}).items()}
            scalars = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
            rows.append({**scalars, "system": key, **stages})  # the run's key, not the class's own name
    return pd.DataFrame(rows)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV atomically."""
    atomic_write_text(path, frame.to_csv(index=False))
