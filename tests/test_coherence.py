"""Coherence measures: known values on synthetic signals, and true > shuffled pairs on rendered chorales."""

from __future__ import annotations


import numpy as np
import pytest

from sag_bench.evaluation import coherence
from sag_bench.evaluation.coherence import DEFAULT_MEASURES, MEASURES, level, score_pairs

SR = 24_000


def tone(midi: float, seconds: float, amplitude: float = 0.2) -> np.ndarray:
    """A harmonic tone (3 partials) at a MIDI pitch."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    return (amplitude * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))).astype(np.float32)


def bursts(onsets: list[float], seconds: float, midi: float) -> np.ndarray:
    """Decaying tone bursts starting at ``onsets`` (seconds)."""
    out = np.zeros(int(seconds * SR), np.float32)
    for onset in onsets:
        start = int(onset * SR)
        note = tone(midi, 0.25) * np.exp(-np.arange(int(0.25 * SR)) / (0.06 * SR)).astype(np.float32)
        out[start : start + len(note)] += note[: len(out) - start]
    return out


def test_consonance_kernel_and_crepe_pitch_classes() -> None:
    kernel = coherence.CONSONANCE_KERNEL
    np.testing.assert_array_equal(kernel[0], coherence.INTERVAL_CONSONANCE)
    assert kernel[9, 4] == 1.0 and kernel[9, 10] == -1.0 and kernel[0, 6] == -1.0  # A-E fifth, A-Bb, C-F#
    folded = coherence._crepe_pitch_class_matrix()
    assert folded.shape == (360, 12) and np.all(folded.sum(axis=1) == 1)
    cents_a4 = 1200 * np.log2(440.0 / coherence.CREPE_REFERENCE_HZ)
    bin_a4 = int(round((cents_a4 - coherence.CREPE_CENTS_OFFSET) / coherence.CREPE_CENTS_PER_BIN))
    assert folded[bin_a4].argmax() == 9  # A


def test_harmonic_measures_prefer_the_chord_that_contains_the_sung_note() -> None:
    sung = tone(69, 2.0)  # A4
    a_major = tone(45, 2.0) + tone(49, 2.0) + tone(52, 2.0)  # A2 C#3 E3
    b_flat_major = tone(46, 2.0) + tone(50, 2.0) + tone(53, 2.0)  # Bb2 D3 F3
    for name in ("consonance", "chroma_consonance"):
        fitting, clashing = MEASURES[name](sung, a_major, SR), MEASURES[name](sung, b_flat_major, SR)
        assert fitting > 0.7, name
        assert clashing < 0.4, name
        assert fitting - clashing > 0.4, name


def test_onset_agreement_prefers_aligned_rhythm() -> None:
    beats = [0.1, 0.6, 1.1, 1.6, 2.1, 2.6]
    vocals = bursts(beats, 3.0, 69)
    aligned = bursts(beats, 3.0, 45)
    offbeat = bursts([0.35, 0.75, 1.45, 1.8, 2.4], 3.0, 45)
    measure = MEASURES["onset_agreement"]
    assert measure(vocals, aligned, SR) > 0.8
    assert measure(vocals, offbeat, SR) < 0.3


def test_score_pairs_selects_measures() -> None:
    pairs = [(tone(69, 1.0), tone(45, 1.0), SR), (tone(60, 1.0), tone(48, 1.0), SR)]
    scores = score_pairs(pairs, measures=["chroma_consonance", "onset_agreement"])
    assert list(scores) == ["chroma_consonance", "onset_agreement"]
    assert all(len(values) == 2 and all(np.isfinite(values)) for values in scores.values())
    with pytest.raises(ValueError, match="unknown coherence measure"):
        score_pairs(pairs, measures=["nope"])
    assert list(score_pairs(pairs[:1])) == list(DEFAULT_MEASURES)  # by default only the repaired measures


def test_score_pairs_shares_vocal_features_across_calls_without_changing_scores():
    from sag_bench.evaluation import coherence

    rate = 24_000
    t = np.arange(rate * 2) / rate
    vocals = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    fitting = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    clashing = (0.3 * np.sin(2 * np.pi * 233.08 * t)).astype(np.float32)
    measures = ["chroma_consonance", "onset_agreement"]
    plain = [coherence.score_pairs([(vocals, acc, rate)], measures) for acc in (fitting, clashing)]
    cache: dict = {}
    cached = [coherence.score_pairs([(vocals, acc, rate)], measures, vocal_cache=cache) for acc in (fitting, clashing)]
    assert cached == plain
    assert len(cache) == len(measures)  # one vocal analysis per measure, reused for the second accompaniment
    assert plain[0]["chroma_consonance"][0] > plain[1]["chroma_consonance"][0]  # a fifth fits, a minor second clashes


def melody(seconds: float, step: float = 0.5) -> tuple[np.ndarray, list[int]]:
    """A sung line walking up and down a C major scale, one note per ``step`` seconds."""
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62]
    notes = [scale[i % len(scale)] for i in range(int(seconds / step))]
    return np.concatenate([tone(n, step) for n in notes]), notes


def test_level_gate_presence_and_copying() -> None:
    vocals, _ = melody(4.0)
    chord = tone(48, 4.0) + tone(52, 4.0) + tone(55, 4.0)
    v = level(coherence._at_analysis_rate(vocals, SR))

    def of(audio: np.ndarray) -> coherence.Level:
        return level(coherence._at_analysis_rate(audio, SR))

    assert coherence.presence(v, of(chord)) == 1.0
    assert coherence.presence(v, of(chord * 10 ** (-40 / 20) / 3)) == 0.0  # 40 dB under the vocals: absent
    assert 0.0 < coherence.presence(v, of(chord * 10 ** (-20 / 20) / 3)) < 1.0
    for gain_db in (0.0, -12.0, -60.0):  # a copy is a copy at any gain
        assert coherence.copying(v, of(vocals * 10 ** (gain_db / 20))) > 0.99
    assert coherence.copying(v, of(chord)) < 0.6


def test_moving_harmony_beats_a_static_chord_and_copies_score_zero() -> None:
    vocals, notes = melody(6.0)
    # a triad under each sung note (the note as its root, an octave and more below) vs the tonic triad held
    moving = np.concatenate([sum(tone(n - 24 + i, 0.5) for i in (0, 4, 7)) for n in notes]) / 2
    static = (tone(48, 6.0) + tone(52, 6.0) + tone(55, 6.0)) / 2
    for name in ("harmonic_fit", "chroma_harmonic_fit"):
        fitting, held = MEASURES[name](vocals, moving, SR), MEASURES[name](vocals, static, SR)
        assert fitting > 0.1, name
        assert abs(held) < 0.02, name  # a chord that fits every moment equally owes nothing to the melody
        for copy in (vocals * 0.25, vocals):
            assert MEASURES[name](vocals, copy, SR) < 0.02, name
        assert MEASURES[name](vocals, moving * 10 ** (-40 / 20), SR) == 0.0, name
    rhythmic = MEASURES["rhythmic_fit"]
    assert rhythmic(vocals, moving, SR) > 0.3
    assert rhythmic(vocals, vocals * 0.25, SR) < 0.02
