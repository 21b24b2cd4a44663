"""Training FastSAG (any variant) on a dataset folder with the shared loop of :mod:`sag_bench.training`; the
accompaniments' target features are computed once per clip content and cached (:class:`FeatureClips`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from sag_bench import registry
from sag_bench.audio import CLIP_SAMPLES, rescale_for_features
from sag_bench.errors import UserError
from sag_bench.datasets.manifest import ClipDataset, ClipRecord
from sag_bench.runs import write_provenance
from sag_bench.store import ContentCache
from sag_bench.systems.fastsag import checkpoint as ckpt
from sag_bench.systems.fastsag.config import VARIANTS, FastSAGConfig, load_preset
from sag_bench.systems.fastsag.features import Features, augment_vocals, cached_targets
from sag_bench.systems.fastsag.model import FastSAGModel
from sag_bench.training import LoopSettings, TrainResult, load_checkpoint, train_loop

# Reference facts: gradient clipping applies to the prior encoder and to the denoiser, each on its own.
CLIPPED_BLOCKS = (("prior_projection.encoder",), ("denoiser",))
# Namespace of the accompaniments' target features in a training run's content cache.
FEATURE_CACHE = "fastsag-targets"


def memoized(memory: dict[int, Any] | None, index: int, compute: Callable[[int], Any]) -> Any:
    """``compute(index)``, kept in ``memory`` (when given) so that it runs once per index."""
    if memory is None:
        return compute(index)
    if index not in memory:
        memory[index] = compute(index)
    return memory[index]


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
        return memoized(self.cache, index, self._load)


class FeatureClips(Sequence[dict[str, torch.Tensor]]):
    """Training items: a clip's clean ``vocals`` ``[T]`` and its accompaniment's target features (``mel``
    ``[n_mels, F]``, ``semantic`` ``[F', dim]``, see :meth:`Features.targets`), each computed once per clip content
    through ``cache`` (a :class:`ContentCache`, on disk) and held in memory with ``keep_in_memory``.

    ``cache=None`` computes the targets at every access instead (the uncached baseline of
    ``bench/training_throughput.py``; the values are the same).
    """

    def __init__(self, clips: ClipPairs, features: Features, cache: ContentCache | None,
                 keep_in_memory: bool = False, device: str | torch.device = "cpu") -> None:
        self.clips, self.features, self.cache, self.device = clips, features, cache, device
        self.memory: dict[int, dict[str, torch.Tensor]] | None = {} if keep_in_memory and cache is not None else None

    def __len__(self) -> int:
        return len(self.clips)

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        pair = self.clips[index]
        if self.cache is None:
            targets = {k: v.cpu() for k, v in self.features.targets(pair["accompaniment"].to(self.device)).items()}
        else:
            targets = cached_targets(self.features, pair["accompaniment"], self.cache, self.device)
        return {"vocals": pair["vocals"], **targets}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return memoized(self.memory, index, self._item)


class FastSAGLoss:
    """``loss_fn(model, batch)`` for the shared loop on :class:`FeatureClips` batches: a random window per row,
    fresh vocal augmentation and vocal features every step, target features sliced from the cached clip ones,
    weighted sum of the losses.

    For the slices to be exact, windows start on :attr:`Features.window_grid` (every 1280 samples, 53 ms) and the
    accompaniment is min-max rescaled once per clip rather than per window (the vocals still per window, as at
    inference); the first and last few target frames of a window see the clip around it instead of padding.
    """

    def __init__(self, config: FastSAGConfig, features: Features) -> None:
        self.config, self.features = config, features

    def __call__(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.features.encoder is not None:
            self.features.encoder.to(batch["vocals"].device)
        window, grid = self.config.model.window_samples, self.features.window_grid
        starts = window_starts(batch["vocals"].shape[0], batch["vocals"].shape[-1], window, grid)
        vocals = rescale_for_features(augment_vocals(crop(batch["vocals"], starts, window, dim=-1),
                                                      self.config.train))
        targets = self.targets(batch, starts)
        variant = self.config.variant
        vocal_semantic = self.features.semantic(vocals) if variant.uses_semantic else None
        vocal_mel = self.features.mel(vocals) if variant.uses_vocal_mel else None
        losses = model(vocal_semantic, vocal_mel, targets.get("semantic"), targets["mel"])
        total = sum(self.config.train.loss_weights[name] * value for name, value in losses.items())
        return {"loss": total, **losses}

    def targets(self, batch: dict[str, torch.Tensor], starts: list[int]) -> dict[str, torch.Tensor]:
        """The target features of the windows at ``starts``: slices of the clips' cached features."""
        return {name: crop(batch[name], [start // hop for start in starts], frames, dim=-1 if name == "mel" else 1)
                for name, (hop, frames) in self.features.target_frames().items()}


def window_starts(batch: int, length: int, window: int, grid: int) -> list[int]:
    """Random window starts (samples) for ``batch`` rows of ``length`` samples: multiples of ``grid`` with the
    whole window inside (0 when the clip is no longer than the window). Drawn from torch's global generator."""
    positions = max(0, length - window) // grid + 1
    return (torch.randint(0, positions, (batch,)) * grid).tolist()


def crop(signal: torch.Tensor, starts: list[int], length: int, dim: int) -> torch.Tensor:
    """Row ``b`` of ``signal`` cut to ``[starts[b], starts[b] + length)`` along ``dim`` (of the whole tensor)."""
    return torch.stack([row.narrow(dim - 1 if dim > 0 else dim, s, length) for row, s in zip(signal, starts)])


def resolve_variant(system: str) -> str:
    """A registered FastSAG system name (``fastsag`` for the family)."""
    if system not in VARIANTS:
        raise UserError(f"unknown FastSAG system {system!r}; trainable: {', '.join(VARIANTS)}")
    return system


SNAPSHOTS_DIR = "snapshots"


def snapshot_writer(folder: Path, name: str, config: FastSAGConfig) -> Callable[[int, Mapping[str, torch.Tensor]], None]:
    """A checkpoint hook writing the weights-only ``folder/<name>_step<N>.pt`` every ``snapshot_every`` steps
    (loadable like the final ``<name>.pt``; the learning curves evaluate them)."""
    every = config.train.snapshot_every

    def write(step: int, state: Mapping[str, torch.Tensor]) -> None:
        if every and step % every == 0:
            ckpt.export_weights(folder / f"{name}_step{step:06d}.pt", config, dict(state), step)

    return write


def train(system: str, data_dir: str | Path, out_dir: str | Path, preset: str = "tiny", steps: int | None = None,
          resume: bool = False, seed: int = 0, device: str | None = None, mixed_precision: str | None = None,
          cache_dir: str | Path | None = None) -> TrainResult:
    """Train ``system`` (a FastSAG variant) on the ``train`` split of ``data_dir``; results in ``out_dir``.

    Writes ``checkpoint.pt`` (resumable), ``losses.csv``/``losses.png``, ``manifest.json`` and, at the end, the
    weights-only ``<system>.pt`` that ``FastSAGSystem(checkpoint=...)`` loads. The accompaniments' target features
    are cached by content hash under ``cache_dir`` (default ``out_dir/cache``; share one between runs to reuse it).
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
    cache = ContentCache(Path(cache_dir) if cache_dir is not None else out_dir / "cache", FEATURE_CACHE)
    feature_device = "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"
    clips = FeatureClips(ClipPairs(dataset, records, t.cache_audio), features, cache, t.cache_audio, feature_device)
    result = train_loop(model, clips, FastSAGLoss(config, features), settings,
                        out_dir, resume=resume, metadata=ckpt.metadata(config), clip_groups=CLIPPED_BLOCKS,
                        on_checkpoint=snapshot_writer(out_dir / SNAPSHOTS_DIR, name, config))
    if result.main_process:
        final = load_checkpoint(result.checkpoint)
        ckpt.export_weights(out_dir / f"{name}.pt", config, final["model"], final["step"])
    return result
