"""Autoregressive sampling of one stage: per-position vocabulary ranges, top-k, temperature, optional KV cache.

x-transformers' own ``generate`` cannot restrict each step to one codebook's range, so the loop is written here.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from tqdm import tqdm


class IncrementalDecoder:
    """Next-token logits of a ``TransformerWrapper`` for a growing sequence, with or without a KV cache.

    With ``cache_kv`` each call feeds only the tokens added since the previous call (x-transformers keeps the
    keys/values of the rest); without it, every call recomputes the whole sequence.
    """

    def __init__(self, net: nn.Module, cache_kv: bool = True) -> None:
        self.net = net
        self.cache_kv = cache_kv
        self.cache = None

    def next_logits(self, seq: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, V]`` for the token following ``seq`` ``[B, L]`` (float32)."""
        if self.cache_kv:
            logits, self.cache = self.net(seq, return_intermediates=True, cache=self.cache)
        else:
            logits = self.net(seq)
        return logits[:, -1].float()


def sample_in_range(logits: torch.Tensor, lo: int, hi: int, temperature: float, top_k_fraction: float,
                    generator: torch.Generator | None) -> torch.Tensor:
    """Sample token ids ``[B]`` in ``[lo, hi)`` from ``logits`` ``[B, V]``: slice the range, top-k, temperature.

    ``temperature <= 0`` means greedy. Top-k keeps ``ceil(top_k_fraction * (hi - lo))`` logits (at least one).
    """
    scores = logits[:, lo:hi]
    if temperature <= 0:
        return scores.argmax(dim=-1) + lo
    k = max(1, math.ceil(top_k_fraction * (hi - lo)))
    values, indices = scores.topk(k, dim=-1)
    probs = torch.softmax(values / temperature, dim=-1)
    choice = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return indices.gather(1, choice[:, None]).squeeze(1) + lo


@torch.inference_mode()
def sample_tokens(net: nn.Module, prefix: torch.Tensor, ranges: torch.Tensor, temperature: float,
                  top_k_fraction: float, generator: torch.Generator | None = None,
                  cache_kv: bool = True, desc: str = "sampling") -> torch.Tensor:
    """Continue ``prefix`` ``[B, L]`` by ``len(ranges)`` tokens, position ``i`` restricted to ``ranges[i]``.

    Returns only the new tokens ``[B, len(ranges)]``. Deterministic given ``generator``'s state. A progress bar
    (``desc``) shows on a terminal only.
    """
    decoder = IncrementalDecoder(net, cache_kv=cache_kv)
    seq = prefix
    bounds = ranges.tolist()
    for lo, hi in tqdm(bounds, desc=desc, unit="token", leave=False, disable=None):
        token = sample_in_range(decoder.next_logits(seq), lo, hi, temperature, top_k_fraction, generator)
        seq = torch.cat([seq, token[:, None]], dim=1)
    return seq[:, prefix.shape[1]:]
