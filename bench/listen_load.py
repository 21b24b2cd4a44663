"""Loopback load benchmark of the study server: N raters at once, M answers each (and each answer sent twice).

    PYTHONPATH=. .venv/bin/python bench/listen_load.py [--raters 50] [--answers 20]    (from the repository root)

Builds a synthetic study in a temporary folder, starts ``sag-bench listen serve`` as its own process, runs the
load, then checks the database: every acknowledged rating present with its score, none stored twice.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path

from sag_bench.listening_test.build import build_study
from tests.listen_server_helpers import free_port, run_load, start_server, stop_server
from tests.listen_synthetic import make_synthetic_run

SYSTEMS = ["groundtruth", "fastsag", "singsong-sc", "randsong"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--answers", type=int, default=20, help="answers per rater (at most 20 with this study)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_synthetic_run(root / "run", SYSTEMS, clips=6, seconds=1.0)
        build_study(root / "run", root / "study", per_rater=4, seed=args.seed, audio_format="wav")
        port = free_port()
        server = start_server(root / "study", port, root / "server.log")
        try:
            report = run_load(port, args.raters, args.answers, resubmit=True, seed=args.seed)
        finally:
            stop_server(server)
        with sqlite3.connect(root / "study" / "ratings.sqlite") as db:
            rows = db.execute("SELECT rater_id, item_id, score FROM ratings").fetchall()
    stored = {(r[0], r[1]): r[2] for r in rows}
    lost = sum(stored.get(key) != score for key, score in report.acknowledged.items())
    print(report.summary())
    print(f"database: {len(rows)} rows, {len(rows) - len(stored)} duplicated, {lost} acknowledged ratings lost, "
          f"{report.server_errors} 5xx")
    return 0 if lost == 0 and len(rows) == len(stored) and report.server_errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
