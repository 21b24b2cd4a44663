"""Real-time factor: wall time of generation divided by the seconds of audio generated (lower is faster).

Two scopes, always labelled: ``end-to-end`` (file in -> file out at batch size 1: read, resample, features,
sampler, vocoder, write - what the FastSAG paper's RTF times) and ``model-only`` (``system.generate`` on decoded
tensors).

Warm-up batches run first and are excluded. A recording :class:`~sag_bench.timing.StageTimer` is installed as
``system.timer`` for the measurement (synchronising CUDA at stage boundaries and around every batch on a GPU), so
the RTF is broken down per stage; the time outside every stage is reported as ``other``.
"""

from __future__ import annotations

import platform
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from sag_bench.audio import load_audio, save_audio
from sag_bench.systems.base import System
from sag_bench.timing import StageTimer

UNATTRIBUTED_STAGE = "other"
END_TO_END = "end-to-end"
MODEL_ONLY = "model-only"
SCOPES = (END_TO_END, MODEL_ONLY)


@dataclass
class RTFResult:
    """RTF statistics over measured batches, with the per-stage breakdown and what the machine was."""

    system: str
    scope: str  # END_TO_END (file in -> file out, as the paper) or MODEL_ONLY (generate on decoded tensors)
    rtf: float  # total wall time / total generated seconds
    rtf_mean: float  # over batches
    rtf_median: float
    rtf_p95: float
    wall_seconds: float
    audio_seconds: float
    batches: int
    batch_size: int
    warmup: int
    stage_seconds: dict[str, float] = field(default_factory=dict)  # mean seconds per batch
    stage_rtf: dict[str, float] = field(default_factory=dict)  # stage seconds / generated seconds
    device: str = "cpu"
    device_name: str = ""
    dtype: str = ""
    threads: int = 0
    seed: int = 0
    network_calls: int | None = None  # denoiser evaluations per clip, for systems that report them

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def device_name(device: str) -> str:
    """The GPU's name for CUDA devices, else the CPU's."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def _dtype_of(system: System, output: torch.Tensor) -> str:
    for value in vars(system).values():
        if isinstance(value, torch.nn.Module):
            parameter = next(value.parameters(), None)
            if parameter is not None:
                return str(parameter.dtype).removeprefix("torch.")
    return str(output.dtype).removeprefix("torch.")


def _batches(clips: Sequence[np.ndarray], ids: Sequence[str] | None, size: int) -> list[tuple[np.ndarray, list | None]]:
    out = []
    for start in range(0, len(clips), size):
        chunk = clips[start : start + size]
        length = min(len(c) for c in chunk)
        out.append((np.stack([np.asarray(c[:length], np.float32) for c in chunk]),
                    list(ids[start : start + size]) if ids is not None else None))
    return out


def _check(items: Sequence[Any], clip_ids: Sequence[str] | None) -> None:
    if not items:
        raise ValueError("measuring an RTF needs at least one clip")
    if clip_ids is not None and len(clip_ids) != len(items):
        raise ValueError(f"{len(clip_ids)} clip ids for {len(items)} clips")


def _measure(system: System, items: list[Any], run: Callable[[Any, int], torch.Tensor], *, scope: str, warmup: int,
             batch_size: int, seed: int, device: str) -> RTFResult:
    """Time ``run(item, seed + i)`` (returns the generated ``[B, T]``) over ``items`` after ``warmup`` runs of the
    first item, with a recording timer installed as ``system.timer``."""
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    timer = StageTimer(cuda_sync=cuda)
    previous_timer, system.timer = system.timer, timer
    walls, seconds, stage_totals = [], [], defaultdict(float)
    output = torch.empty(0)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                run(items[0], seed)
            for index, item in enumerate(tqdm(items, desc=f"RTF {scope} {system.name}", unit="batch")):
                timer.reset()
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                output = run(item, seed + index)
                if cuda:
                    torch.cuda.synchronize()
                wall = time.perf_counter() - start
                walls.append(wall)
                seconds.append(output.shape[0] * output.shape[-1] / system.sample_rate)
                for name, value in timer.seconds.items():
                    stage_totals[name] += value
                stage_totals[UNATTRIBUTED_STAGE] += max(0.0, wall - sum(timer.seconds.values()))
    finally:
        system.timer = previous_timer
    per_batch = np.array(walls) / np.array(seconds)
    total_audio = float(sum(seconds))
    return RTFResult(system=system.name, scope=scope, rtf=float(sum(walls)) / total_audio,
                     rtf_mean=float(per_batch.mean()), rtf_median=float(np.median(per_batch)),
                     rtf_p95=float(np.percentile(per_batch, 95)), wall_seconds=float(sum(walls)),
                     audio_seconds=total_audio, batches=len(items), batch_size=max(1, batch_size), warmup=warmup,
                     stage_seconds={k: v / len(items) for k, v in stage_totals.items()},
                     stage_rtf={k: v / total_audio for k, v in stage_totals.items()}, device=device,
                     device_name=device_name(device), dtype=_dtype_of(system, output),
                     threads=torch.get_num_threads(), seed=seed)


def measure_rtf(system: System, clips: list[np.ndarray], *, warmup: int = 1, batch_size: int = 1, seed: int = 0,
                device: str = "cpu", clip_ids: Sequence[str] | None = None) -> RTFResult:
    """Model-only RTF: a loaded ``system`` generating for each of ``clips`` (decoded mono vocals at its rate).

    Clips are grouped into batches of ``batch_size`` (cut to the shortest clip of the batch); ``warmup`` extra runs
    of the first batch come first and are not counted. Batch ``i`` is generated with seed ``seed + i``.
    """
    _check(clips, clip_ids)

    def run(batch: tuple[np.ndarray, list | None], batch_seed: int) -> torch.Tensor:
        return system.generate(torch.from_numpy(batch[0]).to(device), seed=batch_seed, clip_ids=batch[1])

    return _measure(system, _batches(clips, clip_ids, max(1, batch_size)), run, scope=MODEL_ONLY, warmup=warmup,
                    batch_size=batch_size, seed=seed, device=device)


def measure_end_to_end_rtf(system: System, files: list[Path], out_dir: Path, *, warmup: int = 1, seed: int = 0,
                           device: str = "cpu", clip_ids: Sequence[str] | None = None) -> RTFResult:
    """End-to-end RTF as the FastSAG paper times it: per clip (batch size 1) read the vocals file, resample to the
    system's rate, generate (features, sampler, vocoder), and write the accompaniment file into ``out_dir``.
    Reading and writing are reported as the stages ``read`` and ``write``."""
    _check(files, clip_ids)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = list(clip_ids) if clip_ids is not None else [Path(f).stem for f in files]

    def run(item: tuple[Path, str], clip_seed: int) -> torch.Tensor:
        path, clip_id = item
        with system.timer.stage("read"):
            vocals = torch.from_numpy(load_audio(path, system.sample_rate))[None].to(device)
        output = system.generate(vocals, seed=clip_seed, clip_ids=[clip_id])
        with system.timer.stage("write"):
            save_audio(out_dir / f"{clip_id}.wav", output[0].detach().float().cpu().numpy(), system.sample_rate)
        return output

    return _measure(system, list(zip(files, ids)), run, scope=END_TO_END, warmup=warmup, batch_size=1, seed=seed,
                    device=device)
