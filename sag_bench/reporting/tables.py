"""Tables 1-2: a run's results -> DataFrames -> CSV / Markdown / LaTeX / PNG, with the FastSAG paper's numbers
(``sag_bench/systems/paper.toml``) in a separate block."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sag_bench.config import package_toml
from sag_bench.runs import RunStore
from sag_bench.store import atomic_write_text

if TYPE_CHECKING:
    from sag_bench.runner.spec import Spec

PAPER_FILE = "paper.toml"  # beside the systems' catalog: sag_bench/systems/paper.toml
END_TO_END, MODEL_ONLY = "end-to-end", "model-only"  # the RTF scopes of sag_bench.evaluation.rtf
RTF_COLUMNS = {END_TO_END: "RTF end-to-end", MODEL_ONLY: "RTF model-only"}
PAPER_RTF_COLUMN = "paper RTF (end-to-end, A100)"  # the paper's numbers: shown beside ours, never ranked
COUNT_COLUMNS = ("network calls",)  # whole numbers
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


def reference_rows(spec: "Spec") -> set[str]:
    """The spec's reference rows (ground truth, RandSong, perturbations: built-in systems that are not trained
    models); they anchor a table but do not compete for the best value and sit apart from the RTF axis."""
    from sag_bench import registry

    entries = {system.key: registry.entry("systems", system.name) for system in spec.systems}
    return {key for key, entry in entries.items() if entry.trainer is None and entry.target.startswith("sag_bench.")}


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
    """Our table: one row per system (spec order); FAD per embedder, RTF end-to-end and model-only, network calls
    per clip (systems that report them), coherence means, and a note column."""
    table = pd.DataFrame(index=pd.Index(systems, name="system"))
    for row in metrics.to_dict("records"):
        table.loc[row["system"], column_name(row["embedder"])] = row["score"]
    if not timings.empty:
        for row in timings.to_dict("records"):
            table.loc[row["system"], RTF_COLUMNS[row.get("scope", MODEL_ONLY)]] = row["rtf_mean"]
            if pd.notna(row.get("network_calls")):
                table.loc[row["system"], "network calls"] = row["network_calls"]
    if not coherence.empty:
        for row in coherence.to_dict("records"):
            table.loc[row["system"], measure_column(row["measure"])] = row["mean"]
    if "network calls" in table:
        table["network calls"] = table["network calls"].astype("Int64")
    notes = {key: _note(key, metrics, status.get(key, {})) for key in systems}
    table["note"] = pd.Series(notes)
    return table


def with_paper_rtf(table: pd.DataFrame, spec: "Spec") -> pd.DataFrame:
    """The paper's RTF (end-to-end, as the paper times it) beside our end-to-end RTF only, for systems with a paper
    row in a paper table that has an RTF column."""
    if RTF_COLUMNS[END_TO_END] not in table or spec.table not in ("table1", "table2"):
        return table
    paper = paper_table(spec.table)
    if "RTF" not in paper:
        return table
    values = {s.key: paper.loc[row, "RTF"] for s in spec.systems if (row := paper_row(s.name)) in paper.index}
    table.insert(table.columns.get_loc(RTF_COLUMNS[END_TO_END]) + 1, PAPER_RTF_COLUMN, pd.Series(values, dtype=float))
    return table


def _note(key: str, metrics: pd.DataFrame, state: dict[str, Any]) -> str:
    if state.get("state") == "failed":
        return f"FAILED: {state.get('error', 'unknown error')}"
    warnings = sorted({w for w in metrics.loc[metrics["system"] == key, "warning"] if isinstance(w, str) and w}) \
        if "warning" in metrics else []
    notes = [*warnings, *([f"RTF failed: {state['rtf_error']}"] if state.get("rtf_error") else [])]
    return "; ".join(notes)


Interval = tuple[float, float]
Z95 = 1.959964  # normal quantile of a two-sided 95% interval (coherence means: mean +- Z95 x standard error)
ARROWS = {"lower": ("↓", "$\\downarrow$"), "higher": ("↑", "$\\uparrow$")}


def better(column: str) -> str | None:
    """``"lower"`` or ``"higher"``: which way a column improves; None for columns that are not scores."""
    if column.startswith("FAD_") or column in (*RTF_COLUMNS.values(), "RTF"):
        return "lower"
    if column.startswith(("coh_", "APA_")):
        return "higher"
    return None


def display_name(column: str) -> str:
    """A column's name for readers: ``FAD_MERT4`` -> ``FAD MERT4``, ``coh_harmonic_fit`` -> ``Harmonic fit``."""
    if column.startswith(("FAD_", "APA_")):
        return column.replace("_", " ", 1)
    if column.startswith("coh_"):
        return column.removeprefix("coh_").replace("_", " ").capitalize()
    return column.capitalize() if column == "note" else column


