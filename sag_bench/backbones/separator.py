"""Demucs two-stem separation (vocals / accompaniment) through ``demucs.api``: FastSAG's data recipe.

The pretrained model is loaded by demucs itself (Hugging Face hub or the legacy download cache). Offline, when its
weights are in neither cache, :class:`WeightsMissingError` says what to fetch. Any ``demucs`` model object (for
example a randomly initialised ``demucs.htdemucs.HTDemucs``) can be handed in instead and runs the same code path.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sag_bench.audio import resample
from sag_bench.backbones.base import Separator, WeightsMissingError

VOCALS = "vocals"


def _legacy_checkpoints(model: str) -> list[Path]:
    """Where demucs's legacy downloader caches the checkpoint files of the bag named ``model``."""
    import yaml
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    bag_file = REMOTE_ROOT / f"{model}.yaml"
    if not bag_file.is_file():
        return []
    signatures = yaml.safe_load(bag_file.read_text())["models"]
    urls = _parse_remote_files(REMOTE_ROOT / "files.txt")
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    return [cache / urls[signature].rsplit("/", 1)[-1] for signature in signatures if signature in urls]


def _hub_cached(model: str) -> bool:
    """Whether the Hugging Face hub cache holds the bag definition of ``model``."""
    from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(f"{DEFAULT_NAMESPACE}/{hf_repo_name(model)}", f"{model}.yaml")
    return isinstance(found, str)


def check_weights(model: str) -> None:
    """Raise :class:`WeightsMissingError` unless the pretrained ``model`` can be loaded without a network."""
    legacy = _legacy_checkpoints(model)
    if _hub_cached(model) or (legacy and all(path.is_file() for path in legacy)):
        return
    where = ", ".join(str(path) for path in legacy) or f"{torch.hub.get_dir()}/checkpoints/"
    raise WeightsMissingError(
        f"Demucs {model!r} weights not found offline: on a networked machine run "
        f"`python -c \"from demucs.pretrained import get_model; get_model('{model}')\"` and copy the downloaded "
        f"checkpoint to {where} (or copy ~/.cache/huggingface/hub/models--adefossez--*), or pass repo=DIR")


def _api_separator(model: str, model_obj: Any | None, repo: Path | None, device: str, shifts: int) -> Any:
    """A ``demucs.api.Separator`` for a named pretrained model, or for ``model_obj`` as given."""
    import demucs.api

    if model_obj is None:
        if repo is None:
            check_weights(model)
        return demucs.api.Separator(model=model, repo=repo, device=device, shifts=shifts)

    class _GivenModel(demucs.api.Separator):
        def _load_model(self) -> None:
            self._model = model_obj
            self._audio_channels = model_obj.audio_channels
            self._samplerate = model_obj.samplerate

    return _GivenModel(model=model, device=device, shifts=shifts)


class DemucsSeparator(Separator):
    """Demucs (htdemucs by default) in two-stem mode: vocals, and the sum of every other stem as accompaniment."""

    name = "htdemucs"
    offline = False

    def __init__(self, model: str = "htdemucs", model_obj: Any | None = None, device: str = "cpu",
                 repo: str | Path | None = None, shifts: int = 1, seed: int = 0) -> None:
        if model_obj is not None:
            model_obj.eval()
        self.model = model
        self.device = device
        self.seed = seed
        self.pretrained = model_obj is None
        self._api = _api_separator(model, model_obj, Path(repo) if repo else None, device, shifts)
        sources = list(self._api.model.sources)
        if VOCALS not in sources:
            raise ValueError(f"Demucs model {model!r} has no {VOCALS!r} source (sources: {', '.join(sources)})")

    @property
    def model_sample_rate(self) -> int:
        """The rate the Demucs model itself runs at (44.1 kHz for htdemucs)."""
        return int(self._api.samplerate)

    def to(self, device: str | torch.device) -> "DemucsSeparator":
        """Run separation on ``device`` (the track itself stays where it is)."""
        self.device = str(device)
        self._api.update_parameter(device=self.device)
        return self

    def describe(self) -> dict[str, object]:
        """Name, whether pretrained weights were used, and the model's rate."""
        return {**super().describe(), "model": self.model, "pretrained": self.pretrained,
                "model_sample_rate": self.model_sample_rate}

    @torch.no_grad()
    def separate(self, mixture: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Separate a ``[channels, T]`` (or ``[T]``) mixture at ``sample_rate``.

        Returns mono ``(vocals, accompaniment)`` at :attr:`sample_rate` (24 kHz), each as long as the
        input's duration. Demucs's random time shifts are seeded by ``seed`` (global state is restored).
        """
        if mixture.dim() == 1:
            mixture = mixture[None]
        state = random.getstate()  # demucs draws its time shifts from Python's global generator
        random.seed(self.seed)
        try:
            _, stems = self._api.separate_tensor(mixture.float().cpu(), sample_rate)
        finally:
            random.setstate(state)
        vocals = stems[VOCALS]
        accompaniment = sum(audio for source, audio in stems.items() if source != VOCALS)
        length = round(mixture.shape[-1] * self.sample_rate / sample_rate)
        return tuple(self._to_output(stem, length) for stem in (vocals, accompaniment))  # type: ignore[return-value]

    def _to_output(self, stem: torch.Tensor, length: int) -> torch.Tensor:
        mono = stem.mean(dim=0).cpu().numpy().astype(np.float32)
        out = resample(mono, self.model_sample_rate, self.sample_rate)
        out = np.pad(out, (0, max(0, length - len(out))))[:length]
        return torch.from_numpy(np.ascontiguousarray(out))
