"""Shared training utilities: seeding, deterministic data order, atomic resumable checkpoints, loss curves, and one
generic Hugging Face ``accelerate`` loop (CPU, one GPU, several GPUs with DDP via ``accelerate launch``; bf16 optional).

Exact resumption. A run is a pure function of ``(seed, step)``:
  * data order: the global batch of step ``s`` is :func:`batch_indices` ``(n, batch, s, seed)`` (an epoch-wise
    seeded permutation), each process taking its ``rank::world`` share, so no sampler state needs saving;
  * randomness: before each step every generator (python, numpy, torch, CUDA) is reseeded from
    :func:`step_seed` ``(seed, step, rank)``; the checkpoint still records the generator states at save time
    (:func:`capture_rng_state`) and resuming restores them, so code that draws between steps also resumes exactly;
  * model, optimizer and step are saved atomically in one file (:func:`save_checkpoint`).
Interrupting at any checkpoint and resuming gives bit-identical weights to an uninterrupted run (tests check this).
"""

from __future__ import annotations

import contextlib
import csv
import io
import pickle
import random
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from sag_bench.seeding import derive_seed
from sag_bench.store import atomic_write_bytes, atomic_write_text

CHECKPOINT_NAME = "checkpoint.pt"
LOSS_CSV_NAME = "losses.csv"
LOSS_PNG_NAME = "losses.png"

LossFn = Callable[[torch.nn.Module, Any], Mapping[str, torch.Tensor]]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of one training step of one process: independent streams for each (run seed, step, rank)."""
    return derive_seed(seed, step, rank)


def capture_rng_state() -> dict[str, Any]:
    """The states of the python, numpy, torch CPU and (when present) CUDA generators."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore generator states captured by :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def batch_indices(num_items: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Dataset indices of the global batch of ``step``: consecutive slices of per-epoch seeded permutations.

    A pure function of its arguments, so the data order after a resume is the uninterrupted one.
    """
    if num_items <= 0:
        raise ValueError("cannot draw batches from an empty dataset")
    indices = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, num_items)
        indices.append(_epoch_order(num_items, seed, epoch)[offset])
    return indices


@lru_cache(maxsize=4)
def _epoch_order(num_items: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(step_seed(seed, epoch, rank=-1))
    return torch.randperm(num_items, generator=generator).tolist()


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Serialise ``state`` with ``torch.save`` and write it atomically (temp file, fsync, rename)."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; a missing or unreadable file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path}: not a readable checkpoint ({str(error).splitlines()[0]})") from None


class LossLog:
    """Per-step losses kept in memory and written as ``losses.csv`` plus a ``losses.png`` plot (one panel each)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.csv_path = Path(out_dir) / LOSS_CSV_NAME
        self.png_path = Path(out_dir) / LOSS_PNG_NAME
        self.rows: list[dict[str, float]] = []

    def load(self, up_to_step: int) -> None:
        """Read an existing CSV, keeping rows with ``step <= up_to_step`` (rows after a checkpoint are redone)."""
        if not self.csv_path.is_file():
            return
        with open(self.csv_path, newline="", encoding="utf-8") as handle:
            self.rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)
                         if int(float(row["step"])) <= up_to_step]

    def append(self, step: int, losses: Mapping[str, float]) -> None:
        """Record the losses of one step."""
        self.rows.append({"step": float(step), **{k: float(v) for k, v in losses.items()}})

    def names(self) -> list[str]:
        """Loss names in first-seen order (without ``step``)."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(k for k in row if k != "step"))
        return list(seen)

    def write(self) -> None:
        """Write the CSV and the PNG atomically."""
        names = self.names()
        lines = [",".join(["step", *names])]
        lines += [",".join([str(int(row["step"])), *(repr(row.get(n, float("nan"))) for n in names)])
                  for row in self.rows]
        atomic_write_text(self.csv_path, "\n".join(lines) + "\n")
        self._plot(names)

    def _plot(self, names: list[str]) -> None:
        from sag_bench.reporting.plots import pyplot, save_figure

        fig, axes = pyplot().subplots(len(names) or 1, 1, figsize=(7, 2.2 * max(len(names), 1)), squeeze=False)
        steps = np.array([row["step"] for row in self.rows])
        for axis, name in zip(axes[:, 0], names):
            values = np.array([row.get(name, np.nan) for row in self.rows])
            axis.plot(steps, values, lw=0.6, alpha=0.4, label="per step")
            window = max(1, len(values) // 20)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            axis.plot(steps[window - 1:], smooth, lw=1.5, label=f"mean of {window}")
            if np.all(values[np.isfinite(values)] > 0):
                axis.set_yscale("log")
            axis.set_ylabel(name)
            axis.legend(loc="upper right", fontsize=7)
        axes[-1, 0].set_xlabel("step")
        fig.tight_layout()
        save_figure(fig, self.png_path, dpi=110)


@dataclass(frozen=True)
class LoopSettings:
    """What the generic loop needs; systems fill it from their TOML presets."""

    steps: int
    batch_size: int
    lr: float
    seed: int = 0
    checkpoint_every: int = 100
    grad_clip: float | None = None
    mixed_precision: str = "no"  # "no" | "bf16"
    device: str | None = None  # None: accelerate's choice (GPU when present); "cpu" forces the CPU
    optimizer: str = "adam"  # "adam" (FastSAG) | "adamw" (SingSong / audiolm recipe)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear learning-rate warm-up from 0, then constant
    accumulate: int = 1  # micro-batches of ``batch_size`` per optimiser step (gradient accumulation)

    def __post_init__(self) -> None:
        if self.accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, not {self.accumulate}")


def make_optimizer(params: Iterable[torch.nn.Parameter], settings: LoopSettings) -> torch.optim.Optimizer:
    """The optimizer ``settings`` names, with its learning rate, betas and weight decay."""
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if settings.optimizer not in kinds:
        raise ValueError(f"optimizer must be one of {', '.join(kinds)}, not {settings.optimizer!r}")
    return kinds[settings.optimizer](params, lr=settings.lr, betas=tuple(settings.betas),
                                     weight_decay=settings.weight_decay)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Learning-rate multiplier at ``step``: linear from 1/warmup to 1 over ``warmup_steps``, then 1."""
    return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)


