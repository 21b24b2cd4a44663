"""MUSDB18 clips from a synthetic MUSDB18-HQ tree: clip counts under both protocols against a hand computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sag_bench.audio import CLIP_SAMPLES, load_audio
from sag_bench.cli import main
from sag_bench.datasets import musdb18
from sag_bench.datasets.manifest import ClipDataset, DatasetError
from tests.separator_helpers import small_separator

RATE = 44_100


def _amplitude(rms_db: float) -> float:
    """Sine amplitude whose RMS (whole clip and every frame) is ``rms_db`` dBFS."""
    return float(np.sqrt(2) * 10 ** (rms_db / 20))


LOUD = 0.3  # sine amplitude: RMS 20 log10(0.3 / sqrt 2) = -13.5 dB, passes both filters
NEAR = 0.09  # -23.9 dB: passes singsong's -25 dB, fails fastsag's -21.7 dB
QUIET = 0.06  # -27.4 dB: fails both
# Just above / below each threshold: whole-clip RMS (fastsag, >= -21.71 dBFS) and peak-frame RMS (singsong, > -25 dB).
ABOVE_FASTSAG, BELOW_FASTSAG = _amplitude(-21.6), _amplitude(-21.8)
ABOVE_SINGSONG, BELOW_SINGSONG = _amplitude(-24.9), _amplitude(-25.1)
# 2 s at -15 dB then silence: peak-frame RMS -15 dB (singsong keeps), whole-clip RMS -22 dB (fastsag drops).
BURST = (_amplitude(-15.0), 2.0)

# (seconds, vocal amplitude per 10 s window, accompaniment amplitude per 10 s window); the last value holds
# for the rest of the track; (amplitude, seconds) sounds only for the first seconds of its window.
TRACKS = {
    "A - Gaps": (30.0, [LOUD, 0.0, LOUD], [LOUD, LOUD, 0.02]),
    "B - Near and quiet": (20.5, [NEAR, QUIET], [LOUD]),
    "C - Too short": (9.0, [LOUD], [LOUD]),
    "D - Thresholds": (70.0, [ABOVE_FASTSAG, BELOW_FASTSAG, LOUD, LOUD, ABOVE_SINGSONG, BELOW_SINGSONG, BURST],
                       [LOUD, LOUD, ABOVE_FASTSAG, BELOW_FASTSAG, LOUD]),
}
# Hand computation. Windows: A 3 (30 s), B 2 (20.5 s), C 0 (< 10 s), D 7.
# singsong (vocals' peak frame over -25 dB): A 0 and 2 (1 is silent), B 0 (-23.9 dB; 1 is -27.4 dB),
#   D all but window 5 (-25.1 dB)                                                                         -> 9 clips
# fastsag (both stems' whole-clip RMS >= -21.71 dB): A 0 (window 2's accompaniment is at -37 dB), B none
#   (vocals -23.9 dB), D 0 (vocals -21.6) and 2 (accompaniment -21.6); 1 and 3 are at -21.8, 4-5 lower, 6 -22 -> 3 clips
EXPECTED = {"singsong": {"A - Gaps": [0.0, 20.0], "B - Near and quiet": [0.0],
                         "D - Thresholds": [0.0, 10.0, 20.0, 30.0, 40.0, 60.0]},
            "fastsag": {"A - Gaps": [0.0], "D - Thresholds": [0.0, 20.0]}}


def _stem(seconds: float, amplitudes: list, frequency: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    window = np.minimum((t // 10).astype(int), len(amplitudes) - 1)
    levels = [a if isinstance(a, tuple) else (a, 10.0) for a in amplitudes]
    amplitude = np.asarray([a for a, _ in levels])[window] * (t - 10 * window < np.asarray([s for _, s in levels])[window])
    mono = amplitude * np.sin(2 * np.pi * frequency * t)
    return np.stack([mono, mono], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def musdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("musdb18hq")
    for name, (seconds, vocal_levels, accompaniment_levels) in TRACKS.items():
        folder = root / "test" / name
        folder.mkdir(parents=True)
        stems = {"vocals": _stem(seconds, vocal_levels, 440.0), "other": _stem(seconds, accompaniment_levels, 110.0),
                 "drums": np.zeros((int(seconds * RATE), 2), np.float32),
                 "bass": np.zeros((int(seconds * RATE), 2), np.float32)}
        stems["mixture"] = stems["vocals"] + stems["other"]
        for stem, audio in stems.items():
            sf.write(folder / f"{stem}.wav", audio, RATE, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def built(musdb_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClipDataset]:
    """The isolated-vocals build under each protocol, through the CLI."""
    datasets = {}
    for protocol in ("singsong", "fastsag"):
        out = tmp_path_factory.mktemp(protocol)
        assert main(["data", "build", "musdb18", "--root", str(musdb_root), "--protocol", protocol,
                     "--out", str(out)]) == 0
        datasets[protocol] = ClipDataset(out)
    return datasets


@pytest.mark.parametrize("protocol", ["singsong", "fastsag"])
def test_clip_counts_match_the_hand_computation(built: dict[str, ClipDataset], protocol: str) -> None:
    dataset = built[protocol]
    offsets: dict[str, list[float]] = {}
    for clip in dataset.manifest["clips"]:
        offsets.setdefault(clip["song"], []).append(clip["offset_seconds"])
    assert offsets == EXPECTED[protocol]
    assert len(dataset.records()) == {"singsong": 9, "fastsag": 3}[protocol]
    assert dataset.splits() == ["test"]
    assert dataset.manifest["options"]["layout"] == "hq-wav"
    assert dataset.manifest["options"]["paper_test_clips"] == {"singsong": 778, "fastsag": 348}[protocol]
    assert {clip["vocals_variant"] for clip in dataset.manifest["clips"]} == {"isolated"}
    assert dataset.verify() == []


def test_data_info_counts_the_clips_each_filter_keeps(built: dict[str, ClipDataset],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", str(built["singsong"].root)]) == 0
    out = capsys.readouterr().out
    # of the 9 singsong clips, fastsag's rule keeps A 0, D 0 and D 2 (measured on the stored 24 kHz clips)
    assert "fastsag 3" in out and "singsong 9" in out


def test_clips_are_the_isolated_stems_at_24k(built: dict[str, ClipDataset], musdb_root: Path) -> None:
    dataset = built["singsong"]
    record = next(r for r in dataset.records() if r.song == "A - Gaps" and r.extra["offset_seconds"] == 20.0)
    pair = dataset.load(record)
    vocals = load_audio(musdb_root / "test" / "A - Gaps" / "vocals.wav")
    assert len(pair.vocals) == len(pair.accompaniment) == CLIP_SAMPLES
    np.testing.assert_allclose(pair.vocals, vocals[2 * CLIP_SAMPLES:3 * CLIP_SAMPLES], atol=1e-4)  # ffmpeg decode
    assert record.extra["vocals_rms_db"] == pytest.approx(20 * np.log10(LOUD / np.sqrt(2)), abs=0.05)
    assert record.extra["accompaniment_rms_db"] == pytest.approx(20 * np.log10(0.02 / np.sqrt(2)), abs=0.05)


def test_separated_variant_keeps_the_clips_and_replaces_the_vocals(built: dict[str, ClipDataset], musdb_root: Path,
                                                                   tmp_path: Path, one_thread: None) -> None:
    one_track = tmp_path / "root"
    (one_track / "test").mkdir(parents=True)
    (one_track / "test" / "B - Near and quiet").symlink_to(musdb_root / "test" / "B - Near and quiet")
    separated = ClipDataset(musdb18.build(tmp_path / "out", root=one_track, protocol="singsong",
                                          vocals="separated", separator=small_separator()).parent)
    isolated = {clip["id"]: clip for clip in built["singsong"].manifest["clips"]}
    assert [clip["id"] for clip in separated.manifest["clips"]] == ["B_-_Near_and_quiet-000"]
    for clip in separated.manifest["clips"]:
        assert clip["vocals_variant"] == "separated"
        assert clip["sha256"]["accompaniment"] == isolated[clip["id"]]["sha256"]["accompaniment"]
        assert clip["sha256"]["vocals"] != isolated[clip["id"]]["sha256"]["vocals"]
    assert separated.manifest["options"]["separator"]["model"] == "small-random-htdemucs"


def test_missing_musdb_says_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MUSDB_PATH", raising=False)
    assert main(["data", "build", "musdb18", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "MUSDB_PATH" in error and "--root" in error
    monkeypatch.setenv("MUSDB_PATH", str(tmp_path))
    with pytest.raises(DatasetError, match=r"no MUSDB18 tracks"):
        musdb18.build(tmp_path / "out")


def test_unknown_variant_and_protocol_are_refused(musdb_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="vocals variant"):
        musdb18.build(tmp_path, root=musdb_root, vocals="karaoke")
    with pytest.raises(DatasetError, match="unknown protocol"):
        musdb18.build(tmp_path, root=musdb_root, protocol="loudest")


def test_stems_layout_is_read_through_musdb(tmp_path: Path) -> None:
    import stempeg

    seconds = 12.0
    vocals, other = _stem(seconds, [LOUD], 440.0), _stem(seconds, [LOUD], 110.0)
    silent = np.zeros_like(vocals)
    (tmp_path / "test").mkdir()
    # MUSDB18 stem order: mixture, drums, bass, other, vocals (AAC, as the real files)
    stempeg.write_stems(str(tmp_path / "test" / "E - Stems.stem.mp4"),
                        np.stack([vocals + other, silent, silent, other, vocals]), sample_rate=RATE,
                        writer=stempeg.StreamsWriter(codec="aac", bitrate=256_000))
    dataset = ClipDataset(musdb18.build(tmp_path / "out", root=tmp_path, protocol="fastsag").parent)
    assert dataset.manifest["options"]["layout"] == "stems"
    (record,) = dataset.records()
    assert record.id == "E_-_Stems-000"
    assert record.extra["vocals_rms_db"] == pytest.approx(20 * np.log10(LOUD / np.sqrt(2)), abs=0.5)  # lossy AAC
