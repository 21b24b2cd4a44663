"""The one matplotlib set-up of sag-bench: a file-only backend, and figures saved atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sag_bench.store import atomic_write_bytes

RTF = "RTF end-to-end"  # the table column plotted against FAD (sag_bench.reporting.tables.RTF_COLUMNS)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path, dpi: int = 120) -> Path:
    """Write ``figure`` as PNG to ``path`` atomically and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


Intervals = dict[tuple[str, str], tuple[float, float]]


def _errors(table: Any, column: str, intervals: Intervals) -> Any:
    """Matplotlib's ``[[below...], [above...]]`` error lengths of a column from its intervals (0 where none); a
    bootstrap interval need not contain the estimate, so lengths are clipped at zero."""
    values = table[column].astype(float)
    below = [max(value - intervals[system, column][0], 0.0) if (system, column) in intervals else 0.0
             for system, value in values.items()]
    above = [max(intervals[system, column][1] - value, 0.0) if (system, column) in intervals else 0.0
             for system, value in values.items()]
    return [below, above]


def _titled(title: str, intervals: Intervals, *notes: str) -> str:
    """A figure title with its notes in parentheses (the error bars' meaning first)."""
    shown = [*(["bars: 95% CI"] if intervals else []), *filter(None, notes)]
    return title + (f"  ({'; '.join(shown)})" if shown else "")


def _axis_label(column: str) -> str:
    from sag_bench.reporting.tables import better, display_name

    direction = better(column)
    return display_name(column) + (f" ({'↓' if direction == 'lower' else '↑'} {direction} is better)"
                                   if direction else "")


def bar_panels(path: Path, table: Any, columns: list[str], title: str, intervals: Intervals,
               references: set[str] = frozenset()) -> Path:
    """One horizontal bar panel per column (each on its own scale), systems top-down in table order, 95% intervals
    as error bars, reference rows (ground truth, RandSong) in grey."""
    rows = len(table)
    figure, axes = pyplot().subplots(1, len(columns), figsize=(3.4 * len(columns) + 1.8, 0.32 * rows + 1.6),
                                     squeeze=False, sharey=True, layout="constrained")
    labels = [str(system) for system in table.index]
    colours = ["tab:gray" if system in references else "tab:blue" for system in table.index]
    for axis, column in zip(axes[0], columns):
        axis.barh(labels, table[column].astype(float).fillna(0.0), xerr=_errors(table, column, intervals),
                  color=colours, ecolor="black", capsize=2, error_kw={"linewidth": 0.8})
        axis.set_xlabel(_axis_label(column), fontsize=8)
        axis.tick_params(labelsize=8)
        axis.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()  # the y axis is shared: invert it once
    figure.suptitle(_titled(title, intervals, "grey: references" if references else ""), fontsize=10)
    return save_figure(figure, path)


def quality_vs_speed(path: Path, table: Any, columns: list[str], intervals: Intervals, references: set[str]) -> Path:
    """FAD against RTF (log) per embedder, one marker per system named in a legend below (no labels to overlap);
    reference rows (ground truth, RandSong: no model, RTF near zero) as dashed horizontal lines, off the RTF axis."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    plt = pyplot()
    figure, axes = plt.subplots(1, len(columns), figsize=(3.8 * len(columns) + 0.6, 3.9), squeeze=False,
                                layout="constrained")
    colours = plt.get_cmap("tab10" if len(table) <= 10 else "tab20")
    markers = "osD^vP*Xhp<>"
    handles: dict[str, Any] = {}
    for axis, column in zip(axes[0], columns):
        errors, timed = _errors(table, column, intervals), 0
        for i, (system, row) in enumerate(table.iterrows()):
            value, style = row[column], {"color": colours(i % colours.N)}
            if pd_isna(value):
                continue
            if system in references:
                handles[f"{system} (reference)"] = axis.axhline(value, linestyle="--", linewidth=1, **style)
            elif not pd_isna(row.get(RTF)) and row[RTF] > 0:
                timed += 1
                handles[str(system)] = axis.errorbar(row[RTF], value, yerr=[[errors[0][i]], [errors[1][i]]],
                                                     marker=markers[i % len(markers)], capsize=2, linestyle="none",
                                                     **style)
        if not timed:
            axis.text(0.5, 0.5, "no timed generative system", transform=axis.transAxes, ha="center", color="grey")
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # labelled ticks even within one decade
        axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("RTF end-to-end (log; ↓ lower is faster)", fontsize=8)
        axis.set_ylabel(_axis_label(column), fontsize=8)
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
    figure.legend(list(handles.values()), list(handles), loc="outside lower center", fontsize=8,
                  ncol=min(4, max(1, len(handles))), frameon=False)
    figure.suptitle(_titled("Quality vs speed", intervals), fontsize=10)
    return save_figure(figure, path)


def pd_isna(value: Any) -> bool:
    """Whether a table cell is missing (None or NaN)."""
    return value is None or value != value


def plot_run(folder: Path, table: Any, intervals: Intervals | None = None,
             references: set[str] = frozenset()) -> list[Path]:
    """``fad_per_embedder.png``, ``fad_vs_rtf.png`` and ``coherence.png`` (when measured) in ``folder``."""
    intervals = intervals or {}
    fad_columns = [c for c in table.columns if c.startswith("FAD_")]
    coherence_columns = [c for c in table.columns if c.startswith("coh_")]
    written = []
    if fad_columns:
        written.append(bar_panels(folder / "fad_per_embedder.png", table, fad_columns, "FAD per embedder", intervals,
                                  set(references)))
    if coherence_columns:
        written.append(bar_panels(folder / "coherence.png", table, coherence_columns,
                                  "Coherence with the vocals (what FAD cannot see)", intervals, set(references)))
    if fad_columns and RTF in table and table[RTF].notna().any():
        written.append(quality_vs_speed(folder / "fad_vs_rtf.png", table, fad_columns, intervals, set(references)))
    return written
