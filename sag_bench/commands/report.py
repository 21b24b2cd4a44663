"""``sag-bench report RUN_DIR``: write the run's report page ``RUN_DIR/report.html`` (offline, self-contained)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write RUN_DIR/report.html: tables, plots, every clip to listen to")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `sag-bench run`")
    parser.add_argument("--max-clips", type=int, help="only the first N clips (default: all)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sag_bench.reporting.report_page import write_report

    print(f"report: {write_report(args.run_dir, max_clips=args.max_clips)}")
    return 0
