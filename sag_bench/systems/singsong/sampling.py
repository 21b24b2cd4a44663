"""Autoregressive sampling of one stage: per-position vocabulary ranges, top-k, temperature, optional KV cache.

x-transformers' own ``generate`` cannot restrict each step to one codebook's range, so the loop is written here.
With the KV cache each step feeds one token to :class:`~sag_bench.systems.singsong.decoding.KVCacheDecoder`;
without it every step recomputes the whole sequence with the network's ordinary forward (the baseline the cache's
speed-up is measured against; both give the same logits up to float rounding).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from tqdm import tqdm

from sag_bench.systems.singsong.decoding import KVCacheDecoder


# One generator for the whole batch, or one per row (then a row's tokens do not depend on the other rows).
Generators = torch.Generator | Sequence[torch.Generator] | None


def sample_in_range(scores: torch.Tensor, lo: int, temperature: float, top_k_fraction: float,
                    generator: Generators) -> torch.Tensor:
    """Sample token ids ``[B]`` from ``scores`` ``[B, n]``, the logits of vocabulary entries ``[lo, lo + n)``.

    ``temperature <= 0`` means greedy. Top-k keeps ``ceil(top_k_fraction * n)`` logits (at least one).
    """
    if temperature <= 0:
        return scores.argmax(dim=-1) + lo
    k = max(1, math.ceil(top_k_fraction * scores.shape[1]))
    values, indices = scores.topk(k, dim=-1)
    probs = torch.softmax(values / temperature, dim=-1)
    if generator is None or isinstance(generator, torch.Generator):
        choice = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    else:
        if len(generator) != len(probs):
            raise ValueError(f"{len(generator)} generators for a batch of {len(probs)}")
        choice = torch.cat([torch.multinomial(row[None], 1, generator=g)[0] for row, g in zip(probs, generator)])
    return indices.gather(1, choice[:, None]).squeeze(1) + lo


def child_generators(generators: Generators, count: int) -> Generators:
    """Per-row generators repeated for ``count`` windows of each row (row-major), each seeded from its row's
    generator; a single generator (or None) is returned as is."""
    if generators is None or isinstance(generators, torch.Generator):
        return generators
    return [torch.Generator(g.device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=g, device=g.device)))
            for g in generators for _ in range(count)]


@torch.inference_mode()
def sample_tokens(net: nn.Module, prefix: torch.Tensor, ranges: torch.Tensor, temperature: float,
                  top_k_fraction: float, generator: Generators = None,
                  cache_kv: bool = True, desc: str = "sampling") -> torch.Tensor:
    """Continue ``prefix`` ``[B, L]`` by ``len(ranges)`` tokens, position ``i`` restricted to ``ranges[i]``.

    Returns only the new tokens ``[B, len(ranges)]``. Deterministic given the state of ``generator`` (one for the
    batch, or one per row). A progress bar
    (``desc``) shows on a terminal only.
    """
    batch, start = prefix.shape
    seq = torch.cat([prefix, prefix.new_zeros(batch, len(ranges))], dim=1)
    decoder = KVCacheDecoder(net, batch, seq.shape[1]) if cache_kv else None
    hidden = decoder.feed(prefix) if decoder is not None else None
    for step, (lo, hi) in enumerate(tqdm(ranges.tolist(), desc=desc, unit="token", leave=False, disable=None)):
        end = start + step
        if decoder is None:
            scores = net(seq[:, :end])[:, -1, lo:hi].float()
        else:
            if step:
                hidden = decoder.feed(seq[:, end - 1:end])
            scores = decoder.logits(hidden, lo, hi)
        seq[:, end] = sample_in_range(scores, lo, temperature, top_k_fraction, generator)
    return seq[:, start:]
