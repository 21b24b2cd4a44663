"""Training FastSAG (any variant) on a dataset folder with the shared loop of :mod:`sag_bench.training`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from sag_bench import registry
from sag_bench.audio import CLIP_SAMPLES, rescale_for_features
from sag_bench.errors import UserError
from sag_bench.datasets.manifest import ClipDataset, ClipRecord
from sag_bench.runs import write_provenance
from sag_bench.systems.fastsag import checkpoint as ckpt
from sag_bench.systems.fastsag.config import VARIANTS, FastSAGConfig, load_preset
from sag_bench.systems.fastsag.features import Features, augment_vocals
from sag_bench.systems.fastsag.model import FastSAGModel
from sag_bench.training import LoopSettings, TrainResult, load_checkpoint, train_loop

# Reference facts: gradient clipping applies to the prior encoder and to the denoiser, each on its own.
CLIPPED_BLOCKS = (("prior_projection.encoder",), ("denoiser",))


class ClipPairs(Sequence[dict[str, torch.Tensor]]):
    """Training clips as ``{"vocals": [T], "accompaniment": [T]}``, each exactly one 10 s clip (padded or cut)."""

    def __init__(self, dataset: ClipDataset, records: list[ClipRecord], cache: bool) -> None:
        self.dataset, self.records = dataset, records
        self.cache: dict[int, dict[str, torch.Tensor]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.records)

    def _load(self, index: int) -> dict[str, torch.Tensor]:
        pair = self.dataset.load(self.records[index])
        fit = lambda a: torch.nn.functional.pad(torch.from_numpy(a), (0, max(0, CLIP_SAMPLES - len(a))))[:CLIP_SAMPLES]  # noqa: E731
        return {"vocals": fit(pair.vocals), "accompaniment": fit(pair.accompaniment)}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        if self.cache is None:
            return self._load(index)
        if index not in self.cache:
            self.cache[index] = self._load(index)
        return self.cache[index]


class FastSAGLoss:
    """``loss_fn(model, batch)`` for the shared loop: augmentation, frozen features, weighted sum of the losses."""

    def __init__(self, config: FastSAGConfig, features: Features) -> None:
        self.config, self.features = config, features

    def __call__(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        train = self.config.train
        if self.features.encoder is not None:
            self.features.encoder.to(batch["vocals"].device)
        vocals, accompaniment = random_windows(self.config.model.window_samples, batch["vocals"],
                                               batch["accompaniment"])
        vocals = rescale_for_features(augment_vocals(vocals, train))
        accompaniment = rescale_for_features(accompaniment)
        variant = self.config.variant
        vocal_semantic = self.features.semantic(vocals) if variant.uses_semantic else None
        target_semantic = self.features.semantic(accompaniment) if variant.uses_semantic else None
        vocal_mel = self.features.mel(vocals) if variant.uses_vocal_mel else None
        target_mel = self.features.mel(accompaniment)
        losses = model(vocal_semantic, vocal_mel, target_semantic, target_mel)
        total = sum(train.loss_weights[name] * value for name, value in losses.items())
        return {"loss": total, **losses}


def random_windows(window: int, *signals: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The same random ``window``-sample crop of each row of every ``[B, T]`` signal (all of it when T <= window)."""
    length = signals[0].shape[-1]
    if length <= window:
        return signals
    starts = torch.randint(0, length - window + 1, (signals[0].shape[0],)).tolist()
    return tuple(torch.stack([row[s: s + window] for row, s in zip(signal, starts)]) for signal in signals)


def resolve_variant(system: str) -> str:
    """A registered FastSAG system name (``fastsag`` for the family)."""
    if system not in VARIANTS:
        raise UserError(f"unknown FastSAG system {system!r}; trainable: {', '.join(VARIANTS)}")
    return system


def train(system: str, data_dir: str | Path, out_dir: str | Path, preset: str = "tiny", steps: int | None = None,
          resume: bool = False, seed: int = 0, device: str | None = None, mixed_precision: str | None = None,
          ) -> TrainResult:
    """Train ``system`` (a FastSAG variant) on the ``train`` split of ``data_dir``; results in ``out_dir``.

    Writes ``checkpoint.pt`` (resumable), ``losses.csv``/``losses.png``, ``manifest.json`` and, at the end, the
    weights-only ``<system>.pt`` that ``FastSAGSystem(checkpoint=...)`` loads.
    """
    name = resolve_variant(system)
    config = load_preset(preset, VARIANTS[name])
    train_changes: dict[str, Any] = {k: v for k, v in {"steps": steps, "mixed_precision": mixed_precision}.items()
                                     if v is not None}
    config = replace(config, train=replace(config.train, **train_changes))
    out_dir = Path(out_dir)
    if resume and (out_dir / "checkpoint.pt").is_file():
        stored = load_checkpoint(out_dir / "checkpoint.pt")["metadata"]["config"]
        if FastSAGConfig.from_dict(stored).variant != config.variant or stored["preset"] != preset:
            raise UserError(f"{out_dir}: the run there is {stored['preset']}/{FastSAGConfig.from_dict(stored).variant.name}, "
                            f"not {preset}/{name}")
    dataset = ClipDataset(data_dir)
    records = dataset.records("train")
    if not records:
        raise UserError(f"{data_dir}: no clips in split 'train' (splits: {', '.join(dataset.splits()) or 'none'})")
    encoder = registry.build("backbones", config.semantic_encoder, **config.semantic_options) \
        if config.variant.uses_semantic else None
    try:
        features = Features(config, encoder)
    except ValueError as error:
        raise UserError(str(error)) from None
    torch.manual_seed(seed)
    model = FastSAGModel(config)
    t = config.train
    settings = LoopSettings(steps=t.steps, batch_size=t.batch_size, lr=t.lr, seed=seed,
                            checkpoint_every=t.checkpoint_every, grad_clip=t.grad_clip,
                            mixed_precision=t.mixed_precision, device=device)
    write_provenance(Path(out_dir) / "manifest.json",
                     {"system": name, "preset": preset, "data": str(data_dir), "clips": len(records),
                      "config": config.to_dict()}, seeds={"train": seed}, device=device or "auto",
                     backbones={"semantic_encoder": encoder.describe() if encoder else None})
    result = train_loop(model, ClipPairs(dataset, records, t.cache_audio), FastSAGLoss(config, features), settings,
                        out_dir, resume=resume, metadata=ckpt.metadata(config), clip_groups=CLIPPED_BLOCKS)
    if result.main_process:
        final = load_checkpoint(result.checkpoint)
        ckpt.export_weights(out_dir / f"{name}.pt", config, final["model"], final["step"])
    return result
