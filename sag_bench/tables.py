"""Results -> DataFrames -> CSV / Markdown / LaTeX / PNG, with the FastSAG paper's numbers in a separate block."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sag_bench.store import atomic_write_text

if TYPE_CHECKING:
    from sag_bench.runner.spec import Spec

# Column names of the paper for fadtk's embedders (FastSAG Tables 1 and 2).
EMBEDDER_COLUMNS = {"vggish": "FAD_VGGish", "MERT-v1-95M": "FAD_MERT", "MERT-v1-95M-4": "FAD_MERT4",
                    "MERT-v1-95M-7": "FAD_MERT7", "MERT-v1-95M-11": "FAD_MERT11",
                    "clap-laion-music": "FAD_CLAP-MUSIC"}
PAPER_FAD_COLUMNS = list(EMBEDDER_COLUMNS.values())

# Paper row names of our systems.
PAPER_ROWS = {"singsong-sc": "SingSong s+c", "singsong-scf": "SingSong s+c+f", "fastsag-no-norm": "FastSAG (w/o norm)",
              "fastsag-semantic-mel": "FastSAG (semant+mel)", "fastsag-mel": "FastSAG (mel)",
              "fastsag-interpolate": "FastSAG (interpolate)", "fastsag": "FastSAG", "randsong": "RandSong",
              "groundtruth": "Human-composed"}

# FastSAG paper, Table 1 (zero-shot MUSDB18): six FAD columns + RTF.
PAPER_TABLE1 = {
    "SingSong s+c": [0.8632, 3.1589, 1.7528, 1.5793, 1.6917, 0.0878, 10.4936],
    "SingSong s+c+f": [1.5578, 3.7985, 2.3694, 2.0688, 2.1319, 0.1363, 47.7660],
    "FastSAG (w/o norm)": [3.6784, 1.7695, 1.7142, 1.5849, 1.2951, 0.1115, 0.3239],
    "FastSAG (semant+mel)": [1.5947, 1.9795, 1.5769, 1.8818, 1.5152, 0.1054, 0.3240],
    "FastSAG (mel)": [1.4424, 2.0861, 1.6532, 1.8578, 1.5370, 0.1151, 0.3214],
    "FastSAG (interpolate)": [0.7595, 1.5059, 1.0806, 1.3566, 1.0629, 0.0648, 0.3231],
    "FastSAG": [0.8917, 1.3043, 0.9675, 1.1364, 0.8227, 0.0701, 0.3247],
}
# FastSAG paper, Table 2 (in-domain): six FAD columns.
PAPER_TABLE2 = {
    "SingSong s+c": [0.5093, 1.2798, 0.7691, 0.8144, 0.7832, 0.0406],
    "FastSAG (interpolate)": [1.3266, 0.6450, 0.5101, 0.6267, 0.4676, 0.0361],
    "FastSAG": [1.2180, 0.6639, 0.4295, 0.4966, 0.4164, 0.0330],
}


def paper_table(table: str) -> pd.DataFrame:
    """The paper's numbers for ``table1`` or ``table2`` as a DataFrame indexed by paper row name."""
    if table == "table1":
        return pd.DataFrame.from_dict(PAPER_TABLE1, orient="index", columns=[*PAPER_FAD_COLUMNS, "RTF"])
    if table == "table2":
        return pd.DataFrame.from_dict(PAPER_TABLE2, orient="index", columns=PAPER_FAD_COLUMNS)
    raise ValueError(f"no paper numbers for {table!r} (table1, table2)")


def column_name(embedder: str) -> str:
    """Table column of an embedder: the paper's name for fadtk embedders, ``FAD_<name>`` otherwise."""
    return EMBEDDER_COLUMNS.get(embedder, f"FAD_{embedder}")


def results_table(systems: list[str], metrics: pd.DataFrame, timings: pd.DataFrame, coherence: pd.DataFrame,
                  status: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Our table: one row per system (spec order); FAD per embedder, RTF, coherence means, and a note column."""
    table = pd.DataFrame(index=pd.Index(systems, name="system"))
    for row in metrics.to_dict("records"):
        table.loc[row["system"], column_name(row["embedder"])] = row["score"]
    if not timings.empty:
        for row in timings.to_dict("records"):
            table.loc[row["system"], "RTF"] = row["rtf_mean"]
    if not coherence.empty:
        for row in coherence.to_dict("records"):
            table.loc[row["system"], f"coh_{row['measure']}"] = row["mean"]
    notes = {key: _note(key, metrics, status.get(key, {})) for key in systems}
    table["note"] = pd.Series(notes)
    return table


def _note(key: str, metrics: pd.DataFrame, state: dict[str, Any]) -> str:
    if state.get("state") == "failed":
        return f"FAILED: {state.get('error', 'unknown error')}"
    warnings = sorted({w for w in metrics.loc[metrics["system"] == key, "warning"] if isinstance(w, str) and w}) \
        if "warning" in metrics else []
    notes = [*warnings, *([f"RTF failed: {state['rtf_error']}"] if state.get("rtf_error") else [])]
    return "; ".join(notes)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return "" if value is None else str(value)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (index as first column)."""
    header = [frame.index.name or "", *frame.columns]
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([str(index), *map(_fmt, row)]) + " |" for index, row in frame.iterrows()]
    return "\n".join(lines)


