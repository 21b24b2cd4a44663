"""Training throughput: steps per second with the deterministic features computed every step (before) and read from
the per-clip caches (after), for FastSAG tiny and each SingSong tiny stage, measured in one run, with the losses
after the same steps.

FastSAG (``fastsag``, tiny preset), three paths on the same model, seed and data:
  * ``window/step``: the previous code: the accompaniment windows' mel and semantic features computed every step;
  * ``clip/step``:   the cache's values computed every step instead of read (``FeatureClips(cache=None)``); its
    losses must equal the cached path's exactly;
  * ``cached``:      target features read from the content-hash cache (filled once beforehand, timed apart).
  The noisy vocals' features are computed every step on every path (the augmentation is drawn per step).
SingSong (tiny preset, the committed tiny tokenizer): ``tokens/step`` tokenizes the accompaniment streams a window
needs at every access, ``cached`` reads the tokens computed once; the semantic stage computes its noisy vocal ids
every step on both paths (fresh noise per step, see ``NoisyVocalIds``). Its third path, ``fixed noise``, is the
previous code (vocal ids tokenized once per clip with the noise drawn once): the price of fresh noise per step.

Steps/s are timed from the first loss call after ``--warmup`` steps to the last one. One thread, CPU.

    .venv/bin/python bench/training_throughput.py                 # builds the tiny chorales set in a temp folder
    .venv/bin/python bench/training_throughput.py --data DIR --steps 30
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch

from sag_bench import registry
from sag_bench.audio import rescale_for_features
from sag_bench.datasets import chorales
from sag_bench.datasets.manifest import ClipDataset
from sag_bench.seeding import derive_seed
from sag_bench.store import ContentCache
from sag_bench.systems.fastsag.config import VARIANTS, load_preset as fastsag_preset
from sag_bench.systems.fastsag.features import Features
from sag_bench.systems.fastsag.model import FastSAGModel
from sag_bench.systems.fastsag.train import CLIPPED_BLOCKS, ClipPairs, FastSAGLoss, FeatureClips, crop
from sag_bench.systems.singsong.checkpoint import build_stage, load_config, window_frames
from sag_bench.systems.singsong.config import N_COARSE, STAGES
from sag_bench.systems.singsong.tokenizer import SingSongTokenizer, add_noise, load_tokenizer
from sag_bench.systems.singsong.train import (WindowDataset, needs_vocal_ids, stage_loss, stage_windows,
                                              tokenize_clips)
from sag_bench.training import LoopSettings, train_loop

LossFn = Callable[[torch.nn.Module, Any], dict[str, torch.Tensor]]


class Timed:
    """A loss function that records when each call starts (one call per training step)."""

    def __init__(self, loss_fn: LossFn) -> None:
        self.loss_fn, self.starts = loss_fn, []

    def __call__(self, model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        self.starts.append(time.perf_counter())
        return self.loss_fn(model, batch)

    def steps_per_second(self, warmup: int) -> float:
        timed = self.starts[warmup:]
        return (len(timed) - 1) / (timed[-1] - timed[0])


class PerWindowTargets(FastSAGLoss):
    """The previous code's path: target features of each step's accompaniment windows, computed every step."""

    def targets(self, batch: dict[str, torch.Tensor], starts: list[int]) -> dict[str, torch.Tensor]:
        rescaled = rescale_for_features(crop(batch["accompaniment"], starts, self.config.model.window_samples, -1))
        targets = {"mel": self.features.mel(rescaled)}
        if self.config.variant.uses_semantic:
            targets["semantic"] = self.features.semantic(rescaled)
        return targets


class PerAccessTokens(Sequence):
    """One accompaniment stream (semantic / coarse / fine) of every clip, tokenized again at each access; the
    last clip's tokens are kept so that one window (which reads its clip twice) tokenizes once."""

    def __init__(self, tokenizer: SingSongTokenizer, accompaniments: list[torch.Tensor], stream: str) -> None:
        self.tokenizer, self.accompaniments, self.stream = tokenizer, accompaniments, stream
        self.last: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.accompaniments)

    @torch.no_grad()
    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        if self.last is None or self.last[0] != index:
            audio = self.accompaniments[index][None]
            if self.stream == "semantic":
                tokens = self.tokenizer.semantic_ids(audio, self.tokenizer.num_frames(audio.shape[-1]))[0]
            else:
                codes = self.tokenizer.codes(audio)[0]
                tokens = codes[:N_COARSE] if self.stream == "coarse" else codes[N_COARSE:]
            self.last = (index, tokens)
        return self.last[1]


@torch.no_grad()
def fixed_noise_vocal_ids(tokenizer: SingSongTokenizer, vocals: list[torch.Tensor], sigma: float,
                          seed: int = 0) -> Callable[[int, int, int], torch.Tensor]:
    """The previous code's vocal ids: each clip tokenized once, with its noise drawn once (seeded per clip)."""
    ids = [tokenizer.semantic_ids(add_noise(clip[None], sigma, torch.Generator().manual_seed(derive_seed(seed, i, -2))),
                                  tokenizer.num_frames(len(clip)))[0] for i, clip in enumerate(vocals)]
    return lambda clip, start, frames: ids[clip][:, start: start + frames]


