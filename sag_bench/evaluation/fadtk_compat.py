"""Use fadtk without its global side effects.

Importing fadtk configures the root logger (``logging.basicConfig`` with a handler) and, where ``rich`` is
installed, replaces ``sys.excepthook``; ``FrechetAudioDistance(...)`` switches autograd off for the whole process;
``fadtk.cache_embedding_files`` forces the ``spawn`` start method. :func:`contained` snapshots all of these and puts
them back, so importing or running fadtk leaves the rest of the process as it found it.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

import torch


@contextmanager
def contained() -> Iterator[None]:
    """Run a block that may touch fadtk's globals; restore logging, excepthook, autograd and start method after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    excepthook = sys.excepthook
    grad_enabled = torch.is_grad_enabled()
    start_method = multiprocessing.get_start_method(allow_none=True)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.excepthook = excepthook
        torch.set_grad_enabled(grad_enabled)
        if multiprocessing.get_start_method(allow_none=True) != start_method:
            multiprocessing.set_start_method(start_method, force=True)


def import_fadtk(module: str = "fadtk.model_loader") -> ModuleType:
    """Import a fadtk module (``fadtk.model_loader``, ``fadtk.fad``...) with its import-time side effects undone."""
    if module in sys.modules:
        return sys.modules[module]
    with contained():
        return importlib.import_module(module)
