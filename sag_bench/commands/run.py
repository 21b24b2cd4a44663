"""``sag-bench run SPEC [--set KEY=VALUE ...] [--device D] [--out DIR] [--resume] [--dry-run] [--export-spec F]
[--executor inprocess|ray [--address A] [--workers N]]``: generate + evaluate + tables for one spec."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sag_bench.executors import Executor
    from sag_bench.runner.spec import Spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="generate + evaluate + tables for one experiment spec")
    parser.add_argument("spec", help="spec file, or a built-in spec name (tiny, table1, table2)")
    parser.add_argument("--out", help="run directory (default: results/<spec name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec value, e.g. data.dir=/data/musdb18 or systems.fastsag.options.steps=20 "
                             "(repeatable; VALUE is read as TOML, else as a string)")
    parser.add_argument("--device", help="device to run on (same as --set device=...), e.g. cuda, cuda:1, cpu")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run, skipping finished work")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would run and which weights and data are needed; fail on what is missing")
    parser.add_argument("--export-spec", metavar="FILE",
                        help="write the spec (with the --set overrides) to FILE to extend it, and run nothing")
    parser.add_argument("--executor", choices=["inprocess", "ray"],
                        help="where tasks run (default: the spec's executor table, else inprocess); never changes outputs")
    parser.add_argument("--address", help="with --executor ray: an existing Ray cluster (default: a local instance)")
    parser.add_argument("--workers", type=int, help="with --executor ray: CPUs of the local instance (default: all)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sag_bench.errors import UserError
    from sag_bench.runner.spec import load_spec
    from sag_bench.runner.tasks import executor_for

    overrides = args.overrides + ([f"device={args.device}"] if args.device else [])
    spec = load_spec(args.spec, overrides)
    if args.export_spec:
        from sag_bench.runner.spec_overrides import export_spec

        print(f"wrote {export_spec(spec, args.export_spec)} (paths relative to its folder)")
        return 0
    executor = executor_for(spec, args.executor, args.address, args.workers)  # checks the options; starts nothing
    if args.dry_run:
        from sag_bench.runner.dryrun import plan

        checks = plan(spec)
        print(f"spec {spec.name} ({spec.source}): {len(spec.systems)} systems, "
              f"embedders {', '.join(spec.evaluation.embedders) or '-'}")
        for check in checks:
            print(check.line())
        _print_tasks(spec, executor)
        missing = sum(not check.ok for check in checks)
        if missing:
            raise UserError(f"{missing} prerequisite(s) missing for {spec.source}")
        return 0
    from sag_bench.runner.run import run_experiment
    from sag_bench.runs import default_run_dir

    with executor:
        result = run_experiment(spec, args.out or default_run_dir(spec.name), resume=args.resume, executor=executor)
    print(result.store.table(spec.table).read_text())
    print(f"results: {result.store.root}  plots: {result.store.plots_dir}")
    failed = [key for key, state in result.status.items() if state.get("state") == "failed"]
    return 1 if failed else 0


def _print_tasks(spec: Spec, executor: Executor) -> None:
    """The tasks a run of ``spec`` schedules on ``executor`` and the resources each needs."""
    from pathlib import Path

    from sag_bench.datasets.manifest import DATASET_MANIFEST, ClipDataset
    from sag_bench.runner.tasks import describe_tasks

    data_dir = Path(spec.data.dir)
    clips = None
    if (data_dir / DATASET_MANIFEST).is_file():
        clips = len(ClipDataset(data_dir).records(spec.data.split))
        clips = min(clips, spec.data.max_clips) if spec.data.max_clips else clips
    settings = ", ".join(f"{key}={value}" for key, value in executor.describe().items()
                         if key != "name" and value is not None)
    print(f"executor {executor.name}" + (f" ({settings})" if settings else "") +
          ("" if clips is not None else "; clip count unknown until the data is built"))
    for line in describe_tasks(spec, clips):
        print(line)
