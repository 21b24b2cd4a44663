"""Validate the coherence measures: on chorale clips, true (vocals, accompaniment) pairs must score clearly higher
than shuffled pairs (each vocal with the accompaniment of a clip from another song). Prints, per measure, the means,
the paired difference with its 95 % bootstrap CI, Cohen's d and d_z, and how often the true pair wins.

    .venv/bin/python bench/coherence_validation.py [--data DIR | --build DIR] [--preset tiny] [--split test]
                                                    [--seed 0] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sag_bench.datasets.manifest import ClipDataset
from sag_bench.evaluation.coherence import MEASURES, effect_size, true_vs_shuffled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="an already built chorale dataset folder")
    source.add_argument("--build", type=Path, default=Path("/tmp/sag-bench-chorales"),
                        help="build the chorale dataset here first if it has no manifest (default: %(default)s)")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measures", nargs="*", default=list(MEASURES), choices=list(MEASURES))
    parser.add_argument("--json", type=Path, help="also write the effect sizes here")
    args = parser.parse_args(argv)

    root = args.data or args.build
    if args.data is None and not (root / "manifest.json").is_file():
        from sag_bench.datasets.chorales import build

        build(root, preset=args.preset, seed=args.seed)
    dataset = ClipDataset(root)
    pairs = [dataset.load(record) for record in dataset.records(args.split)]
    if len({pair.song for pair in pairs}) < 2:
        print(f"{root}: split {args.split!r} needs clips of at least two songs", file=sys.stderr)
        return 2
    start = time.perf_counter()
    scores = true_vs_shuffled([p.vocals for p in pairs], [p.accompaniment for p in pairs], dataset.sample_rate,
                              [p.song for p in pairs], seed=args.seed, measures=args.measures)
    elapsed = time.perf_counter() - start
    effects = [effect_size(name, true, shuffled, seed=args.seed) for name, (true, shuffled) in scores.items()]

    print(f"chorales {root} split={args.split}: {len(pairs)} clips from {len({p.song for p in pairs})} songs, "
          f"shuffled partners from other songs (seed {args.seed}); {elapsed:.1f} s")
    print(f"{'measure':<24}{'true':>8}{'shuffled':>10}{'diff':>9}{'95% CI':>20}{'d':>7}{'d_z':>7}{'wins':>7}")
    for e in effects:
        print(f"{e.measure:<24}{e.mean_true:>8.3f}{e.mean_shuffled:>10.3f}{e.mean_difference:>9.3f}"
              f"{f'[{e.ci_low:.3f}, {e.ci_high:.3f}]':>20}{e.cohens_d:>7.2f}{e.cohens_dz:>7.2f}"
              f"{e.fraction_true_higher:>7.0%}")
    if args.json:
        from sag_bench.store import write_json

        write_json(args.json, {"data": str(root), "split": args.split, "seed": args.seed,
                               "effects": [e.to_dict() for e in effects]})
    return 0 if all(e.ci_low > 0 for e in effects) else 1


if __name__ == "__main__":
    sys.exit(main())
