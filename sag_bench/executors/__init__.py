"""Executors: run independent tasks in this process or on Ray (a local instance or an existing cluster).

``create(name, address=..., workers=...)`` builds one by name (``inprocess`` | ``ray``); see :mod:`.base` for the
interface every caller uses.
"""

from __future__ import annotations

from sag_bench.executors.base import EXECUTORS, Executor, ExecutorError, Resources, Task, create

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "Resources", "Task", "create"]
