"""Perturbation systems: accompaniments no musician would accept, each breaking one thing the ground truth has.

They validate the measures (:mod:`sag_bench.evaluation.validation`): a measure worth reporting ranks the ground
truth above every one of them. Each class docstring says what it breaks and what it keeps. Every perturbation is a
deterministic function of (seed, clip id) and of the dataset given to :meth:`System.prepare`.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sag_bench.datasets.manifest import ClipRecord
from sag_bench.systems.catalog import PERTURBATIONS  # noqa: F401  (re-exported: the entries of these systems)
from sag_bench.seeding import derive_seed
from sag_bench.systems.context import DatasetSystem, require_clip_ids, stack

# Krumhansl & Kessler (1982) key profiles, tonic first: how well each pitch class fits a major / minor key.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
CHORD_ROOT_MIDI = 48  # C3: the static triad is voiced from the key's tonic in the octave above
CHORD_PROGRAM = 19  # General MIDI Church Organ: a chord that holds without decaying
NOISE_FFT = 2048
TEMPO_PRIOR_BPM = 90.0  # sung music: a prior centred on a moderate beat (librosa's default is 120)
MAX_TEMPO_BPM = 200.0


def rms(audio: np.ndarray) -> float:
    """Root mean square of ``audio`` (float64)."""
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0


def match_level(audio: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``audio`` scaled to the RMS of ``reference`` (silence stays silence)."""
    level = rms(audio)
    return (audio * (rms(reference) / level)).astype(np.float32) if level > 0 else audio.astype(np.float32)


def estimate_key(audio: np.ndarray, sample_rate: int) -> tuple[int, str]:
    """(tonic pitch class 0 = C, ``"major"`` | ``"minor"``): Krumhansl-Schmuckler on librosa's CQT chroma."""
    import librosa

    profile = librosa.feature.chroma_cqt(y=audio.astype(np.float32), sr=sample_rate).sum(axis=1)
    scores = [(np.corrcoef(profile, np.roll(template, tonic))[0, 1], tonic, mode)
              for mode, template in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)) for tonic in range(12)]
    _, tonic, mode = max(scores)
    return tonic, mode


def beat_seconds(audio: np.ndarray, sample_rate: int) -> float:
    """Duration of one beat in seconds from librosa's tempo estimate on ``audio`` (onset autocorrelation with a
    prior centred on :data:`TEMPO_PRIOR_BPM`, at most :data:`MAX_TEMPO_BPM`, so that a beat is not a subdivision)."""
    import librosa

    bpm = float(librosa.feature.tempo(y=audio.astype(np.float32), sr=sample_rate, start_bpm=TEMPO_PRIOR_BPM,
                                      max_tempo=MAX_TEMPO_BPM)[0])
    if not bpm > 0:
        raise ValueError("librosa found no tempo in the accompaniment")
    return 60.0 / bpm


class Perturbation(DatasetSystem):
    """Base of the perturbations: the dataset context, and one accompaniment per clip from :meth:`perturb`."""

    name = "perturbation"

    def truth(self, record: ClipRecord, length: int) -> np.ndarray:
        """The clip's own accompaniment, fitted to ``length`` samples."""
        assert self.context is not None
        return self.context.accompaniment(record, length)

    @abstractmethod
    def perturb(self, record: ClipRecord, vocals: np.ndarray, seed: int) -> np.ndarray:
        """The perturbed accompaniment of one clip (same length as ``vocals``)."""

    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        if self.context is None:
            raise RuntimeError(f"{self.name}: call prepare(data_dir) before generate")
        ids = require_clip_ids(self.name, clip_ids, vocals.shape[0])
        with self.timer.stage("perturb"):
            return stack([self.perturb(self.context.record(clip_id), audio.numpy(), seed)
                          for clip_id, audio in zip(ids, vocals.cpu().float())])


class Transposed(Perturbation):
    """Ground truth pitch-shifted by ``semitones``: breaks the harmony with the voice, keeps rhythm, timbre, level."""

    name = "perturb-transposed"

    def __init__(self, checkpoint: str | Path | None = None, semitones: float = 1.0, **options: Any) -> None:
        super().__init__(checkpoint, semitones=semitones, **options)
        self.semitones = semitones

    def perturb(self, record: ClipRecord, vocals: np.ndarray, seed: int) -> np.ndarray:
        import librosa

        truth = self.truth(record, len(vocals))
        shifted = librosa.effects.pitch_shift(truth, sr=self.sample_rate, n_steps=self.semitones)
        return match_level(shifted[: len(truth)], truth)


