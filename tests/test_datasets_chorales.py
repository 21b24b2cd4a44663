"""The embedded chorale dataset: offline build through the CLI, splits, audio format, alignment, determinism."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from sag_bench.audio import CLIP_SAMPLES, SAMPLE_RATE, peak_rms_db
from sag_bench.cli import main
from sag_bench.datasets import chorales
from sag_bench.datasets.clips import dataset_config
from sag_bench.datasets.manifest import ClipDataset
from sag_bench.datasets.render import Line, Note, Vibrato, render_lines

ONSET_HOP = 240  # 10 ms at 24 kHz


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ClipDataset:
    out = tmp_path_factory.mktemp("chorales_tiny")
    assert main(["data", "build", "chorales", "--preset", "tiny", "--out", str(out)]) == 0
    return ClipDataset(out)


def _onset_lag(vocals: np.ndarray, accompaniment: np.ndarray, max_lag: int = 25) -> int:
    """Lag (in 10 ms frames, within +-250 ms: under half a beat at 96 bpm) maximising the cross-correlation of
    the two onset-strength envelopes."""
    envelopes = [librosa.onset.onset_strength(y=audio, sr=SAMPLE_RATE, hop_length=ONSET_HOP) for audio in
                 (vocals, accompaniment)]
    a, b = (envelope - envelope.mean() for envelope in envelopes)
    lags = range(-max_lag, max_lag + 1)
    scores = [float(np.dot(a[max(0, lag):len(a) + min(0, lag)], b[max(0, -lag):len(b) - max(0, lag)]))
              for lag in lags]
    return lags[int(np.argmax(scores))]


def test_tiny_counts_and_song_disjoint_splits(tiny: ClipDataset) -> None:
    counts = {split: len(tiny.records(split)) for split in tiny.splits()}
    assert counts == {"train": 48, "test": 12, "zeroshot": 12}
    songs = {split: {record.song for record in tiny.records(split)} for split in tiny.splits()}
    assert not songs["train"] & songs["test"]
    assert not songs["train"] & songs["zeroshot"]
    assert not songs["test"] & songs["zeroshot"]
    assert len(songs["train"]) >= 6
    assert tiny.verify() == []


def test_tiny_clips_are_10s_mono_float_24k_and_non_silent(tiny: ClipDataset) -> None:
    for record in tiny.records():
        for path, recorded_db in ((record.vocals, record.extra["vocals_rms_db"]),
                                  (record.accompaniment, record.extra["accompaniment_rms_db"])):
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE, 1, CLIP_SAMPLES)
            assert info.subtype == "FLOAT"
            assert recorded_db > -25.0
        pair = tiny.load(record)
        assert peak_rms_db(pair.vocals) == pytest.approx(record.extra["vocals_rms_db"], abs=1e-3)
        assert np.abs(pair.vocals + pair.accompaniment).max() <= 0.9 + 1e-4  # mix_peak of presets.toml


def test_vocals_and_accompaniment_are_time_aligned(tiny: ClipDataset) -> None:
    for record in [tiny.records(split)[0] for split in ("train", "test", "zeroshot")]:
        pair = tiny.load(record)
        assert abs(_onset_lag(pair.vocals, pair.accompaniment)) <= 6, record.id  # within 60 ms
        shift = 15 * ONSET_HOP  # the measure does see a 150 ms misalignment
        assert _onset_lag(pair.vocals[shift:], pair.accompaniment[:-shift]) == pytest.approx(-15, abs=6)


def test_vocals_are_the_soprano_line(tiny: ClipDataset) -> None:
    for record in tiny.records("test")[::6] + tiny.records("zeroshot")[::6]:
        pair = tiny.load(record)
        loud = librosa.feature.rms(y=pair.vocals, frame_length=2048, hop_length=512)[0]
        loud = loud > 0.1 * loud.max()  # where the soprano sings (not rests with only bleed)
        f0 = librosa.yin(pair.vocals, fmin=150, fmax=1100, sr=SAMPLE_RATE, frame_length=2048, hop_length=512)
        # soprano range ~C4..A5 transposed by -6..+5 semitones
        assert 200.0 < float(np.median(f0[loud])) < 1000.0, record.id
        lower = librosa.yin(pair.accompaniment, fmin=40, fmax=1100, sr=SAMPLE_RATE, frame_length=4096, hop_length=512)
        assert np.median(lower[loud]) < 0.5 * np.median(f0[loud]), record.id


def test_zeroshot_is_rendered_differently(tiny: ClipDataset) -> None:
    styles = dataset_config("chorales")["styles"]
    for record in tiny.records():
        extra = record.extra
        style = styles["zeroshot" if record.split == "zeroshot" else "in_domain"]
        assert extra["vocals_variant"] == ("clean" if record.split == "zeroshot" else "bleed")
        assert extra["programs"]["upper"] in style["upper"] and extra["programs"]["bass"] in style["bass"]
        if extra["bleed_db"] is not None:
            assert style["bleed_db"][0] <= extra["bleed_db"] <= style["bleed_db"][1]
    assert not set(styles["zeroshot"]["upper"]) & set(styles["in_domain"]["upper"])


def test_same_seed_rebuild_is_bit_identical_and_other_seed_differs(tiny: ClipDataset, tmp_path: Path) -> None:
    again = ClipDataset(chorales.build(tmp_path, preset="smoke", seed=0, workers=1).parent)
    by_id = {clip["id"]: clip for clip in tiny.manifest["clips"]}
    assert len(again.records()) == 6
    for clip in again.manifest["clips"]:  # `smoke` is the start of each split of `tiny`
        assert clip["sha256"] == by_id[clip["id"]]["sha256"], clip["id"]
    song = next(song for song in chorales.list_songs() if song.id == again.records()[0].song)
    chorale = chorales.read_chorale(song)
    first, other = (chorales.render_chorale(chorale, "train", 0, seed, 1) for seed in (0, 1))
    assert first.extra != other.extra


def test_assign_splits_is_a_seeded_partition() -> None:
    songs = chorales.list_songs()
    splits = chorales.assign_splits(songs, {"train": 0.8, "test": 0.1, "zeroshot": 0.1}, seed=3)
    ids = [song.id for split in splits.values() for song in split]
    assert sorted(ids) == sorted(song.id for song in songs)
    assert len(splits["test"]) == round(0.1 * len(songs))
    assert splits == chorales.assign_splits(songs, {"train": 0.8, "test": 0.1, "zeroshot": 0.1}, seed=3)
    assert splits != chorales.assign_splits(songs, {"train": 0.8, "test": 0.1, "zeroshot": 0.1}, seed=4)


def test_render_lines_plays_the_pitch_with_vibrato() -> None:
    note = Note(0.0, 1.5, 69, 100)  # A4 on piano (a choir patch's chorus confuses a pitch tracker)
    plain = render_lines([Line(0, (note,))])
    sung = render_lines([Line(0, (note,))], Vibrato(rate_hz=5.5, depth_semitones=0.5, delay=0.0, ramp=0.01))
    assert len(plain) == round((1.5 + 1.0) * SAMPLE_RATE)  # note + release tail
    f0_plain, f0_sung = (librosa.yin(audio[2400:33600], fmin=200, fmax=900, sr=SAMPLE_RATE, frame_length=2048,
                                     center=False) for audio in (plain, sung))
    assert np.median(f0_plain) == pytest.approx(440.0, rel=0.01)
    cents = lambda f0: 1200 * np.log2(f0 / 440.0)  # noqa: E731
    assert np.std(cents(f0_plain)) < 5.0
    assert np.std(cents(f0_sung)) > 15.0  # +-50 cents sinusoid has a std of ~35 cents


@pytest.mark.slow
def test_two_tiny_builds_are_identical(tiny: ClipDataset, tmp_path: Path) -> None:
    again = ClipDataset(chorales.build(tmp_path, preset="tiny", seed=0).parent)
    assert [c["sha256"] for c in again.manifest["clips"]] == [c["sha256"] for c in tiny.manifest["clips"]]


def test_data_info_prints_counts_per_split(tiny: ClipDataset, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", str(tiny.root), "--verify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:4]}
    assert rows["train"][0] == "48" and rows["test"][0] == "12" and rows["zeroshot"][0] == "12"
    assert lines[-1].strip() == "all files match their sha256"
