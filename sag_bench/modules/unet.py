"""Grad-TTS-style 2-D U-Net denoiser on the mel image (FastSAG section 4.3).

The noisy mel and the prior ``mu`` are the two input channels of a ``[B, 2, F, T]`` image; the noise level arrives as
``c_noise = ln(sigma) / 4`` through a sinusoidal embedding (scale 1000) and an MLP, added in every ResNet block.
Levels ``dim * mults`` (FastSAG: 64/128/256), two ResNet blocks each (GroupNorm, Mish), Rezero linear attention,
stride-2 down/up sampling in both axes, masked along time. ``F`` and ``T`` must be divisible by 2^(levels - 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Grad-TTS: the scalar noise level is scaled by 1000 before its sinusoidal embedding.
NOISE_EMBEDDING_SCALE = 1000.0


class SinusoidalEmbedding(nn.Module):
    """``[B]`` scalars -> ``[B, dim]`` sin/cos features at geometric frequencies."""

    def __init__(self, dim: int, scale: float = NOISE_EMBEDDING_SCALE) -> None:
        super().__init__()
        self.dim, self.scale = dim, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / (half - 1))
        angles = self.scale * x.float()[:, None] * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1).to(x.dtype)


class ConvBlock(nn.Module):
    """Masked 3x3 conv -> GroupNorm -> Mish."""

    def __init__(self, dim_in: int, dim_out: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return nn.functional.mish(self.norm(self.conv(x * mask))) * mask


class ResnetBlock(nn.Module):
    """Two conv blocks with the noise embedding added in between, plus a (1x1 when widths differ) shortcut."""

    def __init__(self, dim_in: int, dim_out: int, embed_dim: int, groups: int) -> None:
        super().__init__()
        self.noise_proj = nn.Linear(embed_dim, dim_out)
        self.block1 = ConvBlock(dim_in, dim_out, groups)
        self.block2 = ConvBlock(dim_out, dim_out, groups)
        self.shortcut = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.block1(x, mask) + self.noise_proj(nn.functional.mish(embedding))[:, :, None, None]
        return self.block2(h, mask) + self.shortcut(x * mask)


class RezeroLinearAttention(nn.Module):
    """Residual linear attention over all positions, its output scaled by a learned gain initialised at 0."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Conv2d(dim, 3 * heads * head_dim, 1, bias=False)
        self.to_out = nn.Conv2d(heads * head_dim, dim, 1)
        self.gain = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        q, k, v = self.to_qkv(x).reshape(batch, 3, self.heads, -1, height * width).unbind(1)
        context = torch.einsum("bhdn,bhen->bhde", k.softmax(dim=-1), v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(batch, -1, height, width)
        return x + self.gain * self.to_out(out)


class Level(nn.Module):
    """One U-Net resolution: two ResNet blocks and attention, then a resampling conv (or none at the bottom/top)."""

    def __init__(self, dim_in: int, dim_out: int, embed_dim: int, groups: int, heads: int, head_dim: int,
                 resample: nn.Module) -> None:
        super().__init__()
        self.resnet1 = ResnetBlock(dim_in, dim_out, embed_dim, groups)
        self.resnet2 = ResnetBlock(dim_out, dim_out, embed_dim, groups)
        self.attention = RezeroLinearAttention(dim_out, heads, head_dim)
        self.resample = resample

    def forward(self, x: torch.Tensor, mask: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.attention(self.resnet2(self.resnet1(x, mask, embedding), mask, embedding))


class UNet2d(nn.Module):
    """``net(x, mu, mask, c_noise)``: ``[B, F, T]`` x2, ``[B, 1, T]``, ``[B]`` -> ``[B, F, T]`` (7.63M at dim 64)."""

    def __init__(self, dim: int = 64, mults: tuple[int, ...] = (1, 2, 4), groups: int = 8, heads: int = 4,
                 head_dim: int = 32) -> None:
        super().__init__()
        self.factor = 2 ** (len(mults) - 1)
        self.noise_embedding = SinusoidalEmbedding(dim)
        self.noise_mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))
        widths = [2, *(dim * m for m in mults)]
        pairs = list(zip(widths[:-1], widths[1:]))
        self.downs = nn.ModuleList(
            Level(w_in, w_out, dim, groups, heads, head_dim,
                  nn.Conv2d(w_out, w_out, 3, stride=2, padding=1) if i < len(pairs) - 1 else nn.Identity())
            for i, (w_in, w_out) in enumerate(pairs))
        mid = widths[-1]
        self.mid1 = ResnetBlock(mid, mid, dim, groups)
        self.mid_attention = RezeroLinearAttention(mid, heads, head_dim)
        self.mid2 = ResnetBlock(mid, mid, dim, groups)
        self.ups = nn.ModuleList(
            Level(2 * w_out, w_in, dim, groups, heads, head_dim, nn.ConvTranspose2d(w_in, w_in, 4, stride=2, padding=1))
            for w_in, w_out in reversed(pairs[1:]))
        self.final_block = ConvBlock(dim, dim, groups)
        self.final_conv = nn.Conv2d(dim, 1, 1)

    def forward(self, x: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        """Denoiser output ``F_theta`` for the scaled noisy mel ``x`` given prior ``mu`` and ``c_noise``."""
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"mel shape {tuple(x.shape[-2:])} must be divisible by {self.factor} in both axes")
        embedding = self.noise_mlp(self.noise_embedding(noise_level))
        h = torch.stack([mu, x], dim=1)
        mask = mask[:, None]  # [B, 1, 1, T]
        masks, skips = [mask], []
        for level in self.downs:
            h = level(h, masks[-1], embedding)
            skips.append(h)
            h = level.resample(h * masks[-1])
            masks.append(masks[-1][..., ::2])
        masks.pop()
        h = self.mid2(self.mid_attention(self.mid1(h, masks[-1], embedding)), masks[-1], embedding)
        for level in self.ups:
            level_mask = masks.pop()
            h = level(torch.cat([h, skips.pop()], dim=1), level_mask, embedding)
            h = level.resample(h * level_mask)
        h = self.final_block(h, mask)
        return (self.final_conv(h * mask) * mask)[:, 0]
