"""FastSAG checkpoint formats. Ours: a dict with ``format``, ``system``, ``config`` (a :class:`FastSAGConfig` as data)
and ``model`` (state dict); training checkpoints hold the same keys under ``metadata`` next to optimizer state.
The authors' released ``fastsag.pt`` (a plain state dict in their key layout) is recognised and translated by
:mod:`sag_bench.systems.fastsag.authors_checkpoint`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sag_bench.errors import UserError
from sag_bench.systems.fastsag import authors_checkpoint as authors
from sag_bench.systems.fastsag.config import FastSAGConfig, Variant
from sag_bench.training import load_checkpoint, save_checkpoint

FORMAT = "sag-bench/fastsag/1"
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Contents:
    """What a checkpoint gives the system: config, model weights, which layout (``sag-bench`` or ``authors``) and
    the entries that were not loaded (group name -> tensor count; empty for ours)."""

    config: FastSAGConfig
    weights: dict[str, torch.Tensor]
    layout: str = "sag-bench"
    left_out: dict[str, int] = field(default_factory=dict)


def metadata(config: FastSAGConfig) -> dict[str, Any]:
    """What every FastSAG checkpoint records besides weights."""
    return {"format": FORMAT, "system": config.variant.name, "config": config.to_dict()}


def read(path: str | Path, variant: Variant, perceiver_heads: int = authors.PERCEIVER_HEADS) -> Contents:
    """Config and weights for ``variant`` from one of our weights-only or training checkpoints, or from the
    authors' ``fastsag.pt`` (sizes read from its tensors, ``perceiver_heads`` from their code as no shape holds it;
    entries left out are logged); one-line error otherwise."""
    try:
        state = load_checkpoint(path)
    except ValueError as error:
        raise UserError(str(error)) from None
    if authors.is_authors_layout(state):
        try:
            loaded = authors.translate(state, variant, str(path), perceiver_heads)
        except ValueError as error:
            raise UserError(str(error)) from None
        for group, count in loaded.left_out.items():
            LOG.warning("%s: not loaded from the authors' checkpoint: %s, %d tensors", path, group, count)
        return Contents(loaded.config, loaded.weights, "authors", loaded.left_out)
    meta = state.get("metadata", state) if isinstance(state, dict) else {}
    if meta.get("format") != FORMAT or "model" not in state:
        raise UserError(f"{path}: neither a sag-bench FastSAG checkpoint (format {FORMAT!r}) nor the authors' "
                        f"fastsag.pt (semantic_encoder.0.* / decoder.estimator.* keys)")
    config = FastSAGConfig.from_dict(meta["config"])
    if config.variant != variant:
        raise UserError(f"{path}: checkpoint is {config.variant.name}, but {variant.name} was asked for "
                        f"(use the system named {config.variant.name})")
    return Contents(config, state["model"])


def load_into(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load ``weights`` into ``model``; a one-line error unless they fill every tensor with the same shape."""
    ours = model.state_dict()
    missing, extra = sorted(set(ours) - set(weights)), sorted(set(weights) - set(ours))
    if missing or extra:
        raise UserError(f"{path}: weights do not fit the model (missing {missing[:3]}, unexpected {extra[:3]})")
    wrong = next((k for k in ours if ours[k].shape != weights[k].shape), None)
    if wrong is not None:
        raise UserError(f"{path}: {wrong} has shape {tuple(weights[wrong].shape)}, the model expects "
                        f"{tuple(ours[wrong].shape)}")
    model.load_state_dict(weights)


def export_weights(path: str | Path, config: FastSAGConfig, weights: dict[str, torch.Tensor], step: int) -> Path:
    """Write a weights-only checkpoint (config + state dict + step), atomically."""
    return save_checkpoint(path, {**metadata(config), "step": step,
                                  "model": {k: v.detach().cpu().clone() for k, v in weights.items()}})
