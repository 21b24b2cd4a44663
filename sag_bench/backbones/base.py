"""Interfaces of the pretrained parts. Each has a real implementation and an offline stand-in (see catalog.py).

All audio is mono float ``[B, T]`` at the backbone's ``sample_rate`` (24 kHz for every built-in).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from sag_bench.audio import SAMPLE_RATE
from sag_bench.errors import WeightsMissingError  # noqa: F401 (importable from here)


def as_mono_batch(audio: torch.Tensor, who: str) -> torch.Tensor:
    """``audio`` as float ``[B, T]`` (a ``[T]`` signal becomes a batch of one); empty or other shapes raise."""
    if audio.dim() == 1:
        audio = audio[None]
    if audio.dim() != 2 or audio.shape[-1] == 0:
        raise ValueError(f"{who}: expected mono audio [B, T] or [T], got shape {tuple(audio.shape)}")
    return audio.float()


class Backbone(ABC):
    """Common part: a registered name, whether it is the offline stand-in, and the device it runs on."""

    name: ClassVar[str] = "backbone"
    offline: ClassVar[bool] = False
    sample_rate: ClassVar[int] = SAMPLE_RATE

    def to(self, device: str | torch.device) -> "Backbone":
        """Move any weights to ``device`` (default: nothing to move)."""
        return self

    def describe(self) -> dict[str, object]:
        """What a run records about this backbone."""
        return {"name": self.name, "offline": self.offline}


class SemanticEncoder(Backbone):
    """Audio -> frame-level semantic features ``[B, frames, dim]`` at ``frame_rate`` (MERT: 749 frames / 10 s)."""

    dim: int
    frame_rate: float

    @abstractmethod
    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` of audio."""

    @abstractmethod
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Per-frame standardised features ``[B, frames, dim]``."""


class Vocoder(Backbone):
    """BigVGAN-24k log-mel ``[B, 100, frames]`` (un-normalised) -> audio ``[B, frames * 256]``."""

    @abstractmethod
    def decode(self, mel: torch.Tensor) -> torch.Tensor:
        """Waveform for a log-mel."""


class Codec(Backbone):
    """Audio <-> discrete codes ``[B, n_codebooks, frames]`` with values in ``[0, codebook_size)``."""

    n_codebooks: int
    codebook_size: int
    frame_rate: float

    @abstractmethod
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_codebooks, frames]`` (int64)."""

    @abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` from codes of the first ``q <= n_codebooks`` codebooks ``[B, q, frames]``."""


class Separator(Backbone):
    """A mixture -> (vocals, accompaniment), both mono ``[T]`` at ``sample_rate``."""

    @abstractmethod
    def separate(self, mixture: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Separate a ``[channels, T]`` mixture at ``sample_rate``; returns mono vocals and accompaniment."""
