"""Table 3 (listening test) rendered beside the FastSAG paper's Table 3: Markdown, LaTeX, a PNG plot, and the
files ``listen analyze`` writes. The captions state the interval method and the unit of the pairwise tests."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sag_bench.store import atomic_write_bytes, atomic_write_text, write_json
from sag_bench.reporting.plots import pyplot
from sag_bench.reporting.tables import paper_table

if TYPE_CHECKING:
    from sag_bench.listening_test.analysis import Table3Report



def _paper_table3() -> dict[str, tuple[str, float]]:
    """FastSAG Table 3 (MOS of harmony and coherence, 1-5) from ``systems/paper.toml``, keyed by our system names
    through each registry entry's ``paper_row``, in the paper's row order."""
    from sag_bench import registry

    mos = paper_table("table3")["MOS"]
    by_row = {entry.paper_row: name for name in registry.names("systems")
              if (entry := registry.entry("systems", name)).paper_row in mos.index}
    return {by_row[row]: (row, float(value)) for row, value in mos.items() if row in by_row}


PAPER_TABLE3 = _paper_table3()
INTERVAL_METHOD = ("95% CI: t interval with the standard error of a crossed raters x clips design (rater, clip and "
                   "residual variance components from pair differences, Satterthwaite df)")
TEST_UNIT = ("Pairwise tests: Wilcoxon signed-rank on per-clip mean differences (unit: clip), Holm-corrected "
             "across pairs; alternatives: the same on per-rater mean differences (unit: rater) and a crossed "
             "raters x clips t test of the differences")
PAPER_NOTE = "Paper: FastSAG Table 3 (MOS of harmony and coherence, 1-5)"


def _interval(low: float, high: float) -> str:
    return "-" if np.isnan(low) or np.isnan(high) else f"[{low:.2f}, {high:.2f}]"


def markdown(report: Table3Report) -> str:
    """Table 3 with its caption, the pairwise tests and the screening summary as Markdown."""
    lines = [f"Table 3. MOS of the kept raters' test ratings beside the paper. {INTERVAL_METHOD}.", "",
             "| System | Paper MOS | MOS | 95% CI (crossed raters x clips) | Ratings | Raters | Clips |",
             "|---|---|---|---|---|---|---|"]
    for row in report.mos.itertuples():
        paper = f"{row.paper_mos:.2f} ({row.paper_name})" if row.paper_name else "-"
        lines.append(f"| {row.system} | {paper} | {row.mos:.2f} | {_interval(row.ci_low, row.ci_high)} | "
                     f"{row.ratings} | {row.raters} | {row.clips} |")
    lines += ["", f"{TEST_UNIT}:", "",
              "| A | B | Clips | Mean A-B | r | p | p (Holm) | Significant | p (Holm), unit rater "
              "| p (Holm), crossed |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in report.pairwise.itertuples():
        lines.append(f"| {row.a} | {row.b} | {row.clips} | {row.mean_diff:+.2f} | {row.effect_r:+.2f} | "
                     f"{row.p:.3g} | {row.p_holm:.3g} | {'yes' if row.significant else 'no'} | "
                     f"{row.p_rater_holm:.3g} | {row.p_crossed_holm:.3g} |")
    excluded = report.raters[report.raters["excluded"]]
    lines += ["", f"Raters: {len(report.raters)}, excluded {len(excluded)} (see raters.csv)."]
    lines += [f"- excluded {row.rater_id}: {row.reasons}" for row in excluded.itertuples()]
    return "\n".join(lines)


def _tex(text: str) -> str:
    return text.replace("&", r"\&").replace("_", r"\_").replace("%", r"\%")


def latex(report: Table3Report) -> str:
    """Table 3 as a booktabs LaTeX table whose caption states the interval method and the test unit."""
    lines = [r"\begin{table}", r"\centering", r"\begin{tabular}{lrrc}", r"\toprule",
             r"System & Paper & Ours & 95\% CI \\", r"\midrule"]
    for row in report.mos.itertuples():
        paper = f"{row.paper_mos:.2f}" if row.paper_name else "--"
        lines.append(f"{_tex(row.paper_name or row.system)} & {paper} & {row.mos:.2f} & "
                     f"{_interval(row.ci_low, row.ci_high)} \\\\")
    caption = f"MOS (1--5) of harmony and coherence, ours beside FastSAG's Table 3. {INTERVAL_METHOD}. {TEST_UNIT}."
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def plot_png(report: Table3Report) -> bytes:
    """A PNG bar chart: our MOS with the crossed 95% CIs, the paper's values as markers."""
    plt = pyplot()
    mos = report.mos
    figure, axis = plt.subplots(figsize=(1.4 * len(mos) + 2, 3.6))
    x = np.arange(len(mos))
    errors = np.abs(np.stack([mos["mos"] - mos["ci_low"], mos["ci_high"] - mos["mos"]]))
    axis.bar(x, mos["mos"], yerr=np.nan_to_num(errors), capsize=4, color="#1f5fbf",
             label="ours (95% CI, crossed raters x clips)")
    axis.plot(x, mos["paper_mos"], "D", color="#d9480f", label="FastSAG paper")
    axis.set_xticks(x, mos["system"], rotation=20, ha="right")
    axis.set_ylim(1, 5)
    axis.set_ylabel("MOS (harmony, coherence)")
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return buffer.getvalue()


def write_screening(raters: pd.DataFrame, out: Path) -> None:
    """Write ``raters.csv`` (who was excluded and why) atomically."""
    atomic_write_text(out / "raters.csv", raters.to_csv(index=False))


def write_report(report: Table3Report, out: Path) -> None:
    """Write table3.{csv,md,tex,png}, pairwise.csv, raters.csv, ratings.csv and summary.json atomically."""
    atomic_write_text(out / "table3.csv", report.mos.to_csv(index=False))
    atomic_write_text(out / "table3.md", markdown(report) + "\n")
    atomic_write_text(out / "table3.tex", latex(report))
    atomic_write_bytes(out / "table3.png", plot_png(report))
    atomic_write_text(out / "pairwise.csv", report.pairwise.to_csv(index=False))
    write_screening(report.raters, out)
    atomic_write_text(out / "ratings.csv", report.ratings.to_csv(index=False))
    write_json(out / "summary.json", {"interval": INTERVAL_METHOD, "tests": TEST_UNIT,
                                      "mos": report.mos.to_dict(orient="records"),
                                      "excluded_raters": report.raters.loc[report.raters["excluded"], "rater_id"]
                                      .tolist()})
