"""SingSong's tokenizers: semantic ids (k-means over a semantic encoder's frames) and acoustic codes (a residual codec).

Real: MERT-v1-95M layer 7 + k-means, Encodec 24 kHz at 6 kbps. Offline: the DSP semantic stand-in + k-means and the
mel residual-VQ codec (fitted on the training clips). Both give 75 Hz frames, 8 codebooks, the same token layout.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from sag_bench import registry
from sag_bench.audio import SAMPLE_RATE
from sag_bench.backbones.base import Codec, SemanticEncoder
from sag_bench.modules.kmeans import assign, fit_kmeans
from sag_bench.systems.singsong.config import N_COARSE, N_FINE, SingSongConfig
from sag_bench.systems.singsong.windows import align_frames
from sag_bench.training import load_checkpoint, save_checkpoint

TOKENIZER_FILE = "tokenizer.pt"


def add_noise(audio: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """SingSong's Noise(x) = x + z, z ~ N(0, sigma^2) per sample (section 3.4), drawn from ``generator``."""
    if sigma <= 0:
        return audio
    noise = torch.randn(audio.shape, generator=generator, device=audio.device, dtype=audio.dtype)
    return audio + sigma * noise


class SingSongTokenizer:
    """Audio -> semantic ids ``[B, 1, F]`` and codec codes ``[B, 8, F]`` on one 75 Hz grid; codes -> audio."""

    def __init__(self, encoder: SemanticEncoder, codec: Codec, centroids: torch.Tensor) -> None:
        if codec.n_codebooks < N_COARSE + N_FINE:
            raise ValueError(f"codec {codec.name} has {codec.n_codebooks} codebooks; SingSong needs {N_COARSE + N_FINE}")
        if centroids.dim() != 2 or centroids.shape[1] != encoder.dim:
            raise ValueError(f"centroids {tuple(centroids.shape)} do not fit {encoder.name} features of dim {encoder.dim}")
        self.encoder = encoder
        self.codec = codec
        self.centroids = centroids.float()

    @property
    def semantic_vocab(self) -> int:
        """Number of semantic ids (k of the k-means)."""
        return self.centroids.shape[0]

    @property
    def codebook_size(self) -> int:
        """Codes per codec codebook."""
        return self.codec.codebook_size

    @property
    def hop(self) -> int:
        """Samples per codec frame (320 at 24 kHz and 75 Hz)."""
        return round(SAMPLE_RATE / self.codec.frame_rate)

    def num_frames(self, num_samples: int) -> int:
        """Codec frames for ``num_samples`` (750 per 10 s)."""
        return math.ceil(num_samples / self.hop)

    def to(self, device: str | torch.device) -> "SingSongTokenizer":
        """Move the backbones and centroids to ``device``."""
        self.encoder.to(device)
        self.codec.to(device)
        self.centroids = self.centroids.to(device)
        return self

    def semantic_ids(self, audio: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Nearest-centroid ids ``[B, 1, frames]`` of ``audio`` ``[B, T]``, aligned to the codec's frame count."""
        features = self.encoder.encode(audio)
        batch, count, dim = features.shape
        ids = assign(features.reshape(-1, dim), self.centroids).view(batch, count)
        return align_frames(ids, frames or self.num_frames(audio.shape[-1]))[:, None]

    def codes(self, audio: torch.Tensor) -> torch.Tensor:
        """The first 8 codebooks ``[B, 8, F]`` of ``audio`` ``[B, T]``."""
        return self.codec.encode(audio)[:, : N_COARSE + N_FINE].long()

    def decode(self, codes: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Audio ``[B, num_samples]`` from codes of the first ``q`` codebooks ``[B, q, F]`` (cropped or zero-padded)."""
        audio = self.codec.decode(codes)
        if audio.shape[-1] >= num_samples:
            return audio[..., :num_samples]
        return torch.nn.functional.pad(audio, (0, num_samples - audio.shape[-1]))

    def describe(self) -> dict[str, Any]:
        """What a run records: both backbones and the k-means size."""
        return {"semantic": self.encoder.describe(), "codec": self.codec.describe(), "k": self.semantic_vocab}

    def state(self) -> dict[str, Any]:
        """Everything fitted on training data: centroids and (for a fitted codec) its state."""
        return {"semantic_backbone": self.encoder.name, "codec": self.codec.name, "centroids": self.centroids.cpu(),
                "codec_state": _codec_state(self.codec)}

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/tokenizer.pt`` atomically."""
        return save_checkpoint(Path(directory) / TOKENIZER_FILE, self.state())


def build_backbones(config: SingSongConfig) -> tuple[SemanticEncoder, Codec]:
    """The semantic encoder and codec named by ``config`` (real ones raise ``WeightsMissingError`` offline)."""
    return (registry.build("backbones", config.semantic_backbone, **config.semantic_options),
            registry.build("backbones", config.codec, **config.codec_options))


def load_tokenizer(directory: str | Path, config: SingSongConfig,
                   backbones: tuple[SemanticEncoder, Codec] | None = None) -> SingSongTokenizer:
    """Read ``directory/tokenizer.pt`` onto the backbones named by ``config`` (or the given ones)."""
    path = Path(directory) / TOKENIZER_FILE
    state = load_checkpoint(path)
    encoder, codec = backbones or build_backbones(config)
    if (state["semantic_backbone"], state["codec"]) != (encoder.name, codec.name):
        raise ValueError(f"{path}: fitted for {state['semantic_backbone']} + {state['codec']}, "
                         f"not {encoder.name} + {codec.name}")
    if state["codec_state"] is not None:
        codec.load_state_dict(state["codec_state"])
    return SingSongTokenizer(encoder, codec, state["centroids"])


def fit_tokenizer(config: SingSongConfig, vocals: Sequence[torch.Tensor], accompaniments: Sequence[torch.Tensor],
                  seed: int = 0, backbones: tuple[SemanticEncoder, Codec] | None = None) -> SingSongTokenizer:
    """Fit the semantic k-means on frames of both roles (and an offline codec on the accompaniments).

    The codec's own seed comes from ``config.codec_options``; ``seed`` drives the frame sampling and the k-means.

    ``vocals`` and ``accompaniments`` hold mono 24 kHz clips ``[T]`` (they may load lazily; only an offline codec's
    fit holds all accompaniments at once). Each clip contributes the same number of
    randomly drawn (seeded) frames, ``config.kmeans_max_frames`` in all at most.
    """
    encoder, codec = backbones or build_backbones(config)
    if _is_fittable(codec):
        codec.fit(list(accompaniments))
    count = len(vocals) + len(accompaniments)
    per_clip = math.ceil(config.kmeans_max_frames / max(1, count))
    generator = torch.Generator().manual_seed(seed)
    frames = []
    for clip in tqdm(itertools.chain(vocals, accompaniments), total=count, desc="semantic features"):
        features = encoder.encode(clip[None])[0]
        frames.append(features[torch.randperm(features.shape[0], generator=generator)[:per_clip]])
    centroids = fit_kmeans(torch.cat(frames), config.semantic_vocab, iters=config.kmeans_iters, seed=seed,
                           progress=True)
    return SingSongTokenizer(encoder, codec, centroids)


def _is_fittable(codec: Codec) -> bool:
    return callable(getattr(codec, "fit", None))


def _codec_state(codec: Codec) -> dict[str, Any] | None:
    return codec.state_dict() if _is_fittable(codec) else None
