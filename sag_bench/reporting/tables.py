"""Tables 1-2: a run's results -> DataFrames -> CSV / Markdown / LaTeX / PNG, with the FastSAG paper's numbers
(``sag_bench/systems/paper.toml``) in a separate block."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sag_bench.config import package_toml
from sag_bench.reporting.plots import pyplot, save_figure
from sag_bench.runs import RunStore
from sag_bench.store import atomic_write_text

if TYPE_CHECKING:
    from sag_bench.runner.spec import Spec

PAPER_FILE = "paper.toml"  # beside the systems' catalog: sag_bench/systems/paper.toml
REFERENCE_VALIDATION = Path(__file__).resolve().parents[2] / "results" / "reference" / "validation"
FLOOR_NOTE = ("groundtruth FAD: split-half floor, FAD between disjoint halves of the reference mixes (mean of 20 "
              "seeded splits; CI: their central 95 % range); other CIs: paired bootstrap over clips")


def _paper() -> dict[str, Any]:
    return package_toml("sag_bench.systems", PAPER_FILE)


def paper_table(table: str) -> pd.DataFrame:
    """The paper's numbers for ``table`` (``table1``, ``table2``, ...) as a DataFrame indexed by paper row name."""
    tables = {name: value for name, value in _paper().items() if name != "columns"}
    if table not in tables:
        raise ValueError(f"no paper numbers for {table!r} ({', '.join(tables)})")
    return pd.DataFrame.from_dict(tables[table]["rows"], orient="index", columns=tables[table]["columns"])


def paper_row(system: str) -> str | None:
    """The paper's row name of a registered system (its registry entry's ``paper_row``), or None."""
    from sag_bench import registry

    return registry.entry("systems", system).paper_row


def column_name(embedder: str) -> str:
    """Table column of an embedder: the paper's name for fadtk embedders, ``FAD_<name>`` otherwise."""
    return _paper()["columns"].get(embedder, f"FAD_{embedder}")


def measure_column(measure: str) -> str:
    """Table column of a validated measure: ``fad/<e>`` -> the FAD column, ``apa/<e>`` -> ``APA_<e>``, a coherence
    measure -> ``coh_<name>``."""
    kind, _, embedder = measure.partition("/")
    return {"fad": column_name(embedder), "apa": f"APA_{embedder}"}.get(kind, f"coh_{measure}") if embedder \
        else f"coh_{measure}"


def validation_source(spec: "Spec") -> Path:
    """The validation table gating a run's columns: the spec's ``[evaluation] validation``, else the committed
    reference for its dataset folder and split (``results/reference/validation/<data dir name>-<split>.csv``)."""
    if spec.evaluation.validation:
        return Path(spec.evaluation.validation)
    return REFERENCE_VALIDATION / f"{Path(spec.data.dir).name}-{spec.data.split}.csv"


def gate_columns(table: pd.DataFrame, spec: "Spec") -> tuple[pd.DataFrame, list[str]]:
    """Apply metric validation to our table: coherence and APA columns whose measure failed validation on the
    run's dataset and split are left out, FAD columns that failed are kept (the papers' measure) and marked with
    ``*``; returns the table and the caption notes."""
    from sag_bench.evaluation.validation import validated_measures

    source = validation_source(spec)
    if not source.is_file():
        measured = [c for c in table.columns if c.startswith(("coh_", "APA_"))]
        return table, [f"coherence/APA not validated on this dataset ({source} missing)"] if measured else []
    validation = pd.read_csv(source)
    failed = [m for m in dict.fromkeys(validation["measure"]) if m not in validated_measures(validation)]
    columns = {measure_column(m): m for m in failed}
    dropped = [c for c in table.columns if c in columns and not c.startswith("FAD")]
    marked = {c: f"{c}*" for c in table.columns if c in columns and c not in dropped}
    notes = [f"left out, failed metric validation ({source.name}): {', '.join(columns[c] for c in dropped)}"] \
        if dropped else []
    notes += [f"* failed metric validation ({source.name}): some perturbation not ranked below ground truth"] \
        if marked else []
    return table.drop(columns=dropped).rename(columns=marked), notes


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
            table.loc[row["system"], measure_column(row["measure"])] = row["mean"]
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
    figure, axes = pyplot().subplots(1, len(columns), figsize=(3.6 * len(columns), 0.35 * len(table) + 1.4),
                                squeeze=False, sharey=True)
    labels = [str(system) for system in table.index]
    for axis, column in zip(axes[0], columns):
        axis.barh(labels, table[column].astype(float), color="tab:blue")
        axis.set_title(column, fontsize=9)
        axis.set_xlabel(xlabel, fontsize=8)
    axes[0][0].invert_yaxis()  # the y axis is shared: invert it once, systems top-down in table order
    figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, folder / name)


def plot_run(store: RunStore, table: pd.DataFrame) -> list[Path]:
    """``fad_per_embedder.png``, ``fad_vs_rtf.png`` and ``coherence.png`` (when measured) in the run's plots."""
    folder = store.plots_dir
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
        figure, axes = pyplot().subplots(1, len(fad_columns), figsize=(4 * len(fad_columns), 3.6), squeeze=False)
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
        written.append(save_figure(figure, folder / "fad_vs_rtf.png"))
    return written


def render_run(store: RunStore, spec: "Spec", metrics: pd.DataFrame, timings: pd.DataFrame, coherence: pd.DataFrame,
               status: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Write our table, the paper's block beside it, and the plots of one run."""
    folder = store.tables_dir
    ours, notes = gate_columns(results_table([s.key for s in spec.systems], metrics, timings, coherence, status), spec)
    if "kind" in metrics and (metrics["kind"] == "floor").any():
        notes.append(FLOOR_NOTE)
    caption = f"sag-bench {spec.name} ({spec.data.name}, {spec.data.split} split)" + \
        "".join(f". {note}" for note in notes)
    written = {f"ours.{k}": v for k, v in write_table(folder, spec.table, ours, caption).items()}
    if spec.table in ("table1", "table2"):
        paper = paper_table(spec.table)
        rows = [paper_row(system.name) for system in spec.systems]
        wanted = [row for row in rows if row in paper.index]
        paper = paper.loc[wanted] if wanted else paper
        paper.index.name = "paper row"
        written.update({f"paper.{k}": v for k, v in write_table(
            folder, f"{spec.table}_paper", paper, f"FastSAG paper {spec.table} (their setup, not ours)").items()})
        combined = store.table(spec.table).read_text() + "\n" + store.table(f"{spec.table}_paper").read_text()
        atomic_write_text(folder / f"{spec.table}_with_paper.md", combined)
        written["combined.md"] = folder / f"{spec.table}_with_paper.md"
    for index, path in enumerate(plot_run(store, ours)):
        written[f"plot{index}"] = path
    return written
