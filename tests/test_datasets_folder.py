"""The folder recipe end to end with a small random HTDemucs: shards, resume, corrupt and short songs, split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sag_bench.audio import CLIP_SAMPLES, SAMPLE_RATE, load_audio_channels
from sag_bench.backbones.base import Separator
from sag_bench.cli import main
from sag_bench.datasets import folder
from sag_bench.datasets.manifest import ClipDataset, DatasetError
from sag_bench.store import sha256_file
from tests.separator_helpers import hide_pretrained_weights, small_separator, synthetic_song

# name -> seconds (None: a corrupt file). Windows by hand: 21 s -> 2, 10.5 s -> 1, 12 s -> 1, 5 s -> 0 (skipped).
SONGS = {"artist/one.wav": 21.0, "artist/two.flac": 10.5, "three.wav": 12.0, "short.wav": 5.0, "broken.wav": None}
EXPECTED_CLIPS = 4


class CountingSeparator(Separator):
    """Delegates to a real separator and records how many songs it separated."""

    name = "counting"

    def __init__(self, inner: Separator) -> None:
        self.inner = inner
        self.calls = 0

    def separate(self, mixture: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        return self.inner.separate(mixture, sample_rate)

    def describe(self) -> dict[str, object]:
        return self.inner.describe()


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("songs")
    for index, (name, seconds) in enumerate(SONGS.items()):
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if seconds is None:
            path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
        else:
            sf.write(path, synthetic_song(seconds, index), 44_100)
    return src


@pytest.fixture(scope="module")
def separator() -> CountingSeparator:
    return CountingSeparator(small_separator())



def test_sharded_build_resume_and_skips(songs: Path, separator: CountingSeparator, tmp_path: Path, one_thread: None,
                                        caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "data"
    with caplog.at_level(logging.WARNING, logger="sag_bench.datasets.folder"):
        first = folder.build(out, songs, separator=separator, shard="0/2", test_clips=1)
    assert first == out / folder.SONGS_DIR and not (out / "manifest.json").exists()
    after_first = separator.calls
    manifest = folder.build(out, songs, separator=separator, shard=(1, 2), test_clips=1)
    assert manifest == out / "manifest.json"
    assert separator.calls == 3  # every readable song exactly once over the two shards
    assert 0 < after_first < 3
    assert any("broken.wav" in message and "not a readable audio file" in message for message in caplog.messages)

    digest = sha256_file(manifest)
    assert folder.build(out, songs, separator=separator, test_clips=1) == manifest  # resume: nothing left to do
    assert separator.calls == 3 and sha256_file(manifest) == digest

    dataset = ClipDataset(out)
    assert len(dataset.records()) == EXPECTED_CLIPS
    skipped = dataset.manifest["options"]["skipped"]
    assert set(skipped) == {"broken.wav", "short.wav"} and "shorter than one clip" in skipped["short.wav"]
    train = {r.song for r in dataset.records("train")}
    test = {r.song for r in dataset.records("test")}
    assert len(test) == 1 and len(train) == 2 and not train & test
    for record in dataset.records():
        assert record.extra["vocals_variant"] == "separated"
        assert sf.info(str(record.vocals)).frames == sf.info(str(record.accompaniment)).frames == CLIP_SAMPLES
    assert dataset.verify() == []


def test_clips_are_the_separated_stems(songs: Path, tmp_path: Path, one_thread: None) -> None:
    only = tmp_path / "src"
    only.mkdir()
    (only / "two.flac").symlink_to(songs / "artist" / "two.flac")
    dataset = ClipDataset(folder.build(tmp_path / "out", only, separator=small_separator(), test_clips=0).parent)
    (record,) = dataset.records()
    assert record.split == "train"
    stereo = load_audio_channels(only / "two.flac")  # the builder separates the song's own channels
    vocals, accompaniment = small_separator().separate(torch.from_numpy(stereo), SAMPLE_RATE)
    pair = dataset.load(record)
    np.testing.assert_allclose(pair.vocals, vocals.numpy()[:CLIP_SAMPLES], atol=1e-6)
    np.testing.assert_allclose(pair.accompaniment, accompaniment.numpy()[:CLIP_SAMPLES], atol=1e-6)


def test_split_songs_takes_whole_songs_until_the_test_size() -> None:
    clips = {"a": 3, "b": 0, "c": 2, "d": 5, "e": 1}
    for seed in range(5):
        test = folder.split_songs(clips, test_clips=4, seed=seed)
        assert "b" not in test
        assert sum(clips[song] for song in test) >= 4
        # taking songs stops as soon as the size is reached: without the last one taken it was short
        assert any(sum(clips[s] for s in test - {song}) < 4 for song in test)
    assert folder.split_songs(clips, test_clips=0, seed=0) == set()
    assert len(folder.split_songs(clips, test_clips=100, seed=0)) == 3  # one song with clips stays in train


def test_parse_shard() -> None:
    assert folder.parse_shard("3/8") == (3, 8)
    for bad in ("8/8", "a/2", "1", "-1/2"):
        with pytest.raises(DatasetError, match="expected i/N"):
            folder.parse_shard(bad)


def test_missing_weights_and_empty_folder_are_one_line_errors(songs: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    hide_pretrained_weights(tmp_path, monkeypatch)
    assert main(["data", "build", "folder", "--src", str(songs), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("sag-bench: error:") and len(error.splitlines()) == 1  # no progress bar, no traceback
    assert "htdemucs" in error and "weights" in error
    (tmp_path / "empty").mkdir()
    assert main(["data", "build", "folder", "--src", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no audio files" in capsys.readouterr().err


def test_cli_refuses_options_that_do_not_apply_and_missing_required_ones(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "build", "folder", "--out", str(tmp_path)]) == 2
    assert "dataset 'folder' needs --src" in capsys.readouterr().err
    assert main(["data", "build", "folder", "--src", str(tmp_path), "--root", "x", "--out", str(tmp_path)]) == 2
    assert "--root does not apply to dataset 'folder'" in capsys.readouterr().err
