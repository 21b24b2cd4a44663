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
from sag_bench.systems.singsong.sampling import Generators, child_generators, sample_tokens
from sag_bench.systems.singsong.windows import split_windows, stitch_windows, window_starts

IGNORE_INDEX = -100


def stage_layout(stage: str, semantic_vocab: int, codebook_size: int,
                 coarse_condition: str = "semantic") -> StageLayout:
    """The token layout of ``stage`` for a semantic vocabulary and codec codebook size.

    ``coarse_condition="semantic+vocal"``: the coarse stage's condition has two semantic codebooks per frame, the
    accompaniment's then the vocals' (see :func:`stage_condition`), each in its own vocabulary range.
    """
    vocal = Stream("vocal-semantic", 1, semantic_vocab)
    semantic = Stream("semantic", 1, semantic_vocab)
    coarse = Stream("coarse", N_COARSE, codebook_size)
    fine = Stream("fine", N_FINE, codebook_size)
    coarse_input = Stream("semantic+vocal", 2, semantic_vocab) if coarse_condition == "semantic+vocal" else semantic
    layouts = {"semantic": (vocal, semantic), "coarse": (coarse_input, coarse), "fine": (coarse, fine)}
    if stage not in layouts:
        raise ValueError(f"unknown SingSong stage {stage!r}; stages are {', '.join(layouts)}")
    return StageLayout(*layouts[stage])


def stage_condition(layout: StageLayout, previous: torch.Tensor, vocal: torch.Tensor) -> torch.Tensor:
    """The condition codes of a stage: the previous stage's codes ``[B, Q, F]``, with the vocal semantic ids
    ``[B, 1, F]`` appended as a second codebook when the layout asks for both (coarse ``semantic+vocal``)."""
    if layout.condition.name == "semantic+vocal":
        return torch.cat([previous, vocal.to(previous.dtype)], dim=1)
    return previous


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

    def generate(self, condition: torch.Tensor, generator: Generators = None,
                 cache_kv: bool = True, temperature: float | None = None,
                 prompt: torch.Tensor | None = None) -> torch.Tensor:
        """Target codes for condition codes ``[B, Qc, F]``: ``[B, Qt, F - P]``, the frames after ``prompt``.

        ``prompt`` ``[B, Qt, P]``: target codes of the window's first ``P`` frames, already generated (by the
        previous window); the sequence continues after them. Without a prompt all ``F`` frames are sampled.
        """
        frames = condition.shape[-1]
        if frames > self.max_frames:
            raise ValueError(f"{frames} frames exceed this stage's window of {self.max_frames}")
        prefix = self.layout.condition_tokens(condition)
        ranges = self.layout.target_ranges(frames)
        if prompt is not None:
            prefix = torch.cat([prefix, self.layout.target_tokens(prompt)], dim=1)
            ranges = ranges[prompt.shape[-1] * self.layout.target.n_codebooks:]
        temp = self.config.temperature if temperature is None else temperature
        tokens = sample_tokens(self.net, prefix, ranges, temp, self.config.top_k_fraction, generator=generator,
                               cache_kv=cache_kv, desc=f"{self.layout.target.name} stage")
        return self.layout.target_codes(tokens)

    def generate_windows(self, condition: torch.Tensor, hop: int, generator: Generators = None,
                         cache_kv: bool = True, temperature: float | None = None) -> torch.Tensor:
        """Target codes ``[B, Qt, F]`` for condition codes ``[B, Qc, F]`` of any length, in windows of
        ``max_frames`` whose starts are ``hop`` frames apart (the last one ends at ``F``).

        ``hop == max_frames``: independent windows, generated as one batch (each frame from the first window
        covering it). A smaller hop slides: window ``k`` is prompted with the frames it shares with the windows
        before it (their generated codes) and samples only the rest, so every frame is sampled exactly once.
        """
        frames, window = condition.shape[-1], self.max_frames
        starts = window_starts(frames, window, hop)
        if hop >= window:
            pieces = self.generate(split_windows(condition, starts, window), child_generators(generator, len(starts)),
                                   cache_kv, temperature)
            return stitch_windows(pieces, starts, frames)
        generated = None
        for start in starts:
            end = min(start + window, frames)
            prompt = None if generated is None else generated[..., start:]
            new = self.generate(condition[..., start:end], generator, cache_kv, temperature, prompt=prompt)
            generated = new if generated is None else torch.cat([generated, new], dim=-1)
        return generated
