"""The trainer role of the plugin contract, and the built-in trainers.

A system's registry entry names its trainer (``Entry.trainer = "module:function"``); ``sag-bench train NAME`` calls
it with a :class:`TrainRequest` and prints the lines it returns. Family-specific settings arrive in
``request.options`` (``mixed_precision`` for FastSAG, ``stage`` for SingSong); a trainer rejects the ones it does not
take with a :class:`~sag_bench.errors.UserError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sag_bench.errors import UserError


@dataclass(frozen=True)
class TrainRequest:
    """What ``sag-bench train`` asks of a trainer."""

    system: str
    data: Path
    out: Path
    preset: str = "tiny"
    steps: int | None = None
    resume: bool = False
    seed: int = 0
    device: str | None = None  # None: a GPU when present
    options: dict[str, Any] = field(default_factory=dict)


def _reject(request: TrainRequest, allowed: tuple[str, ...], family: str) -> None:
    extra = sorted(set(request.options) - set(allowed))
    if extra:
        raise UserError(f"{', '.join(extra)} does not apply to {request.system} ({family} takes: "
                        f"{', '.join(allowed) or 'no extra settings'})")


def train_fastsag(request: TrainRequest) -> list[str]:
    """Train a FastSAG variant (all blocks jointly)."""
    from sag_bench.systems.fastsag.train import train

    _reject(request, ("mixed_precision",), "fastsag")
    result = train(request.system, request.data, request.out, preset=request.preset, steps=request.steps,
                   resume=request.resume, seed=request.seed, device=request.device,
                   mixed_precision=request.options.get("mixed_precision"))
    if not result.main_process:
        return []
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.last_losses.items())
    return [f"trained {request.system} to step {result.step}: {losses or 'nothing left to do'}",
            f"weights: {result.checkpoint.parent / (request.system + '.pt')}  losses: {result.loss_csv}, "
            f"{result.loss_png}"]


def train_singsong(request: TrainRequest) -> list[str]:
    """Train SingSong's stages in order (one with ``options["stage"]``); the folder serves singsong-sc and -scf."""
    from sag_bench.systems.singsong.config import STAGES
    from sag_bench.systems.singsong.train import train

    _reject(request, ("stage",), "singsong")
    stage = request.options.get("stage")
    device = {"device": request.device} if request.device else {}
    lines = []
    for name in [stage] if stage else list(STAGES):
        out = train(request.data, request.out, request.preset, name, steps=request.steps, resume=request.resume,
                    seed=request.seed, **device)
        lines.append(f"trained singsong stage {name}: {out}")
    return lines