def run(model_fn: Callable[[], torch.nn.Module], dataset: Sequence, loss_fn: LossFn, settings: LoopSettings,
        out_dir: Path, warmup: int, clip_groups: Any = None) -> tuple[float, float]:
    """Steps/s and the last step's loss of one training run."""
    timed = Timed(loss_fn)
    with open(train_loop(model_fn(), dataset, timed, settings, out_dir, clip_groups=clip_groups).loss_csv) as handle:
        last_loss = float(list(csv.DictReader(handle))[-1]["loss"])
    return timed.steps_per_second(warmup), last_loss


def report(name: str, results: dict[str, tuple[float, float]], extra: str = "") -> None:
    """One line per path: steps/s, ratio to the first (baseline) path, loss after the same steps."""
    base = next(iter(results.values()))[0]
    for path, (rate, loss) in results.items():
        print(f"{name:16s} {path:12s} {rate:8.2f} steps/s  x{rate / base:5.2f}  loss {loss:.6f}")
    if extra:
        print(f"{'':16s} {extra}")


def bench_fastsag(data: ClipDataset, steps: int, warmup: int, work: Path) -> None:
    """FastSAG tiny: window features per step vs clip features per step vs the cache."""
    config = fastsag_preset("tiny", VARIANTS["fastsag"])
    features = Features(config, registry.build("backbones", config.semantic_encoder, **config.semantic_options))
    pairs = ClipPairs(data, data.records("train"), cache=True)
    settings = LoopSettings(steps=steps, batch_size=config.train.batch_size, lr=config.train.lr, seed=0,
                            checkpoint_every=steps, grad_clip=config.train.grad_clip, device="cpu")

    def model() -> FastSAGModel:
        torch.manual_seed(0)
        return FastSAGModel(config)

    cached = FeatureClips(pairs, features, ContentCache(work / "cache", "fastsag-targets"), keep_in_memory=True)
    fill = time.perf_counter()
    for index in range(len(cached)):  # what the first epoch of a first run does once
        cached[index]
    fill = time.perf_counter() - fill
    results = {
        "window/step": run(model, pairs, PerWindowTargets(config, features), settings, work / "window", warmup,
                           CLIPPED_BLOCKS),
        "clip/step": run(model, FeatureClips(pairs, features, None), FastSAGLoss(config, features), settings,
                         work / "clip", warmup, CLIPPED_BLOCKS),
        "cached": run(model, cached, FastSAGLoss(config, features), settings, work / "cached", warmup,
                      CLIPPED_BLOCKS),
    }
    report("fastsag tiny", results, f"one-time cache fill: {fill:.2f} s for {len(cached)} clips")


def bench_singsong(data: ClipDataset, steps: int, warmup: int, work: Path) -> None:
    """Each SingSong tiny stage: tokens per step vs tokens cached once."""
    checkpoint = files("sag_bench") / "checkpoints" / "singsong"
    config = load_config(checkpoint)
    tokenizer = load_tokenizer(checkpoint, config)
    records = data.records("train")
    accompaniments = [torch.from_numpy(data.load(r).accompaniment) for r in records]
    vocals = [torch.from_numpy(data.load(r).vocals) for r in records]
    fill = time.perf_counter()
    cached_tokens = tokenize_clips(tokenizer, data, records)
    fill = time.perf_counter() - fill
    per_access = {name: PerAccessTokens(tokenizer, accompaniments, name) for name in cached_tokens}
    for stage in STAGES:
        stage_config = config.stage(stage)
        settings = LoopSettings(steps=steps, batch_size=stage_config.batch_size, lr=stage_config.lr, seed=0,
                                checkpoint_every=steps, grad_clip=stage_config.grad_clip, device="cpu",
                                optimizer=stage_config.optimizer, betas=stage_config.betas,
                                weight_decay=stage_config.weight_decay, accumulate=stage_config.accumulate)

        def model(stage: str = stage) -> torch.nn.Module:
            torch.manual_seed(0)
            return build_stage(config, tokenizer, stage)

        layout = model().layout
        windows = {path: stage_windows(config, tokenizer, stage, layout, tokens, vocals)
                   for path, tokens in (("tokens/step", per_access), ("cached", cached_tokens))}
        if needs_vocal_ids(stage, layout):
            windows["fixed noise"] = WindowDataset(cached_tokens, stage, window_frames(config, tokenizer, stage),
                                                   layout, fixed_noise_vocal_ids(tokenizer, vocals, config.noise_sigma))
        results = {path: run(model, dataset, stage_loss, settings, work / f"{stage}-{path.replace('/', '-')}", warmup)
                   for path, dataset in windows.items()}
        report(f"singsong {stage}", results,
               f"one-time tokenization (all stages): {fill:.2f} s for {len(records)} clips" if stage == "fine" else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="dataset folder with a train split (default: tiny chorales)")
    parser.add_argument("--steps", type=int, default=25, help="training steps per path")
    parser.add_argument("--warmup", type=int, default=5, help="steps not timed at the start of each path")
    parser.add_argument("--systems", default="fastsag,singsong")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        data = ClipDataset(args.data or chorales.build(work / "data", preset="tiny", seed=0, workers=1).parent)
        print(f"{len(data.records('train'))} training clips; {args.steps} steps per path, first {args.warmup} "
              "not timed; ratios against the first path of each block")
        if "fastsag" in args.systems:
            bench_fastsag(data, args.steps, args.warmup, work)
        if "singsong" in args.systems:
            bench_singsong(data, args.steps, args.warmup, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
