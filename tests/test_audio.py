"""Audio core: loading any format robustly, clipping, the RMS filter, the BigVGAN mel, normalisation, mixing."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from sag_bench import audio
from sag_bench.audio import AudioError


def _write(path, data, rate, subtype):
    sf.write(path, data, rate, subtype=subtype)
    return path


@pytest.mark.parametrize("subtype,tolerance", [("PCM_U8", 1e-2), ("PCM_16", 1e-4), ("PCM_24", 1e-6),
                                               ("PCM_32", 1e-6), ("FLOAT", 1e-7), ("DOUBLE", 1e-7)])
def test_every_wav_bit_depth_loads_to_the_same_float_signal(tmp_path, subtype, tolerance):
    signal = 0.5 * np.sin(2 * np.pi * 440 * np.arange(24_000) / 24_000)
    path = _write(tmp_path / f"{subtype}.wav", signal, 24_000, subtype)
    loaded = audio.load_audio(path)
    assert loaded.dtype == np.float32 and loaded.shape == (24_000,)
    assert np.max(np.abs(loaded - signal)) < tolerance * 4


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channels_are_averaged_to_mono(tmp_path, channels):
    levels = np.linspace(0.1, 0.6, channels)
    data = np.ones((4800, channels)) * levels
    loaded = audio.load_audio(_write(tmp_path / "c.wav", data, 24_000, "FLOAT"))
    assert loaded.shape == (4800,)
    np.testing.assert_allclose(loaded, levels.mean(), atol=1e-6)


def test_channels_can_be_kept(tmp_path):
    data = np.stack([np.full(4800, 0.1), np.full(4800, -0.3)], axis=1)
    loaded = audio.load_audio_channels(_write(tmp_path / "s.wav", data, 48_000, "FLOAT"))
    assert loaded.shape == (2, 2400) and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded[:, 100:-100].mean(axis=1), [0.1, -0.3], atol=1e-4)


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 48_000, 96_000])
def test_any_rate_is_resampled_to_24k_keeping_duration_and_pitch(tmp_path, rate):
    t = np.arange(2 * rate) / rate
    loaded = audio.load_audio(_write(tmp_path / "r.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), rate, "PCM_16"))
    assert abs(len(loaded) - 48_000) <= 1
    spectrum = np.abs(np.fft.rfft(loaded[2400:-2400]))
    peak_hz = np.argmax(spectrum) * 24_000 / len(loaded[2400:-2400])
    assert abs(peak_hz - 1000) < 2


def test_flac_and_mp3_load(tmp_path, tone):
    flac = _write(tmp_path / "a.flac", tone[:24_000], 24_000, "PCM_16")
    assert audio.load_audio(flac).shape == (24_000,)
    mp3 = tmp_path / "a.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(flac), str(mp3)], check=True)
    decoded = audio.load_audio(mp3)
    assert abs(len(decoded) - 24_000) < 2400 and np.abs(decoded).max() > 0.3


def _assert_one_line_error(path, fragment):
    with pytest.raises(AudioError) as caught:
        audio.load_audio(path)
    message = str(caught.value)
    assert str(path) in message and fragment in message and "\n" not in message


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _assert_one_line_error(path, "empty file")


def test_non_audio_bytes_are_rejected(tmp_path):
    path = tmp_path / "text.wav"
    path.write_bytes(b"this is not audio at all " * 100)
    _assert_one_line_error(path, "not a readable audio file")
    other = tmp_path / "text.mp3"
    other.write_bytes(b"\x00\x01garbage" * 50)
    _assert_one_line_error(other, "not a readable audio file")


def test_truncated_wav_is_rejected(tmp_path, tone):
    full = _write(tmp_path / "full.wav", tone, 24_000, "PCM_16")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(full.read_bytes()[: 44 + 1000])
    _assert_one_line_error(truncated, "truncated")


def test_header_only_wav_is_rejected(tmp_path):
    path = tmp_path / "header.wav"
    header = b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 24000, 48000, 2, 16)
    path.write_bytes(header + b"data" + struct.pack("<I", 0))
    with pytest.raises(AudioError):
        audio.load_audio(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected(tmp_path, bad):
    data = np.zeros(4800, dtype=np.float32)
    data[100] = bad
    _assert_one_line_error(_write(tmp_path / "nan.wav", data, 24_000, "FLOAT"), "NaN or infinite")


def test_missing_file_is_rejected(tmp_path):
    _assert_one_line_error(tmp_path / "nope.wav", "no such file")


def test_shorter_than_one_clip_is_rejected(tmp_path):
    with pytest.raises(AudioError, match="shorter than one clip"):
        audio.split_clips(np.zeros(239_999, dtype=np.float32), tmp_path / "short.wav")


def test_clips_are_non_overlapping_and_drop_the_tail():
    signal = np.arange(3 * audio.CLIP_SAMPLES + 5000, dtype=np.float32)
    clips = audio.split_clips(signal, "x.wav")
    assert [c[0] for c in clips] == [0, audio.CLIP_SAMPLES, 2 * audio.CLIP_SAMPLES]
    assert all(len(c) == audio.CLIP_SAMPLES for c in clips)


def test_rms_filter_uses_dbfs_of_the_loudest_frame(tone):
    assert audio.peak_rms_db(tone / 0.5) == pytest.approx(-3.01, abs=0.02)  # full-scale sine
    quiet = tone * 10 ** (-25 / 20)  # sine 0.5 * -25 dB -> about -34 dBFS RMS
    assert not audio.passes_rms_filter(quiet)
    burst = np.zeros_like(tone)
    burst[100_000:104_096] = tone[:4096]  # one loud frame suffices: the filter is on the peak
    assert audio.passes_rms_filter(burst)


def test_mel_equals_bigvgan_reference_and_frame_rate(tone):
    from bigvgan.meldataset import mel_spectrogram as reference

    noise = torch.from_numpy(np.random.default_rng(0).uniform(-0.9, 0.9, 240_000).astype(np.float32))
    batch = torch.stack([torch.from_numpy(tone), noise])
    ours = audio.mel_spectrogram(batch)
    theirs = reference(batch, n_fft=1024, num_mels=100, sampling_rate=24_000, hop_size=256, win_size=1024,
                       fmin=0, fmax=12_000)
    assert ours.shape == (2, 100, 937) == theirs.shape
    assert torch.max(torch.abs(ours - theirs)).item() < 1e-5
    assert audio.mel_frames(240_000) == audio.MEL_FRAMES_PER_CLIP == 937
    assert audio.mel_frames(24_000 * 4) == 375  # 93.75 frames per second


def test_mel_normalisation_maps_paper_range_and_inverts():
    mel = torch.tensor([-12.0, 2.0, -5.0])
    normalised = audio.normalise_mel(mel)
    torch.testing.assert_close(normalised, torch.tensor([-1.0, 1.0, 0.0]))
    torch.testing.assert_close(audio.denormalise_mel(normalised), mel)


def test_feature_rescaling_is_min_max_to_0_8():
    out = audio.rescale_for_features(torch.tensor([[0.1, 0.3, -0.2], [2.0, 4.0, 3.0]]))
    torch.testing.assert_close(out.amax(-1), torch.tensor([0.8, 0.8]))
    torch.testing.assert_close(out.amin(-1), torch.tensor([-0.8, -0.8]))


def test_mix_never_wraps_or_clips_silently():
    loud = np.full(100, 0.9, dtype=np.float32)
    mixed, scale = audio.mix(loud, loud, gain=0.9)
    assert np.abs(mixed).max() == pytest.approx(0.99, abs=1e-6)
    assert scale == pytest.approx(0.99 / 1.71)
    quiet, scale = audio.mix(loud * 0.1, loud * 0.1, gain=0.9)
    assert scale == 1.0 and quiet[0] == pytest.approx(0.171, abs=1e-6)


def test_save_audio_round_trips_float_without_clipping(tmp_path):
    data = np.array([1.5, -2.0, 0.25], dtype=np.float32)
    path = audio.save_audio(tmp_path / "x.wav", data)
    np.testing.assert_array_equal(sf.read(path, dtype="float32")[0], data)
    with pytest.raises(AudioError):
        audio.save_audio(tmp_path / "nan.wav", np.array([np.nan], dtype=np.float32))


def test_load_error_prints_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"junk")
    code = ("import sys; from sag_bench.audio import load_audio; from sag_bench.cli import main;\n"
            "try:\n    load_audio(sys.argv[1])\nexcept Exception as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True)
    assert out.stdout.strip().count("\n") == 0 and str(bad) in out.stdout and "Traceback" not in out.stderr


def test_saved_wav_bytes_depend_on_the_audio_alone(tmp_path, monkeypatch):
    """No wall-clock timestamp (libsndfile's PEAK chunk) may leak into a file: content hashes must be stable."""
    import time as time_module

    data = np.linspace(-0.5, 0.5, 480, dtype=np.float32)
    first = audio.save_audio(tmp_path / "a.wav", data).read_bytes()
    real_time = time_module.time
    monkeypatch.setattr(time_module, "time", lambda: real_time() + 3600)
    time_module.sleep(1.1)
    second = audio.save_audio(tmp_path / "b.wav", data).read_bytes()
    assert first == second
    info = sf.info(tmp_path / "a.wav")
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (24_000, 1, 480, "FLOAT")
