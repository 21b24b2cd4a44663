"""Audio codecs with Encodec's token layout: Encodec 24 kHz (real) and a residual k-means mel codec (offline).

Both produce codes ``[B, n_codebooks, frames]`` at 75 Hz (750 frames per 10 s at 24 kHz; ``ceil(T / 320)``) and
decode from the first ``q`` codebooks to ``[B, frames * 320]`` samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tqdm import tqdm

from sag_bench.audio import HOP_SIZE, N_MELS, denormalise_mel, mel_frames, mel_spectrogram, normalise_mel
from sag_bench.backbones.base import Codec, as_mono_batch
from sag_bench.backbones.hub import weights_missing
from sag_bench.backbones.vocoder import GriffinLimVocoder
from sag_bench.modules.kmeans import assign, fit_kmeans

ENCODEC_HUB_ID = "facebook/encodec_24khz"
# Encodec 24 kHz (Defossez et al. 2022): hop 320 samples -> 75 Hz; 6 kbps = 8 codebooks of 1024 entries.
CODEC_HOP = 320
CODEC_FRAME_RATE = 75.0
ENCODEC_BANDWIDTH = 6.0
# Sample at the centre of codec frame k is 320 k + 160; of mel frame j (after its 384-sample reflect pad) 256 j + 128.
CODEC_CENTRE = CODEC_HOP // 2
MEL_CENTRE = HOP_SIZE // 2


def codec_frames(num_samples: int) -> int:
    """Codec frames for ``num_samples`` at 24 kHz: ``ceil(T / 320)`` (750 per 10 s)."""
    return math.ceil(num_samples / CODEC_HOP)



def _check_codes(codes: torch.Tensor, n_codebooks: int, codebook_size: int, who: str) -> torch.Tensor:
    if codes.dim() != 3 or not 1 <= codes.shape[1] <= n_codebooks:
        raise ValueError(f"{who}: expected codes [B, q <= {n_codebooks}, frames], got shape {tuple(codes.shape)}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= codebook_size):
        raise ValueError(f"{who}: code values must lie in [0, {codebook_size})")
    return codes.long()


class EncodecCodec(Codec):
    """Encodec 24 kHz through ``transformers.EncodecModel``; 6 kbps gives 8 codebooks x 1024 at 75 Hz."""

    name = "encodec-24k"
    offline = False
    frame_rate = CODEC_FRAME_RATE

    def __init__(self, weights: str = ENCODEC_HUB_ID, bandwidth: float = ENCODEC_BANDWIDTH, config: Any = None) -> None:
        """Load ``weights`` (hub id or folder) from the local cache, or build a random model from ``EncodecConfig``."""
        from transformers import EncodecModel

        if config is None:
            try:
                model = EncodecModel.from_pretrained(weights, local_files_only=True)
            except OSError:
                raise weights_missing(weights, "Encodec") from None
            self.weights: str | None = weights
        else:
            model = EncodecModel(config)
            self.weights = None
        if bandwidth not in model.config.target_bandwidths:
            raise ValueError(f"Encodec bandwidth {bandwidth} not one of {model.config.target_bandwidths}")
        if model.config.hop_length != CODEC_HOP or model.config.sampling_rate != self.sample_rate:
            raise ValueError(f"Encodec config has hop {model.config.hop_length} at {model.config.sampling_rate} Hz; "
                             f"this codec needs hop {CODEC_HOP} at {self.sample_rate} Hz")
        self.model = model.eval()
        self.bandwidth = bandwidth
        self.n_codebooks = model.quantizer.get_num_quantizers_for_bandwidth(bandwidth)
        self.codebook_size = model.config.codebook_size

    def to(self, device: str | torch.device) -> "EncodecCodec":
        """Move the model to ``device``."""
        self.model.to(device)
        return self

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_codebooks, ceil(T / 320)]`` (int64) of 24 kHz audio ``[B, T]``."""
        audio = as_mono_batch(audio, self.name)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            encoded = self.model.encode(audio[:, None].to(device), bandwidth=self.bandwidth)
        return encoded.audio_codes[0]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, frames * 320]`` from the first ``q`` codebooks ``[B, q, frames]``."""
        codes = _check_codes(codes, self.n_codebooks, self.codebook_size, self.name)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model.decode(codes[None].to(device), [None]).audio_values[:, 0]

    def describe(self) -> dict[str, object]:
        """Name, implementation, weights and token layout."""
        return {**super().describe(), "weights": self.weights, "bandwidth": self.bandwidth,
                "n_codebooks": self.n_codebooks, "codebook_size": self.codebook_size}


def _interpolate_frames(frames: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``[B, C, F]`` at fractional frame ``positions`` (clamped to the ends)."""
    positions = positions.clamp(0, frames.shape[-1] - 1)
    low = positions.floor().long()
    high = (low + 1).clamp_max(frames.shape[-1] - 1)
    weight = (positions - low).to(frames.dtype)
    return frames[..., low] * (1 - weight) + frames[..., high] * weight


