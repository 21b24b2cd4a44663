"""The errors a user sees. Every expected failure derives from :class:`SagBenchError`; the command line catches that
one class and prints its message as one line (file and problem), without a traceback.

Kinds:
  * :class:`UserError` - bad arguments, settings, presets (:class:`SpecError`: an experiment spec file);
  * :class:`DataError` - input that cannot be used (:class:`AudioError`: an audio file, :class:`DatasetError`: a
    dataset folder or its manifest);
  * :class:`UnknownComponentError` - a name no registry entry has;
  * :class:`WeightsMissingError` - pretrained weights not available offline.
"""

from __future__ import annotations

from pathlib import Path


class SagBenchError(Exception):
    """An expected failure: printed as one line, no traceback."""


class UserError(SagBenchError, ValueError):
    """Bad arguments, settings or presets."""


class SpecError(UserError):
    """An experiment spec that cannot run; the message names the spec file and the problem."""


class DataError(SagBenchError, ValueError):
    """Input data that cannot be used; the message names the file or folder and the problem."""


class AudioError(DataError):
    """An input audio file that cannot be used; the message names the file and the problem in one line."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


class DatasetError(DataError):
    """A dataset folder that cannot be used; the message names the folder or file and the problem."""


class UnknownComponentError(SagBenchError, LookupError):
    """A name that no entry point registers; the message lists the known names."""


class WeightsMissingError(SagBenchError, RuntimeError):
    """Pretrained weights are not available offline; the message names what to fetch and where to put it."""
