"""Perceiver-IO resampler (Jaegle et al. 2022) used by FastSAG's prior projection (paper section 4.2).

An input sequence ``[B, N_in, in_dim]`` of any length is read into ``num_latents`` learned latents by cross-attention,
processed by ``depth`` latent self-attention blocks, and decoded by ``num_queries`` learned output queries, one per
output frame, then projected to ``out_dim``. No positional encoding on the input (as in the reference).
"""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    """Multi-head attention with pre-LayerNorm on queries and context; q and kv without bias, output with bias."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.norm_query = nn.LayerNorm(query_dim)
        self.norm_context = nn.LayerNorm(context_dim)
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, query_dim)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``[B, Nq, query_dim]`` attending over ``[B, Nc, context_dim]`` -> ``[B, Nq, query_dim]``."""
        q = self.to_q(self.norm_query(queries))
        k, v = self.to_kv(self.norm_context(context)).chunk(2, dim=-1)
        split = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # noqa: E731
        out = nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
        return self.to_out(out.transpose(1, 2).flatten(2))


class GEGLUFeedForward(nn.Module):
    """Pre-LayerNorm feed-forward with a GELU-gated linear unit, hidden width ``dim * mult``."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, 2 * dim * mult)
        self.down = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., dim] -> [..., dim]``."""
        value, gate = self.up(self.norm(x)).chunk(2, dim=-1)
        return self.down(value * nn.functional.gelu(gate))


class SelfAttentionBlock(nn.Module):
    """Residual latent self-attention followed by a residual GEGLU feed-forward."""

    def __init__(self, dim: int, heads: int, head_dim: int, ff_mult: int) -> None:
        super().__init__()
        self.attention = Attention(dim, dim, heads, head_dim)
        self.feed_forward = GEGLUFeedForward(dim, ff_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(x, x)
        return x + self.feed_forward(x)


class PerceiverIO(nn.Module):
    """``[B, N_in, in_dim] -> [B, num_queries, out_dim]``. FastSAG: 768 -> 32 x 256 latents, depth 6, 8 x 128 heads,
    937 queries of 256 -> 100 mel bins (15.2M parameters)."""

    def __init__(self, in_dim: int, out_dim: int, num_queries: int, num_latents: int = 32, latent_dim: int = 256,
                 depth: int = 6, heads: int = 8, head_dim: int = 128, query_dim: int = 256, ff_mult: int = 4,
                 seq_dropout: float = 0.1) -> None:
        super().__init__()
        self.seq_dropout = seq_dropout
        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim))
        self.encode_attention = Attention(latent_dim, in_dim, heads, head_dim)
        self.encode_feed_forward = GEGLUFeedForward(latent_dim, ff_mult)
        self.blocks = nn.ModuleList(SelfAttentionBlock(latent_dim, heads, head_dim, ff_mult) for _ in range(depth))
        self.queries = nn.Parameter(torch.randn(num_queries, query_dim))
        self.decode_attention = Attention(query_dim, latent_dim, heads, head_dim)
        self.to_out = nn.Linear(query_dim, out_dim)

    def _drop_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Training only: keep a random ``1 - seq_dropout`` share of input frames (same count for every item)."""
        if not self.training or self.seq_dropout <= 0:
            return x
        keep = max(1, int(x.shape[1] * (1.0 - self.seq_dropout)))
        order = torch.rand(x.shape[0], x.shape[1], device=x.device).argsort(dim=1)[:, :keep].sort(dim=1).values
        return x.gather(1, order[..., None].expand(-1, -1, x.shape[2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Resample ``x`` onto the learned output queries."""
        x = self._drop_sequence(x)
        latents = self.latents.expand(x.shape[0], -1, -1)
        latents = latents + self.encode_attention(latents, x)
        latents = latents + self.encode_feed_forward(latents)
        for block in self.blocks:
            latents = block(latents)
        queries = self.queries.expand(x.shape[0], -1, -1)
        return self.to_out(self.decode_attention(queries, latents))
