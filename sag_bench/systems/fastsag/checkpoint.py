"""FastSAG checkpoint format: a dict with ``format``, ``system``, ``config`` (a :class:`FastSAGConfig` as data) and
``model`` (state dict). Training checkpoints hold the same keys under ``metadata`` next to optimizer state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sag_bench.errors import UserError
from sag_bench.systems.fastsag.config import FastSAGConfig
from sag_bench.training import load_checkpoint, save_checkpoint

FORMAT = "sag-bench/fastsag/1"


def metadata(config: FastSAGConfig) -> dict[str, Any]:
    """What every FastSAG checkpoint records besides weights."""
    return {"format": FORMAT, "system": config.variant.name, "config": config.to_dict()}


def read(path: str | Path) -> tuple[FastSAGConfig, dict[str, torch.Tensor]]:
    """Config and model weights from a weights-only or a training checkpoint; one-line error for anything else."""
    try:
        state = load_checkpoint(path)
    except ValueError as error:
        raise UserError(str(error)) from None
    meta = state.get("metadata", state) if isinstance(state, dict) else {}
    if meta.get("format") != FORMAT or "model" not in state:
        raise UserError(f"{path}: not a FastSAG checkpoint (expected format {FORMAT!r})")
    return FastSAGConfig.from_dict(meta["config"]), state["model"]


def export_weights(path: str | Path, config: FastSAGConfig, weights: dict[str, torch.Tensor], step: int) -> Path:
    """Write a weights-only checkpoint (config + state dict + step), atomically."""
    return save_checkpoint(path, {**metadata(config), "step": step,
                                  "model": {k: v.detach().cpu().clone() for k, v in weights.items()}})
