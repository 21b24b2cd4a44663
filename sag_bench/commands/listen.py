"""``sag-bench listen build|serve|analyze``: listening studies (MOS web form, durable ratings, Table 3 analysis)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("listen", help="build, serve and analyse a MOS listening study")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="build a self-contained study folder from a run folder")
    build.add_argument("run_dir", help="run folder with manifest.json and mixes/<system>/<clip>.wav")
    build.add_argument("--out", required=True, help="study folder to create")
    build.add_argument("--systems", nargs="+", help="systems to include (default: every system in the run)")
    build.add_argument("--clips", type=int, help="number of clips in the study (default: all; seeded subset)")
    build.add_argument("--per-rater", type=int, metavar="RATINGS",
                       help="ratings per rater, counted as clips x systems (rounded down to whole clips; default: "
                            "as many as fit in about 15 minutes, the length crowd studies keep to; the FastSAG "
                            "paper's 20 clips x 7 systems is --per-rater 140)")
    build.add_argument("--seed", type=int, default=0, help="seed for clip choice, gold items and orders (default 0)")
    build.add_argument("--preset", help="study preset TOML (default: the packaged FastSAG MOS preset)")
    build.add_argument("--format", choices=["mp3", "ogg", "wav"], help="audio format (default: the preset's)")
    build.set_defaults(handler=run_build)

    serve = actions.add_parser("serve", help="run the study web server (answers stored in SQLite)")
    serve.add_argument("study_dir")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--allow-empty-database", action="store_true",
                       help="start even though the study issued sessions before and its database is missing or "
                            "empty (those raters' sessions are lost)")
    serve.set_defaults(handler=run_serve)

    analyze = actions.add_parser("analyze", help="Table 3: MOS with crossed raters x clips CIs, pairwise tests on "
                                 "clips, rater screening")
    analyze.add_argument("study_dir")
    analyze.add_argument("--out", help="output folder (default STUDY_DIR/analysis)")
    analyze.set_defaults(handler=run_analyze)


def _user_errors():
    from sag_bench.errors import UserError
    from sag_bench.listening_test.study import StudyError

    return UserError, StudyError


def run_build(args: argparse.Namespace) -> int:
    from sag_bench.listening_test.build import build_study

    user_error, study_error = _user_errors()
    try:
        path = build_study(args.run_dir, args.out, args.systems, args.clips, None, args.seed, args.preset,
                           args.format, ratings=args.per_rater)
    except study_error as error:
        raise user_error(str(error)) from None
    import json

    spec = json.loads(path.read_text())
    print(f"study written to {path.parent}: {spec['per_rater']} clips x {len(spec['systems'])} systems per rater, "
          f"about {spec['estimated_minutes']} minutes (serve it with: sag-bench listen serve {path.parent})")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    user_error, study_error = _user_errors()
    try:
        import fastapi  # noqa: F401  (the optional `listen` extra)
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise user_error(f"listen serve needs {error.name}, from the listening-test extra: "
                         f"pip install 'sag-bench[listen]'") from None
    from sag_bench.listening_test.db import StoreError
    from sag_bench.listening_test.server import serve

    try:
        serve(args.study_dir, args.host, args.port, args.allow_empty_database)
    except (study_error, StoreError) as error:
        raise user_error(str(error)) from None
    return 0


def run_analyze(args: argparse.Namespace) -> int:
    from sag_bench.listening_test.analysis import analyze_study
    from sag_bench.reporting.table3 import markdown

    user_error, study_error = _user_errors()
    try:
        report = analyze_study(args.study_dir, args.out)
    except study_error as error:
        raise user_error(str(error)) from None
    print(markdown(report))
    print(f"\nwritten to {report.out_dir}")
    return 0
