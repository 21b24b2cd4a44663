"""Incremental decoding of a stage's x-transformers decoder with a preallocated, pre-rotated KV cache.

x-transformers' own cache (``net(seq, cache=...)``) re-embeds the whole sequence, recomputes the rotary table for
twice its length, re-rotates every cached key and concatenates every layer's keys/values with the new ones at each
step: per-token work that grows with the sequence. Here the keys are rotated once when written into buffers sized
for the whole sequence, the rotary table is computed once, and a step embeds and transforms one token only, so a
step costs the weights' matrix-vector products plus attention over the cache. The modules' own weights and
sub-modules are used (no copy); :func:`check_supported` refuses decoder options this does not reproduce.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from x_transformers.x_transformers import Attention, FeedForward, LayerNorm


def check_supported(net: nn.Module) -> None:
    """Raise ``ValueError`` unless ``net`` is a pre-norm rotary decoder of attention and feed-forward blocks."""
    layers = net.attn_layers
    rotary = layers.rotary_pos_emb
    if rotary is None or rotary.scale is not None or rotary.interpolation_factor != 1.0:
        raise ValueError("KV-cache decoding needs plain rotary positions (no xpos, no interpolation)")
    if getattr(net, "num_memory_tokens", 0) or not isinstance(layers.final_norm, LayerNorm):
        raise ValueError("KV-cache decoding supports no memory tokens and a final LayerNorm only")
    for norms, block, _ in layers.layers:
        if not isinstance(norms[0], LayerNorm) or norms[1] is not None or norms[2] is not None:
            raise ValueError("KV-cache decoding supports pre-norm blocks only")
        if not isinstance(block, (Attention, FeedForward)):
            raise ValueError(f"KV-cache decoding does not support {type(block).__name__} blocks")


class KVCacheDecoder:
    """Feeds tokens to ``net`` (a ``TransformerWrapper`` around a rotary ``Decoder``) keeping every layer's keys
    and values for up to ``max_len`` positions of a batch of ``batch`` sequences."""

    def __init__(self, net: nn.Module, batch: int, max_len: int) -> None:
        check_supported(net)
        self.net = net
        self.length = 0
        self.max_len = max_len
        param = next(net.parameters())
        rotary = net.attn_layers.rotary_pos_emb
        angles = torch.arange(max_len, device=param.device, dtype=rotary.inv_freq.dtype)[:, None] * rotary.inv_freq
        angles = angles.repeat_interleave(2, dim=-1)  # x-transformers interleaves the rotated pairs
        self.cos, self.sin = angles.cos().to(param.dtype), angles.sin().to(param.dtype)
        self.rot_dim = angles.shape[-1]
        self.cache: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for _, block, _ in net.attn_layers.layers:
            if isinstance(block, Attention):
                heads, dim_head = block.heads, block.to_k.out_features // block.heads
                shape = (batch, heads, max_len, dim_head)
                self.cache.append((param.new_empty(shape), param.new_empty(shape)))
            else:
                self.cache.append(None)

    def _rotate(self, t: torch.Tensor, start: int) -> torch.Tensor:
        """Rotary embedding of ``t`` ``[B, H, n, Dh]`` at positions ``start ...`` (partial: first ``rot_dim``)."""
        n = t.shape[2]
        cos, sin = self.cos[start:start + n], self.sin[start:start + n]
        part, rest = t[..., :self.rot_dim], t[..., self.rot_dim:]
        pairs = part.unflatten(-1, (-1, 2))
        turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return torch.cat((part * cos + turned * sin, rest), dim=-1)

    def _attend(self, block: Attention, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor],
                start: int) -> torch.Tensor:
        batch, n, _ = x.shape
        split = lambda t: t.view(batch, n, block.heads, -1).transpose(1, 2)  # noqa: E731
        q = self._rotate(split(block.to_q(x)), start)
        keys, values = cache
        end = start + n
        keys[:, :, start:end] = self._rotate(split(block.to_k(x)), start)
        values[:, :, start:end] = split(block.to_v(x))
        mask = None
        if n > 1 and start > 0:
            mask = torch.ones(n, end, dtype=torch.bool, device=x.device).tril(diagonal=start)
        out = F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end], attn_mask=mask,
                                             is_causal=n > 1 and start == 0)
        return block.to_out(out.transpose(1, 2).reshape(batch, n, -1))

    def feed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append ``tokens`` ``[B, n]`` and return the final hidden state of the last one, ``[B, dim]``."""
        start, n = self.length, tokens.shape[1]
        if start + n > self.max_len:
            raise ValueError(f"sequence of {start + n} tokens exceeds the cache of {self.max_len}")
        net = self.net
        x = net.project_emb(net.emb_dropout(net.post_emb_norm(net.token_emb(tokens))))
        for (norms, block, residual), cache in zip(net.attn_layers.layers, self.cache):
            h = norms[0](x)
            out = self._attend(block, h, cache, start) if cache is not None else block(h)
            x = residual(out, x)
        self.length = start + n
        return net.attn_layers.final_norm(x[:, -1])

    def logits(self, hidden: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """Logits of vocabulary entries ``[lo, hi)`` for hidden states ``[B, dim]`` (float32)."""
        head = self.net.to_logits
        bias = None if head.bias is None else head.bias[lo:hi]
        return F.linear(hidden, head.weight[lo:hi], bias).float()
