"""Shared test fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    """Keep tests on few threads: the CI machine has 2 cores."""
    torch.set_num_threads(2)


@pytest.fixture
def tone() -> np.ndarray:
    """Ten seconds of a 440 Hz sine at 24 kHz, amplitude 0.5."""
    t = np.arange(240_000) / 24_000
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
