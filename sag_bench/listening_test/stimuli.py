"""Signals a study needs besides the systems' mixes: the broken anchor, the headphone check, and audio encoding."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from sag_bench.audio import AudioError, resample
from sag_bench.store import atomic_write_bytes

# The anchor's accompaniment is shifted by a tritone (the most dissonant interval against the melody's key)
# and played backwards (no rhythmic relation to the singing left).
ANCHOR_SEMITONES = 6

# Headphone screening after Woods et al. (2017, Attention, Perception & Psychophysics 79): three 200 Hz tones,
# one 6 dB softer, one in antiphase between the ears. Over loudspeakers the antiphase tone cancels and sounds
# softest, so only a listener on headphones reliably picks the truly softer one.
HEADPHONE_TONE_HZ = 200.0
HEADPHONE_TONE_SECONDS = 1.0
HEADPHONE_GAP_SECONDS = 0.5
HEADPHONE_SOFT_DB = -6.0
HEADPHONE_LEVEL = 0.25
HEADPHONE_RAMP_SECONDS = 0.1

FORMATS = {"mp3": ("libmp3lame", "mp3"), "ogg": ("libvorbis", "ogg"), "wav": (None, "wav")}


def broken_anchor(accompaniment: np.ndarray) -> np.ndarray:
    """The accompaniment shifted up by :data:`ANCHOR_SEMITONES` (resampling, looped to length) and reversed."""
    ratio = 2.0 ** (ANCHOR_SEMITONES / 12.0)
    rate_in = 48_000
    shifted = resample(np.asarray(accompaniment, dtype=np.float32), rate_in, round(rate_in / ratio))
    repeats = int(np.ceil(len(accompaniment) / max(len(shifted), 1)))
    return np.tile(shifted, repeats)[: len(accompaniment)][::-1].copy()


def headphone_trial(soft_position: int, antiphase_position: int, sample_rate: int) -> np.ndarray:
    """One stereo ``[T, 2]`` headphone-check trial: three tones, ``soft_position`` 6 dB down (0-based)."""
    if soft_position == antiphase_position or not {soft_position, antiphase_position} <= {0, 1, 2}:
        raise ValueError("soft and antiphase tones must be two different positions among 0, 1, 2")
    t = np.arange(int(HEADPHONE_TONE_SECONDS * sample_rate)) / sample_rate
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / HEADPHONE_RAMP_SECONDS)
    tone = HEADPHONE_LEVEL * ramp * np.sin(2 * np.pi * HEADPHONE_TONE_HZ * t)
    gap = np.zeros((int(HEADPHONE_GAP_SECONDS * sample_rate), 2))
    parts = []
    for position in range(3):
        left = tone * (10 ** (HEADPHONE_SOFT_DB / 20) if position == soft_position else 1.0)
        right = -left if position == antiphase_position else left
        parts += [np.stack([left, right], axis=1), gap]
    return np.concatenate(parts[:-1]).astype(np.float32)


def encode(audio: np.ndarray, sample_rate: int, fmt: str, bitrate: str) -> bytes:
    """Encode ``[T]`` or ``[T, C]`` float audio as ``fmt`` (mp3/ogg through ffmpeg, wav as 16-bit PCM)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown audio format {fmt!r} (choose from {', '.join(FORMATS)})")
    audio = np.asarray(audio, dtype=np.float32)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    if fmt == "wav":
        buffer = io.BytesIO()
        sf.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
        return buffer.getvalue()
    codec, container = FORMATS[fmt]
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"<{fmt} encoder>", "ffmpeg is not installed (apt-get install ffmpeg, or use --format wav)")
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(sample_rate),
                           "-ac", str(channels), "-i", "-", "-c:a", codec, "-b:a", bitrate, "-f", container, "-"],
                          input=audio.tobytes(), capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"<{fmt} encoder>", f"ffmpeg failed ({reason[-1] if reason else 'no output'})")
    return proc.stdout


def write_encoded(folder: Path, stem: str, audio: np.ndarray, sample_rate: int, fmt: str, bitrate: str) -> Path:
    """Encode ``audio`` and write it atomically as ``folder/<stem>.<ext>``."""
    return atomic_write_bytes(folder / f"{stem}.{FORMATS[fmt][1]}", encode(audio, sample_rate, fmt, bitrate))
