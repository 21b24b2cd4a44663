"""Statistics for MOS studies with crossed raters x clips: t intervals, a crossed variance-components interval,
Wilcoxon signed-rank and Holm.

Why a crossed interval. In a listening test every rating ``y`` shares its rater with other ratings and its clip
with other ratings, so ratings are not independent. Write ``n_r`` for the ratings of rater ``r``, ``m_c`` for
those of clip ``c`` and ``N`` for all of them (each rater rates a clip at most once per system). For raters and
clips drawn at random from their populations,

    Cov(y_i, y_j) = V        if i = j
                  = s_R      if same rater, different clip   (s_R: rater component)
                  = s_C      if same clip, different rater   (s_C: clip component)
                  = 0        if both differ

and summing the covariances over all pairs gives the variance of the mean

    Var(mean) = s_R * sum(n_r^2) / N^2 + s_C * sum(m_c^2) / N^2 + s_E / N,    s_E = V - s_R - s_C.

The per-rating interval keeps only ``V / N`` (it covers about 0.6 in crossed studies); the t interval over rater
means drops ``s_C``; a bootstrap that resamples raters and clips with product weights counts ``s_E`` several
times over (once in the rater margins, once in the clip margins, again through the product weights) and is too
wide. The three components are estimated without any normality assumption from half mean squared differences of
pairs of ratings (unbiased U-statistics, the moment estimator behind CrowdMOS-style intervals):

    D_rater = mean over pairs (same rater, different clip) of (y_i - y_j)^2 / 2  =  s_C + s_E
    D_clip  = mean over pairs (same clip, different rater) of (y_i - y_j)^2 / 2  =  s_R + s_E
    D_none  = mean over pairs (different rater and clip)   of (y_i - y_j)^2 / 2  =  s_R + s_C + s_E

so ``s_R = D_none - D_rater``, ``s_C = D_none - D_clip``, ``s_E = D_rater + D_clip - D_none`` (negatives set to 0).
The interval is ``mean +- t(df) * SE`` with Satterthwaite degrees of freedom for SE^2 written as
``(w_R s_R + s_E / N) + (w_C s_C + s_E / N) - s_E / N`` with raters - 1, clips - 1 and N - raters - clips + 1
degrees of freedom (in a balanced design: MS_rater / N + MS_clip / N - MS_error / N, the classical form). All pair sums are computed from group
sums in O(N). The same estimator applied to paired differences of two systems gives a crossed paired test.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class CrossedMean:
    """The mean of ratings from crossed raters x clips with its standard error, degrees of freedom and the
    estimated variance components (rater, clip, residual); ``se`` is NaN when the design cannot separate them."""

    mean: float
    se: float
    df: float
    var_rater: float
    var_clip: float
    var_residual: float

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """(low, high) of the t interval ``mean +- t(df) * se``; NaN when the standard error is unknown."""
        if not np.isfinite(self.se):
            return float("nan"), float("nan")
        if self.se == 0:
            return self.mean, self.mean
        half = stats.t.ppf(0.5 + confidence / 2, self.df) * self.se
        return self.mean - half, self.mean + half

    def p_value(self) -> float:
        """Two-sided p of the t test of mean = 0 (for paired differences: no difference between two systems)."""
        if not np.isfinite(self.se):
            return float("nan")
        if self.se == 0:
            return 1.0 if self.mean == 0 else 0.0
        return float(2 * stats.t.sf(abs(self.mean) / self.se, self.df))


def _pair_sum(values: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    """(sum over pairs in the same group of (y_i - y_j)^2, number of such pairs) for integer group codes."""
    counts = np.bincount(codes).astype(np.float64)
    sums = np.bincount(codes, weights=values)
    squares = np.bincount(codes, weights=values * values)
    return float((counts * squares - sums * sums).sum()), float((counts * (counts - 1) / 2).sum())


def crossed_mean(values: np.ndarray, raters: np.ndarray, clips: np.ndarray) -> CrossedMean:
    """Mean, standard error and variance components of ``values`` rated by ``raters`` on ``clips`` (integer codes,
    one per value; one value per rater x clip). See the module docstring for the derivation."""
    values = np.asarray(values, dtype=np.float64)
    raters = np.unique(raters, return_inverse=True)[1]
    clips = np.unique(clips, return_inverse=True)[1]
    n = values.size
    cells = raters * (int(clips.max(initial=0)) + 1) + clips
    if n == 0 or np.unique(cells).size != n:
        raise ValueError("crossed_mean needs one value per rater x clip cell")
    whole, whole_pairs = _pair_sum(values, np.zeros(n, dtype=np.int64))
    same_rater, rater_pairs = _pair_sum(values, raters)
    same_clip, clip_pairs = _pair_sum(values, clips)
    # Pairs with both rater and clip different: all pairs minus those sharing one of them (none share both).
    none_pairs = whole_pairs - rater_pairs - clip_pairs
    mean = float(values.mean())
    if min(rater_pairs, clip_pairs, none_pairs) == 0:
        return CrossedMean(mean, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
    d_rater = same_rater / rater_pairs / 2
    d_clip = same_clip / clip_pairs / 2
    d_none = (whole - same_rater - same_clip) / none_pairs / 2
    var_rater = max(d_none - d_rater, 0.0)
    var_clip = max(d_none - d_clip, 0.0)
    var_residual = max(d_rater + d_clip - d_none, 0.0)
    n_raters, n_clips = int(raters.max()) + 1, int(clips.max()) + 1
    # Satterthwaite on mean-square-like terms: in a balanced design they are MS_rater / N, MS_clip / N and
    # -MS_error / N of the two-way ANOVA (SE^2 = (MS_rater + MS_clip - MS_error) / N).
    residual = var_residual / n
    terms = np.array([var_rater * np.square(np.bincount(raters)).sum() / n ** 2 + residual,
                      var_clip * np.square(np.bincount(clips)).sum() / n ** 2 + residual, -residual])
    dofs = np.array([n_raters - 1, n_clips - 1, max(n - n_raters - n_clips + 1, 1)], dtype=np.float64)
    total = float(terms.sum())
    df = total ** 2 / float((terms ** 2 / dofs).sum()) if total > 0 else float(dofs.sum())
    return CrossedMean(mean, float(np.sqrt(total)), df, var_rater, var_clip, var_residual)


def wilcoxon_signed_rank(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(statistic, two-sided p, matched-pairs rank-biserial r) for paired samples; zero differences dropped.

    r = (sum of ranks of positive differences - negative ones) / total rank sum, in [-1, 1]; positive when
    ``x`` tends to exceed ``y``. With no non-zero difference the result is (0, 1, 0). The p value is exact for
    up to 50 differences without ties, otherwise the tie-corrected normal approximation (deterministic: never
    scipy's random permutation fallback).
    """
    diff = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    diff = diff[diff != 0]
    if diff.size == 0:
        return 0.0, 1.0, 0.0
    ranks = stats.rankdata(np.abs(diff))
    effect = float((ranks[diff > 0].sum() - ranks[diff < 0].sum()) / ranks.sum())
    exact = diff.size <= 50 and np.unique(np.abs(diff)).size == diff.size
    result = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided",
                            method="exact" if exact else "asymptotic")
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
