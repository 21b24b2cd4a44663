"""Long-input windowing for any fixed-window system: split into overlapping windows, generate them in batches,
overlap-add with a linear crossfade. Shorter inputs are zero-padded to one window and trimmed back.

Each window gets its own seed derived from (seed, clip id or row, window index), so a window's output does not
depend on how the windows are grouped into batches, nor (given clip ids) on where its clip sits in the batch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from tqdm import tqdm

from sag_bench.seeding import derive_seed

WindowFn = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` samples with windows of ``window`` overlapping by at least ``overlap``;
    the last window ends exactly at ``length`` (a single window at 0 when ``length <= window``)."""
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window), got {overlap} for window {window}")
    if length <= window:
        return [0]
    hop = window - overlap
    starts = list(range(0, length - window, hop))
    return starts + [length - window]


def _fade_weights(window: int, fade_in: int, fade_out: int, device: torch.device) -> torch.Tensor:
    """1 in the middle, linear ramps (never exactly 0) over the first ``fade_in`` and last ``fade_out`` samples."""
    weights = torch.ones(window, device=device)
    if fade_in:
        weights[:fade_in] = torch.arange(1, fade_in + 1, device=device) / (fade_in + 1)
    if fade_out:
        weights[window - fade_out:] = torch.arange(fade_out, 0, -1, device=device) / (fade_out + 1)
    return weights


def generate_windowed(fn: WindowFn, audio: torch.Tensor, window: int, overlap: int, seed: int,
                      batch_size: int = 4, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
    """Apply ``fn(windows [N, window], seeds) -> [N, window]`` to ``audio`` ``[B, T]`` of any length; ``[B, T]`` out.

    Windows of all rows are generated together, ``batch_size`` at a time (tqdm progress when there are several
    batches); overlapping regions are crossfaded with complementary linear ramps (weights normalised to sum 1).
    """
    if audio.dim() != 2:
        raise ValueError(f"expected audio [B, T], got shape {tuple(audio.shape)}")
    rows, length = audio.shape
    starts = window_starts(length, window, overlap)
    padded = torch.nn.functional.pad(audio, (0, max(0, window - length)))
    keys = [(row, k) for row in range(rows) for k in range(len(starts))]
    windows = torch.stack([padded[row, starts[k]: starts[k] + window] for row, k in keys])
    clip_keys = list(clip_ids) if clip_ids is not None else list(range(rows))
    seeds = [derive_seed(seed, clip_keys[row], k) for row, k in keys]
    chunks = range(0, len(keys), batch_size)
    outputs = torch.cat([fn(windows[i: i + batch_size], seeds[i: i + batch_size])
                         for i in tqdm(chunks, desc="windows", disable=len(chunks) < 2)])
    total = torch.zeros(rows, max(length, window), device=outputs.device, dtype=outputs.dtype)
    norm = torch.zeros_like(total)
    for (row, k), out in zip(keys, outputs):
        start = starts[k]
        fade_in = starts[k - 1] + window - start if k > 0 else 0
        fade_out = start + window - starts[k + 1] if k + 1 < len(starts) else 0
        weights = _fade_weights(window, fade_in, fade_out, outputs.device).to(outputs.dtype)
        total[row, start: start + window] += weights * out
        norm[row, start: start + window] += weights
    return (total / norm)[:, :length]
