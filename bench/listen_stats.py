"""Calibration of the Table 3 statistics over simulated crossed studies (raters x clips) with known truth.

    PYTHONPATH=$PWD .venv/bin/python bench/listen_stats.py [--studies 200] [--seed 0]

Each design draws rater, clip and system x clip effects (issue 19: rater sd 0.5, clip sd 0.3, system x clip sd
0.3, noise sd 0.7; ratings rounded to 1-5; see tests/listen_simulation.py) and runs the real ``analyze_ratings``
(screening included). Printed per design: coverage of the crossed interval that Table 3 prints (target
0.93-0.97) and, for reference, of the rater-means and naive per-rating intervals kept in the CSV; the share of
null pairs (equal latent means) rejected at 0.05 by the per-clip Wilcoxon test of Table 3 (target 0.03-0.07),
the per-rater alternative and the crossed t test; honest and careless raters excluded; mean MOS error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from tests.listen_simulation import CARELESS_KINDS, Design, run_studies

EQUAL = {name: 3.0 for name in ("a", "b", "c", "d", "e")}
PLANTED = tuple(kind for kind in CARELESS_KINDS for _ in range(2))
DESIGNS = {
    # FastSAG's design (100 clips, 15 raters x 20 clips, 5 systems at the paper's MOS) plus 6 careless raters.
    "paper+careless": Design(careless=PLANTED),
    # Five systems with equal means: every pair is a null pair.
    "null": Design(systems=EQUAL),
    # The check: 15 raters x 12 clips, every rater hears every clip.
    "null-crossed-15x12": Design(systems=EQUAL, clips=12, per_rater=12),
    # A system x rater interaction (sd 0.3) as well: the per-clip test is not built for it (see the docstring
    # of sag_bench/listening_test/analysis.py); the per-rater and crossed tests model it.
    "null+system-x-rater": Design(systems=EQUAL, system_rater_sd=0.3),
    # Alike systems and careless raters: screening has little signal on the test items here.
    "null+careless": Design(systems=EQUAL, careless=PLANTED),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200, help="simulated studies per design (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--designs", nargs="+", choices=list(DESIGNS), default=list(DESIGNS))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    results = {}
    print("| design | studies | cover crossed | cover rater-means | cover naive | null pairs | reject clip | "
          "reject rater | reject crossed | honest excl. | careless excl. | MOS bias |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.designs:
        result = run_studies(DESIGNS[name], range(args.seed, args.seed + args.studies))
        results[name] = asdict(result)
        cover, reject = result.coverage, result.rejection
        print(f"| {name} | {result.studies} | {cover['crossed']:.3f} | {cover['rater_means']:.3f} | "
              f"{cover['naive']:.3f} | {result.null_pairs} | {reject['p']:.3f} | {reject['p_rater']:.3f} | "
              f"{reject['p_crossed']:.3f} | {result.honest_excluded:.3f} | {result.careless_excluded:.3f} | "
              f"{result.mos_bias:+.3f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
