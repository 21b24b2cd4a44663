"""``sag-bench demo``: the embedded default end to end, offline (tiny chorales, every system, tables, plots, study)."""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="the embedded default end to end, offline")
    parser.add_argument("--out", help="run directory (default: results/demo)")
    parser.add_argument("--spec", default="tiny", help="spec to run (default: the built-in tiny spec)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sag_bench.reporting.report_page import write_report
    from sag_bench.runner.run import run_experiment
    from sag_bench.runner.spec import load_spec
    from sag_bench.runs import default_run_dir

    start = time.perf_counter()
    spec = load_spec(args.spec)
    result = run_experiment(spec, args.out or default_run_dir("demo"), resume=True)
    store = result.store
    print()
    print(store.table(spec.table).read_text())
    if store.table(f"{spec.table}_paper").is_file():
        print("For orientation only (paper setup: MUSDB18, paper-size models, pretrained backbones):")
        print(store.table(f"{spec.table}_paper").read_text())
    print(f"run folder: {store.root}")
    print(f"plots:      {', '.join(str(p) for p in store.plots())}")
    print(f"report:     {write_report(store.root)}  (open it in a browser; works offline)")
    study = _build_study(store.root, store.study_dir)
    if study:
        print(f"listening study: {study}  (serve it with `sag-bench listen serve {study}`)")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    failed = [key for key, state in result.status.items() if state.get("state") == "failed"]
    return 1 if failed else 0


def _build_study(run_dir, study_dir):
    """Build a listening-study folder from the run (the listening-test package decides the layout)."""
    from sag_bench.listening_test.build import build_study

    if not (study_dir / "study.json").is_file():
        build_study(run_dir, study_dir, seed=0)
    return study_dir
