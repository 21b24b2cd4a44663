"""Audio -> FastSAG inputs and targets: rescaled waveforms, semantic features, mels in the model's scale.

The model's mel scale is the normalised log-mel of eq. 13 (``mel_norm``) or the raw log-mel (``fastsag-no-norm``).
"""

from __future__ import annotations

import torch

from sag_bench.audio import denormalise_mel, mel_spectrogram, normalise_mel, rescale_for_features
from sag_bench.backbones.base import SemanticEncoder
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
        mel = mel_spectrogram(rescaled)[..., : self.config.model.mel_frames]
        return normalise_mel(mel) if self.config.variant.mel_norm else mel

    def to_log_mel(self, model_mel: torch.Tensor) -> torch.Tensor:
        """The vocoder's log-mel from a model-scale mel."""
        return denormalise_mel(model_mel) if self.config.variant.mel_norm else model_mel

    @torch.no_grad()
    def semantic(self, rescaled: torch.Tensor) -> torch.Tensor:
        """Frozen semantic features ``[B, L1, dim]`` of rescaled audio."""
        return self.encoder.encode(rescaled).to(rescaled.dtype)

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