class TimeShifted(Perturbation):
    """Ground truth delayed by ``beats`` beats (librosa's tempo estimate), wrapped around the clip:
    breaks the alignment with the voice (which chord sounds under which note, which onsets coincide), keeps
    key, harmony progression, timbre and level."""

    name = "perturb-time-shifted"

    def __init__(self, checkpoint: str | Path | None = None, beats: float = 1.0, **options: Any) -> None:
        super().__init__(checkpoint, beats=beats, **options)
        self.beats = beats

    def perturb(self, record: ClipRecord, vocals: np.ndarray, seed: int) -> np.ndarray:
        truth = self.truth(record, len(vocals))
        delay = int(round(self.beats * beat_seconds(truth, self.sample_rate) * self.sample_rate))
        return np.roll(truth, delay)


class OtherClipSameSong(Perturbation):
    """Ground truth of another clip of the same song (same transposition when there is one): breaks the moment-
    to-moment fit, keeps the song's key, style, instruments and level."""

    name = "perturb-other-clip"

    def partner(self, record: ClipRecord, seed: int) -> ClipRecord:
        """The clip whose accompaniment replaces ``record``'s (seeded by clip id)."""
        assert self.context is not None
        same_song = [other for other in self.context.by_id.values() if other.song == record.song and other != record]
        if not same_song:
            raise ValueError(f"{self.name}: song {record.song!r} of clip {record.id} has no other clip in "
                             f"{self.context.dataset.root}")
        key = record.extra.get("transposition")
        same_key = [other for other in same_song if key is not None and other.extra.get("transposition") == key]
        pool = sorted(same_key or same_song, key=lambda other: other.id)
        return pool[np.random.default_rng(derive_seed(seed, record.id, self.name)).integers(len(pool))]

    def perturb(self, record: ClipRecord, vocals: np.ndarray, seed: int) -> np.ndarray:
        return self.truth(self.partner(record, seed), len(vocals))


class StaticChord(Perturbation):
    """The tonic triad of the clip's key (estimated from the vocals) held on an organ for the whole clip, at the
    ground truth's level: breaks harmonic movement (no chord follows the melody), keeps key and level."""

    name = "perturb-static-chord"

    def perturb(self, record: ClipRecord, vocals: np.ndarray, seed: int) -> np.ndarray:
        from sag_bench.datasets.render import Line, Note, render_lines

        tonic, mode = estimate_key(vocals, self.sample_rate)
        root = CHORD_ROOT_MIDI + tonic
        seconds = len(vocals) / self.sample_rate
        lines = [Line(CHORD_PROGRAM, (Note(0.0, seconds, root + interval, 90),))
                 for interval in (0, 4 if mode == "major" else 3, 7)]
        chord = render_lines(lines, sample_rate=self.sample_rate, length=len(vocals))
        return match_level(np.pad(chord, (0, len(vocals) - len(chord))), self.truth(record, len(vocals)))


class CopiedVocals(Perturbation):
    """The input vocals themselves, ``gain_db`` quieter: breaks everything an accompaniment adds (harmony,
    instruments, a part of its own); rewards only a measure that confuses agreement with copying."""

    name = "perturb-copied-vocals"

    def __init__(self, checkpoint: str | Path | None = None, gain_db: float = -12.0, **options: Any) -> None:
        super().__init__(checkpoint, gain_db=gain_db, **options)
        self.gain = 10.0 ** (gain_db / 20.0)

    def perturb(self, record: ClipRecord, vocals: np.ndarray, seed: int) -> np.ndarray:
        return (vocals * self.gain).astype(np.float32)


class Silence(Perturbation):
    """Digital silence: no accompaniment at all (breaks everything; a measure must not reward absence)."""

    name = "perturb-silence"

    def perturb(self, record: ClipRecord, vocals: np.ndarray, seed: int) -> np.ndarray:
        return np.zeros(len(vocals), np.float32)


class ShapedNoise(Perturbation):
    """Stationary noise with the ground truth's long-term spectrum and level: breaks pitch and rhythm, keeps
    timbre (spectral balance) and loudness."""

    name = "perturb-shaped-noise"

    def perturb(self, record: ClipRecord, vocals: np.ndarray, seed: int) -> np.ndarray:
        truth = self.truth(record, len(vocals))
        frames = np.lib.stride_tricks.sliding_window_view(np.pad(truth, (0, NOISE_FFT)), NOISE_FFT)[::NOISE_FFT // 4]
        spectrum = np.sqrt(np.mean(np.abs(np.fft.rfft(frames * np.hanning(NOISE_FFT), axis=1)) ** 2, axis=0))
        rng = np.random.default_rng(derive_seed(seed, record.id, self.name))
        white = np.fft.rfft(rng.standard_normal(len(truth)))
        envelope = np.interp(np.linspace(0, 1, len(white)), np.linspace(0, 1, len(spectrum)), spectrum)
        return match_level(np.fft.irfft(white * envelope, n=len(truth)), truth)
