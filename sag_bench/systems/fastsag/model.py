"""The FastSAG network (paper Figure 1 b/c): semantic projection, prior projection, conditional EDM denoiser.

Module names follow the paper's blocks: ``semantic_projection`` (WaveNet), ``prior_projection.resampler``
(Perceiver-IO or bilinear interpolation), ``prior_projection.encoder`` (WaveNet), ``denoiser`` (2-D U-Net).
The model works on features; audio, backbones and normalisation of inputs are the system's and trainer's job.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sag_bench.modules import edm, solvers
from sag_bench.modules.perceiver import PerceiverIO
from sag_bench.modules.unet import UNet2d
from sag_bench.modules.wavenet import WaveNet
from sag_bench.systems.fastsag.config import FastSAGConfig, ModelConfig, Variant

# Grad-TTS prior loss (reference facts): Gaussian NLL with unit variance, 0.5 (y - mu)^2 + 0.5 ln(2 pi) per bin.
HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class BilinearResampler(nn.Module):
    """The ``interpolate`` ablation: bilinear resize of the ``(dim x L1)`` feature map to ``(n_mels x frames)``."""

    def __init__(self, n_mels: int, frames: int) -> None:
        super().__init__()
        self.size = (n_mels, frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L1, dim] -> [B, n_mels, frames]``."""
        image = x.transpose(1, 2)[:, None]
        return nn.functional.interpolate(image, size=self.size, mode="bilinear", align_corners=False)[:, 0]


class PerceiverResampler(nn.Module):
    """Perceiver-IO from the semantic sequence onto one learned query per mel frame, projected to the mel bins."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.perceiver = PerceiverIO(
            in_dim=config.semantic_dim, out_dim=config.n_mels, num_queries=config.mel_frames,
            num_latents=config.perceiver_latents, latent_dim=config.perceiver_latent_dim,
            depth=config.perceiver_depth, heads=config.perceiver_heads, head_dim=config.perceiver_head_dim,
            query_dim=config.perceiver_query_dim, ff_mult=config.perceiver_ff_mult,
            seq_dropout=config.perceiver_seq_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L1, dim] -> [B, n_mels, frames]``."""
        return self.perceiver(x).transpose(1, 2)


class PriorProjection(nn.Module):
    """Resampler (semantic conditions only) + WaveNet encoder producing the mel-like prior ``mu``."""

    def __init__(self, config: ModelConfig, variant: Variant) -> None:
        super().__init__()
        self.padded_frames = config.padded_frames
        self.resampler: nn.Module | None = None
        if variant.uses_semantic:
            self.resampler = PerceiverResampler(config) if variant.resampler == "perceiver" else \
                BilinearResampler(config.n_mels, config.mel_frames)
        self.encoder = WaveNet(config.n_mels, config.prior_stacks, config.prior_layers, hidden=config.prior_hidden)

    def forward(self, semantic: torch.Tensor | None, vocal_mel: torch.Tensor | None,
                mask: torch.Tensor) -> torch.Tensor:
        """Prior ``[B, n_mels, padded]`` from semantic features ``[B, L1, dim]`` and/or a vocal mel ``[B, n_mels, frames]``."""
        parts = []
        if self.resampler is not None:
            parts.append(self.resampler(semantic))
        if vocal_mel is not None:
            parts.append(vocal_mel)
        x = sum(parts)
        x = nn.functional.pad(x, (0, self.padded_frames - x.shape[-1]))
        return self.encoder(x, mask)


