"""The executor interface: map independent tasks, each with its resource needs, and yield results as they finish.

A task is a module-level function with its arguments (both picklable, for executors in other processes), a unique
key and the resources one run of it needs. Tasks write their own outputs atomically, so that a task whose outputs
exist is left out by the caller on a rerun and a killed worker or driver loses no finished work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator
from sag_bench.errors import SagBenchError

EXECUTORS = ("inprocess", "ray")


class ExecutorError(SagBenchError):
    """An executor that cannot be built as asked (unknown name, options that do not apply)."""


@dataclass(frozen=True)
class Resources:
    """What one run of a task needs: CPU cores and GPUs (fractions share a device)."""

    cpus: float = 1.0
    gpus: float = 0.0

    @classmethod
    def for_device(cls, device: str) -> "Resources":
        """One core, plus one GPU when ``device`` is a CUDA device."""
        return cls(cpus=1.0, gpus=1.0 if device.startswith("cuda") else 0.0)


@dataclass(frozen=True)
class Task:
    """``fn(*args)`` under a unique ``key``, needing ``resources``."""

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    resources: Resources = field(default_factory=Resources)


class Executor(ABC):
    """Runs independent tasks; results come back as they finish, not in submission order."""

    name: str = ""

    @abstractmethod
    def _run(self, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        """Run every task of ``tasks`` and yield ``(task, result)`` as each finishes."""

    def map(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, Any]]:
        """Run ``tasks`` and yield ``(task, result)`` as each finishes.

        Callers pass only the tasks whose outputs do not exist yet (they know what is finished, and so what is
        left to do). When a task fails, no further task starts, the ones running are allowed to finish (their
        results are yielded), and then the first failure is raised.
        """
        todo = list(tasks)
        keys = [task.key for task in todo]
        if len(keys) != len(set(keys)):
            raise ValueError("task keys must be unique")
        return self._run(todo)

    def describe(self) -> dict[str, Any]:
        """What to record beside outputs (never changes them): the executor's name and settings."""
        return {"name": self.name}

    def close(self) -> None:
        """Release what the executor started (a local Ray instance); nothing by default."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create(name: str = "inprocess", address: str | None = None, workers: int | None = None, **options: Any) -> Executor:
    """The executor called ``name`` (``inprocess`` | ``ray``); ``address`` and ``workers`` apply to Ray only."""
    if name == "inprocess":
        given = [option for option, value in (("--address", address), ("--workers", workers)) if value is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise ExecutorError(f"{' and '.join(given)} {verb} to --executor ray only")
        from sag_bench.executors.inprocess import InProcessExecutor

        return InProcessExecutor()
    if name == "ray":
        from sag_bench.executors.ray_tasks import RayExecutor

        return RayExecutor(address=address, workers=workers, **options)
    raise ExecutorError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
