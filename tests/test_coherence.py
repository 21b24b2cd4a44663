"""Coherence measures: known values on synthetic signals, and true > shuffled pairs on rendered chorales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sag_bench.evaluation import coherence
from sag_bench.evaluation.coherence import MEASURES, effect_size, score_pairs, shuffled_partners, true_vs_shuffled

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


def test_score_pairs_and_shuffling() -> None:
    pairs = [(tone(69, 1.0), tone(45, 1.0), SR), (tone(60, 1.0), tone(48, 1.0), SR)]
    scores = score_pairs(pairs, measures=["chroma_consonance", "onset_agreement"])
    assert list(scores) == ["chroma_consonance", "onset_agreement"]
    assert all(len(values) == 2 and all(np.isfinite(values)) for values in scores.values())
    with pytest.raises(ValueError, match="unknown coherence measure"):
        score_pairs(pairs, measures=["nope"])
    songs = ["a", "a", "b", "b", "c", "c"]
    order = shuffled_partners(songs, seed=3)
    assert sorted(order) == list(range(6))
    assert all(songs[j] != songs[i] for i, j in enumerate(order))
    np.testing.assert_array_equal(order, shuffled_partners(songs, seed=3))
    with pytest.raises(ValueError, match="another song"):
        shuffled_partners(["a", "a"], seed=0)


def test_effect_size_known_values() -> None:
    effect = effect_size("m", np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 0.0, 1.0, 2.0]), seed=0)
    assert effect.mean_difference == pytest.approx(1.75)
    assert effect.cohens_dz == pytest.approx(1.75 / np.std([1, 2, 2, 2], ddof=1))
    pooled = np.sqrt((np.var([1, 2, 3, 4], ddof=1) + np.var([0, 0, 1, 2], ddof=1)) / 2)
    assert effect.cohens_d == pytest.approx(1.75 / pooled)
    assert effect.ci_low <= 1.75 <= effect.ci_high and effect.fraction_true_higher == 1.0


def rendered_chorale_pairs(songs: int, clips: int, seconds: float) -> tuple[list, list, list[str]]:
    """Clip pairs of the chorale test split, rendered as the dataset builder renders them (first ``seconds``)."""
    from sag_bench.datasets import chorales, clips as clip_config
    from sag_bench.datasets.manifest import DatasetError

    fractions = clip_config.preset("chorales", "tiny")["split_fractions"]
    vocals, accompaniments, names = [], [], []
    for song in chorales.assign_splits(chorales.list_songs(), fractions, seed=0)["test"]:
        try:
            rendering = chorales.render_chorale(chorales.read_chorale(song), "test", 0, seed=0,
                                                clips_per_render=clips)
        except DatasetError:
            continue
        for window in rendering.windows[:clips]:
            stop = window.start + int(seconds * SR)
            vocals.append(rendering.vocals[window.start : stop])
            accompaniments.append(rendering.accompaniment[window.start : stop])
            names.append(song.id)
        if len(set(names)) == songs:
            break
    return vocals, accompaniments, names


def test_true_chorale_pairs_beat_shuffled_pairs() -> None:
    vocals, accompaniments, songs = rendered_chorale_pairs(songs=3, clips=2, seconds=6.0)
    assert len(set(songs)) == 3 and len(vocals) >= 5
    results = true_vs_shuffled(vocals, accompaniments, SR, songs, seed=0,
                               measures=["chroma_consonance", "onset_agreement"])
    for name, (true, shuffled) in results.items():
        effect = effect_size(name, true, shuffled)
        assert effect.mean_difference > 0 and effect.ci_low > 0, effect
        assert effect.cohens_d > 1.0, effect


@pytest.mark.slow
def test_every_measure_separates_true_from_shuffled_on_the_tiny_chorale_build(tmp_path: Path) -> None:
    from sag_bench.datasets.chorales import build
    from sag_bench.datasets.manifest import ClipDataset

    build(tmp_path / "chorales", preset="tiny", seed=0)
    dataset = ClipDataset(tmp_path / "chorales")
    pairs = [dataset.load(record) for record in dataset.records("test")]
    results = true_vs_shuffled([p.vocals for p in pairs], [p.accompaniment for p in pairs], dataset.sample_rate,
                               [p.song for p in pairs], seed=0)
    assert set(results) == set(MEASURES)
    for name, (true, shuffled) in results.items():
        effect = effect_size(name, true, shuffled)
        assert effect.ci_low > 0 and effect.cohens_d > 1.5, effect


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
