"""Audio core: loading, resampling, clipping, the paper's RMS filter, the BigVGAN mel, normalisation, mixing.

Constants that come from the papers are named once here and imported everywhere else.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from sag_bench.errors import AudioError  # noqa: F401 (raised here; importable from here)

# FastSAG section 4.1: everything runs at BigVGAN's rate; 10 s non-overlapping clips.
SAMPLE_RATE = 24_000
CLIP_SECONDS = 10.0
CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)

# FastSAG section 4 and its evaluation code: an evaluated mix is vocals + 0.9 x accompaniment.
MIX_GAIN = 0.9

# FastSAG section 4.1 / SingSong section 4: keep clips whose peak frame RMS exceeds -25 dB.
# Definition used here (written down because the authors' code differs, see notes): frame RMS over
# RMS_FRAME samples with hop RMS_HOP at 24 kHz, in dBFS = 20 * log10(rms) (a full-scale sine is -3 dBFS).
RMS_THRESHOLD_DB = -25.0
RMS_FRAME = 2048
RMS_HOP = 1024

# BigVGAN bigvgan_24khz_100band mel (FastSAG section 3.2): 93.75 frames/s, 937 frames per 10 s.
N_FFT = 1024
HOP_SIZE = 256
WIN_SIZE = 1024
N_MELS = 100
F_MIN = 0.0
F_MAX = 12_000.0
LOG_CLAMP = 1e-5
MEL_PADDING = (N_FFT - HOP_SIZE) // 2  # reflect padding on each side, then frames without centring
MEL_FRAMES_PER_CLIP = 937

# FastSAG eq. 13/14: log-mel values are mapped from [-12, 2] to [-1, 1].
MEL_NORM_MIN = -12.0
MEL_NORM_MAX = 2.0

# FastSAG: waveforms are min-max rescaled to [-0.8, 0.8] before features are computed.
FEATURE_PEAK = 0.8

_SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".aiff", ".aif"}


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    if shutil.which("ffmpeg") is None:
        raise AudioError(path, "cannot decode this format without ffmpeg (install it: apt-get install ffmpeg)")
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "wav", "-acodec", "pcm_f32le", "-"],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(path, f"not a readable audio file ({reason[-1] if reason else 'ffmpeg failed'})")
    data, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    return data, rate


def _wav_missing_bytes(path: Path) -> int:
    """Bytes missing from a RIFF/WAVE file's ``data`` chunk (0 when complete or not a plain RIFF WAV).

    libsndfile silently shortens a truncated WAV to what is present; the header tells how much was announced.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(12)[:4] != b"RIFF":
            return 0
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return 0
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"data":
                return max(0, chunk_size - (size - handle.tell())) if chunk_size not in (0, 0xFFFFFFFF) else 0
            handle.seek(chunk_size + (chunk_size & 1), 1)


def _decode(path: Path) -> tuple[np.ndarray, int]:
    if path.suffix.lower() not in _SOUNDFILE_EXTENSIONS:
        return _decode_with_ffmpeg(path)
    try:
        info = sf.info(str(path))
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, EOFError) as error:
        raise AudioError(path, f"not a readable audio file ({str(error).split(':')[-1].strip()})") from None
    missing = _wav_missing_bytes(path) if info.format == "WAV" else 0
    if missing:
        raise AudioError(path, f"truncated: {missing} bytes of audio data announced in the header are missing")
    return data, rate


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``[T]`` or ``[T, C]`` float audio with soxr (very high quality); no-op when rates match."""
    if rate_in == rate_out:
        return audio
    return soxr.resample(audio, rate_in, rate_out, quality="VHQ").astype(np.float32)


def load_audio_channels(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Load any wav/flac/ogg/mp3 file as float32 ``[channels, T]`` at ``sample_rate`` (e.g. stereo for Demucs).

    Raises :class:`AudioError` (one line: file and problem) for missing, empty, non-audio, truncated or
    non-finite input.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file")
    data, rate = _decode(path)
    if data.size == 0:
        raise AudioError(path, "contains no samples")
    if not np.isfinite(data).all():
        raise AudioError(path, "contains NaN or infinite samples")
    return np.ascontiguousarray(resample(data, rate, sample_rate).T, dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Load any wav/flac/ogg/mp3 file as float32 mono ``[T]`` at ``sample_rate`` (channels averaged).

    Raises :class:`AudioError` like :func:`load_audio_channels`.
    """
    return load_audio_channels(path, sample_rate).mean(axis=0, dtype=np.float64).astype(np.float32)


