"""FastSAG configuration: variants (the five registered systems) and presets (sizes and backbones, from TOML).

A :class:`FastSAGConfig` is stored inside every checkpoint, so a system rebuilds from the checkpoint alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sag_bench.audio import CLIP_SAMPLES, MEL_FRAMES_PER_CLIP, N_MELS, mel_frames
from sag_bench.config import from_table, package_toml, preset_table
from sag_bench.errors import UserError
from sag_bench.systems.catalog import SYSTEMS

# FastSAG section 4.1: 10 s clips; 937 mel frames zero-padded to 1024 for the U-Net (reference facts).
PADDED_FRAMES = 1024
# FastSAG eq. 12: lambda_s = lambda_p = lambda_d = 1.0.
LOSS_WEIGHTS = {"semantic": 1.0, "prior": 1.0, "diffusion": 1.0}
# Reference facts (authors' training code): Gaussian noise of std 0.01 always, and with probability 0.3 extra
# noise of std peak * U(0, 0.1), added to the vocals before features.
VOCAL_NOISE_STD = 0.01
EXTRA_NOISE_PROB = 0.3
EXTRA_NOISE_MAX = 0.1
# Reference facts: gradient norms of the prior encoder and of the denoiser are clipped at 1.
GRAD_CLIP = 1.0

RESAMPLERS = ("perceiver", "interpolate")
CONDITIONS = ("semantic", "mel", "semantic+mel")


@dataclass(frozen=True)
class Variant:
    """Which ablation: resampling module, what conditions the prior, and whether the mel is normalised."""

    resampler: str = "perceiver"
    condition: str = "semantic"
    mel_norm: bool = True

    def __post_init__(self) -> None:
        if self.resampler not in RESAMPLERS:
            raise UserError(f"FastSAG resampler must be one of {', '.join(RESAMPLERS)}, not {self.resampler!r}")
        if self.condition not in CONDITIONS:
            raise UserError(f"FastSAG condition must be one of {', '.join(CONDITIONS)}, not {self.condition!r}")

    @property
    def uses_semantic(self) -> bool:
        """The semantic projection block and a semantic encoder take part."""
        return self.condition != "mel"

    @property
    def uses_vocal_mel(self) -> bool:
        """The vocal mel spectrogram is part of the prior's input."""
        return self.condition != "semantic"

    @property
    def name(self) -> str:
        """The registered system name of this variant."""
        for name, variant in VARIANTS.items():
            if variant == self:
                return name
        return f"fastsag[{self.resampler},{self.condition},{'norm' if self.mel_norm else 'no-norm'}]"


# The five registered systems (FastSAG Table 1), defined once in sag_bench/systems/catalog.py.
VARIANTS: dict[str, Variant] = {entry.name: Variant(**entry.kwargs) for entry in SYSTEMS.entries()
                                if entry.target == "sag_bench.systems.fastsag.system:FastSAGSystem"}


