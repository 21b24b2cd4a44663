"""Rater screening for MOS studies that does not select raters on leniency.

Every rule is relative to the rater's own scale or to the panel, so a lenient or a harsh but attentive rater is
kept (excluding them would move the MOS and shrink its interval dishonestly):

- ``offset``: the rater's mean deviation from the other raters' mean on the test items they share.
- Gold anchors and references are judged after removing the rater's offset (a lenient rater who rates the broken
  anchor "3" with an offset of +1 answered "2" on the panel's scale), in whole points outside the expected range
  (0.4 outside rounds to 0). Borderline answers are tolerated: a rater is excluded when their anchor and
  reference answers lie more than ``max_gold_points`` points outside in total (default 2: one or two borderline
  answers, or one answer two points off, are tolerated). Traps are instructions ("answer 2"): more than
  ``max_trap_misses`` other answers exclude.
- ``variance``: straight-liners (ITU-T P.808: variance of the rater's test ratings below 0.1).
- ``correlation``: Pearson correlation of the rater's test ratings with the other raters' means of the same
  items. A careless rater who passes the gold items does not track the panel: excluded when the correlation is
  below both ``min_correlation`` and ``panel_fraction`` x the panel's median correlation (the second bound keeps
  honest raters when the systems are so alike that nobody's ratings correlate much). Not computed (and not used)
  with fewer than ``MIN_ITEMS_FOR_CORRELATION`` shared items.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from sag_bench.listening_test.study import StudyError

# The correlation with the panel needs this many of a rater's test items to have been rated by someone else.
MIN_ITEMS_FOR_CORRELATION = 5
SCALE = (1, 5)
COLUMNS = ("rater_id", "ratings", "test_ratings", "unplayed", "gold_items", "gold_points", "trap_misses", "offset",
           "variance", "correlation", "headphone", "excluded", "reasons")


@dataclass(frozen=True)
class ScreeningRules:
    """When a rater is excluded; see the module docstring for what each rule measures."""

    max_gold_points: int = 2
    max_trap_misses: int = 0
    min_variance: float = 0.1
    min_correlation: float = 0.25
    panel_fraction: float = 0.4

    @classmethod
    def from_spec(cls, spec: dict[str, Any], source: str = "study.json") -> "ScreeningRules":
        """Rules from a study's ``screening`` table; missing keys take the defaults, unknown keys are an error."""
        known = [item.name for item in fields(cls)]
        unknown = sorted(set(spec) - set(known))
        if unknown:
            raise StudyError(f"{source}: unknown screening rule(s) {', '.join(unknown)} (known: {', '.join(known)})")
        return cls(**spec)


def _gold_points(gold: pd.DataFrame, offset: float) -> np.ndarray:
    """Whole points by which each gold answer lies outside its expected range (traps: the raw answer; anchors
    and references: after removing the rater's offset, clipped to the scale)."""
    scores = gold["score"].to_numpy(np.float64)
    adjusted = np.where(gold["kind"].to_numpy() == "trap", scores, np.clip(scores - offset, *SCALE))
    distance = np.maximum.reduce([gold["expected_min"].to_numpy(np.float64) - adjusted, np.zeros(len(gold)),
                                  adjusted - gold["expected_max"].to_numpy(np.float64)])
    return np.floor(distance + 0.5)


def _correlation(scores: np.ndarray, others_mean: np.ndarray) -> float:
    if scores.size < MIN_ITEMS_FOR_CORRELATION or np.std(scores) == 0 or np.std(others_mean) == 0:
        return float("nan")
    return float(np.corrcoef(scores, others_mean)[0, 1])


def played(ratings: pd.DataFrame) -> pd.Series:
    """Which answers were given after a play: a missing play count counts as unplayed."""
    if "plays" not in ratings:
        return pd.Series(True, index=ratings.index)
    return ratings["plays"].fillna(0) >= 1


def screen_raters(ratings: pd.DataFrame, rules: ScreeningRules,
                  headphone: dict[str, tuple[int, int]] | None = None) -> pd.DataFrame:
    """One row per rater (columns :data:`COLUMNS`): counts, gold answers, offset, variance, correlation with the
    panel, headphone check, verdict and reasons. ``unplayed`` counts answers given without a play; they are left
    out of every other figure."""
    unplayed_counts = (~played(ratings)).groupby(ratings["rater_id"], sort=False).sum()
    ratings = ratings[played(ratings)]
    is_test = (ratings["kind"] == "test").to_numpy()
    grouped = ratings[is_test].groupby("item_id")["score"]
    others = pd.Series(np.nan, index=ratings.index)
    others[is_test] = grouped.transform("count") - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        others_mean = (grouped.transform("sum") - ratings.loc[is_test, "score"]) / others[is_test]
    rows = []
    own_rows = dict(list(ratings.groupby("rater_id", sort=False)))
    for rater in unplayed_counts.index:
        own = own_rows.get(rater, ratings.iloc[:0])
        own_test = (own["kind"] == "test").to_numpy()
        own_gold = own[~own_test]
        scores = own.loc[own_test, "score"].to_numpy(np.float64)
        panel = others_mean.reindex(own.index[own_test]).to_numpy()
        usable = others.reindex(own.index[own_test]).to_numpy() > 0
        offset = float((scores[usable] - panel[usable]).mean()) if usable.any() else 0.0
        points = _gold_points(own_gold, offset)
        trap = own_gold["kind"].to_numpy() == "trap"
        hp = (headphone or {}).get(rater)
        rows.append({"rater_id": rater, "ratings": len(own), "test_ratings": int(own_test.sum()),
                     "unplayed": int(unplayed_counts[rater]),
                     "gold_items": len(own_gold), "gold_points": int(points[~trap].sum()),
                     "trap_misses": int((points[trap] > 0).sum()), "offset": offset,
                     "variance": float(scores.var()) if scores.size else float("nan"),
                     "correlation": _correlation(scores[usable], panel[usable]),
                     "headphone": f"{hp[0]}/{hp[1]}" if hp else ""})
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    correlations = table["correlation"].dropna()
    floor = min(rules.min_correlation, rules.panel_fraction * float(correlations.median())) \
        if len(correlations) else rules.min_correlation
    table["reasons"] = [_reasons(row, rules, floor) for row in table.itertuples()]
    table["excluded"] = table["reasons"] != ""
    return table


def _reasons(row: Any, rules: ScreeningRules, correlation_floor: float) -> str:
    """Why a rater (a row of the screening table) is excluded; empty when kept."""
    reasons = []
    if row.gold_points > rules.max_gold_points:
        reasons.append(f"gold answers {row.gold_points} points outside their ranges > {rules.max_gold_points}")
    if row.trap_misses > rules.max_trap_misses:
        reasons.append(f"missed {row.trap_misses} attention traps")
    if row.variance < rules.min_variance:
        reasons.append(f"variance {row.variance:.2f} < {rules.min_variance}")
    if row.correlation < correlation_floor:
        reasons.append(f"correlation with the panel {row.correlation:.2f} < {correlation_floor:.2f}")
    return "; ".join(reasons)
