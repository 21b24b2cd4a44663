"""Table 3: MOS per system with crossed raters x clips intervals, pairwise tests on clips, rater screening.

Input is the rating table of :mod:`sag_bench.listening_test.export` (one row per answer). Raters are screened
first (:mod:`sag_bench.listening_test.screening`) and the screening report is written before anything else can
fail; the MOS and tests then use the kept raters' test items only.

- Interval (Table 3): t interval with the standard error of a crossed raters x clips design
  (:func:`statistics.crossed_mean`). The per-rating ("naive") and rater-means t intervals are kept in the CSV
  only, labelled as such: they ignore the clip (and, for the naive one, the rater) variance.
- Pairwise tests: Wilcoxon signed-rank on per-clip mean differences (the unit of generalisation over songs; a
  system x clip interaction does not inflate it), Holm across pairs. Alternatives in ``pairwise.csv``: the same
  test on per-rater mean differences (robust to a system x rater interaction instead, liberal under a system x
  clip one) and a crossed t test on the (rater, clip) differences (models both interactions; in simulation near
  nominal under a system x clip interaction, somewhat liberal, about 0.10 at 0.05, under a system x rater one of
  sd 0.3 with 15 raters; ``bench/listen_stats.py`` measures all three).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from sag_bench.listening_test import statistics
from sag_bench.listening_test.db import RatingStore
from sag_bench.listening_test.export import COLUMNS, rating_rows
from sag_bench.listening_test.screening import ScreeningRules, played, screen_raters
from sag_bench.listening_test.study import Study, StudyError
from sag_bench.reporting.table3 import PAPER_TABLE3, write_report, write_screening

SIGNIFICANCE = 0.05


def _system_order(systems: list[str]) -> list[str]:
    paper = [name for name in PAPER_TABLE3 if name in systems]
    return paper + sorted(name for name in systems if name not in PAPER_TABLE3)


def rater_z_scores(tests: pd.DataFrame) -> pd.Series:
    """Each rating standardised within its rater (0 for a rater whose ratings do not vary)."""
    grouped = tests.groupby("rater_id")["score"]
    spread = grouped.transform("std", ddof=0).replace(0.0, np.nan)
    return ((tests["score"] - grouped.transform("mean")) / spread).fillna(0.0)


def _cells(tests: pd.DataFrame) -> pd.DataFrame:
    """Mean score per (rater, clip) and system (one rating per cell in a built study)."""
    return tests.pivot_table(index=["rater_id", "clip"], columns="system", values="score", aggfunc="mean")


def mos_table(tests: pd.DataFrame) -> pd.DataFrame:
    """MOS per system: SD, counts, the crossed raters x clips t interval (``ci_low``/``ci_high``, with its
    standard error, df and variance components), ``mos_z`` (mean per-rater z-score), and two intervals kept
    for reference only: ``ci_rater_means_*`` (t over rater means) and ``ci_naive_*`` (t over single ratings)."""
    cells = _cells(tests)
    z_scores = rater_z_scores(tests)
    rows = []
    for name in _system_order(list(cells.columns)):
        column = cells[name].dropna()
        own = tests[tests["system"] == name]
        crossed = statistics.crossed_mean(column.to_numpy(), column.index.get_level_values(0).to_numpy(),
                                          column.index.get_level_values(1).to_numpy())
        low, high = crossed.interval()
        _, naive_low, naive_high = statistics.t_interval(own["score"].to_numpy())
        _, rater_low, rater_high = statistics.t_interval(own.groupby("rater_id")["score"].mean().to_numpy())
        label, paper = PAPER_TABLE3.get(name, ("", float("nan")))
        rows.append({"system": name, "paper_name": label, "paper_mos": paper, "mos": float(own["score"].mean()),
                     "mos_z": float(z_scores[own.index].mean()),
                     "sd": float(own["score"].std(ddof=1)) if len(own) > 1 else float("nan"),
                     "ratings": len(own), "raters": own["rater_id"].nunique(), "clips": own["clip"].nunique(),
                     "ci_low": low, "ci_high": high, "se": crossed.se, "df": crossed.df,
                     "var_rater": crossed.var_rater, "var_clip": crossed.var_clip,
                     "var_residual": crossed.var_residual, "ci_rater_means_low": rater_low,
                     "ci_rater_means_high": rater_high, "ci_naive_low": naive_low, "ci_naive_high": naive_high})
    return pd.DataFrame(rows)


PAIRWISE_COLUMNS = ["a", "b", "clips", "raters", "pairs", "mean_diff", "effect_r", "p", "p_rater", "p_crossed"]


def pairwise_tests(tests: pd.DataFrame, systems: list[str]) -> pd.DataFrame:
    """For every pair of systems, on the (rater, clip) cells both were rated in: Wilcoxon signed-rank on per-clip
    mean differences (``p``, ``effect_r``: rank-biserial r on clips), the same on per-rater mean differences
    (``p_rater``) and the crossed t test of the differences (``p_crossed``); each p Holm-corrected across pairs
    (``*_holm``); ``significant`` uses the per-clip test."""
    cells = _cells(tests)
    rows = []
    for a, b in combinations(systems, 2):
        diff = (cells[a] - cells[b]).dropna()
        raters, clips = diff.index.get_level_values(0), diff.index.get_level_values(1)
        per_clip = diff.groupby(clips).mean().to_numpy()
        per_rater = diff.groupby(raters).mean().to_numpy()
        _, p_clip, effect = statistics.wilcoxon_signed_rank(per_clip, np.zeros_like(per_clip))
        p_rater = statistics.wilcoxon_signed_rank(per_rater, np.zeros_like(per_rater))[1]
        p_crossed = statistics.crossed_mean(diff.to_numpy(), raters.to_numpy(), clips.to_numpy()).p_value() \
            if len(diff) else float("nan")
        rows.append({"a": a, "b": b, "clips": len(per_clip), "raters": len(per_rater), "pairs": len(diff),
                     "mean_diff": float(diff.mean()) if len(diff) else float("nan"), "effect_r": effect,
                     "p": p_clip if len(diff) else float("nan"), "p_rater": p_rater if len(diff) else float("nan"),
                     "p_crossed": p_crossed})
    table = pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)
    for column in ("p", "p_rater", "p_crossed"):
        valid = table[column].notna()
        table[f"{column}_holm"] = np.nan
        table.loc[valid, f"{column}_holm"] = statistics.holm(table.loc[valid, column].to_numpy())
    table["significant"] = table["p_holm"] < SIGNIFICANCE
    return table


@dataclass
class Table3Report:
    """Everything ``listen analyze`` computes (rendered by :mod:`sag_bench.reporting.table3`); ``out_dir`` is set
    once written."""

    mos: pd.DataFrame
    pairwise: pd.DataFrame
    raters: pd.DataFrame
    ratings: pd.DataFrame
    out_dir: Path | None = None


def analyze_ratings(ratings: pd.DataFrame, rules: ScreeningRules | None = None,
                    headphone: dict[str, tuple[int, int]] | None = None,
                    out: str | Path | None = None) -> Table3Report:
    """Screen raters, then MOS with crossed intervals and pairwise tests on the kept raters' played test items (a
    missing play count counts as unplayed). With ``out``, ``raters.csv`` is written right after screening (also when the analysis then fails) and the whole
    report at the end."""
    raters = screen_raters(ratings, rules or ScreeningRules(), headphone)
    if out is not None:
        write_screening(raters, Path(out))
    if ratings.empty or not (ratings["kind"] == "test").any():
        raise StudyError("no test ratings to analyse yet")
    kept = set(raters.loc[~raters["excluded"], "rater_id"])
    tests = ratings[(ratings["kind"] == "test") & ratings["rater_id"].isin(kept) & played(ratings)]
    if tests.empty:
        raise StudyError(f"every one of the {len(raters)} raters was excluded by screening; see raters.csv")
    mos = mos_table(tests)
    report = Table3Report(mos=mos, pairwise=pairwise_tests(tests, list(mos["system"])), raters=raters,
                          ratings=ratings)
    if out is not None:
        write_report(report, Path(out))
        report.out_dir = Path(out)
    return report


def analyze_study(study_dir: str | Path, out: str | Path | None = None) -> Table3Report:
    """Analyse the ratings stored for the study at ``study_dir``; writes to ``out`` (default STUDY_DIR/analysis)."""
    study = Study.open(study_dir)
    if not study.database.is_file():
        raise StudyError(f"{study.database}: no ratings yet (serve the study first)")
    store = RatingStore(study.database)
    try:
        ratings = pd.DataFrame(rating_rows(study, store), columns=list(COLUMNS))
        headphone = {r["id"]: (r["headphone_correct"], r["headphone_total"]) for r in store.raters()
                     if r["headphone_total"] is not None}
    finally:
        store.close()
    rules = ScreeningRules.from_spec(study.spec["screening"], f"{study.root / 'study.json'}")
    return analyze_ratings(ratings, rules, headphone, Path(out) if out else study.root / "analysis")
