"""The human-composed ground truth: each clip's own accompaniment (Table 3's "Human-composed" row)."""

from __future__ import annotations

from typing import Sequence

import torch

from sag_bench.systems.context import DatasetSystem, require_clip_ids, stack


class GroundTruth(DatasetSystem):
    """Ground truth: the clip's own human-composed accompaniment."""

    name = "groundtruth"

    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        if self.context is None:
            raise RuntimeError("groundtruth: call prepare(data_dir) before generate")
        ids = require_clip_ids(self.name, clip_ids, vocals.shape[0])
        with self.timer.stage("load"):
            return stack([self.context.accompaniment(self.context.record(i), vocals.shape[-1]) for i in ids])
