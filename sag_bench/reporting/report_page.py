"""The run report page ``<run>/report.html``: tables with CIs, the plots, and per clip every system side by side.

Self-contained and offline: no script or style from the network, plots and spectrograms embedded as PNG, audio
referenced by paths relative to the page (the run's own files; the input vocals are copied next to the page).

All reading of the run folder goes through :class:`RunFiles` at the top of this module, so a change of the run
layout changes only that class.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sag_bench.runs import REFERENCE, RunStore

REPORT_NAME = "report.html"
VOCALS_DIR = "report_files/vocals"
Z95 = 1.96
SPECTROGRAM_RANGE = 8.0  # natural-log units shown below the loudest bin (about 70 dB)


# ---- run folder layer: what the page reads of a run, through its RunStore ----------------------------------------
@dataclass(frozen=True)
class RunFiles:
    """Tables, audio and plots of one run folder, read through :class:`sag_bench.runs.RunStore`."""

    root: Path

    @property
    def store(self) -> RunStore:
        return RunStore(self.root)

    def manifest(self) -> dict:
        """The run's manifest (clips, data_dir, spec, systems)."""
        manifest = self.store.read_manifest()
        if manifest is None:
            raise FileNotFoundError(f"{self.root}: no run manifest, not a run folder")
        return manifest.to_dict()

    def table(self, name: str) -> pd.DataFrame:
        """``metrics`` | ``timings`` | ``coherence`` as a frame (empty when the run did not write it)."""
        path = self.store.csv_path(name)
        return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()

    def status(self, system: str) -> dict:
        """The status record of ``system`` ({} when absent)."""
        return self.store.status(system)

    def systems(self) -> list[str]:
        """System keys in spec order."""
        spec = self.manifest().get("spec", {})
        return [s.get("label") or s["name"] for s in spec.get("systems", [])]

    def accompaniment(self, system: str, clip: str) -> Path:
        """The generated accompaniment of ``clip`` by ``system``."""
        return self.store.generated(system, clip)

    def mix(self, system: str, clip: str) -> Path:
        """The mix (vocals + gain x accompaniment) of ``clip``; ``system`` may be ``reference``."""
        return self.store.mix(system, clip)

    def vocals(self) -> dict[str, Path]:
        """The input vocals of every clip of the run's dataset, by clip id."""
        from sag_bench.datasets.manifest import ClipDataset

        return {r.id: r.vocals for r in ClipDataset(Path(self.manifest()["data_dir"])).records()}

    def plots(self) -> list[Path]:
        """The run's plots (PNG)."""
        return self.store.plots()


