"""Toy baseline: low-passed noise shaped by the vocals' loudness envelope (an example plugin, not a real system)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torchaudio

from sag_bench.systems.base import System


class LoudnessNoise(System):
    """Toy baseline: low-passed noise that follows the vocals' loudness envelope (example plugin)."""

    name = "loudness-noise"
    sample_rate = 24_000

    def __init__(self, checkpoint: str | None = None, frame: int = 1200, pole: float = 0.95, **options: Any) -> None:
        super().__init__(checkpoint, frame=frame, pole=pole, **options)
        self.frame = frame
        self.pole = pole

    def envelope(self, vocals: torch.Tensor) -> torch.Tensor:
        """Frame RMS of ``vocals [B, T]`` held constant over each frame: ``[B, T]``."""
        batch, length = vocals.shape
        frames = -(-length // self.frame)
        padded = torch.nn.functional.pad(vocals, (0, frames * self.frame - length))
        rms = padded.reshape(batch, frames, self.frame).pow(2).mean(-1).sqrt()
        return rms.repeat_interleave(self.frame, dim=-1)[:, :length]

    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        with self.timer.stage("noise"):
            noise = torch.randn(vocals.shape, generator=generator)
            # One-pole low-pass y[n] = (1 - p) x[n] + p y[n-1]: darker noise, closer to an accompaniment bed.
            lowpassed = torchaudio.functional.lfilter(
                noise, torch.tensor([1.0, -self.pole]), torch.tensor([1.0 - self.pole, 0.0]), clamp=False)
        with self.timer.stage("shape"):
            shaped = lowpassed / lowpassed.std(dim=-1, keepdim=True).clamp_min(1e-8) * self.envelope(vocals)
        return shaped.clamp(-1.0, 1.0)
