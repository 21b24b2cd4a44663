"""``sag-bench data build NAME --out DIR [...]`` and ``sag-bench data info DIR``."""

from __future__ import annotations

import argparse

# CLI option -> builder keyword. Only options the user gives are passed; each must be a parameter of the builder.
BUILD_OPTIONS = {"preset": "preset", "root": "root", "protocol": "protocol", "vocals": "vocals", "src": "src",
                 "shard": "shard", "test_clips": "test_clips", "workers": "workers", "device": "device",
                 "model": "model", "executor": "executor", "address": "address"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="build clip datasets (chorales | musdb18 | folder) and inspect them")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="write clips + manifest.json for a registered dataset")
    build.add_argument("name", metavar="NAME", help="dataset name (sag-bench systems --kind datasets lists them)")
    build.add_argument("--out", required=True, help="output folder")
    build.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    build.add_argument("--preset", help="chorales: size preset from datasets/presets.toml (tiny | full)")
    build.add_argument("--root", help="musdb18: MUSDB18 / MUSDB18-HQ folder (default: $MUSDB_PATH)")
    build.add_argument("--protocol", choices=["fastsag", "singsong"],
                       help="clip filter: fastsag = the authors' code (both stems' whole-clip RMS >= -21.7 dBFS), "
                            "singsong = SingSong's text (vocals' peak-frame RMS > -25 dBFS)")
    build.add_argument("--vocals", choices=["isolated", "separated"], help="musdb18: vocal input variant")
    build.add_argument("--src", help="folder: folder of songs to separate")
    build.add_argument("--shard", help="folder: process songs i, i+N, ... (i/N, 0 <= i < N)")
    build.add_argument("--test-clips", type=int, help="folder: clips in the held-out test split (default 2000)")
    build.add_argument("--workers", type=int,
                       help="chorales: rendering processes (default: up to 2); folder: CPUs of a local Ray instance")
    build.add_argument("--executor", choices=["inprocess", "ray"],
                       help="folder: run songs in this process (default) or as Ray tasks")
    build.add_argument("--address", help="folder with --executor ray: an existing Ray cluster (default: a local one)")
    build.add_argument("--device", help="musdb18/folder: device Demucs runs on (default cpu)")
    build.add_argument("--model", help="musdb18/folder: Demucs model name (default htdemucs)")
    build.set_defaults(handler=run_build)
    info = actions.add_parser("info", help="clip and song counts per split of a built dataset")
    info.add_argument("dir", metavar="DIR", help="dataset folder with manifest.json")
    info.add_argument("--verify", action="store_true", help="also check every file's sha256 against the manifest")
    info.set_defaults(handler=run_info)


def builder_options(builder: object, name: str, args: argparse.Namespace) -> dict[str, object]:
    """Keyword arguments for ``builder`` from the options given; raises UserError for an option it does not take
    or a required one that is missing."""
    import inspect

    from sag_bench.errors import UserError

    accepted = inspect.signature(builder).parameters
    options: dict[str, object] = {"out_dir": args.out, "seed": args.seed}
    for option, keyword in BUILD_OPTIONS.items():
        value = getattr(args, option)
        if value is None:
            continue
        if keyword not in accepted:
            raise UserError(f"--{option.replace('_', '-')} does not apply to dataset {name!r}")
        options[keyword] = value
    for keyword, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and keyword not in options:
            option = next((option for option, target in BUILD_OPTIONS.items() if target == keyword), keyword)
            raise UserError(f"dataset {name!r} needs --{option.replace('_', '-')}")
    return options


def run_build(args: argparse.Namespace) -> int:
    import logging
    import time

    from sag_bench import registry
    from sag_bench.datasets.manifest import DATASET_MANIFEST, ClipDataset

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    entry = registry.entry("datasets", args.name)
    builder = entry.resolve()
    start = time.perf_counter()
    result = builder(**builder_options(builder, args.name, args))
    seconds = time.perf_counter() - start
    if result.name != DATASET_MANIFEST:
        print(f"{args.name}: this shard is done in {seconds:.1f} s; progress in {result}")
        return 0
    dataset = ClipDataset(result.parent)
    counts = ", ".join(f"{split} {len(dataset.records(split))}" for split in dataset.splits())
    print(f"{args.name}: {len(dataset.records())} clips ({counts}) in {seconds:.1f} s -> {result}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from sag_bench.errors import UserError
    from sag_bench.datasets.clips import FILTERS, filter_counts
    from sag_bench.datasets.manifest import ClipDataset

    dataset = ClipDataset(args.dir)
    clip_seconds = float(dataset.manifest.get("clip_seconds", 10.0))
    print(f"{dataset.name} at {dataset.root} ({dataset.sample_rate} Hz, {clip_seconds:g} s clips)")
    for split in dataset.splits():
        records = dataset.records(split)
        songs = len({record.song for record in records})
        print(f"  {split or '(none)':<10} {len(records):>6} clips  {songs:>5} songs  "
              f"{len(records) * clip_seconds / 60:.1f} min")
    counts = filter_counts((pair.vocals, pair.accompaniment) for pair in map(dataset.load, dataset.records()))
    print("  kept by each clip filter (measured on the stored 24 kHz clips): "
          + ", ".join(f"{name} {count}" for name, count in counts.items()) + f" of {len(dataset.records())}")
    for name in counts:
        print(f"    {name}: {FILTERS[name].rule}")
    if args.verify:
        bad = dataset.verify()
        if bad:
            raise UserError(f"{args.dir}: {len(bad)} clips missing or changed (first: {bad[0]})")
        print("  all files match their sha256")
    return 0