class FastSAGModel(nn.Module):
    """All trainable parts of FastSAG for one variant."""

    def __init__(self, config: FastSAGConfig) -> None:
        super().__init__()
        m, self.variant = config.model, config.variant
        self.mel_frames, self.padded_frames = m.mel_frames, m.padded_frames
        self.semantic_projection = WaveNet(m.semantic_dim, m.semantic_stacks, m.semantic_layers,
                                           hidden=m.semantic_hidden) if self.variant.uses_semantic else None
        self.prior_projection = PriorProjection(m, self.variant)
        self.denoiser = UNet2d(m.unet_dim, m.unet_mults, m.unet_groups, m.unet_heads, m.unet_head_dim)

    def frame_mask(self, batch: int, device: torch.device) -> torch.Tensor:
        """``[B, 1, padded]``: 1 on the clip's mel frames, 0 on the padding."""
        mask = torch.zeros(batch, 1, self.padded_frames, device=device)
        mask[..., : self.mel_frames] = 1.0
        return mask

    def condition(self, vocal_semantic: torch.Tensor | None, vocal_mel: torch.Tensor | None
                  ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Condition block: predicted accompaniment semantics ``S'_nv`` (or None), prior ``mu`` and the frame mask.

        ``vocal_semantic`` ``[B, L1, dim]`` (standardised frames), ``vocal_mel`` ``[B, n_mels, frames]`` in the
        model's mel scale; each is required exactly when the variant uses it.
        """
        reference = vocal_semantic if vocal_semantic is not None else vocal_mel
        mask = self.frame_mask(reference.shape[0], reference.device)
        predicted = None
        semantic_xy = None
        if self.semantic_projection is not None:
            predicted = self.semantic_projection(vocal_semantic.transpose(1, 2)).transpose(1, 2)
            semantic_xy = predicted + vocal_semantic  # paper section 4.2: S'_nv + S_v before resampling
        mel = vocal_mel if self.variant.uses_vocal_mel else None
        return predicted, self.prior_projection(semantic_xy, mel, mask), mask

    def pad(self, mel: torch.Tensor) -> torch.Tensor:
        """Zero-pad ``[B, n_mels, frames]`` to the padded length."""
        return nn.functional.pad(mel, (0, self.padded_frames - mel.shape[-1]))

    def forward(self, vocal_semantic: torch.Tensor | None, vocal_mel: torch.Tensor | None,
               target_semantic: torch.Tensor | None, target_mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training forward pass: semantic (eq. 9), prior (eq. 10, as a unit-variance Gaussian NLL) and diffusion
        (eq. 11, EDM-weighted) losses, unweighted. ``target_mel`` ``[B, n_mels, frames]`` is in the model's mel
        scale; ``target_semantic`` ``[B, L1, dim]`` is required when the variant has a semantic projection.
        """
        predicted, mu, mask = self.condition(vocal_semantic, vocal_mel)
        target = self.pad(target_mel) * mask
        out: dict[str, torch.Tensor] = {}
        if predicted is not None:
            out["semantic"] = nn.functional.mse_loss(predicted, target_semantic)
        valid = mask.sum() * target.shape[1]
        out["prior"] = (0.5 * ((target - mu) ** 2 * mask)).sum() / valid + HALF_LOG_TWO_PI
        out["diffusion"] = edm.training_loss(self.denoiser, target, mu, mask)
        return out

    @torch.no_grad()
    def sample(self, mu: torch.Tensor, mask: torch.Tensor, steps: int, sampler: str,
               noise: torch.Tensor, schedule: str = "karras") -> torch.Tensor:
        """Run the EDM sampler from the prior and standard-normal ``noise`` (both ``[B, n_mels, padded]``) and crop
        the padding: accompaniment mel ``[B, n_mels, frames]`` in the model's mel scale."""
        mels = solvers.sample(self.denoiser, mu, mask, steps, sampler, noise, schedule=schedule)
        return mels[..., : self.mel_frames]


def parameter_counts(model: FastSAGModel) -> dict[str, int]:
    """Parameters per paper block (and in total)."""
    blocks = {"semantic_projection": model.semantic_projection, "prior_projection.resampler":
              model.prior_projection.resampler, "prior_projection.encoder": model.prior_projection.encoder,
              "denoiser": model.denoiser}
    counts = {name: sum(p.numel() for p in block.parameters()) if block is not None else 0
              for name, block in blocks.items()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
