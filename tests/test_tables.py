"""Tables ready for a paper: readable names with arrows, sensible decimals, the best competing value in bold, CIs in
the ``_ci`` LaTeX variant; and the plots drawn from them."""

from __future__ import annotations

import pandas as pd

from sag_bench.reporting.plots import plot_run
from sag_bench.reporting.tables import decimals, format_number, results_intervals, to_latex, to_markdown, write_table

METRICS = pd.DataFrame({"system": ["groundtruth", "randsong", "a", "b"], "embedder": ["vggish"] * 4,
                        "score": [3e-10, 732.2236, 718.334, 609.34], "ci_low": [6.2, 672.2, 692.0, 565.9],
                        "ci_high": [768.6, 841.6, 777.8, 682.2]})
COHERENCE = pd.DataFrame({"system": ["groundtruth", "randsong", "a", "b"], "measure": ["harmonic_fit"] * 4,
                          "mean": [0.40509, 0.2061, 0.2093, 0.2041], "sem": [0.0102, 0.019, 0.0045, 0.0036]})
TABLE = pd.DataFrame({"FAD_VGGish": [3e-10, 732.2236, 718.334, 609.34], "RTF": [6.8e-5, 7.6e-5, 0.138, 0.5],
                      "coh_harmonic_fit": [0.40509, 0.2061, 0.2093, 0.2041], "note": ["", "", "", "slow"]},
                     index=pd.Index(["groundtruth", "randsong", "a", "b"], name="system"))
REFERENCES = {"groundtruth", "randsong"}


def test_decimals_follow_the_magnitude():
    assert [decimals(values) for values in ([732.2, 0.0], [40.3, 36.1], [5.2], [0.194, 0.31], [0.32, 47.8, 0.33])] \
        == [1, 1, 2, 3, 3]
    assert format_number(3.2e-4, 3) == "3.2e-4" and format_number(3e-10, 1, zero_below=1e-3) == "0.0"
    assert format_number(3.2e-4, 3, latex=True) == "$3.2\\times 10^{-4}$"


def test_markdown_has_readable_names_arrows_and_the_best_competitor_in_bold():
    lines = to_markdown(TABLE, references=REFERENCES).splitlines()
    assert lines[0] == "| system | FAD VGGish ↓ | RTF ↓ | Harmonic fit ↑ | Note |"
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in lines[2:]}
    assert rows["groundtruth"][:3] == ["0.0", "6.8e-5", "0.405"]  # a reference never takes the bold
    assert rows["b"][:3] == ["**609.3**", "0.500", "0.204"] and rows["a"][:3] == ["718.3", "**0.138**", "**0.209**"]


def test_latex_escapes_and_shows_intervals_only_on_request(tmp_path):
    intervals = results_intervals(METRICS.assign(embedder="vggish"), COHERENCE)
    plain, with_ci = to_latex(TABLE, "x_y", references=REFERENCES), to_latex(TABLE, "x", intervals, REFERENCES)
    assert "FAD VGGish $\\downarrow$" in plain and "Harmonic fit $\\uparrow$" in plain and "x\\_y" in plain
    assert "\\textbf{609.3}" in plain and "scriptsize" not in plain
    assert "\\textbf{609.3} {\\scriptsize [565.9, 682.2]}" in with_ci
    assert "\\textbf{0.209} {\\scriptsize [0.200, 0.218]}" in with_ci  # mean +- 1.96 SE
    written = write_table(tmp_path, "t", TABLE, "cap", intervals, REFERENCES)
    assert {path.name for path in written.values()} == {"t.csv", "t.md", "t.tex", "t_ci.tex"}
    assert pd.read_csv(written["csv"], index_col="system").loc["randsong", "FAD_VGGish"] == 732.2236  # raw numbers


def test_plots_are_written_with_intervals_and_references(tmp_path):
    intervals = results_intervals(METRICS.assign(embedder="vggish"), COHERENCE)
    paths = plot_run(tmp_path, TABLE, intervals, REFERENCES)
    assert [path.name for path in paths] == ["fad_per_embedder.png", "coherence.png", "fad_vs_rtf.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 10_000 for path in paths)