def to_latex(frame: pd.DataFrame, caption: str) -> str:
    """A booktabs LaTeX table (no jinja2 styling dependency)."""
    def escape(text: Any) -> str:
        return str(text).replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")

    columns = [frame.index.name or "", *frame.columns]
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{escape(caption)}}}",
             "\\begin{tabular}{l" + "r" * len(frame.columns) + "}", "\\toprule",
             " & ".join(map(escape, columns)) + " \\\\", "\\midrule"]
    lines += [" & ".join([escape(index), *(escape(_fmt(v)) for v in row)]) + " \\\\" for index, row in frame.iterrows()]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines)


def write_table(folder: Path, name: str, frame: pd.DataFrame, caption: str) -> dict[str, Path]:
    """``name.csv``, ``name.md`` and ``name.tex`` in ``folder``."""
    paths = {"csv": folder / f"{name}.csv", "md": folder / f"{name}.md", "tex": folder / f"{name}.tex"}
    atomic_write_text(paths["csv"], frame.to_csv())
    atomic_write_text(paths["md"], f"**{caption}**\n\n{to_markdown(frame)}\n")
    atomic_write_text(paths["tex"], to_latex(frame, caption) + "\n")
    return paths


def _panels(folder: Path, name: str, table: pd.DataFrame, columns: list[str], title: str, xlabel: str) -> Path:
    """One horizontal bar panel per column (each on its own scale), systems in table order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(columns), figsize=(3.6 * len(columns), 0.35 * len(table) + 1.4),
                                squeeze=False, sharey=True)
    labels = [str(system) for system in table.index]
    for axis, column in zip(axes[0], columns):
        axis.barh(labels, table[column].astype(float), color="tab:blue")
        axis.set_title(column, fontsize=9)
        axis.set_xlabel(xlabel, fontsize=8)
    axes[0][0].invert_yaxis()  # the y axis is shared: invert it once, systems top-down in table order
    figure.suptitle(title)
    figure.tight_layout()
    path = folder / name
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_run(root: Path, table: pd.DataFrame) -> list[Path]:
    """``plots/fad_per_embedder.png``, ``plots/fad_vs_rtf.png`` and ``plots/coherence.png`` (when measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = root / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    fad_columns = [c for c in table.columns if c.startswith("FAD_")]
    coherence_columns = [c for c in table.columns if c.startswith("coh_")]
    written = []
    if fad_columns:
        written.append(_panels(folder, "fad_per_embedder.png", table, fad_columns, "FAD per embedder per system",
                               "FAD (lower is better)"))
    if coherence_columns:
        written.append(_panels(folder, "coherence.png", table, coherence_columns,
                               "Coherence with the vocals (what FAD cannot see)", "higher is more coherent"))
    if fad_columns and "RTF" in table and table["RTF"].notna().any():
        figure, axes = plt.subplots(1, len(fad_columns), figsize=(4 * len(fad_columns), 3.6), squeeze=False)
        for axis, column in zip(axes[0], fad_columns):
            for system, row in table.iterrows():
                if pd.notna(row.get("RTF")) and pd.notna(row[column]) and row["RTF"] > 0:
                    axis.scatter(row["RTF"], row[column])
                    axis.annotate(str(system), (row["RTF"], row[column]), fontsize=7)
            axis.set_xscale("log")
            axis.set_xlabel("RTF (log, lower is faster)")
            axis.set_ylabel(column)
        figure.suptitle("Quality vs speed")
        figure.tight_layout()
        written.append(folder / "fad_vs_rtf.png")
        figure.savefig(written[-1], dpi=120)
        plt.close(figure)
    return written


def render_run(root: Path, spec: "Spec", metrics: pd.DataFrame, timings: pd.DataFrame, coherence: pd.DataFrame,
               status: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Write our table, the paper's block beside it, and the plots of one run."""
    folder = root / "tables"
    ours = results_table([s.key for s in spec.systems], metrics, timings, coherence, status)
    written = {f"ours.{k}": v for k, v in write_table(folder, spec.table, ours,
                                                        f"sag-bench {spec.name} ({spec.data.name}, "
                                                        f"{spec.data.split} split)").items()}
    if spec.table in ("table1", "table2"):
        paper = paper_table(spec.table)
        wanted = [PAPER_ROWS.get(s.name) for s in spec.systems if PAPER_ROWS.get(s.name) in paper.index]
        paper = paper.loc[wanted] if wanted else paper
        paper.index.name = "paper row"
        written.update({f"paper.{k}": v for k, v in write_table(
            folder, f"{spec.table}_paper", paper, f"FastSAG paper {spec.table} (their setup, not ours)").items()})
        combined = (root / "tables" / f"{spec.table}.md").read_text() + "\n" + \
            (root / "tables" / f"{spec.table}_paper.md").read_text()
        atomic_write_text(folder / f"{spec.table}_with_paper.md", combined)
        written["combined.md"] = folder / f"{spec.table}_with_paper.md"
    for index, path in enumerate(plot_run(root, ours)):
        written[f"plot{index}"] = path
    return written