@dataclass
class TrainResult:
    """Where a finished run left its files, and its last logged losses."""

    checkpoint: Path
    loss_csv: Path
    loss_png: Path
    step: int
    last_losses: dict[str, float]
    main_process: bool = True


def make_accelerator(settings: LoopSettings) -> Any:
    """An ``accelerate.Accelerator`` for ``settings`` (DDP is picked up from ``accelerate launch``'s environment)."""
    from accelerate import Accelerator

    if settings.mixed_precision not in ("no", "bf16"):
        raise ValueError(f"mixed_precision must be 'no' or 'bf16', not {settings.mixed_precision!r}")
    if settings.device not in (None, "auto", "cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or auto, not {settings.device!r} "
                         "(pick GPUs with CUDA_VISIBLE_DEVICES or `accelerate launch`)")
    return Accelerator(cpu=settings.device == "cpu", mixed_precision=settings.mixed_precision)


def _collate(items: Sequence[Any]) -> Any:
    return torch.utils.data.default_collate(list(items))


def train_loop(model: torch.nn.Module, dataset: Sequence[Any], loss_fn: LossFn, settings: LoopSettings,
               out_dir: str | Path, resume: bool = False, metadata: Mapping[str, Any] | None = None,
               clip_groups: Sequence[Iterable[str]] | None = None,
               collate: Callable[[Sequence[Any]], Any] = _collate,
               on_checkpoint: Callable[[int, Mapping[str, torch.Tensor]], None] | None = None) -> TrainResult:
    """Train ``model`` for ``settings.steps`` steps and return where the results are.

    ``loss_fn(model, batch)`` returns named scalar losses including ``"loss"`` (the one optimised); every value is
    logged. ``batch`` is ``collate([dataset[i] ...])`` moved to the device. With ``settings.accumulate`` = k > 1
    each optimiser step fetches k * ``batch_size`` items first, then runs k micro-batches, each loss divided by k
    (the update of one batch of k * ``batch_size`` when the loss is a mean over equal items; logged losses are the
    micro-batch means). ``clip_groups`` lists groups of
    parameter-name prefixes whose gradient norms are clipped separately at ``settings.grad_clip``.
    ``metadata`` (e.g. the model config) is stored in every checkpoint. With ``resume`` the run continues from
    ``out_dir/checkpoint.pt`` exactly as if never interrupted; without it an existing checkpoint is an error.
    ``on_checkpoint(step, model_state)`` runs on the main process after each checkpoint (e.g. to keep snapshots).
    """
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if checkpoint_path.exists() and not resume:
        raise FileExistsError(f"{checkpoint_path}: a run already exists here (pass --resume to continue it)")
    seed_everything(settings.seed)
    accelerator = make_accelerator(settings)
    optimizer = make_optimizer(model.parameters(), settings)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_factor(step, settings.warmup_steps))
    log = LossLog(out_dir)
    start = 0
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = int(state["step"])
        restore_rng_state(state["rng"])
        log.load(up_to_step=start - 1)
    model, optimizer = accelerator.prepare(model, optimizer)
    groups = _parameter_groups(accelerator.unwrap_model(model), clip_groups)
    rank, world = accelerator.process_index, accelerator.num_processes
    last: dict[str, float] = {}

    def save(step: int) -> None:
        if accelerator.is_main_process:
            state = accelerator.unwrap_model(model).state_dict()
            save_checkpoint(checkpoint_path, {"model": state, "optimizer": optimizer.state_dict(),
                                              "scheduler": scheduler.state_dict(), "step": step,
                                              "rng": capture_rng_state(), "settings": asdict(settings),
                                              "metadata": dict(metadata or {})})
            log.write()
            if on_checkpoint is not None:
                on_checkpoint(step, state)
        accelerator.wait_for_everyone()

    model.train()
    progress = tqdm(range(start, settings.steps), initial=start, total=settings.steps, desc="train",
                    disable=not accelerator.is_local_main_process)
    for step in progress:
        seed_everything(step_seed(settings.seed, step, rank))
        indices = batch_indices(len(dataset), settings.batch_size * settings.accumulate * world, step,
                                settings.seed)[rank::world]
        items = [dataset[i] for i in indices]  # all drawn before any forward pass: same data for any accumulate
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        for micro in range(settings.accumulate):
            batch = _to_device(collate(items[micro * settings.batch_size: (micro + 1) * settings.batch_size]),
                               accelerator.device)
            last_micro = micro + 1 == settings.accumulate
            with contextlib.nullcontext() if last_micro else accelerator.no_sync(model):
                with accelerator.autocast():
                    losses = loss_fn(model, batch)
                accelerator.backward(losses["loss"] / settings.accumulate)
            for name, value in losses.items():
                totals[name] = totals.get(name, 0) + value.detach().float() / settings.accumulate
        if settings.grad_clip is not None:
            for params in groups:
                accelerator.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()
        scheduler.step()
        last = {name: float(accelerator.reduce(value, reduction="mean")) for name, value in totals.items()}
        log.append(step, last)
        progress.set_postfix({k: f"{v:.4g}" for k, v in last.items()})
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps:
            save(step + 1)
    if start >= settings.steps:
        log.write()
    return TrainResult(checkpoint_path, log.csv_path, log.png_path, max(start, settings.steps), last,
                       accelerator.is_main_process)


def _parameter_groups(model: torch.nn.Module, clip_groups: Sequence[Iterable[str]] | None) -> list[list[torch.nn.Parameter]]:
    if clip_groups is None:
        return [list(model.parameters())]
    named = dict(model.named_parameters())
    groups = []
    for prefixes in clip_groups:
        prefixes = tuple(prefixes)
        params = [p for name, p in named.items() if name.startswith(prefixes)]
        if not params:
            raise ValueError(f"no parameters start with any of {prefixes}")
        groups.append(params)
    return groups


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch
