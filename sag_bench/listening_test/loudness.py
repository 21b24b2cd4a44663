"""Programme loudness after ITU-R BS.1770-4 (K-weighting, 400 ms gated blocks), and study-wide loudness matching.

The K-weighting filters are specified as biquads at 48 kHz, so audio is resampled to 48 kHz before filtering.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from sag_bench.audio import resample

# ITU-R BS.1770-4, table 1 and 2: stage 1 (high shelf, head effects) and stage 2 (RLB high-pass) at 48 kHz.
K_RATE = 48_000
SHELF_B = (1.53512485958697, -2.69169618940638, 1.19839281085285)
SHELF_A = (1.0, -1.69065929318241, 0.73248077421585)
HIGHPASS_B = (1.0, -2.0, 1.0)
HIGHPASS_A = (1.0, -1.99004745483398, 0.99007225036621)
# BS.1770-4 section 2: 400 ms blocks with 75 % overlap, absolute gate -70 LKFS, relative gate -10 LU, offset -0.691.
BLOCK_SECONDS = 0.4
BLOCK_STEP_SECONDS = 0.1
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LOUDNESS_OFFSET = -0.691
SILENCE_LUFS = -120.0


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Gated integrated loudness of mono ``[T]`` or multichannel ``[T, C]`` audio in LUFS (all channel weights 1).

    Audio shorter than one 400 ms block is measured as a single block; digital silence gives -120 LUFS.
    """
    audio = np.asarray(audio, dtype=np.float64)
    audio = audio[:, None] if audio.ndim == 1 else audio
    filtered = resample(audio.astype(np.float32), sample_rate, K_RATE).astype(np.float64)
    filtered = lfilter(HIGHPASS_B, HIGHPASS_A, lfilter(SHELF_B, SHELF_A, filtered, axis=0), axis=0)
    block = int(BLOCK_SECONDS * K_RATE)
    step = int(BLOCK_STEP_SECONDS * K_RATE)
    if filtered.shape[0] < block:
        filtered = np.pad(filtered, ((0, block - filtered.shape[0]), (0, 0)))
    power = np.stack([np.mean(filtered[s:s + block] ** 2, axis=0).sum()
                      for s in range(0, filtered.shape[0] - block + 1, step)])
    loud = LOUDNESS_OFFSET + 10.0 * np.log10(np.maximum(power, 1e-30))
    kept = power[loud > ABSOLUTE_GATE_LUFS]
    if kept.size == 0:
        return SILENCE_LUFS
    relative_gate = LOUDNESS_OFFSET + 10.0 * np.log10(kept.mean()) + RELATIVE_GATE_LU
    kept = power[(loud > ABSOLUTE_GATE_LUFS) & (loud > relative_gate)]
    return float(LOUDNESS_OFFSET + 10.0 * np.log10(kept.mean()))


def matching_gains(clips: dict[str, np.ndarray], sample_rate: int, target_lufs: float,
                   peak_limit: float) -> tuple[dict[str, float], float, dict[str, float]]:
    """Linear gains that bring every clip to one common loudness without any peak above ``peak_limit``.

    The common loudness is ``target_lufs``, lowered for the whole set when some clip would otherwise exceed the
    peak limit (so loudness stays matched and nothing clips). Silent clips get gain 1. Returns
    ``(gains, common_lufs, measured_lufs)``.
    """
    measured = {key: integrated_loudness(audio, sample_rate) for key, audio in clips.items()}
    common = target_lufs
    for key, audio in clips.items():
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if measured[key] > SILENCE_LUFS and peak > 0.0:
            headroom_db = 20.0 * np.log10(peak_limit / peak)
            common = min(common, measured[key] + headroom_db)
    gains = {key: 1.0 if level <= SILENCE_LUFS else float(10.0 ** ((common - level) / 20.0))
             for key, level in measured.items()}
    return gains, float(common), measured
