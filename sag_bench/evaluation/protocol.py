"""The papers' reference protocol for FAD: what is mixed, with which gain, and what the reference went through.

FastSAG (section 4, and its evaluation code): each evaluated mix is the input vocals plus ``0.9 x`` the generated
accompaniment; the reference mix is the vocals plus the true accompaniment, the accompaniment optionally resynthesised
through the same vocoder / codec as the system ("degraded reference"), so that FAD does not merely measure vocoder
artefacts. The vocals are passed in as both sides use them (FastSAG: through the vocoder on both sides, which the
caller applies once). Mixing goes through :func:`sag_bench.audio.mix` (float64 sums, rescaled instead of wrapping when it would clip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sag_bench.audio import MIX_GAIN, mix

Degrade = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Mix:
    """A mono float32 mix and how it was made; ``np.asarray(mix)`` (and ``save_audio``) see the samples."""

    audio: np.ndarray
    gain: float
    scale: float  # < 1.0 when the sum would have clipped and was rescaled (see sag_bench.audio.mix)
    degraded: bool

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.audio if dtype is None else self.audio.astype(dtype)

    def __len__(self) -> int:
        return len(self.audio)

    def describe(self) -> dict[str, Any]:
        """What a run records about this mix."""
        return {"gain": self.gain, "scale": self.scale, "degraded": self.degraded}


def eval_mix(vocals: np.ndarray, accompaniment: np.ndarray, gain: float = MIX_GAIN) -> Mix:
    """The evaluated mix: ``vocals + gain x generated accompaniment`` (the shorter length)."""
    audio, scale = mix(vocals, accompaniment, gain)
    return Mix(audio, gain, scale, degraded=False)


def reference_mix(vocals: np.ndarray, accompaniment: np.ndarray, gain: float = MIX_GAIN,
                  degrade: Degrade | None = None) -> Mix:
    """The reference mix: ``vocals + gain x true accompaniment``, the accompaniment first passed through
    ``degrade`` (the system's vocoder / codec resynthesis) when given, so both sides carry the same artefacts."""
    if degrade is not None:
        accompaniment = np.asarray(degrade(np.asarray(accompaniment, dtype=np.float32)), dtype=np.float32)
    audio, scale = mix(vocals, accompaniment, gain)
    return Mix(audio, gain, scale, degraded=degrade is not None)
