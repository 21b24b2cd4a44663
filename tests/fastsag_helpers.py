"""Shared pieces of the FastSAG tests: a micro configuration and a random checkpoint."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from sag_bench.systems.fastsag import checkpoint as ckpt
from sag_bench.systems.fastsag.config import VARIANTS, FastSAGConfig, load_preset
from sag_bench.systems.fastsag.model import FastSAGModel

MICRO_WINDOW = 15360  # 0.64 s: 60 mel frames (padded to 64), 47 semantic frames


def micro_config(name: str = "fastsag") -> FastSAGConfig:
    """The tiny preset on a 0.64 s window: the same blocks and backbones, fast enough for unit tests."""
    config = load_preset("tiny", VARIANTS[name])
    return replace(config, model=replace(config.model, window_samples=MICRO_WINDOW, mel_frames=60, padded_frames=64))


def random_checkpoint(path: Path, name: str = "fastsag", seed: int = 0) -> Path:
    """A weights-only checkpoint of a randomly initialised micro model."""
    config = micro_config(name)
    torch.manual_seed(seed)
    return ckpt.export_weights(path, config, FastSAGModel(config).state_dict(), step=0)
