"""`sag-bench generate` from the command line: any rate, length and channel count, offline, batched, with mixes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sag_bench.cli import main
from tests.fastsag_helpers import random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("ckpt") / "fastsag.pt")


def _tone(path, rate: int, seconds: float, channels: int) -> None:
    t = np.arange(int(rate * seconds)) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * (440 + 110 * c) * t) for c in range(channels)], axis=1)
    sf.write(path, audio, rate)


def test_generate_stereo_44k_input_writes_24k_mono_and_a_mix(tmp_path, checkpoint, capsys):
    _tone(tmp_path / "voice.wav", 44_100, 1.3, channels=2)
    code = main(["generate", "fastsag", "--ckpt", str(checkpoint), "--input", str(tmp_path / "voice.wav"),
                 "--out", str(tmp_path / "acc.wav"), "--mix", str(tmp_path / "mix.wav"), "--steps", "2",
                 "--seed", "3"])
    assert code == 0
    acc, rate = sf.read(tmp_path / "acc.wav", always_2d=True)
    assert rate == 24_000 and acc.shape == (round(1.3 * 24_000), 1) and np.isfinite(acc).all()
    mixed, rate = sf.read(tmp_path / "mix.wav")
    assert rate == 24_000 and len(mixed) == len(acc) and np.abs(mixed).max() <= 1.0
    assert "voice.wav -> " in capsys.readouterr().out


def test_several_inputs_of_other_rates_and_lengths_are_one_batch(tmp_path, checkpoint):
    _tone(tmp_path / "a.flac", 16_000, 0.4, channels=1)
    _tone(tmp_path / "b.wav", 48_000, 0.9, channels=3)
    code = main(["generate", "fastsag", "--ckpt", str(checkpoint), "--input", str(tmp_path / "a.flac"),
                 str(tmp_path / "b.wav"), "--out", str(tmp_path / "out"), "--steps", "2"])
    assert code == 0
    assert sf.info(tmp_path / "out" / "a.wav").frames == round(0.4 * 24_000)
    assert sf.info(tmp_path / "out" / "b.wav").frames == round(0.9 * 24_000)


def test_bad_input_and_wrong_variant_are_one_line_errors(tmp_path, checkpoint, capsys):
    (tmp_path / "noise.wav").write_bytes(b"RIFF not really")
    args = ["--ckpt", str(checkpoint), "--out", str(tmp_path / "x.wav")]
    assert main(["generate", "fastsag", "--input", str(tmp_path / "noise.wav"), *args]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("sag-bench: error:") and "noise.wav" in error and len(error.splitlines()) == 1
    _tone(tmp_path / "ok.wav", 24_000, 0.2, channels=1)
    assert main(["generate", "fastsag-mel", "--input", str(tmp_path / "ok.wav"), *args]) == 2
    assert "checkpoint is fastsag, but fastsag-mel was asked for" in capsys.readouterr().err


def _loud_dataset(root):
    """A synthetic dataset whose first test clip's accompaniment peaks at 3.0 (float WAV, as systems may write)."""
    from sag_bench.audio import load_audio, save_audio
    from sag_bench.datasets.manifest import ClipDataset
    from tests.conftest import build_dataset

    build_dataset(root, songs=2, clips_per_song=1, seconds=1.0)
    record = ClipDataset(root).records("test")[0]
    acc = load_audio(record.accompaniment)
    save_audio(record.accompaniment, 3.0 * acc / np.abs(acc).max())
    return record


def test_groundtruth_needs_data_in_one_line(tmp_path, capsys):
    _tone(tmp_path / "v.wav", 24_000, 0.5, channels=1)
    assert main(["generate", "groundtruth", "--input", str(tmp_path / "v.wav"), "--out", str(tmp_path / "a.wav")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--data DIR" in error
    record = _loud_dataset(tmp_path / "data")
    assert main(["generate", "groundtruth", "--data", str(tmp_path / "data"), "--input", str(tmp_path / "v.wav"),
                 "--out", str(tmp_path / "a.wav")]) == 2
    assert "v.wav: not a clip of" in capsys.readouterr().err


def test_loud_output_is_levelled_under_full_scale_and_said(tmp_path, capsys):
    record = _loud_dataset(tmp_path / "data")
    code = main(["generate", "groundtruth", "--data", str(tmp_path / "data"), "--input", str(record.vocals),
                 "--out", str(tmp_path / "acc.wav"), "--mix", str(tmp_path / "mix.wav")])
    assert code == 0
    acc, _ = sf.read(tmp_path / "acc.wav")
    mixed, _ = sf.read(tmp_path / "mix.wav")
    assert abs(np.abs(acc).max() - 0.99) < 1e-4 and np.abs(mixed).max() <= 0.99 + 1e-6
    out = capsys.readouterr().out
    assert f"levelled by {20 * np.log10(0.99 / 3.0):.1f} dB" in out  # the gain applied is printed


def test_builtin_checkpoint_is_accepted_as_in_specs(tmp_path, capsys):
    _tone(tmp_path / "v.wav", 44_100, 0.5, channels=2)
    code = main(["generate", "fastsag", "--ckpt", "builtin:fastsag.pt", "--input", str(tmp_path / "v.wav"),
                 "--out", str(tmp_path / "acc.wav"), "--steps", "2"])
    assert code == 0 and sf.info(tmp_path / "acc.wav").frames == round(0.5 * 24_000)
    assert main(["generate", "fastsag", "--ckpt", "builtin:nope.pt", "--input", str(tmp_path / "v.wav"),
                 "--out", str(tmp_path / "acc.wav")]) == 2
    assert "--ckpt builtin:nope.pt:" in capsys.readouterr().err


def test_missing_ckpt_is_phrased_as_the_cli_option(tmp_path, capsys):
    _tone(tmp_path / "v.wav", 24_000, 0.2, channels=1)
    assert main(["generate", "fastsag", "--input", str(tmp_path / "v.wav"), "--out", str(tmp_path / "a.wav")]) == 2
    error = capsys.readouterr().err
    assert "needs --ckpt PATH" in error and "builtin:fastsag.pt" in error and "checkpoint=" not in error
