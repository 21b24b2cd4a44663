"""RandSong (FastSAG section 4.3): for each vocal, a human-composed accompaniment drawn at random from a pool.

The pool is the accompaniments of one split of the run's dataset (default: train; the paper used 20,000
Demucs-separated accompaniments). A clip never receives an accompaniment of its own song. The draw for a clip
depends only on (seed, clip id), so it is the same in any batch and after a resumed run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sag_bench.datasets.manifest import ClipDataset, ClipRecord
from sag_bench.seeding import derive_seed
from sag_bench.systems.base import System
from sag_bench.systems.context import DatasetContext, require_clip_ids, stack

PAPER_POOL_SIZE = 20_000  # FastSAG section 4.3


class RandSong(System):
    """RandSong: a random human-composed accompaniment from another song (seeded)."""

    name = "randsong"

    def __init__(self, checkpoint: str | Path | None = None, pool_split: str = "train",
                 pool_size: int = PAPER_POOL_SIZE, pool_data: str | Path | None = None, pool_seed: int = 0,
                 **options: Any) -> None:
        super().__init__(checkpoint, pool_split=pool_split, pool_size=pool_size, pool_seed=pool_seed,
                         pool_data=str(pool_data) if pool_data else None, **options)
        self.pool_split = pool_split
        self.pool_size = pool_size
        self.pool_data = Path(pool_data) if pool_data else None
        self.pool_seed = pool_seed
        self.context: DatasetContext | None = None
        self.pool: list[ClipRecord] = []

    def prepare(self, data_dir: Path) -> None:
        self.context = DatasetContext(data_dir, self.sample_rate)
        candidates = ClipDataset(self.pool_data or data_dir).records(self.pool_split)
        if not candidates:
            raise ValueError(f"randsong: no clips of split {self.pool_split!r} in {self.pool_data or data_dir} "
                             "to draw accompaniments from")
        order = np.random.default_rng(self.pool_seed).permutation(len(candidates))[: self.pool_size]
        self.pool = [candidates[i] for i in sorted(order)]

    def draw(self, clip_id: str, seed: int) -> ClipRecord:
        """The pool record assigned to ``clip_id`` under ``seed`` (never from the clip's own song)."""
        assert self.context is not None
        song = self.context.record(clip_id).song
        eligible = [record for record in self.pool if record.song != song]
        if not eligible:
            raise ValueError(f"randsong: the pool holds no accompaniment from a song other than {song!r}")
        return eligible[np.random.default_rng(derive_seed(seed, clip_id)).integers(len(eligible))]

    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        if self.context is None:
            raise RuntimeError("randsong: call prepare(data_dir) before generate")
        ids = require_clip_ids(self.name, clip_ids, vocals.shape[0])
        with self.timer.stage("draw"):
            drawn = [self.draw(clip_id, seed) for clip_id in ids]
        with self.timer.stage("load"):
            return stack([self.context.accompaniment(record, vocals.shape[-1]) for record in drawn])
