"""Helpers shared by the backbone tests: synthetic tones and an empty Hugging Face cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SR = 24_000


def sine(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    """A ``[T]`` sine at 24 kHz."""
    t = torch.arange(int(SR * seconds)) / SR
    return amplitude * torch.sin(2 * torch.pi * freq * t)


def use_empty_hub_cache(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Point huggingface_hub and transformers at an empty cache, so real loaders fail even where weights exist."""
    import huggingface_hub.constants
    import transformers.utils.hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(folder))
