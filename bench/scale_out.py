"""Scale-out cost: wall time of the same work with the in-process executor and with Ray tasks on a local instance
of 1 and 2 workers, as ratios to the in-process time measured in the same run.

    PYTHONPATH=$PWD .venv/bin/python bench/scale_out.py [--workload folder tiny] [--songs 6] [--seconds 12]
        [--clips 4] [--systems ...] [--workers 1 2] [--out DIR]

Workload `folder`: `data build folder` of synthetic songs with the small random HTDemucs of the tests (the real
Demucs code path, no pretrained weights needed). Workload `tiny`: `sag-bench run tiny` on its first ``--clips`` clips
(every system of the built-in tiny spec; generation, RTF and embedding as tasks, mixes, FAD statistics and coherence
in the driver; outputs compared: generated audio and metrics.csv). Ray's times are given with and without starting
the local instance.
In-process runs on one torch thread, like each Ray worker (Ray sets OMP_NUM_THREADS to a task's CPUs), so the
outputs are byte-identical across executors (checked). On a machine shared with other jobs the ratios are noisy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import soundfile as sf
import torch

from sag_bench.datasets import folder
from sag_bench.executors import Executor, Task, create
from sag_bench.runner.run import ensure_dataset, run_experiment
from sag_bench.runner.spec import load_spec
from tests.separator_helpers import small_separator, synthetic_song


def _nothing() -> None:
    """A task that does nothing: running one starts the Ray instance, so start-up is timed apart."""


def folder_workload(songs: int, seconds: float) -> Callable[[Executor, Path], list[bytes]]:
    """The folder build of ``songs`` synthetic songs of ``seconds`` each; returns its clips' and records' bytes."""
    def run(executor: Executor, work: Path) -> list[bytes]:
        src = work / "songs"
        if not src.is_dir():
            src.mkdir(parents=True)
            for index in range(songs):
                sf.write(src / f"song{index:03d}.wav", synthetic_song(seconds, index), 44_100)
        out = work / f"data-{time.monotonic_ns()}"
        folder.build(out, src, separator=small_separator(), test_clips=1, executor=executor)
        return [path.read_bytes() for name in ("clips", folder.SONGS_DIR) for path in sorted((out / name).iterdir())]
    return run


def tiny_workload(clips: int, systems: list[str] | None) -> Callable[[Executor, Path], list[bytes]]:
    """`sag-bench run tiny` on its first ``clips`` clips and the ``systems`` named (None: all), its data built first
    where the spec keeps it (untimed); returns the generated audio's and metrics.csv's bytes."""
    spec = load_spec("tiny")
    spec.data.max_clips = clips
    spec.systems = [system for system in spec.systems if systems is None or system.key in systems]
    ensure_dataset(spec)

    def run(executor: Executor, work: Path) -> list[bytes]:
        out = run_experiment(spec, work / f"run-{time.monotonic_ns()}", executor=executor).store.root
        return [path.read_bytes() for path in sorted((out / "generated").rglob("*.wav"))] + \
            [(out / "metrics.csv").read_bytes()]
    return run


# Workload name -> factory(args) -> run(executor, work folder) -> output bytes to compare across executors.
WORKLOADS: dict[str, Callable[[argparse.Namespace], Callable[[Executor, Path], list[bytes]]]] = {
    "folder": lambda args: folder_workload(args.songs, args.seconds),
    "tiny": lambda args: tiny_workload(args.clips, args.systems),
}


def measure(name: str, run: Callable[[Executor, Path], list[bytes]], workers: list[int], work: Path) -> None:
    """Print the wall times of ``run`` in-process and on Ray with each worker count, as ratios to in-process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray worker of one CPU: the same per-task compute, the same output bytes
    start = time.perf_counter()
    try:
        reference = run(create("inprocess"), work)
    finally:
        torch.set_num_threads(threads)
    baseline = time.perf_counter() - start
    print(f"{name}: in-process (one torch thread) {baseline:.1f} s = 1.00")
    for count in workers:
        with create("ray", workers=count) as executor:
            start = time.perf_counter()
            list(executor.map([Task("start", _nothing)]))
            started = time.perf_counter()
            outputs = run(executor, work)
            end = time.perf_counter()
        same = "identical outputs" if outputs == reference else "OUTPUTS DIFFER"
        print(f"{name}: ray {count} worker(s) {end - started:.1f} s = {(end - started) / baseline:.2f} x in-process; "
              f"with start-up {end - start:.1f} s = {(end - start) / baseline:.2f} x ({same})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), nargs="+", default=sorted(WORKLOADS))
    parser.add_argument("--songs", type=int, default=6, help="folder: synthetic songs (default 6)")
    parser.add_argument("--seconds", type=float, default=12.0, help="folder: seconds per song (default 12)")
    parser.add_argument("--clips", type=int, default=4, help="tiny: clips of the tiny spec (default 4)")
    parser.add_argument("--systems", nargs="+", help="tiny: only these systems of the tiny spec (default: all)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts (default 1 2)")
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one, removed afterwards)")
    args = parser.parse_args(argv)
    with nullcontext(args.out) if args.out else tempfile.TemporaryDirectory(prefix="sag-bench-scale-out-") as work:
        for name in args.workload:
            measure(name, WORKLOADS[name](args), args.workers, Path(work) / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
