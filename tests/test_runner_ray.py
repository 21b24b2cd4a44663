"""The runner on a local Ray instance of 2 CPU workers (loopback): byte-identical to in-process, resumable after a
worker is killed mid-run without redoing finished clips, and `--dry-run` listing the tasks with their resources."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import torch

from sag_bench.cli import main
from sag_bench.executors.ray_tasks import RayExecutor, TaskFailedError
from sag_bench.runner.run import run_experiment
from sag_bench.runner.spec import load_spec
from sag_bench.store import read_json
from tests.test_runner import SPEC

# The spec of the in-process runner tests with fastsag first: its tasks load a model, so the first generation task
# lives long enough to be killed mid-run.
FASTSAG = '[[systems]]\nname = "fastsag"\ncheckpoint = "builtin:fastsag.pt"\noptions = { steps = 2 }\n'
RESULTS = ("metrics.csv", "coherence.csv")


def _nothing() -> int:
    return os.getpid()


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    """One local Ray instance of 2 worker CPUs for the module (executors made by the tests use it)."""
    from sag_bench.executors import Task

    executor = RayExecutor(workers=2)
    assert [pid for _, pid in executor.map([Task("start", _nothing)])] != [os.getpid()]
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory, dataset_builder) -> Path:
    root = tmp_path_factory.mktemp("ray-run")
    path = root / "small.toml"
    data = dataset_builder(root / "data", songs=4, clips_per_song=2, seconds=4.0)
    path.write_text(SPEC.format(data=data, batch_size=1).replace("[[systems]]", FASTSAG + "[[systems]]", 1))
    return path


@pytest.fixture(scope="module")
def reference(spec_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spec run in-process, on one torch thread like a Ray worker of one CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_experiment(load_spec(spec_path), tmp_path_factory.mktemp("inprocess") / "run").store.root
    finally:
        torch.set_num_threads(threads)


def _generated(run: Path) -> dict[str, bytes]:
    return {path.relative_to(run).as_posix(): path.read_bytes() for path in sorted((run / "generated").rglob("*.wav"))}


def _assert_same_results(run: Path, reference: Path) -> None:
    assert len(_generated(reference)) == 3 * 4
    assert _generated(run) == _generated(reference)
    for name in RESULTS:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    assert read_json(run / "manifest.json")["executor"]["name"] == "ray"
    assert read_json(reference / "manifest.json")["executor"] == {"name": "inprocess"}


@pytest.fixture(autouse=True)
def _driver_on_one_thread(one_thread: None) -> None:
    """The driver's own computations (coherence, FAD statistics) on one torch thread, as in the reference run."""


def test_ray_run_is_byte_identical_to_inprocess(spec_path: Path, reference: Path, ray_executor: RayExecutor,
                                                tmp_path: Path) -> None:
    result = run_experiment(load_spec(spec_path), tmp_path / "run", executor=ray_executor)
    _assert_same_results(result.store.root, reference)
    assert set(result.timings["system"]) == {"fastsag", "groundtruth", "randsong"}  # RTF measured on a worker


def _kill_first_generation_task(marker: Path, stop: threading.Event) -> None:
    """Kill the first of this process's Ray workers seen running a generation task; its pid goes to ``marker``."""
    while not stop.is_set():
        for child in psutil.Process().children(recursive=True):
            try:
                title = child.cmdline()
            except psutil.Error:
                continue
            if title and title[0].startswith("ray::generate_clips"):
                marker.write_text(str(child.pid))
                os.kill(child.pid, signal.SIGKILL)
                return
        time.sleep(0.005)


def test_killed_worker_loses_no_finished_clip(spec_path: Path, reference: Path, ray_executor: RayExecutor,
                                              tmp_path: Path) -> None:
    out, marker, stop = tmp_path / "run", tmp_path / "killed.pid", threading.Event()
    killer = threading.Thread(target=_kill_first_generation_task, args=(marker, stop))
    killer.start()
    try:
        with pytest.raises(TaskFailedError, match="rerun to do the rest"):
            run_experiment(load_spec(spec_path), out, executor=RayExecutor(max_retries=0))  # the running instance
    finally:
        stop.set()
        killer.join()
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(int(marker.read_text())).status()
    finished = {path: path.stat().st_mtime_ns for path in (out / "generated").rglob("*.wav")}
    assert 0 < len(finished) < 3 * 4  # the other worker's task finished, the killed one's did not
    assert not (out / "metrics.csv").exists()

    run_experiment(load_spec(spec_path), out, resume=True, executor=ray_executor)
    _assert_same_results(out, reference)
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # finished clips were not redone


def test_dry_run_lists_tasks_and_their_resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no data built here
    assert main(["run", "table1", "--executor", "ray", "--dry-run"]) == 2
    out = capsys.readouterr().out
    assert "executor ray; clip count unknown until the data is built" in out
    assert "task generate/fastsag: ? task(s) of <= 8 clips, each num_cpus=1 num_gpus=1" in out
    assert "task rtf: 1 task timing 7 systems one after another on one worker, num_cpus=1 num_gpus=1" in out
    assert "task embed/vggish: ? task(s) of <= 32 mix files, each num_cpus=1 num_gpus=1" in out


def test_dry_run_counts_tasks_of_built_data(spec_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(spec_path), "--executor", "ray", "--workers", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "executor ray (workers=2)" in out
    assert "task generate/randsong: 4 task(s) of <= 1 clips, each num_cpus=1 num_gpus=0" in out
    assert "task embed/dsp-spectral: 1 task(s) of <= 32 mix files, each num_cpus=1 num_gpus=0" in out
