"""The three SingSong stages as decoder-only transformers (x-transformers) over condition-prefixed token sequences.

semantic: vocal semantic ids -> accompaniment semantic ids; coarse: accompaniment semantic ids -> codec codebooks
0-2; fine: codebooks 0-2 -> codebooks 3-7. The condition is a token prefix; the loss covers target tokens only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from x_transformers import Decoder, TransformerWrapper

from sag_bench.systems.singsong.config import N_COARSE, N_FINE, StageConfig
from sag_bench.systems.singsong.layout import StageLayout, Stream
from sag_bench.systems.singsong.sampling import sample_tokens

IGNORE_INDEX = -100


def stage_layout(stage: str, semantic_vocab: int, codebook_size: int) -> StageLayout:
    """The token layout of ``stage`` for a semantic vocabulary and codec codebook size."""
    vocal = Stream("vocal-semantic", 1, semantic_vocab)
    semantic = Stream("semantic", 1, semantic_vocab)
    coarse = Stream("coarse", N_COARSE, codebook_size)
    fine = Stream("fine", N_FINE, codebook_size)
    layouts = {"semantic": (vocal, semantic), "coarse": (semantic, coarse), "fine": (coarse, fine)}
    if stage not in layouts:
        raise ValueError(f"unknown SingSong stage {stage!r}; stages are {', '.join(layouts)}")
    return StageLayout(*layouts[stage])


class StageLM(nn.Module):
    """One stage: a causal transformer over ``[condition tokens ; target tokens]`` for windows of ``max_frames``."""

    def __init__(self, layout: StageLayout, config: StageConfig, max_frames: int) -> None:
        super().__init__()
        self.layout = layout
        self.config = config
        self.max_frames = max_frames
        self.net = TransformerWrapper(
            num_tokens=layout.vocab_size,
            max_seq_len=layout.seq_len(max_frames),
            use_abs_pos_emb=False,
            attn_layers=Decoder(dim=config.dim, depth=config.depth, heads=config.heads,
                                rotary_pos_emb=True, attn_flash=True, ff_glu=True),
        )

    def sequence(self, condition: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Token sequence ``[B, Lc + Lt]`` and the prefix length ``Lc`` for codes ``[B, Qc, F]``, ``[B, Qt, F]``."""
        prefix = self.layout.condition_tokens(condition)
        return torch.cat([prefix, self.layout.target_tokens(target)], dim=1), prefix.shape[1]

    def loss(self, condition: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy over the target tokens only (nats per token)."""
        seq, prefix_len = self.sequence(condition, target)
        logits = self.net(seq[:, :-1])
        labels = seq[:, 1:].clone()
        labels[:, : prefix_len - 1] = IGNORE_INDEX
        return F.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=IGNORE_INDEX)

    def forward(self, condition: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss (:meth:`loss`), so that wrapped models (DDP) train through ``__call__``."""
        return self.loss(condition, target)

    def generate(self, condition: torch.Tensor, generator: torch.Generator | None = None,
                 cache_kv: bool = True, temperature: float | None = None) -> torch.Tensor:
        """Target codes ``[B, Qt, F]`` sampled for condition codes ``[B, Qc, F]`` (same frame count ``F``)."""
        frames = condition.shape[-1]
        if frames > self.max_frames:
            raise ValueError(f"{frames} frames exceed this stage's window of {self.max_frames}")
        ranges = self.layout.target_ranges(frames)
        temp = self.config.temperature if temperature is None else temperature
        tokens = sample_tokens(self.net, self.layout.condition_tokens(condition), ranges, temp,
                               self.config.top_k_fraction, generator=generator, cache_kv=cache_kv,
                               desc=f"{self.layout.target.name} stage")
        return self.layout.target_codes(tokens)
