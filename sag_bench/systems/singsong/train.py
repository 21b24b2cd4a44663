"""Training one SingSong stage: fit (or reuse) the tokenizer, tokenize the accompaniments once, train on random
windows whose vocal ids get fresh noise at every step (:class:`NoisyVocalIds`).

All three stages share one output directory, which becomes the checkpoint (see ``checkpoint.py``)::

    sag-bench train singsong --stage semantic --data DIR --out CKPT --preset tiny
    sag-bench train singsong --stage coarse   --data DIR --out CKPT --preset tiny
    sag-bench train singsong --stage fine     --data DIR --out CKPT --preset tiny

The loop is :func:`sag_bench.training.train_loop` (accelerate, exact resume, ``losses.csv`` + ``losses.png`` under
``CKPT/runs/<stage>/``); the finished stage's weights are exported to ``CKPT/<stage>.pt``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


class NoisyVocalIds:
    """Semantic ids of one training window's vocals, with SingSong's vocal noise drawn fresh at every step.

    SingSong (section 3.4, "Noisy / S-SA") adds white noise N(0, ``sigma``^2) to the vocals *before* the semantic
    tokenizer. Noise that is new at each step therefore cannot be cached as tokens (the k-means ids of noisy
    features are not a cheap function of clean ones), so this computes them per item and step: the window's vocal
    audio plus ``context_frames`` frames on each side (clipped to the clip) gets fresh noise, goes through the
    semantic encoder and the k-means, and the context frames are cut off again, so encoders with a limited receptive
    field (the DSP stand-in: +-3.2 frames) see what they would see in the whole noisy clip. Only the clean vocals are
    kept (in memory, loaded once). Cost per step: one encoder pass over ``batch x (window + 2 x context)`` of audio
    (tiny preset: 8 x 3 s through the DSP encoder, about 35 ms on one CPU thread, so the tiny semantic stage trains
    at about 0.8x the speed it had with ids tokenized once per clip, see ``bench/training_throughput.py``; paper
    preset: one MERT-v1-95M forward over 24 x 10 s clips per step, no gradients). Stages that do not condition on
    the vocals (coarse by default, fine) never pay it.

    The noise of clip ``i`` comes from a generator seeded by ``derive_seed(torch.initial_seed(), i)``; the training
    loop reseeds torch from ``(seed, step, rank)`` before each step, so the noise is a pure function of
    (seed, step, rank, clip) and runs (and resumes) stay reproducible.
    """

    def __init__(self, tokenizer: SingSongTokenizer, vocals: Sequence[torch.Tensor], sigma: float,
                 context_frames: int) -> None:
        self.tokenizer, self.vocals, self.sigma, self.context = tokenizer, vocals, sigma, context_frames

    def noisy_audio(self, index: int, first: int, last: int) -> torch.Tensor:
        """Clip ``index``'s vocal samples of frames ``[first, last)`` ``[1, T]`` with this step's noise added."""
        hop = self.tokenizer.hop
        clean = self.vocals[index][first * hop: last * hop][None]
        generator = torch.Generator().manual_seed(derive_seed(torch.initial_seed(), index))
        return add_noise(clean, self.sigma, generator)

    @torch.no_grad()
    def __call__(self, index: int, start: int, frames: int) -> torch.Tensor:
        """Ids ``[1, frames]`` of frames ``[start, start + frames)`` of clip ``index``'s noisy vocals."""
        total = self.tokenizer.num_frames(len(self.vocals[index]))
        first, last = max(0, start - self.context), min(total, start + frames + self.context)
        audio = self.noisy_audio(index, first, last).to(self.tokenizer.centroids.device)
        ids = self.tokenizer.semantic_ids(audio, last - first)[0]
        return ids[:, start - first: start - first + frames].cpu()


VocalIds = Callable[[int, int, int], torch.Tensor]


class WindowDataset(Sequence):
    """Item ``i``: a random fixed-length window (condition, target) of clip ``i``'s tokens for one stage.

    ``tokens`` holds the accompaniment's cached streams (``semantic``, ``coarse``, ``fine``); the vocal semantic ids
    of the window (semantic stage; coarse ``semantic+vocal``) come from ``vocal_ids(clip, start, frames)``
    (:class:`NoisyVocalIds`: fresh noise each step). The window start is drawn from torch's global generator,
    which the training loop reseeds every step.
    """

    def __init__(self, tokens: dict[str, list[torch.Tensor]], stage: str, window: int,
                 layout: StageLayout | None = None, vocal_ids: VocalIds | None = None) -> None:
        previous = {"semantic": None, "coarse": "semantic", "fine": "coarse"}[stage]
        self.previous = tokens[previous] if previous else None
        self.target = tokens[stage]
        self.layout, self.window, self.vocal_ids = layout, window, vocal_ids
        if needs_vocal_ids(stage, layout) and vocal_ids is None:
            raise ValueError(f"the {stage} stage's condition needs vocal ids")
        short = [i for i, codes in enumerate(self.target) if codes.shape[-1] < window]
        if short:
            raise UserError(f"{len(short)} training clip(s) are shorter than the {window}-frame window of this preset")

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frames = self.target[index].shape[-1]
        start = int(torch.randint(frames - self.window + 1, (1,)))
        cut = slice(start, start + self.window)
        if self.previous is None:
            condition = self.vocal_ids(index, start, self.window)
        elif self.layout is not None and self.layout.condition.name == "semantic+vocal":
            condition = stage_condition(self.layout, self.previous[index][None, :, cut],
                                        self.vocal_ids(index, start, self.window)[None])[0]
        else:
            condition = self.previous[index][:, cut]
        return {"condition": condition.long(), "target": self.target[index][:, cut].long()}


