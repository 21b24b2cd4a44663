"""The FAD mixing protocol: how stems are levelled, what the reference went through, and which gains are applied.

Rule (README, "Evaluation protocol"; source: FastSAG's ``sde_diffusion/generate.py`` and section 4.2 of the paper):

* levels ``authors``: every stem - the reference vocals and accompaniment and every generated accompaniment - is
  min-max rescaled to ``[-0.8, 0.8]`` first (an affine map, so it also moves DC); ``raw``: stems as they are.
* each system has a *reference path* (:mod:`sag_bench.evaluation.degradation`): its own vocoder or codec, or none.
  The levelled vocals and the levelled true accompaniment go through it ("degraded reference").
* reference mix = path(vocals) + path(accompaniment), no gain; evaluated mix = path(vocals) + 0.9 x generated.

Mixing goes through :func:`sag_bench.audio.mix` (float64 sums, rescaled instead of wrapping when it would clip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from sag_bench.audio import FEATURE_PEAK, MIX_GAIN, mix, rescale_for_features

Degrade = Callable[[np.ndarray], np.ndarray]
LEVELS = ("authors", "raw")
REFERENCE_GAIN = 1.0  # the authors add the (vocoded) reference stems without a gain


@dataclass(frozen=True)
class Mix:
    """A mono float32 mix and how it was made; ``np.asarray(mix)`` (and ``save_audio``) see the samples."""

    audio: np.ndarray
    levels: str
    gain: float
    scale: float  # < 1.0 when the sum would have clipped and was rescaled (see sag_bench.audio.mix)
    degraded: bool

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.audio if dtype is None else self.audio.astype(dtype)

    def __len__(self) -> int:
        return len(self.audio)

    def describe(self) -> dict[str, Any]:
        """What a run records about this mix."""
        return {"levels": self.levels, "gain": self.gain, "scale": self.scale, "degraded": self.degraded}


def check_levels(levels: str) -> str:
    """``levels`` or a ValueError naming the known ones."""
    if levels not in LEVELS:
        raise ValueError(f"unknown levels {levels!r}; known: {', '.join(LEVELS)}")
    return levels


def level(audio: np.ndarray, levels: str) -> np.ndarray:
    """One stem levelled by the protocol: ``authors`` = min-max rescaled to [-0.8, 0.8]; ``raw`` = unchanged."""
    audio = np.asarray(audio, dtype=np.float32)
    if check_levels(levels) == "raw" or not len(audio):
        return audio
    return rescale_for_features(torch.from_numpy(audio)[None], FEATURE_PEAK)[0].numpy()


def through_path(stem: np.ndarray, levels: str, degrade: Degrade | None = None) -> np.ndarray:
    """A reference stem (vocals or true accompaniment) as the mixes use it: levelled, then through the path."""
    stem = level(stem, levels)
    return np.asarray(degrade(stem), dtype=np.float32) if degrade is not None else stem


def reference_mix(vocals: np.ndarray, accompaniment: np.ndarray, levels: str = "raw",
                  degrade: Degrade | None = None) -> Mix:
    """``vocals + path(level(accompaniment))`` without gain; ``vocals`` come from :func:`through_path`."""
    accompaniment = through_path(accompaniment, levels, degrade)
    audio, scale = mix(vocals, accompaniment, REFERENCE_GAIN)
    return Mix(audio, levels, REFERENCE_GAIN, scale, degraded=degrade is not None)


def eval_mix(vocals: np.ndarray, generated: np.ndarray, gain: float = MIX_GAIN, levels: str = "raw",
             degraded: bool = False) -> Mix:
    """``vocals + gain x level(generated)``; ``vocals`` come from :func:`through_path` (``degraded``: through a
    path other than none), the generated accompaniment is never degraded."""
    audio, scale = mix(vocals, level(generated, levels), gain)
    return Mix(audio, levels, gain, scale, degraded=degraded)
