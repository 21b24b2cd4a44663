"""Ray tasks: a local Ray instance on this machine (loopback only) by default, or an existing cluster by address.

Scheduling, resource accounting (``num_cpus``/``num_gpus``) and retries of tasks whose worker died
(``max_retries``, optionally ``retry_exceptions``) are Ray's own. Arguments that are not plain values (a model
object, say) are put into Ray's object store once and shared by every task that takes them.
"""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any, Callable, Iterator

from sag_bench.executors.base import Executor, ExecutorError, Task

PLAIN = (str, bytes, int, float, bool, type(None), PurePath)
# Tasks submitted but not finished at any time: bounds the driver's bookkeeping for very many tasks.
MAX_PENDING = 1000


class TaskFailedError(ExecutorError):
    """A task that Ray could not finish (its worker or node died more often than ``max_retries`` allows)."""


class RayExecutor(Executor):
    """Ray tasks. Without ``address`` a local instance with ``workers`` CPUs (default: all cores) is started on the
    loopback interface and shut down by :meth:`close`; a Ray already initialised in this process is used as is."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, max_retries: int = 3,
                 retry_exceptions: bool | list[type[Exception]] = False, max_pending: int = MAX_PENDING) -> None:
        if address is not None and workers is not None:
            raise ExecutorError("--workers sizes a local Ray instance; a cluster at --address brings its own workers")
        if workers is not None and workers < 1:
            raise ExecutorError(f"--workers {workers}: need at least one worker")
        self.address = address
        self.workers = workers
        self.max_retries = max_retries
        self.retry_exceptions = retry_exceptions
        self.max_pending = max_pending
        self._started = False
        self._remote: dict[Callable[..., Any], Any] = {}

    def describe(self) -> dict[str, Any]:
        """Name, cluster address (None: local instance) and local worker count."""
        return {"name": self.name, "address": self.address, "workers": self.workers}

    def _start(self) -> None:
        import ray

        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reports leave the machine
        if self.address is None:
            ray.init(address="local", num_cpus=self.workers or os.cpu_count(), include_dashboard=False,
                     _node_ip_address="127.0.0.1", configure_logging=False)
        else:
            ray.init(address=self.address, configure_logging=False)
        self._started = True

    def close(self) -> None:
        """Shut down the Ray instance this executor started (not one it found running)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def _submit(self, task: Task, shared: dict[int, Any]) -> Any:
        import ray

        if task.fn not in self._remote:
            self._remote[task.fn] = ray.remote(task.fn)
        args = []
        for arg in task.args:
            if not isinstance(arg, PLAIN):
                if id(arg) not in shared:
                    shared[id(arg)] = (arg, ray.put(arg))  # the object is kept alive so its id stays unique
                arg = shared[id(arg)][1]
            args.append(arg)
        options = self._remote[task.fn].options(num_cpus=task.resources.cpus, num_gpus=task.resources.gpus,
                                                max_retries=self.max_retries, retry_exceptions=self.retry_exceptions)
        return options.remote(*args)

    def _run(self, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        import ray
        from ray.exceptions import RayError, RayTaskError

        if not tasks:
            return
        self._start()
        queue, pending, shared = iter(tasks), {}, {}
        failure: BaseException | None = None

        def fill() -> None:
            while failure is None and len(pending) < self.max_pending:
                task = next(queue, None)
                if task is None:
                    return
                pending[self._submit(task, shared)] = task

        fill()
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ref)
            try:
                result = ray.get(ref)
            except RayTaskError as error:  # the task itself raised: re-raise its own exception
                failure = failure or (error.cause if isinstance(error.cause, Exception) else error)
            except RayError as error:
                failure = failure or TaskFailedError(
                    f"task {task.key}: {type(error).__name__} ({str(error).strip().splitlines()[0]}); "
                    "finished tasks are kept, rerun to do the rest")
            else:
                yield task, result
            fill()
        if failure is not None:
            raise failure
