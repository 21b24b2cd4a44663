"""Token layouts of the three stages: condition codes as a prefix, target codes after it, one shared vocabulary.

A stream is a ``[B, Q, F]`` tensor of codes (Q codebooks at the codec frame rate). Streams are flattened time-major
(frame 0 codebook 0, frame 0 codebook 1, ...), and codebook ``q`` of each stream owns a disjoint vocabulary range,
as in AudioLM / SingSong ("disjoint vocabulary subsets ... truncating invalid subsets", SingSong section 4.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Stream:
    """``n_codebooks`` parallel code sequences, each with values in ``[0, codebook_size)``."""

    name: str
    n_codebooks: int
    codebook_size: int


@dataclass(frozen=True)
class StageLayout:
    """Vocabulary and sequence layout of one stage: ``condition`` codes, then ``target`` codes."""

    condition: Stream
    target: Stream

    @property
    def vocab_size(self) -> int:
        """Total tokens: every codebook of both streams, each in its own range."""
        return (self.condition.n_codebooks * self.condition.codebook_size
                + self.target.n_codebooks * self.target.codebook_size)

    @property
    def target_offset(self) -> int:
        """First token id of the target stream's codebook 0."""
        return self.condition.n_codebooks * self.condition.codebook_size

    def seq_len(self, frames: int) -> int:
        """Tokens in a full sequence of ``frames`` condition and target frames."""
        return frames * (self.condition.n_codebooks + self.target.n_codebooks)

    def target_ranges(self, frames: int) -> torch.Tensor:
        """``[frames * Q, 2]`` half-open vocabulary range ``[lo, hi)`` of every target position."""
        q = torch.arange(frames * self.target.n_codebooks) % self.target.n_codebooks
        lo = self.target_offset + q * self.target.codebook_size
        return torch.stack([lo, lo + self.target.codebook_size], dim=1)

    def condition_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """Flattened condition tokens ``[B, F * Qc]`` for condition codes ``[B, Qc, F]``."""
        return _flatten(codes, self.condition, offset=0)

    def target_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """Flattened target tokens ``[B, F * Qt]`` for target codes ``[B, Qt, F]``."""
        return _flatten(codes, self.target, offset=self.target_offset)

    def target_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`target_tokens`: codes ``[B, Qt, F]`` from ``[B, F * Qt]`` tokens."""
        q = self.target.n_codebooks
        batch, length = tokens.shape
        if length % q:
            raise ValueError(f"{length} target tokens do not fill whole frames of {q} codebooks")
        shifts = self.target_offset + torch.arange(q, device=tokens.device) * self.target.codebook_size
        return (tokens.view(batch, length // q, q) - shifts).transpose(1, 2).contiguous()


def _flatten(codes: torch.Tensor, stream: Stream, offset: int) -> torch.Tensor:
    if codes.dim() != 3 or codes.shape[1] != stream.n_codebooks:
        raise ValueError(f"{stream.name} codes must be [B, {stream.n_codebooks}, frames], got {list(codes.shape)}")
    if codes.numel() and (codes.min() < 0 or codes.max() >= stream.codebook_size):
        raise ValueError(f"{stream.name} codes outside [0, {stream.codebook_size})")
    shifts = offset + torch.arange(stream.n_codebooks, device=codes.device) * stream.codebook_size
    return (codes.long() + shifts[None, :, None]).transpose(1, 2).reshape(codes.shape[0], -1)