# ---- page ---------------------------------------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;font-variant-numeric:tabular-nums}
th:first-child,td:first-child{text-align:left}
.clip{overflow-x:auto;margin-bottom:1.5em}
.clip td,.clip th{text-align:center;vertical-align:top}
audio{width:220px;display:block;margin:.15em auto}
img.spec{width:220px;height:60px;display:block;margin:auto}
img.plot{width:560px;max-width:100%;margin:.5em;vertical-align:top}
.label{font-size:.8em;color:#666}
"""


def _png(image: np.ndarray) -> str:
    """A data URI of a small spectrogram image (rows = frequency, low at the bottom)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    plt.imsave(buffer, image, cmap="magma", origin="lower", format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def spectrogram(path: Path, width: int = 220) -> str:
    """A small log-mel spectrogram of an audio file as a PNG data URI."""
    import torch

    from sag_bench.audio import load_audio, mel_spectrogram

    mel = mel_spectrogram(torch.from_numpy(load_audio(path)))[0].numpy()
    step = max(1, mel.shape[1] // width)
    return _png(np.maximum(mel[:, ::step][:, :width], mel.max() - SPECTROGRAM_RANGE))


def _embedded_file(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"


def _html_table(header: list[str], rows: list[list[str]], css: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def fad_table(metrics: pd.DataFrame, systems: list[str]) -> str:
    """FAD per system and embedder with the bootstrap 95% CI."""
    if metrics.empty:
        return "<p>No FAD computed.</p>"
    embedders = list(dict.fromkeys(metrics["embedder"]))
    rows = []
    for system in systems:
        cells = [html.escape(system)]
        for embedder in embedders:
            hit = metrics[(metrics["system"] == system) & (metrics["embedder"] == embedder)]
            if hit.empty:
                cells.append("-")
                continue
            row = hit.iloc[0]
            ci = (f" [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
                  if "ci_low" in row and pd.notna(row["ci_low"]) else "")
            cells.append(f"{_fmt(row['score'])}{ci}")
        rows.append(cells)
    return _html_table(["system"] + [f"FAD {e} ↓ [95% CI]" for e in embedders], rows, "fad")


def rtf_table(timings: pd.DataFrame, systems: list[str]) -> str:
    """Real-time factor per system and scope (end-to-end, model-only): mean, median, 95th percentile."""
    if timings.empty:
        return "<p>No timings.</p>"
    order = {system: index for index, system in enumerate(systems)}
    records = sorted((r for r in timings.to_dict("records") if r["system"] in order),
                     key=lambda r: (order[r["system"]], str(r.get("scope", ""))))
    rows = [[html.escape(r["system"]), html.escape(str(r.get("scope", "")))]
            + [_fmt(r[c]) for c in ("rtf_mean", "rtf_median", "rtf_p95")] + [html.escape(str(r["device"]))]
            for r in records]
    return _html_table(["system", "scope", "RTF mean ↓", "median", "p95", "device"], rows, "rtf")


def coherence_table(coherence: pd.DataFrame, systems: list[str]) -> str:
    """Coherence measures per system: mean ± 95% CI (normal, from the standard error over clips)."""
    if coherence.empty:
        return "<p>No coherence measures.</p>"
    measures = list(dict.fromkeys(coherence["measure"]))
    indexed = coherence.set_index(["system", "measure"])
    rows = []
    for system in systems:
        cells = [html.escape(system)]
        for measure in measures:
            if (system, measure) in indexed.index:
                row = indexed.loc[(system, measure)]
                cells.append(f"{row['mean']:.3f} ± {Z95 * row['sem']:.3f}")
            else:
                cells.append("-")
        rows.append(cells)
    return _html_table(["system"] + [f"{m} ↑ (± 95% CI)" for m in measures], rows, "coherence")


def _player(src: Path, page_dir: Path, label: str, kind: str, system: str) -> str:
    if not src.is_file():
        return f'<div class="label">{html.escape(label)}: missing</div>'
    rel = html.escape(Path(os.path.relpath(src, page_dir)).as_posix())
    return (f'<div class="label">{html.escape(label)}</div>'
            f'<audio controls preload="metadata" src="{rel}" data-system="{html.escape(system)}" data-kind="{kind}">'
            f"</audio>")


def clip_row(run: RunFiles, clip: str, systems: list[str], vocals: Path) -> str:
    """One clip: the vocals, then each system's accompaniment, mix and accompaniment spectrogram, side by side."""
    cells = [f"{_player(vocals, run.root, 'vocals', 'vocals', 'input')}"
             f'<img class="spec" alt="vocals spectrogram" src="{spectrogram(vocals)}">']
    for system in systems:
        acc, mixed = run.accompaniment(system, clip), run.mix(system, clip)
        image = f'<img class="spec" alt="{html.escape(system)} spectrogram" src="{spectrogram(acc)}">' \
            if acc.is_file() else ""
        cells.append(_player(acc, run.root, "accompaniment", "accompaniment", system)
                     + _player(mixed, run.root, "mix", "mix", system) + image)
    cells.append(_player(run.mix(REFERENCE, clip), run.root, "mix", "mix", REFERENCE))
    header = ["input"] + systems + ["reference mix"]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f"<td>{cell}</td>" for cell in cells)
    return (f'<section class="clip" data-clip="{html.escape(clip)}"><h3>{html.escape(clip)}</h3>'
            f"<table><thead><tr>{head}</tr></thead><tbody><tr>{body}</tr></tbody></table></section>")


def write_report(run_dir: str | Path, max_clips: int | None = None) -> Path:
    """Write ``<run_dir>/report.html`` (and copy the input vocals next to it); returns the page's path."""
    run = RunFiles(Path(run_dir))
    manifest = run.manifest()
    systems = run.systems()
    clips = manifest["clips"][:max_clips] if max_clips else manifest["clips"]
    failed = {s: run.status(s).get("error", "") for s in systems if run.status(s).get("state") == "failed"}
    vocals_dir = run.root / VOCALS_DIR
    vocals_dir.mkdir(parents=True, exist_ok=True)
    sources = run.vocals()
    rows = []
    for clip in clips:
        vocals = vocals_dir / f"{clip}.wav"
        source = sources[clip]
        if not vocals.is_file() or vocals.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, vocals)
        rows.append(clip_row(run, clip, systems, vocals))
    spec = manifest.get("spec", {})
    title = f"sag-bench run {spec.get('name', run.root.name)}"
    failures = "".join(f"<li>{html.escape(s)}: {html.escape(str(e))}</li>" for s, e in failed.items())
    plots = "".join(f'<img class="plot" alt="{html.escape(p.stem)}" src="{_embedded_file(p)}">' for p in run.plots())
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{len(clips)} clips of {html.escape(str(manifest.get('dataset', '')))}, "
            f"git {html.escape(str(manifest.get('git_commit', '')))}, seed {html.escape(str(spec.get('seed', '')))}</p>"
            + (f"<h2>Failed systems</h2><ul>{failures}</ul>" if failures else "")
            + "<h2>Frechet Audio Distance</h2>" + fad_table(run.table("metrics"), systems)
            + "<h2>Real-time factor</h2>" + rtf_table(run.table("timings"), systems)
            + "<h2>Coherence</h2>" + coherence_table(run.table("coherence"), systems)
            + f"<h2>Plots</h2><div>{plots}</div><h2>Listen</h2>" + "".join(rows) + "</body></html>")
    target = run.root / REPORT_NAME
    target.write_text(page)
    return target
