"""FastSAG as a :class:`~sag_bench.systems.base.System`: the five registered variants share this class."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from sag_bench import registry
from sag_bench.audio import SAMPLE_RATE
from sag_bench.errors import UserError
from sag_bench.modules import solvers
from sag_bench.systems.base import System
from sag_bench.systems.fastsag import checkpoint as ckpt
from sag_bench.systems.fastsag.config import FastSAGConfig, Variant, load_preset
from sag_bench.systems.fastsag.features import Features
from sag_bench.systems.fastsag.model import FastSAGModel, parameter_counts
from sag_bench.systems.windowing import generate_windowed, window_starts


OUTPUTS = ("sample", "prior")


class FastSAGSystem(System):
    """FastSAG: semantic projection -> prior projection -> EDM mel diffusion -> vocoder (fixed windows)."""

    name = "fastsag"
    sample_rate = SAMPLE_RATE

    def __init__(self, checkpoint: str | Path | None = None, resampler: str = "perceiver", condition: str = "semantic",
                 mel_norm: bool = True, preset: str | None = None, config: FastSAGConfig | None = None,
                 steps: int | None = None, sampler: str | None = None, batch_size: int | None = None,
                 device: str | None = None, semantic_options: dict[str, Any] | None = None,
                 vocoder_options: dict[str, Any] | None = None, output: str = "sample") -> None:
        """Weights come from ``checkpoint`` (its stored config rebuilds the model); without one, ``preset`` or
        ``config`` gives a randomly initialised model (RTF measurement, tests). ``steps``/``sampler``/``batch_size``
        override the inference settings; ``*_options`` update the backbones' keyword arguments at run time.
        ``output="prior"`` (a diagnostic, not FastSAG) vocodes the prior ``mu`` instead of sampling: what the
        condition networks alone carry of the accompaniment."""
        super().__init__(checkpoint, resampler=resampler, condition=condition, mel_norm=mel_norm)
        if output not in OUTPUTS:
            raise UserError(f"fastsag output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        self.output = output
        variant = Variant(resampler, condition, bool(mel_norm))
        self.name = variant.name
        self._loaded: ckpt.Contents | None = None
        if self.checkpoint is not None:
            self._loaded = ckpt.read(self.checkpoint, variant)
            config = self._loaded.config
        elif config is None and preset is None:
            raise UserError(f"{self.name} needs checkpoint=PATH (train one with `sag-bench train {self.name}`, or "
                            f"use sag_bench/checkpoints/{self.name}.pt), or preset= for random weights")
        else:
            config = config or load_preset(preset, variant)
            if config.variant != variant:
                raise UserError(f"config is for {config.variant.name}, not {variant.name}")
        self.config = config.with_inference(steps=steps, sampler=sampler, batch_size=batch_size)
        if self.config.inference.sampler not in solvers.SAMPLERS:
            raise UserError(f"{self.name}: sampler must be one of {', '.join(solvers.SAMPLERS)}, "
                            f"not {self.config.inference.sampler!r}")
        self._semantic_options = {**self.config.semantic_options, **(semantic_options or {})}
        self._vocoder_options = {**self.config.vocoder_options, **(vocoder_options or {})}
        self._requested_device = device
        self.model: FastSAGModel | None = None

    def load(self, device: str | torch.device | None = None) -> None:
        """Build the backbones and the model on ``device`` and load the checkpoint's weights."""
        super().load(device or self._requested_device or "cpu")
        encoder = None
        if self.config.variant.uses_semantic:
            encoder = registry.build("backbones", self.config.semantic_encoder, **self._semantic_options).to(self.device)
        self.features = Features(self.config, encoder)
        self.vocoder = registry.build("backbones", self.config.vocoder, **self._vocoder_options).to(self.device)
        model = FastSAGModel(self.config)
        if self._loaded is not None:
            ckpt.load_into(model, self._loaded.weights, self.checkpoint)
        self.model = model.to(self.device).eval()

    def _generate_windows(self, vocals: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Accompaniments for full model windows ``[N, window_samples]``, one seed per window."""
        inference = self.config.inference
        with self.timer.stage("semantic"):
            semantic, vocal_mel = self.features.vocal_inputs(vocals)
        with torch.no_grad():
            with self.timer.stage("condition"):
                _, mu, mask = self.model.condition(semantic, vocal_mel)
            if self.output == "prior":
                mels = mu[..., : self.model.mel_frames]
            else:
                with self.timer.stage("sampler"):
                    noise = torch.stack([torch.randn(mu.shape[1:], generator=torch.Generator().manual_seed(seed))
                                         for seed in seeds]).to(self.device)  # drawn on the CPU: same on every device
                    mels = self.model.sample(mu, mask, inference.steps, inference.sampler, noise, inference.schedule)
            with self.timer.stage("vocoder"):
                audio = self.vocoder.decode(self.features.to_log_mel(mels))
        return torch.nn.functional.pad(audio, (0, max(0, vocals.shape[-1] - audio.shape[-1])))[:, : vocals.shape[-1]]

    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        """Accompaniments ``[B, T]`` for vocals ``[B, T]`` at 24 kHz of any length (fixed windows, crossfaded)."""
        if self.model is None:
            self.load()
        vocals = vocals.to(self.device, torch.float32)
        overlap = int(self.config.inference.window_overlap_seconds * self.sample_rate)
        return generate_windowed(self._generate_windows, vocals, self.config.model.window_samples, overlap, seed,
                                 self.config.inference.batch_size, clip_ids)

    def network_calls(self, samples: int | None = None) -> int:
        """Denoiser evaluations for one clip of ``samples`` at 24 kHz (default: one model window): sampler calls per
        window (``solvers.network_calls``; the paper preset's 50 Euler steps make 51) times the windows the clip needs
        (none for ``output="prior"``)."""
        if self.output == "prior":
            return 0
        inference, window = self.config.inference, self.config.model.window_samples
        overlap = int(inference.window_overlap_seconds * self.sample_rate)
        windows = len(window_starts(samples or window, window, overlap))
        return windows * solvers.network_calls(inference.steps, inference.sampler, inference.schedule)

    def describe(self) -> dict[str, Any]:
        """Name, checkpoint, variant, preset, inference settings, backbone implementations, parameter counts."""
        info = {**super().describe(), "name": self.name, "preset": self.config.preset,
                "weights": "checkpoint" if self._loaded is not None else "random init",
                "checkpoint_layout": self._loaded.layout if self._loaded is not None else None,
                "checkpoint_left_out": self._loaded.left_out if self._loaded is not None else {},
                "steps": self.config.inference.steps, "sampler": self.config.inference.sampler,
                "schedule": self.config.inference.schedule, "network_calls_per_window": self.network_calls(),
                "dtype": "float32", "compiled": False, "output": self.output,
                "semantic_encoder": self.config.semantic_encoder if self.config.variant.uses_semantic else None,
                "vocoder": self.config.vocoder}
        if self.model is not None:
            info["backbones"] = {"semantic_encoder": self.features.encoder.describe() if self.features.encoder else None,
                                 "vocoder": self.vocoder.describe()}
            info["parameters"] = parameter_counts(self.model)
        return info
