"""A small, randomly initialised HTDemucs: the real demucs code path without pretrained weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sag_bench.backbones.separator import DemucsSeparator

# A random HTDemucs's stems come out ~30 dB below its input; this gain on both branches' last transposed
# convolutions (linear up to the output) lifts them over the -25 dB clip filter.
OUTPUT_GAIN = 10.0


def small_htdemucs(seed: int = 0, output_gain: float = OUTPUT_GAIN) -> torch.nn.Module:
    """HTDemucs with the four MUSDB sources at 44.1 kHz, ~26 k parameters, 2 s segments (fast on one CPU thread)."""
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], samplerate=44_100, segment=2, channels=4,
                     depth=3, nfft=2048, t_layers=1, t_heads=1, dconv_depth=1, dconv_comp=2)
    with torch.no_grad():
        for last in (model.decoder[-1].conv_tr, model.tdecoder[-1].conv_tr):
            last.weight.mul_(output_gain)
            last.bias.mul_(output_gain)
    return model


def small_separator(seed: int = 0) -> DemucsSeparator:
    """A :class:`DemucsSeparator` around :func:`small_htdemucs`."""
    return DemucsSeparator(model="small-random-htdemucs", model_obj=small_htdemucs(seed), seed=seed)


def hide_pretrained_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the torch hub and Hugging Face caches at empty folders; returns the torch hub folder."""
    import huggingface_hub.constants

    hub = tmp_path / "torch_hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return hub


def synthetic_song(seconds: float, seed: int) -> np.ndarray:
    """A stereo 'song' at 44.1 kHz: a stepping sine melody over noise bursts on every beat."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 44_100)) / 44_100
    steps = rng.integers(0, 12, size=len(t) // 22_050 + 1)[(t * 2).astype(int)]  # a new note every 0.5 s
    melody = 0.3 * np.sin(2 * np.pi * 220 * 2 ** (steps / 12) * t)
    beats = 0.2 * rng.standard_normal(len(t)) * np.exp(-8 * (t % 0.5))
    return np.stack([melody + beats, melody - beats], axis=1).astype(np.float32)
