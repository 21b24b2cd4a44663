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
