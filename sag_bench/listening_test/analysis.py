"""Table 3: MOS per system with confidence intervals, pairwise tests, and rater screening.

Input is the rating table of :mod:`sag_bench.listening_test.export` (one row per answer). Raters are screened
first (failed gold/attention items, near-zero variance; correlation with the others and the headphone check are
reported); the MOS and tests then use the kept raters' test items only.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sag_bench.listening_test import statistics
from sag_bench.listening_test.db import RatingStore
from sag_bench.listening_test.export import COLUMNS, rating_rows
from sag_bench.listening_test.study import Study, StudyError
from sag_bench.store import atomic_write_bytes, atomic_write_text, write_json

# FastSAG Table 3 (MOS of harmony and coherence, 1-5), keyed by our system names.
PAPER_TABLE3 = {"groundtruth": ("Human-composed", 4.15), "singsong-sc": ("SingSong s+c", 2.36),
                "randsong": ("RandSong", 1.48), "fastsag-interpolate": ("FastSAG (interpolate)", 2.78),
                "fastsag": ("FastSAG", 3.13)}
SIGNIFICANCE = 0.05
# Correlation needs this many of a rater's items to have been rated by someone else too.
MIN_ITEMS_FOR_CORRELATION = 3


@dataclass
class ScreeningRules:
    """When a rater is excluded (gold failures, variance) and when only flagged (correlation)."""

    max_gold_failures: int = 0
    min_variance: float = 0.1
    min_correlation: float = 0.25

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "ScreeningRules":
        return cls(**{key: spec[key] for key in ("max_gold_failures", "min_variance", "min_correlation")})


def screen_raters(ratings: pd.DataFrame, rules: ScreeningRules,
                  headphone: dict[str, tuple[int, int]] | None = None) -> pd.DataFrame:
    """One row per rater: counts, gold failures, variance, correlation with the others, headphone check, verdict.

    ``unplayed`` counts answers the form reported as given without a full play (only possible outside the form).
    """
    tests = ratings[ratings["kind"] == "test"]
    gold = ratings[ratings["kind"] != "test"]
    item_sum = tests.groupby("item_id")["score"].sum()
    item_count = tests.groupby("item_id")["score"].count()
    rows = []
    for rater, own in ratings.groupby("rater_id", sort=False):
        own_tests = tests[tests["rater_id"] == rater]
        own_gold = gold[gold["rater_id"] == rater]
        failed = int(((own_gold["score"] < own_gold["expected_min"]) |
                      (own_gold["score"] > own_gold["expected_max"])).sum())
        variance = float(own_tests["score"].var(ddof=0)) if len(own_tests) else float("nan")
        others = (item_count.reindex(own_tests["item_id"]).to_numpy() - 1)
        others_mean = (item_sum.reindex(own_tests["item_id"]).to_numpy() - own_tests["score"].to_numpy()) / \
            np.where(others > 0, others, np.nan)
        usable = np.isfinite(others_mean)
        correlation = float("nan")
        if usable.sum() >= MIN_ITEMS_FOR_CORRELATION and np.std(own_tests["score"].to_numpy()[usable]) > 0 \
                and np.std(others_mean[usable]) > 0:
            correlation = float(np.corrcoef(own_tests["score"].to_numpy()[usable], others_mean[usable])[0, 1])
        reasons = []
        if failed > rules.max_gold_failures:
            reasons.append(f"failed {failed} of {len(own_gold)} gold items")
        if not np.isnan(variance) and variance < rules.min_variance:
            reasons.append(f"variance {variance:.2f} < {rules.min_variance}")
        hp = (headphone or {}).get(rater)
        unplayed = int((own["plays"] == 0).sum()) if "plays" in own else 0
        rows.append({"rater_id": rater, "ratings": len(own), "test_ratings": len(own_tests), "unplayed": unplayed,
                     "gold_items": len(own_gold), "gold_failures": failed, "variance": variance,
                     "correlation": correlation,
                     "low_correlation": bool(not np.isnan(correlation) and correlation < rules.min_correlation),
                     "headphone": f"{hp[0]}/{hp[1]}" if hp else "", "excluded": bool(reasons),
                     "reasons": "; ".join(reasons)})
    return pd.DataFrame(rows)


def _system_order(systems: list[str]) -> list[str]:
    paper = [name for name in PAPER_TABLE3 if name in systems]
    return paper + sorted(name for name in systems if name not in PAPER_TABLE3)


def rater_z_scores(tests: pd.DataFrame) -> pd.Series:
    """Each rating standardised within its rater (0 for a rater whose ratings do not vary)."""
    grouped = tests.groupby("rater_id")["score"]
    spread = grouped.transform("std", ddof=0).replace(0.0, np.nan)
    return ((tests["score"] - grouped.transform("mean")) / spread).fillna(0.0)


def mos_table(tests: pd.DataFrame, n_bootstrap: int, seed: int) -> pd.DataFrame:
    """MOS per system: SD, counts, naive per-rating t CI, t CI over rater means, rater x clip bootstrap CI, and
    ``mos_z``, the mean per-rater z-score (removes each rater's own offset and range)."""
    systems = _system_order(sorted(tests["system"].unique()))
    codes = {name: index for index, name in enumerate(systems)}
    boot = statistics.two_way_bootstrap(tests["score"].to_numpy(np.float64), tests["system"].map(codes).to_numpy(),
                                        pd.factorize(tests["rater_id"])[0], pd.factorize(tests["clip"])[0],
                                        len(systems), n_bootstrap, seed)
    z_scores = rater_z_scores(tests)
    rows = []
    for name in systems:
        own = tests[tests["system"] == name]
        mean, naive_low, naive_high = statistics.t_interval(own["score"].to_numpy())
        _, t_low, t_high = statistics.t_interval(own.groupby("rater_id")["score"].mean().to_numpy())
        label, paper = PAPER_TABLE3.get(name, ("", float("nan")))
        rows.append({"system": name, "paper_name": label, "paper_mos": paper, "mos": mean,
                     "mos_z": float(z_scores[own.index].mean()),
                     "sd": float(own["score"].std(ddof=1)) if len(own) > 1 else float("nan"),
                     "ratings": len(own), "raters": own["rater_id"].nunique(), "clips": own["clip"].nunique(),
                     "ci_t_low": t_low, "ci_t_high": t_high, "ci_boot_low": boot[codes[name], 0],
                     "ci_boot_high": boot[codes[name], 1], "ci_naive_low": naive_low, "ci_naive_high": naive_high})
    return pd.DataFrame(rows)


def pairwise_tests(tests: pd.DataFrame, systems: list[str]) -> pd.DataFrame:
    """Wilcoxon signed-rank test for every pair of systems on (rater, clip) pairs both were rated on; Holm."""
    wide = tests.pivot_table(index=["rater_id", "clip"], columns="system", values="score", aggfunc="first")
    rows = []
    for a, b in combinations(systems, 2):
        paired = wide[[a, b]].dropna()
        statistic, p, effect = statistics.wilcoxon_signed_rank(paired[a].to_numpy(), paired[b].to_numpy())
        rows.append({"a": a, "b": b, "pairs": len(paired), "mean_diff": float((paired[a] - paired[b]).mean()),
                     "statistic": statistic, "p": p if len(paired) else float("nan"), "effect_r": effect})
    table = pd.DataFrame(rows, columns=["a", "b", "pairs", "mean_diff", "statistic", "p", "effect_r"])
    valid = table["p"].notna()
    table["p_holm"] = np.nan
    table.loc[valid, "p_holm"] = statistics.holm(table.loc[valid, "p"].to_numpy())
    table["significant"] = table["p_holm"] < SIGNIFICANCE
    return table


@dataclass
class Table3Report:
    """Everything ``listen analyze`` computes, with renderers; ``out_dir`` is set once written."""

    mos: pd.DataFrame
    pairwise: pd.DataFrame
    raters: pd.DataFrame
    ratings: pd.DataFrame
    out_dir: Path | None = None

    def markdown(self) -> str:
        """Table 3, the pairwise tests and the screening summary as Markdown."""
        lines = ["| System | Paper MOS | MOS | 95% CI (t, raters) | 95% CI (bootstrap raters x clips) | "
                 "95% CI (naive, per rating) | Ratings | Raters |", "|---|---|---|---|---|---|---|---|"]
        for row in self.mos.itertuples():
            paper = f"{row.paper_mos:.2f} ({row.paper_name})" if row.paper_name else "-"
            lines.append(f"| {row.system} | {paper} | {row.mos:.2f} | {_interval(row.ci_t_low, row.ci_t_high)} | "
                         f"{_interval(row.ci_boot_low, row.ci_boot_high)} | "
                         f"{_interval(row.ci_naive_low, row.ci_naive_high)} | {row.ratings} | {row.raters} |")
        lines += ["", "Pairwise Wilcoxon signed-rank tests on (rater, clip) pairs, Holm-corrected:", "",
                  "| A | B | Pairs | Mean A-B | r | p | p (Holm) | Significant |", "|---|---|---|---|---|---|---|---|"]
        for row in self.pairwise.itertuples():
            lines.append(f"| {row.a} | {row.b} | {row.pairs} | {row.mean_diff:+.2f} | {row.effect_r:+.2f} | "
                         f"{row.p:.3g} | {row.p_holm:.3g} | {'yes' if row.significant else 'no'} |")
        excluded = self.raters[self.raters["excluded"]]
        lines += ["", f"Raters: {len(self.raters)}, excluded {len(excluded)}, flagged for low correlation "
                      f"{int(self.raters['low_correlation'].sum())}."]
        lines += [f"- excluded {row.rater_id}: {row.reasons}" for row in excluded.itertuples()]
        return "\n".join(lines)

    def latex(self) -> str:
        """Table 3 as a booktabs LaTeX table."""
        lines = [r"\begin{tabular}{lrrcc}", r"\toprule",
                 r"System & Paper & MOS & 95\% CI ($t$, raters) & 95\% CI (bootstrap) \\", r"\midrule"]
        for row in self.mos.itertuples():
            name = (row.paper_name or row.system).replace("&", r"\&").replace("_", r"\_")
            paper = f"{row.paper_mos:.2f}" if row.paper_name else "--"
            lines.append(f"{name} & {paper} & {row.mos:.2f} & {_interval(row.ci_t_low, row.ci_t_high)} & "
                         f"{_interval(row.ci_boot_low, row.ci_boot_high)} \\\\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"

    def plot(self) -> bytes:
        """A PNG bar chart: our MOS with bootstrap CIs, the paper's values as markers."""
        import io

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(1.4 * len(self.mos) + 2, 3.6))
        x = np.arange(len(self.mos))
        errors = np.abs(np.stack([self.mos["mos"] - self.mos["ci_boot_low"],
                                  self.mos["ci_boot_high"] - self.mos["mos"]]))
        axis.bar(x, self.mos["mos"], yerr=np.nan_to_num(errors), capsize=4, color="#1f5fbf", label="ours (95% CI)")
        axis.plot(x, self.mos["paper_mos"], "D", color="#d9480f", label="FastSAG paper")
        axis.set_xticks(x, self.mos["system"], rotation=20, ha="right")
        axis.set_ylim(1, 5)
        axis.set_ylabel("MOS (harmony, coherence)")
        axis.legend(loc="upper right", fontsize=8)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120)
        plt.close(figure)
        return buffer.getvalue()

    def write(self, out_dir: str | Path) -> Path:
        """Write table3.{csv,md,tex,png}, pairwise.csv, raters.csv, ratings.csv and summary.json atomically."""
        out = Path(out_dir)
        atomic_write_text(out / "table3.csv", self.mos.to_csv(index=False))
        atomic_write_text(out / "table3.md", self.markdown() + "\n")
        atomic_write_text(out / "table3.tex", self.latex())
        atomic_write_bytes(out / "table3.png", self.plot())
        atomic_write_text(out / "pairwise.csv", self.pairwise.to_csv(index=False))
        atomic_write_text(out / "raters.csv", self.raters.to_csv(index=False))
        atomic_write_text(out / "ratings.csv", self.ratings.to_csv(index=False))
        write_json(out / "summary.json", {"mos": self.mos.to_dict(orient="records"),
                                          "excluded_raters": self.raters.loc[self.raters["excluded"], "rater_id"]
                                          .tolist()})
        self.out_dir = out
        return out


