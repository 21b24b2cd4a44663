"""The SingSong system: noisy vocals -> semantic ids -> accompaniment semantic -> coarse (-> fine) codes -> audio.

``singsong-sc`` decodes the codec from the 3 coarse codebooks; ``singsong-scf`` adds the fine stage and decodes 8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from sag_bench.backbones.base import Codec
from sag_bench.errors import UserError
from sag_bench.systems.base import System
from sag_bench.systems.singsong.checkpoint import SingSongBundle, hop_frames, load_bundle
from sag_bench.systems.singsong.config import STAGES
from sag_bench.systems.singsong.stages import stage_condition
from sag_bench.seeding import derive_seed
from sag_bench.systems.singsong.tokenizer import add_noise

PIPELINES = {"sc": ("semantic", "coarse"), "scf": ("semantic", "coarse", "fine")}


class SingSongSystem(System):
    """SingSong (Donahue et al. 2023) re-implemented as three decoder-only stages on semantic and codec tokens."""

    name = "singsong"
    extra_options = frozenset(f"{stage}_temperature" for stage in STAGES)

    def __init__(self, checkpoint: str | Path | None = None, stages: str = "scf", cache_kv: bool = True,
                 **options: Any) -> None:
        """``stages``: ``"sc"`` or ``"scf"``; ``cache_kv``: KV-cached decoding (off only to measure its speed-up).

        ``options`` may set per-stage sampling temperatures, e.g. ``coarse_temperature=0.85``.
        """
        if stages not in PIPELINES:
            raise UserError(f"singsong stages must be one of {', '.join(PIPELINES)}, not {stages!r}")
        unknown = sorted(set(options) - self.extra_options)
        if unknown:
            raise UserError(f"unknown singsong option(s) {', '.join(unknown)}")
        super().__init__(checkpoint, stages=stages, cache_kv=cache_kv, **options)
        self.stages = PIPELINES[stages]
        self.cache_kv = cache_kv
        self.bundle: SingSongBundle | None = None

    @classmethod
    def from_bundle(cls, bundle: SingSongBundle, stages: str = "scf", cache_kv: bool = True) -> "SingSongSystem":
        """A ready system around in-memory parts (benchmarks with random weights, tests)."""
        system = cls(stages=stages, cache_kv=cache_kv)
        system.bundle = bundle
        return system

    def load(self, device: str | torch.device = "cpu") -> None:
        """Read the checkpoint directory (config, tokenizer, the needed stages) onto ``device``."""
        super().load(device)
        if self.bundle is None:
            if self.checkpoint is None:
                raise UserError("singsong needs a checkpoint directory (--ckpt DIR); train one with "
                                "`sag-bench train singsong --stage semantic|coarse|fine --data DIR --out DIR`")
            self.bundle = load_bundle(self.checkpoint, self.stages)
        self.bundle.to(self.device)

    @property
    def codec(self) -> Codec | None:
        """The loaded codec (the reference path ``codec:N`` resynthesises through it), None before :meth:`load`."""
        return self.bundle.tokenizer.codec if self.bundle is not None else None

    def describe(self) -> dict[str, Any]:
        """Name, checkpoint, options, preset and backbones."""
        info = super().describe()
        if self.bundle is not None:
            info.update(preset=self.bundle.config.preset, backbones=self.bundle.tokenizer.describe())
        return info

    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        """Accompaniments ``[B, T]`` for vocals ``[B, T]`` at 24 kHz; deterministic given ``seed`` and, per clip, its
        id (its row when ``clip_ids`` is None): a clip's output does not depend on the other clips of the batch."""
        if self.bundle is None:
            raise RuntimeError("call load() before generate()")
        config, tokenizer, models = self.bundle.config, self.bundle.tokenizer, self.bundle.models
        vocals = vocals.to(self.device).float()
        num_samples = vocals.shape[-1]
        frames = tokenizer.num_frames(num_samples)
        keys = list(clip_ids) if clip_ids is not None else range(len(vocals))
        generator = [torch.Generator(self.device).manual_seed(derive_seed(seed, key)) for key in keys]
        with self.timer.stage("semantic"):
            noisy = torch.cat([add_noise(row[None], config.noise_sigma, g) for row, g in zip(vocals, generator)])
            vocal_ids = tokenizer.semantic_ids(noisy, frames)
        codes, generated = vocal_ids, []
        for stage in self.stages:
            with self.timer.stage(f"{stage}-stage"):
                condition = stage_condition(models[stage].layout, codes, vocal_ids)
                codes = models[stage].generate_windows(condition, hop_frames(config, tokenizer, stage), generator,
                                                       cache_kv=self.cache_kv,
                                                       temperature=self.options.get(f"{stage}_temperature"))
            if stage != "semantic":
                generated.append(codes)
        with self.timer.stage("codec-decode"):
            return tokenizer.decode(torch.cat(generated, dim=1), num_samples)