@dataclass(frozen=True)
class ModelConfig:
    """Block sizes (defaults: the paper's)."""

    semantic_dim: int = 768
    semantic_stacks: int = 8
    semantic_layers: int = 8
    semantic_hidden: int | None = None
    perceiver_latents: int = 32
    perceiver_latent_dim: int = 256
    perceiver_depth: int = 6
    perceiver_heads: int = 8
    perceiver_head_dim: int = 128
    perceiver_query_dim: int = 256
    perceiver_ff_mult: int = 4
    perceiver_seq_dropout: float = 0.1
    prior_stacks: int = 4
    prior_layers: int = 8
    prior_hidden: int | None = None
    unet_dim: int = 64
    unet_mults: tuple[int, ...] = (1, 2, 4)
    unet_groups: int = 8
    unet_heads: int = 4
    unet_head_dim: int = 32
    n_mels: int = N_MELS
    window_samples: int = CLIP_SAMPLES  # the model's fixed window; longer inputs are windowed, shorter ones padded
    mel_frames: int = MEL_FRAMES_PER_CLIP
    padded_frames: int = PADDED_FRAMES

    def __post_init__(self) -> None:
        if self.mel_frames != mel_frames(self.window_samples):
            raise UserError(f"FastSAG model: mel_frames {self.mel_frames} != {mel_frames(self.window_samples)} "
                            f"frames of a {self.window_samples}-sample window")
        factor = 2 ** (len(self.unet_mults) - 1)
        if self.padded_frames < self.mel_frames or self.padded_frames % factor:
            raise UserError(f"FastSAG model: padded_frames {self.padded_frames} must be >= mel_frames and a "
                            f"multiple of {factor}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and augmentation settings."""

    batch_size: int = 28
    lr: float = 1e-4
    steps: int = 500_000
    checkpoint_every: int = 5000
    grad_clip: float = GRAD_CLIP
    loss_weights: dict[str, float] = field(default_factory=lambda: dict(LOSS_WEIGHTS))
    vocal_noise_std: float = VOCAL_NOISE_STD
    extra_noise_prob: float = EXTRA_NOISE_PROB
    extra_noise_max: float = EXTRA_NOISE_MAX
    cache_audio: bool = False
    mixed_precision: str = "no"
    snapshot_every: int = 0  # steps between weights-only snapshots (0: none); a multiple of checkpoint_every

    def __post_init__(self) -> None:
        if self.snapshot_every < 0 or (self.snapshot_every and self.snapshot_every % self.checkpoint_every):
            raise ValueError(f"snapshot_every ({self.snapshot_every}) must be 0 or a multiple of checkpoint_every "
                             f"({self.checkpoint_every})")


@dataclass(frozen=True)
class InferenceConfig:
    """Sampler settings (overridable per system: ``steps=``, ``sampler=``); ``schedule``: see ``edm.SCHEDULES``."""

    steps: int = 50
    sampler: str = "euler"
    schedule: str = "karras"
    batch_size: int = 4
    window_overlap_seconds: float = 1.0  # crossfade between consecutive windows of longer inputs


@dataclass(frozen=True)
class FastSAGConfig:
    """Everything needed to rebuild a FastSAG model and its backbones."""

    preset: str
    variant: Variant
    semantic_encoder: str
    semantic_options: dict[str, Any]
    vocoder: str
    vocoder_options: dict[str, Any]
    model: ModelConfig
    train: TrainConfig
    inference: InferenceConfig

    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FastSAGConfig":
        """Inverse of :meth:`to_dict`."""
        variant = from_table(Variant, data["variant"], "FastSAG config", "[variant]")
        return _assemble(data, "FastSAG config", variant)

    def with_inference(self, **changes: Any) -> "FastSAGConfig":
        """A copy with inference settings changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, inference=replace(self.inference, **changes))


def _assemble(table: dict[str, Any], source: str, variant: Variant) -> FastSAGConfig:
    """A :class:`FastSAGConfig` from a preset table or a stored config (its ``variant`` given)."""
    return FastSAGConfig(preset=table["preset"], variant=variant, semantic_encoder=table["semantic_encoder"],
                         semantic_options=dict(table.get("semantic_options", {})), vocoder=table["vocoder"],
                         vocoder_options=dict(table.get("vocoder_options", {})),
                         model=from_table(ModelConfig, table.get("model", {}), source, "[model]"),
                         train=from_table(TrainConfig, table.get("train", {}), source, "[train]"),
                         inference=from_table(InferenceConfig, table.get("inference", {}), source, "[inference]"))


def preset_names() -> list[str]:
    """Names of the presets in ``presets.toml``."""
    return sorted(package_toml(__package__))


def load_preset(preset: str, variant: Variant) -> FastSAGConfig:
    """The configuration of ``preset`` (``paper``, ``tiny``, ``small``) for ``variant``."""
    table = preset_table(__package__, preset, "FastSAG")
    return _assemble({**table, "preset": preset}, f"FastSAG preset {preset!r}", variant)