def save_audio(path: str | Path, audio: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float audio as a 32-bit float WAV, atomically (no clipping, no wrap-around)."""
    from sag_bench.store import atomic_write_bytes

    samples = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    samples = samples.astype(np.float32).reshape(-1)
    if not np.isfinite(samples).all():
        raise AudioError(path, "refusing to write NaN or infinite samples")
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="WAV", subtype="FLOAT")
    return atomic_write_bytes(path, _zero_peak_timestamp(buffer.getvalue()))


def _zero_peak_timestamp(wav: bytes) -> bytes:
    """libsndfile stamps float WAVs with the write time (PEAK chunk: id, size, version, timestamp); zero the
    timestamp so that equal audio gives equal bytes and equal sha256."""
    index = wav.find(b"PEAK", 12, 256)
    if index < 0:
        return wav
    stamp = index + 12
    return wav[:stamp] + bytes(4) + wav[stamp + 4:]


def frame_rms_db(audio: np.ndarray, frame: int = RMS_FRAME, hop: int = RMS_HOP) -> np.ndarray:
    """Frame-wise RMS in dBFS (20 log10 rms, floor -120 dB) over frames of ``frame`` samples every ``hop``."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.shape[-1] < frame:
        audio = np.pad(audio, (0, frame - audio.shape[-1]))
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    rms = np.sqrt(np.mean(frames**2, axis=-1))
    return 20.0 * np.log10(np.maximum(rms, 1e-6))


def peak_rms_db(audio: np.ndarray) -> float:
    """The loudest frame's RMS in dBFS: the quantity the papers' -25 dB filter thresholds."""
    return float(frame_rms_db(audio).max())


def passes_rms_filter(audio: np.ndarray, threshold_db: float = RMS_THRESHOLD_DB) -> bool:
    """True when the clip's peak frame RMS exceeds ``threshold_db`` (default -25 dBFS)."""
    return peak_rms_db(audio) > threshold_db


def clip_offsets(num_samples: int, clip_samples: int = CLIP_SAMPLES) -> list[int]:
    """Start offsets of the non-overlapping full clips that fit in ``num_samples`` (the tail is dropped)."""
    return list(range(0, num_samples - clip_samples + 1, clip_samples))


def split_clips(audio: np.ndarray, path: str | Path, clip_samples: int = CLIP_SAMPLES) -> list[np.ndarray]:
    """Non-overlapping full clips of ``audio``; raises :class:`AudioError` when shorter than one clip."""
    offsets = clip_offsets(len(audio), clip_samples)
    if not offsets:
        raise AudioError(path, f"shorter than one clip ({len(audio)} < {clip_samples} samples)")
    return [audio[start : start + clip_samples] for start in offsets]


def rescale_for_features(audio: torch.Tensor, peak: float = FEATURE_PEAK) -> torch.Tensor:
    """Min-max rescale each row of ``[B, T]`` to ``[-peak, peak]`` (FastSAG's feature pre-scaling)."""
    low = audio.amin(dim=-1, keepdim=True)
    high = audio.amax(dim=-1, keepdim=True)
    span = (high - low).clamp_min(1e-8)
    return ((audio - low) / span * 2.0 - 1.0) * peak


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    import librosa

    basis = librosa.filters.mel(sr=sample_rate, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX)
    return torch.from_numpy(basis).float().to(device), torch.hann_window(WIN_SIZE).to(device)


def mel_basis(device: str | torch.device = "cpu") -> torch.Tensor:
    """The 100-band Slaney mel filterbank ``[100, 513]`` of BigVGAN's 24 kHz model."""
    return _mel_basis(SAMPLE_RATE, str(device))[0]


def framed_stft(padded: torch.Tensor) -> torch.Tensor:
    """Complex STFT ``[B, 513, F]`` of already padded audio with the mel's framing (Hann 1024, hop 256, no centring).

    The one definition of the framing, shared by :func:`mel_spectrogram` and the Griffin-Lim vocoder's iterations.
    """
    window = _mel_basis(SAMPLE_RATE, str(padded.device))[1]
    return torch.stft(padded, N_FFT, hop_length=HOP_SIZE, win_length=WIN_SIZE, window=window, center=False,
                      normalized=False, onesided=True, return_complex=True)


def mel_frames(num_samples: int) -> int:
    """Mel frames for ``num_samples`` at 24 kHz (937 for 10 s)."""
    padded = num_samples + 2 * MEL_PADDING
    return (padded - N_FFT) // HOP_SIZE + 1


def mel_spectrogram(audio: torch.Tensor) -> torch.Tensor:
    """BigVGAN 24 kHz 100-band log-mel of ``[B, T]`` (or ``[T]``) audio: ``[B, 100, frames]``, 93.75 frames/s.

    Reflect padding of (n_fft - hop) / 2 on each side, Hann window, no centring, magnitude with a 1e-9 floor
    inside the square root, Slaney mel basis, natural log clamped at 1e-5.
    """
    if audio.dim() == 1:
        audio = audio[None]
    padded = torch.nn.functional.pad(audio[:, None], (MEL_PADDING, MEL_PADDING), mode="reflect")[:, 0]
    spec = framed_stft(padded)
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
    return torch.log(torch.clamp(mel_basis(audio.device) @ magnitude, min=LOG_CLAMP))


def normalise_mel(mel: torch.Tensor) -> torch.Tensor:
    """FastSAG eq. 13: map log-mel from [-12, 2] to [-1, 1]."""
    return (mel - MEL_NORM_MIN) / (MEL_NORM_MAX - MEL_NORM_MIN) * 2.0 - 1.0


def denormalise_mel(mel: torch.Tensor) -> torch.Tensor:
    """FastSAG eq. 14: the inverse of :func:`normalise_mel`."""
    return (mel + 1.0) / 2.0 * (MEL_NORM_MAX - MEL_NORM_MIN) + MEL_NORM_MIN


def mix(vocals: np.ndarray, accompaniment: np.ndarray, gain: float = MIX_GAIN) -> tuple[np.ndarray, float]:
    """Float mix ``vocals + gain * accompaniment`` that cannot wrap or clip silently.

    Sums in float64; if the peak exceeds 1.0 the whole mix is scaled to a 0.99 peak. Returns the mix (float32)
    and the scale applied (1.0 when none), which callers record.
    """
    vocals = np.asarray(vocals, dtype=np.float64)
    accompaniment = np.asarray(accompaniment, dtype=np.float64)
    length = min(len(vocals), len(accompaniment))
    mixed = vocals[:length] + gain * accompaniment[:length]
    peak = float(np.abs(mixed).max()) if length else 0.0
    scale = 0.99 / peak if peak > 1.0 else 1.0
    return (mixed * scale).astype(np.float32), scale
