"""Chorale dataset build cost: times the `tiny` preset for real, and measures a seeded sample of songs rendered as
the `full` preset renders them (all 12 transpositions, every window) to extrapolate the full build.

    .venv/bin/python bench/dataset_build.py [--out DIR] [--sample-songs 6] [--workers 2] [--seed 0] [--skip-tiny]

The `full` figures it prints are an EXTRAPOLATION from the sample (per-song time and clips times the number of
songs, time divided by the workers), unless you run the full build itself:
`sag-bench data build chorales --preset full --out DIR`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sag_bench.datasets import chorales
from sag_bench.datasets.clips import preset, write_clip
from sag_bench.datasets.manifest import ClipDataset, DatasetError


def time_tiny(out: Path, workers: int, seed: int) -> None:
    """Build `tiny` and print its wall time and counts."""
    start = time.perf_counter()
    chorales.build(out, preset="tiny", seed=seed, workers=workers)
    seconds = time.perf_counter() - start
    dataset = ClipDataset(out)
    counts = {split: len(dataset.records(split)) for split in dataset.splits()}
    print(f"tiny: {sum(counts.values())} clips {counts} in {seconds:.1f} s with {workers} workers (measured)")


def sample_full(out: Path, sample_songs: int, workers: int, seed: int) -> None:
    """Render `sample_songs` songs like `full` (one process), write their clips, and extrapolate."""
    sizes = preset("chorales", "full")
    songs = chorales.list_songs()
    splits = chorales.assign_splits(songs, sizes["split_fractions"], seed)
    split_of = {song.id: split for split, members in splits.items() for song in members}
    rng = np.random.default_rng(seed)
    sample = [songs[i] for i in rng.choice(len(songs), sample_songs, replace=False)]
    seconds, clip_count, usable, written = 0.0, 0, 0, 0
    for song in sample:
        start = time.perf_counter()
        try:
            chorale = chorales.read_chorale(song)
        except DatasetError:
            seconds += time.perf_counter() - start
            continue
        usable += 1
        for shift in chorales.TRANSPOSITIONS:
            rendering = chorales.render_chorale(chorale, split_of[song.id], shift, seed, sizes["clips_per_render"])
            for window in rendering.windows:
                record = write_clip(out, f"{song.id}_{shift:+d}_{window.start}", song.id, rendering.split, window,
                                    rendering.vocals, rendering.accompaniment)
                written += sum((out / record[role]).stat().st_size for role in ("vocals", "accompaniment"))
                clip_count += 1
        seconds += time.perf_counter() - start
    scale = len(songs) / sample_songs
    print(f"full sample (measured): {sample_songs} songs ({usable} usable), {clip_count} clips, "
          f"{seconds:.1f} s in one process, {written / 1e6:.0f} MB")
    print(f"full (EXTRAPOLATED to {len(songs)} songs): ~{clip_count * scale:,.0f} clips, "
          f"~{seconds * scale / workers / 60:.0f} min with {workers} workers, ~{written * scale / 1e9:.0f} GB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--sample-songs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-tiny", action="store_true")
    args = parser.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="sag-bench-datasets-"))
    try:
        if not args.skip_tiny:
            time_tiny(work / "tiny", args.workers, args.seed)
        sample_full(work / "full-sample", args.sample_songs, args.workers, args.seed)
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
