"""Executors on a local Ray instance of 2 CPU workers (loopback): the same results as in-process, failures and
killed workers handled by Ray, and a folder build that is byte-identical and resumes without redoing songs."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterator

import pytest
import torch

from sag_bench.backbones.base import Separator
from sag_bench.cli import main
from sag_bench.datasets import folder
from sag_bench.datasets.manifest import DatasetError
from sag_bench.executors import ExecutorError, Resources, Task, create
from sag_bench.executors.ray_tasks import RayExecutor, TaskFailedError
from sag_bench.store import read_json
from tests.separator_helpers import small_separator
from tests.test_datasets_folder import SONGS, songs  # noqa: F401  (the module-scoped folder of synthetic songs)


def _divide(numerator: int, denominator: int) -> tuple[int, int]:
    if denominator == 0:
        raise DatasetError(f"{numerator}/0: no quotient")
    return numerator // denominator, os.getpid()


class KillingSeparator(Separator):
    """Delegates to a real separator, except that the first call anywhere (claimed through ``marker``) writes its
    process id to ``marker`` and kills its own process, like a worker lost mid-song."""

    name = "killing"

    def __init__(self, inner: Separator, marker: Path) -> None:
        self.inner = inner
        self.marker = marker

    def separate(self, mixture: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            handle = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.inner.separate(mixture, sample_rate)
        os.write(handle, str(os.getpid()).encode())
        os.close(handle)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    def describe(self) -> dict[str, object]:
        return self.inner.describe()


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    """One local Ray instance of 2 worker CPUs for the whole module (other executors made by the tests find it
    running and use it), shut down after it."""
    executor = RayExecutor(workers=2)
    assert [result for _, (result, _) in executor.map([Task("start", _divide, (6, 3))])] == [2]  # starts Ray
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def reference(songs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The folder build of the songs with the in-process executor, on one torch thread like a Ray worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return folder.build(tmp_path_factory.mktemp("reference"), songs, separator=small_separator(),
                            test_clips=1).parent
    finally:
        torch.set_num_threads(threads)


def _files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for folder_name in ("clips", folder.SONGS_DIR) for path in sorted((root / folder_name).iterdir())}


def _assert_same_dataset(built: Path, reference: Path) -> None:
    assert _files(built) == _files(reference)
    manifest, expected = read_json(built / "manifest.json"), read_json(reference / "manifest.json")
    assert manifest["options"].pop("executor")["name"] == "ray"
    assert expected["options"].pop("executor") == {"name": "inprocess"}
    assert manifest == expected


def test_ray_and_inprocess_map_the_same_and_keep_the_error_type(ray_executor: RayExecutor) -> None:
    tasks = [Task(f"{n}/{d}", _divide, (n, d), Resources(cpus=1)) for n, d in [(7, 2), (9, 3), (5, 0), (8, 4)]]
    results = {}
    for executor in (create("inprocess"), ray_executor):
        with pytest.raises(DatasetError, match="5/0: no quotient"):
            for task, (quotient, pid) in executor.map(tasks):
                results.setdefault(executor.name, {})[task.key] = (quotient, pid == os.getpid())
    assert results["inprocess"] == {"7/2": (3, True), "9/3": (3, True)}  # in order: stops at the failure
    assert results["ray"] == {"7/2": (3, False), "9/3": (3, False), "8/4": (2, False)}  # the rest still finished
    with pytest.raises(ValueError, match="unique"):
        ray_executor.map(tasks + tasks[:1])


def test_executor_options_are_checked() -> None:
    with pytest.raises(ExecutorError, match="--address and --workers apply to --executor ray only"):
        create("inprocess", address="auto", workers=2)
    with pytest.raises(ExecutorError, match="a cluster at --address brings its own workers"):
        create("ray", address="127.0.0.1:6379", workers=2)
    with pytest.raises(ExecutorError, match="unknown executor 'dask'"):
        create("dask")
    assert create("ray", address="127.0.0.1:6379").describe() == {"name": "ray", "address": "127.0.0.1:6379",
                                                                  "workers": None}


def test_cli_executor_options_are_one_line_errors(songs: Path, tmp_path: Path,  # noqa: F811
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "build", "folder", "--src", str(songs), "--out", str(tmp_path), "--workers", "2"]) == 2
    assert capsys.readouterr().err.strip() == "sag-bench: error: --workers applies to --executor ray only"
    assert main(["data", "build", "folder", "--src", str(songs), "--out", str(tmp_path), "--executor", "ray",
                 "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "sag-bench: error: --workers 0: need at least one worker"


def test_ray_folder_build_is_byte_identical(songs: Path, reference: Path, ray_executor: RayExecutor,  # noqa: F811
                                            tmp_path: Path) -> None:
    built = folder.build(tmp_path / "data", songs, separator=small_separator(), test_clips=1, executor=ray_executor)
    _assert_same_dataset(built.parent, reference)


def test_killed_worker_loses_no_finished_song(songs: Path, reference: Path, ray_executor: RayExecutor,  # noqa: F811
                                              tmp_path: Path) -> None:
    out, first_kill, second_kill = tmp_path / "data", tmp_path / "first.pid", tmp_path / "second.pid"
    without_retries = RayExecutor(max_retries=0)  # uses the running instance
    with pytest.raises(TaskFailedError, match="WorkerCrashedError.*rerun to do the rest"):
        folder.build(out, songs, separator=KillingSeparator(small_separator(), first_kill), test_clips=1,
                     executor=without_retries)
    killed = int(first_kill.read_text())
    assert killed != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    done = {path.name: path.stat().st_mtime_ns for path in (out / folder.SONGS_DIR).iterdir()}
    assert len(done) == len(SONGS) - 1  # every song but the killed one (the unreadable ones are recorded as skipped)
    assert not (out / "manifest.json").exists()

    # The rerun loses a worker too; Ray's retry runs that song again on another worker and the build completes.
    folder.build(out, songs, separator=KillingSeparator(small_separator(), second_kill), test_clips=1,
                 executor=ray_executor)
    assert int(second_kill.read_text()) != killed
    _assert_same_dataset(out, reference)
    assert {name: (out / folder.SONGS_DIR / name).stat().st_mtime_ns for name in done} == done
