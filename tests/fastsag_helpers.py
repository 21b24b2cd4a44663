"""Shared pieces of the FastSAG tests: a micro configuration, a synthetic clip dataset, a random checkpoint."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sag_bench.audio import SAMPLE_RATE, save_audio
from sag_bench.datasets.manifest import write_manifest
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


def synthetic_dataset(root: Path, clips: int = 3, seconds: float = 3.0) -> Path:
    """A dataset folder of sung-like tones (vocals) over a chord (accompaniment), all in split ``train``."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    records = []
    for i in range(clips):
        root_hz = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        vocals = 0.3 * np.sin(2 * np.pi * 4 * root_hz * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
        accompaniment = sum(0.15 * np.sin(2 * np.pi * root_hz * r * t) for r in (1.0, 1.26, 1.5))
        for role, audio in (("vocals", vocals), ("acc", accompaniment)):
            save_audio(root / "clips" / f"c{i}.{role}.wav", audio.astype(np.float32))
        records.append({"id": f"c{i}", "song": f"s{i}", "split": "train", "offset_seconds": 0.0,
                        "vocals": f"clips/c{i}.vocals.wav", "accompaniment": f"clips/c{i}.acc.wav"})
    write_manifest(root, "synthetic", records, options={})
    return root
