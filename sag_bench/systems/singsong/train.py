"""Training one SingSong stage: fit (or reuse) the tokenizer, tokenize the clips once, train on random windows.

All three stages share one output directory, which becomes the checkpoint (see ``checkpoint.py``)::

    sag-bench train singsong --stage semantic --data DIR --out CKPT --preset tiny
    sag-bench train singsong --stage coarse   --data DIR --out CKPT --preset tiny
    sag-bench train singsong --stage fine     --data DIR --out CKPT --preset tiny

The loop is :func:`sag_bench.training.train_loop` (accelerate, exact resume, ``losses.csv`` + ``losses.png`` under
``CKPT/runs/<stage>/``); the finished stage's weights are exported to ``CKPT/<stage>.pt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sag_bench.errors import UserError
from sag_bench.datasets.manifest import ClipDataset, ClipRecord, DatasetError
from sag_bench.store import sha256_file
from sag_bench.systems.singsong.checkpoint import (CONFIG_FILE, build_stage, load_config, save_config, save_stage,
                                                   window_frames)
from sag_bench.systems.singsong.config import N_COARSE, STAGES, SingSongConfig, load_preset
from sag_bench.systems.singsong.layout import StageLayout
from sag_bench.systems.singsong.stages import stage_condition
from sag_bench.systems.singsong.tokenizer import (TOKENIZER_FILE, SingSongTokenizer, add_noise, fit_tokenizer,
                                                  load_tokenizer)
from sag_bench.seeding import derive_seed
from sag_bench.training import LoopSettings, load_checkpoint, save_checkpoint, train_loop

TOKENS_FILE = "tokens.pt"
RUNS_DIR = "runs"
# The split trained on when the manifest has one; otherwise every clip is used.
TRAIN_SPLIT = "train"


class _AudioList(Sequence):
    """One role (vocals or accompaniment) of dataset clips, loaded on access as ``[T]`` tensors."""

    def __init__(self, dataset: ClipDataset, records: list[ClipRecord], role: str) -> None:
        self.dataset, self.records, self.role = dataset, records, role

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> torch.Tensor:
        pair = self.dataset.load(self.records[index])
        return torch.from_numpy(getattr(pair, self.role))


class WindowDataset(Sequence):
    """Item ``i``: a random fixed-length window (condition, target) of clip ``i``'s tokens for one stage.

    The window start is drawn from torch's global generator, which the training loop reseeds every step.
    """

    def __init__(self, tokens: dict[str, list[torch.Tensor]], stage: str, window: int,
                 layout: StageLayout | None = None) -> None:
        streams = {"semantic": ("vocal", "semantic"), "coarse": ("semantic", "coarse"), "fine": ("coarse", "fine")}
        self.condition, self.target = (tokens[name] for name in streams[stage])
        if layout is not None:  # coarse "semantic+vocal": the vocal ids join the condition as a second codebook
            self.condition = [stage_condition(layout, c[None], v[None])[0]
                              for c, v in zip(self.condition, tokens["vocal"])]
        self.window = window
        short = [i for i, codes in enumerate(self.target) if codes.shape[-1] < window]
        if short:
            raise UserError(f"{len(short)} training clip(s) are shorter than the {window}-frame window of this preset")

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frames = self.target[index].shape[-1]
        start = int(torch.randint(frames - self.window + 1, (1,)))
        cut = slice(start, start + self.window)
        return {"condition": self.condition[index][:, cut].long(), "target": self.target[index][:, cut].long()}


def _stage_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"loss": model(batch["condition"], batch["target"])}


def _config_for(out_dir: Path, preset: str) -> SingSongConfig:
    """The checkpoint's config, written from ``preset`` on first use; a different preset is an error."""
    if (out_dir / CONFIG_FILE).is_file():
        config = load_config(out_dir)
        if config.preset != preset:
            raise UserError(f"{out_dir} holds a SingSong checkpoint of preset {config.preset!r}, not {preset!r}")
        return config
    config = load_preset(preset)
    save_config(out_dir, config)
    return config


def _training_records(dataset: ClipDataset) -> list[ClipRecord]:
    records = dataset.records(TRAIN_SPLIT) if TRAIN_SPLIT in dataset.splits() else dataset.records()
    if not records:
        raise DatasetError(f"{dataset.root}: no training clips")
    return records


def _tokenizer_for(out_dir: Path, config: SingSongConfig, dataset: ClipDataset, records: list[ClipRecord],
                   seed: int) -> SingSongTokenizer:
    if (out_dir / TOKENIZER_FILE).is_file():
        return load_tokenizer(out_dir, config)
    tokenizer = fit_tokenizer(config, _AudioList(dataset, records, "vocals"),
                              _AudioList(dataset, records, "accompaniment"), seed=seed)
    tokenizer.save(out_dir)
    return tokenizer