def _interval(low: float, high: float) -> str:
    return "-" if np.isnan(low) or np.isnan(high) else f"[{low:.2f}, {high:.2f}]"


def analyze_ratings(ratings: pd.DataFrame, rules: ScreeningRules | None = None, n_bootstrap: int = 2000,
                    seed: int = 0, headphone: dict[str, tuple[int, int]] | None = None) -> Table3Report:
    """Screen raters, then MOS with CIs and pairwise tests on the kept raters' test items."""
    if ratings.empty or not (ratings["kind"] == "test").any():
        raise StudyError("no test ratings to analyse yet")
    raters = screen_raters(ratings, rules or ScreeningRules(), headphone)
    kept = set(raters.loc[~raters["excluded"], "rater_id"])
    tests = ratings[(ratings["kind"] == "test") & ratings["rater_id"].isin(kept)]
    if tests.empty:
        raise StudyError(f"every one of the {len(raters)} raters was excluded by screening; see raters.csv")
    mos = mos_table(tests, n_bootstrap, seed)
    return Table3Report(mos=mos, pairwise=pairwise_tests(tests, list(mos["system"])), raters=raters,
                        ratings=ratings)


def analyze_study(study_dir: str | Path, out: str | Path | None = None, n_bootstrap: int = 2000,
                  seed: int = 0) -> Table3Report:
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
    report = analyze_ratings(ratings, ScreeningRules.from_spec(study.spec["screening"]), n_bootstrap, seed,
                             headphone)
    report.write(Path(out) if out else study.root / "analysis")
    return report