def needs_vocal_ids(stage: str, layout: StageLayout | None) -> bool:
    """Whether ``stage`` is conditioned on the vocals' semantic ids (semantic; coarse ``semantic+vocal``)."""
    return stage == "semantic" or (layout is not None and layout.condition.name == "semantic+vocal")


def stage_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The training loop's loss of one stage: the model's mean cross-entropy on the window's target tokens."""
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


def tokenize_clips(tokenizer: SingSongTokenizer, dataset: ClipDataset,
                   records: list[ClipRecord]) -> dict[str, list[torch.Tensor]]:
    """Per clip, of the accompaniment: semantic ids ``[1, F]``, coarse codes ``[3, F]``, fine codes ``[5, F]``.

    These are deterministic, so they are computed once and cached; the noisy vocal ids are drawn per step
    (:class:`NoisyVocalIds`).
    """
    tokens: dict[str, list[torch.Tensor]] = {"semantic": [], "coarse": [], "fine": []}
    with torch.inference_mode():
        for record in tqdm(records, desc="tokenize clips"):
            accompaniment = torch.from_numpy(dataset.load(record).accompaniment)[None]
            accompaniment = accompaniment.to(tokenizer.centroids.device)
            codes = tokenizer.codes(accompaniment)[0]
            tokens["semantic"].append(tokenizer.semantic_ids(accompaniment, codes.shape[-1])[0].short().cpu())
            tokens["coarse"].append(codes[:N_COARSE].short().cpu())
            tokens["fine"].append(codes[N_COARSE:].short().cpu())
    return tokens


def _cached_tokens(out_dir: Path, tokenizer: SingSongTokenizer, dataset: ClipDataset,
                   records: list[ClipRecord]) -> dict[str, list[torch.Tensor]]:
    """Accompaniment tokens of the training clips, cached in ``out_dir/tokens.pt`` keyed by the manifest (which
    holds every clip's sha256) and the tokenizer's content hash, written atomically."""
    key = {"manifest": sha256_file(dataset.root / "manifest.json"), "tokenizer": sha256_file(out_dir / TOKENIZER_FILE),
           "clips": [r.id for r in records]}
    path = out_dir / TOKENS_FILE
    if path.is_file():
        cached = load_checkpoint(path)
        if cached["key"] == key:
            return cached["tokens"]
    tokens = tokenize_clips(tokenizer, dataset, records)
    save_checkpoint(path, {"key": key, "tokens": tokens})
    return tokens


def stage_windows(config: SingSongConfig, tokenizer: SingSongTokenizer, stage: str, layout: StageLayout,
                  tokens: dict[str, list[torch.Tensor]], vocals: Sequence[torch.Tensor]) -> WindowDataset:
    """The training windows of ``stage``, with per-step noisy vocal ids when the stage is conditioned on them."""
    vocal_ids = None
    if needs_vocal_ids(stage, layout):
        context = round(config.vocal_context_seconds * tokenizer.codec.frame_rate)
        vocal_ids = NoisyVocalIds(tokenizer, vocals, config.noise_sigma, context)
    return WindowDataset(tokens, stage, window_frames(config, tokenizer, stage), layout, vocal_ids)


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
    tokens = _cached_tokens(out_dir, tokenizer, dataset, records)
    model = build_stage(config, tokenizer, stage)
    vocals = list(_AudioList(dataset, records, "vocals")) if needs_vocal_ids(stage, model.layout) else []
    stage_config = config.stage(stage)
    settings = LoopSettings(steps=steps or stage_config.steps, batch_size=stage_config.batch_size, lr=stage_config.lr,
                            seed=seed, checkpoint_every=stage_config.checkpoint_every,
                            grad_clip=stage_config.grad_clip, device=device, optimizer=stage_config.optimizer,
                            betas=stage_config.betas, weight_decay=stage_config.weight_decay,
                            warmup_steps=stage_config.warmup_steps, accumulate=stage_config.accumulate)
    run_dir = out_dir / RUNS_DIR / stage
    metadata: dict[str, Any] = {"config": config.to_dict(), "stage": stage, "data": str(data_dir)}
    try:
        result = train_loop(model, stage_windows(config, tokenizer, stage, model.layout, tokens, vocals), stage_loss,
                            settings, run_dir, resume=resume, metadata=metadata)
    except FileExistsError as error:
        raise UserError(str(error)) from None
    model.load_state_dict(load_checkpoint(result.checkpoint)["model"])
    save_stage(out_dir, stage, model)
    return out_dir