def tokenize_clips(tokenizer: SingSongTokenizer, config: SingSongConfig, dataset: ClipDataset,
                   records: list[ClipRecord], seed: int) -> dict[str, list[torch.Tensor]]:
    """Per clip: noisy-vocal semantic ids, accompaniment semantic ids ``[1, F]``, coarse ``[3, F]``, fine ``[5, F]``.

    The vocal noise (``config.noise_sigma``) is drawn once per clip from a generator seeded by (seed, clip index).
    """
    tokens: dict[str, list[torch.Tensor]] = {"vocal": [], "semantic": [], "coarse": [], "fine": []}
    with torch.inference_mode():
        for index, record in enumerate(tqdm(records, desc="tokenize clips")):
            pair = dataset.load(record)
            vocals = torch.from_numpy(pair.vocals)[None]
            accompaniment = torch.from_numpy(pair.accompaniment)[None]
            codes = tokenizer.codes(accompaniment)[0]
            frames = codes.shape[-1]
            noise = torch.Generator().manual_seed(derive_seed(seed, index, -2))
            noisy = add_noise(vocals, config.noise_sigma, noise)
            tokens["vocal"].append(tokenizer.semantic_ids(noisy, frames)[0].short().cpu())
            tokens["semantic"].append(tokenizer.semantic_ids(accompaniment, frames)[0].short().cpu())
            tokens["coarse"].append(codes[:N_COARSE].short().cpu())
            tokens["fine"].append(codes[N_COARSE:].short().cpu())
    return tokens


def _cached_tokens(out_dir: Path, tokenizer: SingSongTokenizer, config: SingSongConfig, dataset: ClipDataset,
                   records: list[ClipRecord], seed: int) -> dict[str, list[torch.Tensor]]:
    """Tokens of the training clips, cached in ``out_dir/tokens.pt`` keyed by manifest, tokenizer and seed."""
    key = {"manifest": sha256_file(dataset.root / "manifest.json"), "tokenizer": sha256_file(out_dir / TOKENIZER_FILE),
           "clips": [r.id for r in records], "seed": seed}
    path = out_dir / TOKENS_FILE
    if path.is_file():
        cached = load_checkpoint(path)
        if cached["key"] == key:
            return cached["tokens"]
    tokens = tokenize_clips(tokenizer, config, dataset, records, seed)
    save_checkpoint(path, {"key": key, "tokens": tokens})
    return tokens


def train(data_dir: Path, out_dir: Path, preset: str, stage: str, steps: int | None = None, resume: bool = False,
          seed: int = 0, device: str | None = None) -> Path:
    """Train SingSong stage ``stage`` on the clips in ``data_dir``; returns the checkpoint directory ``out_dir``.

    The first stage trained in ``out_dir`` fits the tokenizer on the training clips and writes ``config.json`` and
    ``tokenizer.pt``; later stages reuse them. ``steps`` overrides the preset's step count; ``resume`` continues an
    interrupted run exactly. ``device``: ``cpu``, ``cuda`` or None (a GPU when present). Losses:
    ``out_dir/runs/<stage>/losses.{csv,png}``; weights: ``out_dir/<stage>.pt``.
    """
    if stage not in STAGES:
        raise UserError(f"unknown SingSong stage {stage!r}; stages are {', '.join(STAGES)}")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    dataset = ClipDataset(data_dir)
    records = _training_records(dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = _config_for(out_dir, preset)
    torch.manual_seed(seed)
    tokenizer = _tokenizer_for(out_dir, config, dataset, records, seed)
    use_gpu = device != "cpu" and torch.cuda.is_available()
    tokenizer.to("cuda" if use_gpu else "cpu")
    tokens = _cached_tokens(out_dir, tokenizer, config, dataset, records, seed)
    model = build_stage(config, tokenizer, stage)
    stage_config = config.stage(stage)
    settings = LoopSettings(steps=steps or stage_config.steps, batch_size=stage_config.batch_size, lr=stage_config.lr,
                            seed=seed, checkpoint_every=stage_config.checkpoint_every,
                            grad_clip=stage_config.grad_clip, device=device, optimizer=stage_config.optimizer,
                            betas=stage_config.betas, weight_decay=stage_config.weight_decay,
                            warmup_steps=stage_config.warmup_steps)
    run_dir = out_dir / RUNS_DIR / stage
    metadata: dict[str, Any] = {"config": config.to_dict(), "stage": stage, "data": str(data_dir)}
    try:
        result = train_loop(model, WindowDataset(tokens, stage, window_frames(config, tokenizer, stage), model.layout), _stage_loss,
                            settings, run_dir, resume=resume, metadata=metadata)
    except FileExistsError as error:
        raise UserError(str(error)) from None
    model.load_state_dict(load_checkpoint(result.checkpoint)["model"])
    save_stage(out_dir, stage, model)
    return out_dir
