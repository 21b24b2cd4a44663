"""Audio -> FastSAG inputs and targets: rescaled waveforms, semantic features, mels in the model's scale.

The model's mel scale is the normalised log-mel of eq. 13 (``mel_norm``) or the raw log-mel (``fastsag-no-norm``).
Training targets (the accompaniment's mel and semantic features) are deterministic per clip, so they are computed
once per clip content and cached (:func:`cached_targets`); only the noisy vocals' features are computed per step.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from sag_bench.audio import (FEATURE_PEAK, HOP_SIZE, SAMPLE_RATE, denormalise_mel, mel_spectrogram, normalise_mel,
                             rescale_for_features)
from sag_bench.backbones.base import SemanticEncoder
from sag_bench.store import ContentCache, sha256_bytes
from sag_bench.systems.fastsag.config import FastSAGConfig, TrainConfig


class Features:
    """Computes the model's inputs for one configuration with a given (frozen) semantic encoder."""

    def __init__(self, config: FastSAGConfig, encoder: SemanticEncoder | None) -> None:
        self.config = config
        self.encoder = encoder
        if config.variant.uses_semantic:
            if encoder is None:
                raise ValueError(f"{config.variant.name} needs a semantic encoder")
            if encoder.dim != config.model.semantic_dim:
                raise ValueError(f"semantic encoder {encoder.name} gives {encoder.dim}-d features, the model expects "
                                 f"{config.model.semantic_dim} (preset {config.preset!r})")

    def mel(self, rescaled: torch.Tensor) -> torch.Tensor:
        """Model-scale mel ``[B, n_mels, mel_frames]`` of rescaled audio."""
        return self._model_scale(mel_spectrogram(rescaled)[..., : self.config.model.mel_frames])

    def _model_scale(self, log_mel: torch.Tensor) -> torch.Tensor:
        return normalise_mel(log_mel) if self.config.variant.mel_norm else log_mel

    def to_log_mel(self, model_mel: torch.Tensor) -> torch.Tensor:
        """The vocoder's log-mel from a model-scale mel."""
        return denormalise_mel(model_mel) if self.config.variant.mel_norm else model_mel

    @torch.no_grad()
    def semantic(self, rescaled: torch.Tensor) -> torch.Tensor:
        """Frozen semantic features ``[B, L1, dim]`` of rescaled audio."""
        return self.encoder.encode(rescaled).to(rescaled.dtype)

    def target_frames(self) -> dict[str, tuple[int, int]]:
        """Per target feature (``mel``, and ``semantic`` when the variant uses it): (samples per frame, frames per
        model window)."""
        frames = {"mel": (HOP_SIZE, self.config.model.mel_frames)}
        if self.config.variant.uses_semantic:
            hop = round(SAMPLE_RATE / self.encoder.frame_rate)
            frames["semantic"] = (hop, self.encoder.num_frames(self.config.model.window_samples))
        return frames

    @property
    def window_grid(self) -> int:
        """Samples between possible training-window starts: whole numbers of frames of every target feature
        (1280 = 5 x 256 = 4 x 320), so a window's target features are a slice of its clip's."""
        return math.lcm(*(hop for hop, _ in self.target_frames().values()))

    def targets(self, accompaniment: torch.Tensor) -> dict[str, torch.Tensor]:
        """Target features of a whole accompaniment clip ``[T]``, min-max rescaled once per clip:
        ``mel`` ``[n_mels, frames]`` in the model's scale and (when used) ``semantic`` ``[frames, dim]``."""
        rescaled = rescale_for_features(accompaniment[None])
        targets = {"mel": self._model_scale(mel_spectrogram(rescaled))[0]}
        if self.config.variant.uses_semantic:
            targets["semantic"] = self.semantic(rescaled)[0]
        return targets

    def target_settings(self) -> dict[str, Any]:
        """Everything besides the audio that :meth:`targets` depends on (part of the cache key)."""
        return {"mel": "bigvgan-24k-100band", "mel_norm": self.config.variant.mel_norm, "peak": FEATURE_PEAK,
                "semantic": self.encoder.describe() if self.config.variant.uses_semantic else None}

    def vocal_inputs(self, vocals: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(semantic, mel)`` conditions of raw vocals ``[B, T]``, each None when the variant does not use it."""
        rescaled = rescale_for_features(vocals)
        semantic = self.semantic(rescaled) if self.config.variant.uses_semantic else None
        mel = self.mel(rescaled) if self.config.variant.uses_vocal_mel else None
        return semantic, mel


def augment_vocals(vocals: torch.Tensor, train: TrainConfig) -> torch.Tensor:
    """Training-time vocal noise (reference facts): N(0, 0.01^2) always; with probability 0.3 extra Gaussian noise
    of std ``peak * U(0, 0.1)``. Draws from the global generators (reseeded every step by the training loop)."""
    batch = vocals.shape[0]
    peak = vocals.abs().amax(dim=-1, keepdim=True)
    extra_std = peak * torch.rand(batch, 1, device=vocals.device) * train.extra_noise_max
    extra_on = (torch.rand(batch, 1, device=vocals.device) < train.extra_noise_prob).to(vocals.dtype)
    base = torch.randn_like(vocals) * train.vocal_noise_std
    return vocals + base + torch.randn_like(vocals) * extra_on * extra_std


def cached_targets(features: Features, accompaniment: torch.Tensor, cache: ContentCache,
                   device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """:meth:`Features.targets` of ``accompaniment`` ``[T]`` (CPU) as CPU tensors, read from ``cache`` when there;
    on a miss computed on ``device`` and written atomically. Keyed by the sha256 of the samples and of the feature
    settings, so changed audio or settings can never return stale features."""
    settings = json.dumps(features.target_settings(), sort_keys=True, default=str)
    content = sha256_bytes(accompaniment.contiguous().numpy().tobytes())
    keys = {name: sha256_bytes(f"{content}|{settings}|{name}".encode()) for name in features.target_frames()}
    stored = {name: cache.get(key) for name, key in keys.items()}
    if any(value is None for value in stored.values()):
        computed = features.targets(accompaniment.to(device))
        stored = {name: cache.put(key, computed[name].cpu().numpy()) for name, key in keys.items()}
    return {name: torch.from_numpy(value) for name, value in stored.items()}