def results_intervals(metrics: pd.DataFrame, coherence: pd.DataFrame) -> dict[tuple[str, str], Interval]:
    """95% intervals of the table's cells, keyed by (system, column): FAD bootstrap CIs, coherence mean +- 1.96 SE."""
    intervals: dict[tuple[str, str], Interval] = {}
    for row in metrics.to_dict("records"):
        if pd.notna(row.get("ci_low")) and pd.notna(row.get("ci_high")):
            intervals[row["system"], column_name(row["embedder"])] = (row["ci_low"], row["ci_high"])
    for row in coherence.to_dict("records"):
        if pd.notna(row.get("sem")):
            half = Z95 * row["sem"]
            intervals[row["system"], f"coh_{row['measure']}"] = (row["mean"] - half, row["mean"] + half)
    return intervals


def decimals(values: Any) -> int:
    """Decimals for a column: three significant digits at its median magnitude (more for larger values), at least
    one (FADs of ~700 -> 1, ~40 -> 1, ~1 -> 2, ~0.2 -> 3, ~0.07 -> 4); the median keeps one slow row (an RTF of
    47.8) from coarsening the others."""
    finite = sorted(abs(float(v)) for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v != 0)
    return max(1, 2 - math.floor(math.log10(finite[len(finite) // 2]))) if finite else 1


def format_number(value: Any, digits: int, latex: bool = False, zero_below: float = 0.0) -> str:
    """``value`` with ``digits`` decimals; a value that would show fewer than two significant digits gets two in
    scientific notation (an RTF of 3.2e-04 beside ones of 0.5) unless it is below ``zero_below`` (rounding noise, such as the
    ground truth's FAD of 1e-10 beside FADs of 700)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "" if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) \
            else str(value)
    if math.isnan(value):
        return ""
    text = f"{value:.{digits}f}"
    if abs(value) >= zero_below and 0 < abs(value) < 10.0 ** (1 - digits):  # fewer than 2 digits would show
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"${mantissa}\\times 10^{{{int(exponent)}}}$" if latex else f"{mantissa}e{int(exponent)}"
    return text


def _escape(text: Any) -> str:
    return str(text).replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def _cells(frame: pd.DataFrame, latex: bool, intervals: dict[tuple[str, str], Interval] | None,
           references: set[str]) -> tuple[list[str], list[list[str]]]:
    """Header and body of a formatted table: readable names with arrows, per-column decimals, the best value of each
    score column in bold (reference rows such as the ground truth do not compete), intervals when given."""
    arrow = 1 if latex else 0
    header = [_escape(frame.index.name or "") if latex else frame.index.name or ""]
    body = [[_escape(index) if latex else str(index)] for index in frame.index]
    for column in frame.columns:
        values = frame[column]
        numeric = None if column == "note" else pd.to_numeric(values, errors="coerce")
        name = display_name(column)
        header.append((_escape(name) if latex else name) + (f" {ARROWS[better(column)][arrow]}" if better(column) else ""))
        digits = 0 if column in COUNT_COLUMNS else decimals(numeric) if numeric is not None else 1
        noise = 1e-6 * float(numeric.abs().max()) if numeric is not None and numeric.notna().any() else 0.0
        best = None
        if better(column) and numeric is not None:
            competing = numeric[[index not in references for index in frame.index]].dropna()
            if len(competing) > 1:
                best = format_number(competing.min() if better(column) == "lower" else competing.max(), digits,
                                     zero_below=noise)
        for row, (index, value) in zip(body, values.items()):
            if numeric is None or pd.isna(numeric[index]):
                row.append(_escape(format_number(value, digits)) if latex else format_number(value, digits))
                continue
            text = format_number(float(numeric[index]), digits, latex, noise)
            if best is not None and format_number(float(numeric[index]), digits, zero_below=noise) == best:
                text = f"\\textbf{{{text}}}" if latex else f"**{text}**"
            if intervals and (index, column) in intervals:
                low, high = (format_number(bound, digits, latex, noise) for bound in intervals[index, column])
                text += f" {{\\scriptsize [{low}, {high}]}}" if latex else f" [{low}, {high}]"
            row.append(text)
    return header, body


def to_markdown(frame: pd.DataFrame, intervals: dict[tuple[str, str], Interval] | None = None,
                references: set[str] = frozenset()) -> str:
    """A GitHub Markdown table (index as first column), formatted as :func:`to_latex`."""
    header, body = _cells(frame, False, intervals, set(references))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def to_latex(frame: pd.DataFrame, caption: str, intervals: dict[tuple[str, str], Interval] | None = None,
             references: set[str] = frozenset()) -> str:
    """A booktabs LaTeX table ready for a paper: readable column names with arrows (lower / higher is better), the
    best competing value of each score column in bold, sensible decimals, 95% intervals under ``intervals``."""
    header, body = _cells(frame, True, intervals, set(references))
    note = "; ``[a, b]'': 95\\% confidence interval" if intervals else ""
    lines = ["\\begin{table}[t]", "\\centering",
             f"\\caption{{{_escape(caption)} ($\\downarrow$ lower is better, $\\uparrow$ higher is better; best in bold{note})}}",
             "\\begin{tabular}{l" + "r" * len(frame.columns) + "}", "\\toprule", " & ".join(header) + " \\\\",
             "\\midrule"]
    lines += [" & ".join(row) + " \\\\" for row in body]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines)


def write_table(folder: Path, name: str, frame: pd.DataFrame, caption: str,
                intervals: dict[tuple[str, str], Interval] | None = None,
                references: set[str] = frozenset()) -> dict[str, Path]:
    """``name.csv`` (raw numbers), ``name.md`` and ``name.tex``; with ``intervals``, also ``name_ci.tex`` (the LaTeX
    table with 95% intervals under each value, for papers that report them)."""
    paths = {"csv": folder / f"{name}.csv", "md": folder / f"{name}.md", "tex": folder / f"{name}.tex"}
    atomic_write_text(paths["csv"], frame.to_csv())
    atomic_write_text(paths["md"], f"**{caption}**\n\n{to_markdown(frame, references=references)}\n")
    atomic_write_text(paths["tex"], to_latex(frame, caption, references=references) + "\n")
    if intervals:
        paths["tex_ci"] = folder / f"{name}_ci.tex"
        atomic_write_text(paths["tex_ci"], to_latex(frame, caption, intervals, references) + "\n")
    return paths


def render_run(store: RunStore, spec: "Spec", metrics: pd.DataFrame, timings: pd.DataFrame, coherence: pd.DataFrame,
               status: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Write our table, the paper's block beside it, and the plots of one run."""
    from sag_bench.reporting.plots import plot_run

    folder = store.tables_dir
    ours, notes = gate_columns(with_paper_rtf(results_table([s.key for s in spec.systems], metrics, timings,
                                                            coherence, status), spec), spec)
    if "kind" in metrics and (metrics["kind"] == "floor").any():
        notes.append(FLOOR_NOTE)
    caption = f"sag-bench {spec.name} ({spec.data.name}, {spec.data.split} split; RTF: the systems timed in turn " \
        "on one worker)" + "".join(f". {note}" for note in notes)
    intervals, references = results_intervals(metrics, coherence), reference_rows(spec)
    intervals |= {(system, f"{column}*"): bounds for (system, column), bounds in intervals.items()}  # marked columns
    written = {f"ours.{k}": v for k, v in write_table(folder, spec.table, ours, caption, intervals,
                                                        references).items()}
    if spec.table in ("table1", "table2"):
        paper = paper_table(spec.table)
        rows = [paper_row(system.name) for system in spec.systems]
        wanted = [row for row in rows if row in paper.index]
        paper = (paper.loc[wanted] if wanted else paper).rename(columns={"RTF": PAPER_RTF_COLUMN})
        paper.index.name = "paper row"
        written.update({f"paper.{k}": v for k, v in write_table(
            folder, f"{spec.table}_paper", paper, f"FastSAG paper {spec.table} (their setup, not ours)").items()})
        combined = store.table(spec.table).read_text() + "\n" + store.table(f"{spec.table}_paper").read_text()
        atomic_write_text(folder / f"{spec.table}_with_paper.md", combined)
        written["combined.md"] = folder / f"{spec.table}_with_paper.md"
    for index, path in enumerate(plot_run(store.plots_dir, ours, intervals, references)):
        written[f"plot{index}"] = path
    return written
