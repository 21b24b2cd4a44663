"""SingSong configuration: one :class:`SingSongConfig` per preset in ``presets.toml``, one :class:`StageConfig` per stage.

Paper constants live here once, each with its source; presets only choose sizes and backbones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sag_bench.config import from_table, preset_table
from sag_bench.errors import UserError

STAGES = ("semantic", "coarse", "fine")

# Encodec 24 kHz at 6 kbps gives 8 codebooks; FastSAG section 4.2: the first 3 are coarse, the other 5 fine.
N_COARSE = 3
N_FINE = 5

# open-musiclm / audiolm-pytorch training recipe (shared notes): AdamW, lr 3e-4, betas (0.9, 0.99),
# weight decay 0.01, gradient clipping at 0.5; warm-up per stage in the presets (3000 / 6000 / 0 steps).
OPTIMIZER = "adamw"
LEARNING_RATE = 3e-4
BETAS = (0.9, 0.99)
WEIGHT_DECAY = 0.01
GRAD_CLIP = 0.5

# What the coarse stage is conditioned on: the accompaniment's semantic tokens (FastSAG's re-implementation, the
# default) or those and the vocals' semantic tokens (SingSong section 3: P(Coarse(y) | Sem(y), Feats(x))).
COARSE_CONDITIONS = ("semantic", "semantic+vocal")

# open-musiclm sampling: top-k keeps 10 % of the logits of the current codebook.
TOP_K_FRACTION = 0.1

# Training computes a window's noisy vocal ids from its audio plus this much on each side (more than the DSP
# stand-in's +-0.05 s receptive field; the paper preset's 10 s windows cover whole clips anyway).
VOCAL_CONTEXT_SECONDS = 0.5


@dataclass(frozen=True)
class StageConfig:
    """Size, sampling and training settings of one decoder-only stage."""

    dim: int
    depth: int
    heads: int
    temperature: float
    top_k_fraction: float = TOP_K_FRACTION
    lr: float = LEARNING_RATE
    grad_clip: float = GRAD_CLIP
    optimizer: str = OPTIMIZER
    betas: tuple[float, float] = BETAS
    weight_decay: float = WEIGHT_DECAY
    warmup_steps: int = 0
    batch_size: int = 8
    accumulate: int = 1  # micro-batches of batch_size per optimiser step (FastSAG's re-implementation: 1 / 4 / 4)
    steps: int = 1000
    checkpoint_every: int = 100
    # The stage's window (None: the config's window_seconds) and the step between generated windows as a fraction
    # of it; below 1 each window is prompted with its predecessors' generated frames (open-musiclm: 10 / 4 / 2 s
    # windows slid by 50 / 50 / 100 %).
    window_seconds: float | None = None
    window_hop: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.window_hop <= 1:
            raise UserError(f"SingSong window_hop must be in (0, 1], not {self.window_hop}")



@dataclass(frozen=True)
class SingSongConfig:
    """Backbones, tokenizer sizes, window and noise, and the three stages."""

    preset: str
    semantic_backbone: str
    codec: str
    semantic_options: dict[str, Any]
    codec_options: dict[str, Any]
    semantic_vocab: int
    kmeans_iters: int
    kmeans_max_frames: int
    window_seconds: float
    noise_sigma: float
    stages: dict[str, StageConfig] = field(default_factory=dict)
    vocal_context_seconds: float = VOCAL_CONTEXT_SECONDS
    coarse_condition: str = "semantic"  # one of COARSE_CONDITIONS

    def __post_init__(self) -> None:
        if self.coarse_condition not in COARSE_CONDITIONS:
            raise UserError(f"SingSong coarse_condition must be one of {', '.join(COARSE_CONDITIONS)}, "
                            f"not {self.coarse_condition!r}")

    def stage(self, name: str) -> StageConfig:
        """The settings of stage ``name`` (one of :data:`STAGES`)."""
        if name not in self.stages:
            raise UserError(f"unknown SingSong stage {name!r}; stages are {', '.join(STAGES)}")
        return self.stages[name]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (stored with every checkpoint)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> "SingSongConfig":
        """Inverse of :meth:`to_dict`; also reads one preset table of ``presets.toml``."""
        values = {k: v for k, v in table.items() if k not in STAGES and k != "stages"}
        stage_tables = table.get("stages", {name: table[name] for name in STAGES if name in table})
        missing = [name for name in STAGES if name not in stage_tables]
        if missing:
            raise UserError(f"SingSong config lacks stage table(s) {', '.join(missing)}")
        source = f"SingSong config {table.get('preset', '')!r}"
        stages = {name: from_table(StageConfig, stage_tables[name], source, f"[{name}]") for name in STAGES}
        return from_table(cls, {**values, "stages": stages}, source, "the top level")


def load_preset(name: str) -> SingSongConfig:
    """The configuration of preset ``name`` (``tiny`` or ``paper``)."""
    return SingSongConfig.from_dict({"preset": name, **preset_table(__package__, name, "SingSong")})
