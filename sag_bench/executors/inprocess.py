"""Today's behaviour: every task in this process, one after another, in the order given."""

from __future__ import annotations

from typing import Any, Iterator

from sag_bench.executors.base import Executor, Task


class InProcessExecutor(Executor):
    """Runs tasks in the calling process; a failure propagates at once with its own type."""

    name = "inprocess"

    def _run(self, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        for task in tasks:
            yield task, task.fn(*task.args)
