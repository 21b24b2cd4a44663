"""The system contract: every accompaniment generator, built-in or plugin, implements :class:`System`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch

from sag_bench.audio import SAMPLE_RATE
from sag_bench.timing import NullTimer


class System(ABC):
    """Generates an instrumental accompaniment for isolated singing.

    Contract (registration: README, "Writing a system plugin"): ``name``, ``sample_rate``; :meth:`load` once, then
    :meth:`generate` on batches of mono vocals ``[B, T]`` at ``sample_rate``, returning accompaniments ``[B, T]`` of
    the same length.
    Stages report into ``self.timer`` (``with self.timer.stage("vocoder"):``) so the RTF can be broken down.
    Systems that need data context (ground truth, RandSong) read ``clip_ids`` and :meth:`prepare`.
    """

    name: ClassVar[str] = "system"
    sample_rate: ClassVar[int] = SAMPLE_RATE
    # Options taken through ``**options`` rather than as named keyword parameters (a spec's options are checked
    # against the constructors' named parameters plus these, before a run starts).
    extra_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, checkpoint: str | Path | None = None, **options: Any) -> None:
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.options = options
        self.timer: NullTimer = NullTimer()
        self.device = torch.device("cpu")

    def prepare(self, data_dir: Path) -> None:
        """Give the system the dataset it will be run on (default: nothing to do)."""

    def load(self, device: str | torch.device = "cpu") -> None:
        """Load weights onto ``device``; called once before generating."""
        self.device = torch.device(device)

    @abstractmethod
    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        """Accompaniments ``[B, T]`` for vocals ``[B, T]`` (mono, ``sample_rate``), deterministic given ``seed``."""

    def describe(self) -> dict[str, Any]:
        """What a run records about this system: name, checkpoint, options and backbone implementations."""
        return {"name": self.name, "checkpoint": str(self.checkpoint) if self.checkpoint else None, **self.options}
