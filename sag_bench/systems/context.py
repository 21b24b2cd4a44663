"""Data context for systems that draw on the dataset itself (ground truth, RandSong)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sag_bench.audio import load_audio
from sag_bench.datasets.manifest import ClipDataset, ClipRecord
from sag_bench.systems.base import System


class DatasetContext:
    """Clip records of a prepared dataset by id, and loading of accompaniments fitted to a length."""

    def __init__(self, data_dir: Path, sample_rate: int) -> None:
        self.dataset = ClipDataset(data_dir)
        self.sample_rate = sample_rate
        self.by_id: dict[str, ClipRecord] = {record.id: record for record in self.dataset.records()}

    def record(self, clip_id: str) -> ClipRecord:
        """The record of ``clip_id``; a clear error for an id the dataset does not hold."""
        if clip_id not in self.by_id:
            raise KeyError(f"clip {clip_id!r} is not in the dataset {self.dataset.root}")
        return self.by_id[clip_id]

    def accompaniment(self, record: ClipRecord, length: int) -> np.ndarray:
        """The record's accompaniment, zero-padded or trimmed to ``length`` samples."""
        audio = load_audio(record.accompaniment, self.sample_rate)[:length]
        return np.pad(audio, (0, length - len(audio)))


def require_clip_ids(system_name: str, clip_ids: Sequence[str] | None, batch: int) -> Sequence[str]:
    """``clip_ids`` checked to be present and to match the batch size."""
    if clip_ids is None or len(clip_ids) != batch:
        raise ValueError(f"{system_name} needs the clip id of every vocal in the batch (got {clip_ids!r})")
    return clip_ids


def stack(arrays: list[np.ndarray]) -> torch.Tensor:
    """``[B, T]`` float tensor from equal-length arrays."""
    return torch.from_numpy(np.stack(arrays).astype(np.float32))


class DatasetSystem(System):
    """A system that answers from the dataset (ground truth, perturbations): :meth:`prepare` opens its context."""

    def __init__(self, checkpoint: str | Path | None = None, **options: Any) -> None:
        super().__init__(checkpoint, **options)
        self.context: DatasetContext | None = None

    def prepare(self, data_dir: Path) -> None:
        self.context = DatasetContext(data_dir, self.sample_rate)
