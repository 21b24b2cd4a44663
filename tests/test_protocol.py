"""The reference protocol: eval mix = vocals + gain x generated; reference = vocals + gain x degraded truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sag_bench.audio import load_audio, save_audio
from sag_bench.audio import MIX_GAIN
from sag_bench.evaluation.protocol import eval_mix, reference_mix


def test_eval_mix_is_vocals_plus_gain_times_accompaniment() -> None:
    vocals = np.full(100, 0.2, np.float32)
    accompaniment = np.full(120, 0.5, np.float32)
    mixed = eval_mix(vocals, accompaniment)
    assert MIX_GAIN == 0.9
    assert len(mixed) == 100 and mixed.audio.dtype == np.float32
    np.testing.assert_allclose(np.asarray(mixed), 0.2 + 0.9 * 0.5, rtol=1e-6)
    assert mixed.describe() == {"gain": 0.9, "scale": 1.0, "degraded": False}


def test_loud_mix_is_rescaled_not_wrapped() -> None:
    mixed = eval_mix(np.full(10, 0.8, np.float32), np.full(10, 0.8, np.float32), gain=1.0)
    assert np.asarray(mixed).max() == pytest.approx(0.99, rel=1e-6)  # 1.6 would clip: scaled to a 0.99 peak
    assert mixed.scale == pytest.approx(0.99 / 1.6)
    assert np.all(np.asarray(mixed) > 0)  # no int16 wrap-around to negative values


def test_reference_mix_degrades_only_the_true_accompaniment(tmp_path: Path) -> None:
    vocals = np.full(50, 0.1, np.float32)
    accompaniment = np.full(50, 0.4, np.float32)
    seen: list[np.ndarray] = []

    def halve(audio: np.ndarray) -> np.ndarray:
        seen.append(audio)
        return audio * 0.5

    plain = reference_mix(vocals, accompaniment, gain=0.9)
    degraded = reference_mix(vocals, accompaniment, gain=0.9, degrade=halve)
    np.testing.assert_allclose(np.asarray(plain), 0.1 + 0.9 * 0.4, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(degraded), 0.1 + 0.9 * 0.2, rtol=1e-6)
    assert len(seen) == 1 and np.all(seen[0] == 0.4)
    assert (plain.degraded, degraded.degraded) == (False, True)
    path = save_audio(tmp_path / "ref.wav", degraded)  # a Mix is written like an array
    np.testing.assert_allclose(load_audio(path), np.asarray(degraded), rtol=1e-7)
