"""Have the trained systems learned? Each one against RandSong on the validated measures, and learning curves.

A system that learned must beat a random human accompaniment of another song (RandSong) on what the validated
measures see: APA over ``dsp-interval`` and the default coherence measures (``harmonic_fit``,
``chroma_harmonic_fit``). The comparison is the metric validation's paired bootstrap
(:func:`sag_bench.evaluation.validation.validate`) with the trained system as the anchor and RandSong as the other
system: ``passes`` means the CI of (system - RandSong) lies above 0. Learning curves repeat it for every weights-only
snapshot a training run kept (``snapshot_every``) and plot the scores beside the run's losses.

    python -m sag_bench.evaluation.learning versus --data results/data/chorales-tiny --split test --out DIR
    python -m sag_bench.evaluation.learning curve --run RUN_DIR --system fastsag --data DIR --split test --out DIR
    python -m sag_bench.evaluation.learning versus --systems fastsag --option output=prior --data DIR --out DIR

The last scores what FastSAG's condition networks alone carry: the prior ``mu`` vocoded without sampling.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from sag_bench.errors import SagBenchError, UserError
from sag_bench.evaluation.coherence import DEFAULT_MEASURES
from sag_bench.evaluation.validation import ValidationSpec, flag_failures, validate, write_table
from sag_bench.store import atomic_write_text, sha256_file

BASELINE = ("randsong", {"pool_split": "train"})  # as in the embedded spec: a train-split song's accompaniment
APA_EMBEDDERS = ("dsp-interval",)
VERSUS_HEADER = ("baseline", "system", "baseline score", "system wins")
SPEC = "tiny"


def versus_baseline(data_dir: str | Path, systems: Sequence[tuple[str, dict[str, Any]]], split: str,
                    baseline: tuple[str, dict[str, Any]] = BASELINE, seed: int = 0, coherence_boot: int = 2000,
                    set_boot: int = 200) -> pd.DataFrame:
    """One row per (system, measure): the system's score, the baseline's, the paired difference and its CI on
    ``split`` of ``data_dir`` (APA's reference: the dataset's train split); ``passes`` = the system wins."""
    tables = []
    for name, options in systems:
        spec = ValidationSpec([(name, dict(options)), baseline], list(APA_EMBEDDERS), split, "train", seed,
                              coherence_boot, set_boot, list(DEFAULT_MEASURES))
        table = validate(data_dir, spec)
        scored = table[table["kind"] != "fad"]
        tables.append(scored.assign(system=name, measure=name + ": " + scored["measure"]))
    return flag_failures(pd.concat(tables, ignore_index=True))


def spec_systems(spec_name: str = SPEC) -> list[tuple[str, dict[str, Any]]]:
    """The systems of a runner spec with their options as the spec generates them (checkpoint included)."""
    from sag_bench.runner.spec import load_spec

    return [(s.name, {**({"checkpoint": str(s.checkpoint_path())} if s.checkpoint else {}), **s.options})
            for s in load_spec(spec_name).systems]


def trained_systems(spec_name: str = SPEC) -> list[tuple[str, dict[str, Any]]]:
    """The systems of a runner spec that load a checkpoint, with their options."""
    return [(name, options) for name, options in spec_systems(spec_name) if "checkpoint" in options]


def versus_systems(spec_name: str, baseline: str, only: Sequence[str] | None = None,
                   extra: dict[str, Any] | None = None
                   ) -> tuple[list[tuple[str, dict[str, Any]]], tuple[str, dict[str, Any]]]:
    """The spec's trained systems to compare (all but the baseline, or ``only`` these) and the baseline, each with
    its spec options; ``extra`` options go to every one that loads a checkpoint, a trained baseline included."""
    extra = extra or {}
    systems = dict(spec_systems(spec_name))
    if baseline not in systems:
        raise UserError(f"baseline {baseline}: not a system of spec {spec_name} ({', '.join(systems)})")
    chosen = [(name, {**options, **extra}) for name, options in systems.items()
              if "checkpoint" in options and name != baseline and (not only or name in only)]
    options = systems[baseline]
    return chosen, (baseline, {**options, **extra} if "checkpoint" in options else options)


def snapshots(run_dir: Path, system: str) -> list[tuple[int, Path]]:
    """The (step, path) of every weights-only snapshot ``run_dir/snapshots/<system>_step<N>.pt``, by step."""
    found = sorted((int(p.stem.rsplit("_step", 1)[1]), p) for p in (run_dir / "snapshots").glob(f"{system}_step*.pt"))
    if not found:
        raise FileNotFoundError(f"{run_dir}/snapshots: no {system}_step*.pt (train with snapshot_every > 0)")
    return found


def learning_curve(run_dir: str | Path, system: str, data_dir: str | Path, split: str,
                   options: dict[str, Any] | None = None, cache_dir: Path | None = None, **boots: int) -> pd.DataFrame:
    """:func:`versus_baseline` for every snapshot of ``run_dir``, with a ``step`` column. With ``cache_dir`` each
    snapshot's rows are kept there (keyed by the snapshot's content, the split and the bootstrap sizes), so an
    interrupted or extended curve only scores the snapshots it has not seen."""
    rows = []
    for step, path in tqdm(snapshots(Path(run_dir), system), desc=f"{system} snapshots"):
        key = f"{path.stem}_{split}_{sha256_file(path)[:16]}_{'_'.join(f'{k}{v}' for k, v in sorted(boots.items()))}"
        cached = cache_dir / f"{key}.csv" if cache_dir is not None else None
        if cached is not None and cached.is_file():
            rows.append(pd.read_csv(cached))
            continue
        table = versus_baseline(data_dir, [(system, {**(options or {}), "checkpoint": str(path)})], split, **boots)
        table = table.assign(step=step)
        if cached is not None:
            atomic_write_text(cached, table.to_csv(index=False))
        rows.append(table)
    return pd.concat(rows, ignore_index=True)


def plot_learning_curve(curve: pd.DataFrame, losses_csv: Path, out_png: Path) -> Path:
    """Losses (left) and each measure against the baseline by step (right; filled: CI of the difference above 0)."""
    from sag_bench.reporting.plots import pyplot, save_figure

    losses = pd.read_csv(losses_csv)
    measures = list(dict.fromkeys(curve["measure"]))  # "<system>: <measure>"
    names = [c for c in losses.columns if c != "step"]
    rows = max(len(names), len(measures))
    fig, axes = pyplot().subplots(rows, 2, figsize=(11, 2.2 * rows), squeeze=False)
    for axis, name in zip(axes[:, 0], names):
        window = max(1, len(losses) // 30)
        axis.plot(losses["step"], losses[name].rolling(window, min_periods=1).mean(), lw=1.2)
        axis.set_ylabel(name if "loss" in name else f"{name} loss")
    for axis, measure in zip(axes[:, 1], measures):
        part = curve[curve["measure"] == measure].sort_values("step")
        axis.plot(part["step"], part["truth"], color="C0", lw=1.2, label=part["system"].iloc[0])
        wins = part["passes"].to_numpy()
        axis.scatter(part["step"], part["truth"], color="C0", zorder=3,
                     facecolors=np.where(wins, "C0", "none"), label="CI of the difference above 0 (filled)")
        axis.plot(part["step"], part["perturbed"], color="C3", ls="--", lw=1.0, label=part["perturbation"].iloc[0])
        axis.set_ylabel(measure)
        axis.legend(loc="lower right", fontsize=7)
    axes[len(names) - 1, 0].set_xlabel("training step")
    axes[len(measures) - 1, 1].set_xlabel("training step")
    for axis in [*axes[len(names):, 0], *axes[len(measures):, 1]]:
        axis.set_visible(False)
    fig.tight_layout()
    return save_figure(fig, out_png, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``versus`` (the spec's trained systems against RandSong) or ``curve`` (one run's snapshots);
    bad input (a missing run, dataset or snapshot) is a one-line error and exit status 2."""
    try:
        return _main(argv)
    except (FileNotFoundError, SagBenchError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    versus = sub.add_parser("versus", help="each trained system of a spec against RandSong")
    versus.add_argument("--spec", default=SPEC, help="runner spec whose checkpointed systems are compared")
    versus.add_argument("--baseline", default=BASELINE[0],
                        help="a system of the spec to compare with (default randsong; e.g. fastsag-mel)")
    versus.add_argument("--systems", nargs="+", help="only these trained systems of the spec (default: all)")
    versus.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra option for every compared system that loads a checkpoint, a trained baseline "
                             "included (JSON value, e.g. output=\"prior\": FastSAG's prior alone); repeatable")
    curve = sub.add_parser("curve", help="a training run's snapshots against RandSong, plotted beside its losses")
    curve.add_argument("--run", type=Path, required=True, help="a training run folder (snapshots/, losses.csv)")
    curve.add_argument("--system", required=True, help="the run's system (its snapshots' name)")
    for command in (versus, curve):
        command.add_argument("--data", type=Path, required=True, help="a built dataset folder (manifest.json)")
        command.add_argument("--split", default="test", help="clips to generate for (default: test)")
        command.add_argument("--out", type=Path, required=True, help="write the tables (and plot) here")
    args = parser.parse_args(argv)
    if args.command == "versus":
        extra = _parse_options(args.option, parser)
        chosen, baseline = versus_systems(args.spec, args.baseline, args.systems, extra)
        table = versus_baseline(args.data, chosen, args.split, baseline)
        stem = f"versus-{args.baseline}-{args.split}" + "".join(f"-{k}-{v}" for k, v in extra.items())
    else:
        table = learning_curve(args.run, args.system, args.data, args.split, _spec_options(args.system),
                               cache_dir=args.out / "snapshot-scores")
        stem = f"learning-curve-{args.system}-{args.split}"
        print(f"wrote {plot_learning_curve(table, args.run / 'losses.csv', args.out / f'{stem}.png')}")
        table = table.assign(measure="step " + table["step"].astype(str) + " " + table["measure"])  # rows by step
    for path in write_table(table, args.out, stem, VERSUS_HEADER):
        print(f"wrote {path}")
    return 0


def _parse_options(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict, each value read as JSON (a bare word stays a string)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _spec_options(system: str) -> dict[str, Any]:
    """The embedded spec's generation options of ``system`` (e.g. FastSAG's sampler steps), without checkpoint."""
    return next(({k: v for k, v in options.items() if k != "checkpoint"}
                 for name, options in trained_systems() if name == system), {})


if __name__ == "__main__":
    sys.exit(main())
