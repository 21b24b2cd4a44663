"""Perturbation systems: each does exactly what its docstring says, deterministically, on rendered chorales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sag_bench.datasets.manifest import ClipDataset
from sag_bench.systems import perturbations as p
from tests.chorale_fixture import build_chorale_fixture

SR = 24_000


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_chorale_fixture(tmp_path_factory.mktemp("chorales"), songs=2, clips_per_song=2, seconds=4.0)


def run(system: p.Perturbation, data: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    dataset = ClipDataset(data)
    records = dataset.records("test")
    pairs = [dataset.load(record) for record in records]
    system.prepare(data)
    vocals = torch.from_numpy(np.stack([pair.vocals for pair in pairs]))
    out = system.generate(vocals, seed, [record.id for record in records]).numpy()
    assert out.shape == vocals.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, system.generate(vocals, seed, [record.id for record in records]).numpy())
    return vocals.numpy(), out, pairs


def test_entries_are_named_and_build(data: Path) -> None:
    assert all(entry.name.startswith("perturb-") and entry.summary for entry in p.PERTURBATIONS)
    assert len({entry.name for entry in p.PERTURBATIONS}) == len(p.PERTURBATIONS) == 10
    assert all(entry.build() is not None for entry in p.PERTURBATIONS)


def test_copies_silence_and_noise(data: Path) -> None:
    vocals, copied, _ = run(p.CopiedVocals(gain_db=-12.0), data)
    np.testing.assert_allclose(copied, vocals * 10 ** (-12 / 20), rtol=1e-6)
    _, silent, _ = run(p.Silence(), data)
    assert not silent.any()
    _, noise, pairs = run(p.ShapedNoise(), data)
    for clip, pair in zip(noise, pairs):
        assert p.rms(clip) == pytest.approx(p.rms(pair.accompaniment), rel=1e-3)
        assert abs(np.corrcoef(clip, pair.accompaniment)[0, 1]) < 0.2  # noise, not the accompaniment
        spectra = [np.log([band.mean() for band in np.array_split(np.abs(np.fft.rfft(x)) ** 2, 100)])
                   for x in (clip, pair.accompaniment)]
        assert np.corrcoef(*spectra)[0, 1] > 0.9  # with the accompaniment's long-term spectrum
    assert not np.array_equal(noise, run(p.ShapedNoise(), data, seed=1)[1])


def test_time_shift_is_a_roll_by_the_estimated_beat(data: Path) -> None:
    _, shifted, pairs = run(p.TimeShifted(beats=1.0), data)
    for clip, pair in zip(shifted, pairs):
        beat = p.beat_seconds(pair.accompaniment, SR)
        assert 0.3 < beat < 1.5
        np.testing.assert_array_equal(clip, np.roll(pair.accompaniment, int(round(beat * SR))))


def test_transposition_moves_the_chroma(data: Path) -> None:
    import librosa

    _, shifted, pairs = run(p.Transposed(semitones=6.0), data)
    for clip, pair in zip(shifted, pairs):
        before = librosa.feature.chroma_cqt(y=pair.accompaniment, sr=SR).mean(axis=1)
        after = librosa.feature.chroma_cqt(y=clip, sr=SR).mean(axis=1)
        assert np.corrcoef(np.roll(before, 6), after)[0, 1] > np.corrcoef(before, after)[0, 1] + 0.3
        assert p.rms(clip) == pytest.approx(p.rms(pair.accompaniment), rel=1e-3)


def test_other_clip_of_the_same_song(data: Path) -> None:
    system = p.OtherClipSameSong()
    _, other, pairs = run(system, data)
    by_id = {pair.id: pair for pair in pairs}
    for clip, pair in zip(other, pairs):
        partner = system.partner(system.context.record(pair.id), 0)
        assert partner.song == pair.song and partner.id != pair.id
        np.testing.assert_array_equal(clip, by_id[partner.id].accompaniment)


def test_static_chord_is_the_estimated_tonic_triad() -> None:
    from sag_bench.datasets.render import Line, Note, render_lines

    g_major_scale = [67, 69, 71, 72, 74, 76, 78, 79, 74, 71, 67]  # G major, ending on the tonic
    sung = render_lines([Line(52, tuple(Note(0.4 * i, 0.4 * i + 0.38, n, 90) for i, n in enumerate(g_major_scale)))])
    assert p.estimate_key(sung, SR) == (7, "major")


def test_static_chord_on_chorales_holds_one_chord(data: Path) -> None:
    import librosa

    _, chords, pairs = run(p.StaticChord(), data)
    for clip, pair in zip(chords, pairs):
        chroma = librosa.feature.chroma_cqt(y=clip, sr=SR)[:, 10:-10]
        top = {tuple(sorted(np.argsort(frame)[-3:])) for frame in chroma.T}
        assert len(top) == 1  # the same three pitch classes throughout
        assert p.rms(clip) == pytest.approx(p.rms(pair.accompaniment), rel=1e-3)