class MelRVQCodec(Codec):
    """Offline stand-in: residual k-means over the normalised BigVGAN mel at 75 Hz; decodes with Griffin-Lim."""

    name = "mel-rvq"
    offline = True
    frame_rate = CODEC_FRAME_RATE

    def __init__(self, n_codebooks: int = 8, codebook_size: int = 1024, seed: int = 0, kmeans_iters: int = 20,
                 griffin_lim_iters: int = 32) -> None:
        """An unfitted codec: ``n_codebooks`` residual stages of ``codebook_size`` centroids over 100 mel bands.

        ``seed`` seeds stage q's k-means (with ``seed + q``, ``kmeans_iters`` Lloyd iterations) and the decoder's
        Griffin-Lim phases (``griffin_lim_iters`` iterations).
        """
        if n_codebooks < 1 or codebook_size < 1:
            raise ValueError(f"mel-rvq needs n_codebooks, codebook_size >= 1; got {n_codebooks}, {codebook_size}")
        self.n_codebooks = n_codebooks
        self.codebook_size = codebook_size
        self.seed = seed
        self.kmeans_iters = kmeans_iters
        self.vocoder = GriffinLimVocoder(n_iter=griffin_lim_iters, seed=seed)
        self.codebooks: torch.Tensor | None = None
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> "MelRVQCodec":
        """Fit, encode and decode on ``device`` from now on (moves fitted codebooks there)."""
        self.device = torch.device(device)
        if self.codebooks is not None:
            self.codebooks = self.codebooks.to(self.device)
        return self

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Normalised mel frames ``[B, ceil(T / 320), 100]`` resampled to the codec's 75 Hz grid."""
        audio = as_mono_batch(audio, self.name)
        mel = normalise_mel(mel_spectrogram(audio))
        frames = codec_frames(audio.shape[-1])
        centres = torch.arange(frames, device=mel.device) * CODEC_HOP + CODEC_CENTRE
        return _interpolate_frames(mel, (centres - MEL_CENTRE) / HOP_SIZE).transpose(1, 2)

    def fit(self, audios: list[torch.Tensor], progress: bool = True) -> "MelRVQCodec":
        """Fit the residual codebooks on the mel frames of ``audios`` (each ``[T]`` or ``[B, T]``); returns self."""
        if not audios:
            raise ValueError("mel-rvq: fit needs at least one audio clip")
        residual = torch.cat([self.features(audio.to(self.device)).reshape(-1, N_MELS) for audio in audios])
        if residual.shape[0] < self.codebook_size:
            raise ValueError(f"mel-rvq: {residual.shape[0]} mel frames from {len(audios)} clips cannot fit "
                             f"{self.codebook_size} codes; give more audio or a smaller codebook_size")
        codebooks = []
        for stage in tqdm(range(self.n_codebooks), desc="mel-rvq stages", disable=not progress):
            centroids = fit_kmeans(residual, self.codebook_size, self.kmeans_iters, seed=self.seed + stage)
            residual = residual - centroids[assign(residual, centroids)]
            codebooks.append(centroids)
        self.codebooks = torch.stack(codebooks)
        return self

    def _fitted(self) -> torch.Tensor:
        if self.codebooks is None:
            raise RuntimeError("mel-rvq codec is not fitted: call fit(audios) or load_state_dict(state) first")
        return self.codebooks

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_codebooks, ceil(T / 320)]`` (int64); raises RuntimeError before fitting."""
        codebooks = self._fitted()
        features = self.features(audio.to(codebooks.device))
        residual = features.reshape(-1, N_MELS)
        codes = []
        for centroids in codebooks:
            index = assign(residual, centroids)
            residual = residual - centroids[index]
            codes.append(index.view(features.shape[:2]))
        return torch.stack(codes, dim=1)

    def decode_mel(self, codes: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``[B, 100, mel_frames(frames * 320)]`` at 93.75 Hz from codes ``[B, q, frames]``."""
        codebooks = self._fitted()
        codes = _check_codes(codes, self.n_codebooks, self.codebook_size, self.name).to(codebooks.device)
        frames = sum(codebooks[stage][codes[:, stage]] for stage in range(codes.shape[1])).transpose(1, 2)
        centres = torch.arange(mel_frames(codes.shape[-1] * CODEC_HOP), device=frames.device) * HOP_SIZE + MEL_CENTRE
        return _interpolate_frames(frames, (centres - CODEC_CENTRE) / CODEC_HOP)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, frames * 320]`` from the first ``q`` codebooks through Griffin-Lim (zero-padded tail)."""
        audio = self.vocoder.decode(denormalise_mel(self.decode_mel(codes)))
        return torch.nn.functional.pad(audio, (0, codes.shape[-1] * CODEC_HOP - audio.shape[-1]))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted codebooks ``[n_codebooks, codebook_size, 100]`` (for saving with a checkpoint)."""
        return {"codebooks": self._fitted().cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> "MelRVQCodec":
        """Restore codebooks saved by :meth:`state_dict`; the shape must match this codec's layout."""
        codebooks = state.get("codebooks")
        expected = (self.n_codebooks, self.codebook_size, N_MELS)
        if codebooks is None or tuple(codebooks.shape) != expected:
            found = None if codebooks is None else tuple(codebooks.shape)
            raise ValueError(f"mel-rvq state holds codebooks of shape {found}, expected {expected}")
        self.codebooks = codebooks.float().to(self.device, copy=True)
        return self

    def describe(self) -> dict[str, object]:
        """Name, implementation and token layout."""
        return {**super().describe(), "weights": None, "fitted": self.codebooks is not None,
                "n_codebooks": self.n_codebooks, "codebook_size": self.codebook_size, "seed": self.seed}
