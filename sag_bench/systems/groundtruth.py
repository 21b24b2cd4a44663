"""The human-composed ground truth: each clip's own accompaniment (Table 3's "Human-composed" row)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from sag_bench.systems.base import System
from sag_bench.systems.context import DatasetContext, require_clip_ids, stack


class GroundTruth(System):
    """Ground truth: the clip's own human-composed accompaniment."""

    name = "groundtruth"

    def __init__(self, checkpoint: str | Path | None = None, **options: Any) -> None:
        super().__init__(checkpoint, **options)
        self.context: DatasetContext | None = None

    def prepare(self, data_dir: Path) -> None:
        self.context = DatasetContext(data_dir, self.sample_rate)

    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        if self.context is None:
            raise RuntimeError("groundtruth: call prepare(data_dir) before generate")
        ids = require_clip_ids(self.name, clip_ids, vocals.shape[0])
        with self.timer.stage("load"):
            return stack([self.context.accompaniment(self.context.record(i), vocals.shape[-1]) for i in ids])
