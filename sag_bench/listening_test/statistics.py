"""Statistics for MOS studies: t intervals, a two-way (raters x items) bootstrap, Wilcoxon signed-rank, Holm.

Per-rating intervals treat every answer as independent and understate the uncertainty when a few raters and
clips are behind all answers (CrowdMOS, Ribeiro et al. 2011). The t interval over rater means and the bootstrap
that resamples raters and clips at once both account for that.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of the Student-t confidence interval of the mean; NaN bounds for fewer than 2 values."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean()) if values.size else float("nan")
    if values.size < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return mean, float(mean - half), float(mean + half)


def two_way_bootstrap(scores: np.ndarray, groups: np.ndarray, raters: np.ndarray, clips: np.ndarray,
                      n_groups: int, n_resamples: int, seed: int,
                      confidence: float = CONFIDENCE) -> np.ndarray:
    """Percentile intervals ``[n_groups, 2]`` of each group's mean score, resampling raters and clips jointly.

    Each resample draws raters and clips with replacement; a rating's weight is (times its rater was drawn) x
    (times its clip was drawn). ``groups``, ``raters`` and ``clips`` are integer codes per rating.
    """
    rng = np.random.default_rng(seed)
    n_raters, n_clips = int(raters.max()) + 1, int(clips.max()) + 1
    rater_weights = rng.multinomial(n_raters, np.full(n_raters, 1.0 / n_raters), size=n_resamples)
    clip_weights = rng.multinomial(n_clips, np.full(n_clips, 1.0 / n_clips), size=n_resamples)
    weights = (rater_weights[:, raters] * clip_weights[:, clips]).astype(np.float64)
    bounds = np.full((n_groups, 2), np.nan)
    for group in range(n_groups):
        mask = groups == group
        total = weights[:, mask].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = weights[:, mask] @ scores[mask] / total
        means = means[np.isfinite(means)]
        if means.size:
            tail = (1 - confidence) / 2 * 100
            bounds[group] = np.percentile(means, [tail, 100 - tail])
    return bounds


def wilcoxon_signed_rank(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(statistic, two-sided p, matched-pairs rank-biserial r) for paired samples; zero differences dropped.

    r = (sum of ranks of positive differences - negative ones) / total rank sum, in [-1, 1]; positive when
    ``x`` tends to exceed ``y``. With no non-zero difference the result is (0, 1, 0).
    """
    diff = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    diff = diff[diff != 0]
    if diff.size == 0:
        return 0.0, 1.0, 0.0
    ranks = stats.rankdata(np.abs(diff))
    effect = float((ranks[diff > 0].sum() - ranks[diff < 0].sum()) / ranks.sum())
    result = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue), effect


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    pvalues = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(pvalues)
    m = pvalues.size
    adjusted = np.maximum.accumulate(pvalues[order] * (m - np.arange(m)))
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    return result
