"""Shared test fixtures."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    """Keep tests on few threads: the CI machine has 2 cores."""
    torch.set_num_threads(2)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: token-by-token decoding and Demucs on tiny models are several times faster on this
    2-core machine with one thread than with two (and robust to a loaded CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tone() -> np.ndarray:
    """Ten seconds of a 440 Hz sine at 24 kHz, amplitude 0.5."""
    t = np.arange(240_000) / 24_000
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
