"""The mixing protocol: levels (authors: every stem min-max rescaled to [-0.8, 0.8]), the reference path applied to
the vocals and the true accompaniment only, reference mix without gain, generated mix with 0.9 x accompaniment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sag_bench.audio import MIX_GAIN, load_audio, save_audio
from sag_bench.evaluation.protocol import eval_mix, level, reference_mix, through_path


def _ramp(low: float, high: float, n: int = 100) -> np.ndarray:
    return np.linspace(low, high, n, dtype=np.float32)


def test_authors_levels_rescale_min_max_to_0_8_and_move_dc() -> None:
    quiet = _ramp(0.05, 0.25)  # all positive: a DC offset of 0.15
    levelled = level(quiet, "authors")
    assert levelled.min() == pytest.approx(-0.8, abs=1e-6) and levelled.max() == pytest.approx(0.8, abs=1e-6)
    assert levelled.mean() == pytest.approx(0.0, abs=1e-6)  # affine: the DC offset is gone
    np.testing.assert_allclose(levelled, (quiet - 0.05) / 0.2 * 1.6 - 0.8, atol=1e-6)
    np.testing.assert_array_equal(level(quiet, "raw"), quiet)
    with pytest.raises(ValueError, match="unknown levels 'loud'"):
        level(quiet, "loud")


def test_generated_mix_is_vocals_plus_0_9_times_the_levelled_accompaniment() -> None:
    vocals, generated = _ramp(-0.1, 0.1), _ramp(-0.02, 0.02)  # a quiet generated stem is brought to 0.8 peaks
    mixed = eval_mix(through_path(vocals, "authors"), generated, levels="authors")
    assert MIX_GAIN == 0.9
    summed = level(vocals, "authors") + 0.9 * level(generated, "authors")
    assert summed.max() == pytest.approx(0.8 + 0.9 * 0.8, abs=1e-6)  # both stems peak at 0.8: 1.52 would clip ...
    assert mixed.scale == pytest.approx(0.99 / 1.52, rel=1e-6)  # ... so the mix is rescaled, and that is recorded
    np.testing.assert_allclose(np.asarray(mixed), summed * mixed.scale, atol=1e-6)
    raw = eval_mix(through_path(vocals, "raw"), generated)
    np.testing.assert_allclose(np.asarray(raw), vocals + 0.9 * generated, atol=1e-7)
    assert raw.describe() == {"levels": "raw", "gain": 0.9, "scale": 1.0, "degraded": False}


def test_reference_mix_has_no_gain_and_both_stems_take_the_path(tmp_path: Path) -> None:
    vocals, accompaniment = _ramp(-0.3, 0.3, 50), _ramp(0.0, 0.4, 50)
    seen: list[np.ndarray] = []

    def halve(audio: np.ndarray) -> np.ndarray:
        seen.append(audio.copy())
        return audio * 0.5

    path_vocals = through_path(vocals, "raw", halve)
    plain = reference_mix(through_path(vocals, "raw"), accompaniment, "raw")
    degraded = reference_mix(path_vocals, accompaniment, "raw", degrade=halve)
    np.testing.assert_allclose(np.asarray(plain), vocals + accompaniment, atol=1e-7)  # gain 1, not 0.9
    np.testing.assert_allclose(np.asarray(degraded), 0.5 * vocals + 0.5 * accompaniment, atol=1e-7)
    assert len(seen) == 2 and np.array_equal(seen[0], vocals) and np.array_equal(seen[1], accompaniment)
    assert (plain.gain, plain.degraded, degraded.degraded) == (1.0, False, True)
    generated = eval_mix(path_vocals, accompaniment, degraded=True)  # the generated stem is never degraded
    np.testing.assert_allclose(np.asarray(generated), 0.5 * vocals + 0.9 * accompaniment, atol=1e-7)
    levelled = reference_mix(through_path(vocals, "authors", halve), accompaniment, "authors", degrade=halve)
    np.testing.assert_allclose(np.asarray(levelled), 0.5 * (level(vocals, "authors") + level(accompaniment, "authors")),
                               atol=1e-6)  # levelled first, then through the path
    path = save_audio(tmp_path / "ref.wav", degraded)  # a Mix is written like an array
    np.testing.assert_allclose(load_audio(path), np.asarray(degraded), rtol=1e-7)


def test_loud_mix_is_rescaled_not_wrapped() -> None:
    mixed = eval_mix(np.full(10, 0.8, np.float32), np.full(10, 0.8, np.float32), gain=1.0)
    assert np.asarray(mixed).max() == pytest.approx(0.99, rel=1e-6)  # 1.6 would clip: scaled to a 0.99 peak
    assert mixed.scale == pytest.approx(0.99 / 1.6)
    assert np.all(np.asarray(mixed) > 0)  # no int16 wrap-around to negative values
