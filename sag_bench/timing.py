"""Per-stage wall-clock timing of generation, the basis of the real-time factor (RTF).

A system wraps each stage of ``generate`` in ``with self.timer.stage("sampler"):``. The default timer records
nothing and costs nothing; the RTF harness (:mod:`sag_bench.evaluation.rtf`) installs a recording one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

import torch


class NullTimer:
    """A timer that records nothing (used outside RTF measurement)."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield


class StageTimer(NullTimer):
    """Accumulates wall time per named stage; synchronises CUDA at stage boundaries when ``cuda_sync`` is set."""

    def __init__(self, cuda_sync: bool = False) -> None:
        self.cuda_sync = cuda_sync and torch.cuda.is_available()
        self.seconds: dict[str, float] = defaultdict(float)

    def _sync(self) -> None:
        if self.cuda_sync:
            torch.cuda.synchronize()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] += time.perf_counter() - start

    def reset(self) -> None:
        """Forget all recorded stages."""
        self.seconds.clear()
