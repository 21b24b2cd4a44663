"""Semantic encoders: MERT-v1-95M (real) and a DSP stand-in on exactly MERT's frame grid (offline).

Both take mono 24 kHz audio ``[B, T]`` (or ``[T]``) and return per-frame standardised features ``[B, frames, dim]``,
749 frames per 10 s. Neither rescales its input by default (FastSAG min-max rescales first with
:func:`sag_bench.audio.rescale_for_features` and feeds MERT directly). ``MertEncoder(normalize_input=True)`` does
what MERT's own feature extractor does (``do_normalize`` in its preprocessor config): each clip standardised to zero
mean and unit variance before the model (SingSong's paper preset). Its effect is small: MERT-v1's first convolution
is followed by a per-channel group norm over time, which removes input gain and offset up to the norm's epsilon.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch

from sag_bench.backbones.base import SemanticEncoder, as_mono_batch
from sag_bench.backbones.hub import weights_missing

# MERT-v1-95M (HuBERT/wav2vec2 feature extractor): seven convolutions, 320x downsampling at 24 kHz (75 Hz).
MERT_CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)
MERT_CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)
MERT_HOP = math.prod(MERT_CONV_STRIDES)
MERT_FRAME_RATE = 75.0
# FastSAG section 3.1 / open-musiclm: MERT-v1-95M hidden_states[7], each frame standardised over its dims.
MERT_LAYER = 7
MERT_HUB_ID = "m-a-p/MERT-v1-95M"
# Wav2Vec2FeatureExtractor (MERT's preprocessor, do_normalize): (x - mean) / sqrt(var + 1e-7) per clip.
MERT_NORMALIZE_EPS = 1e-7


def conv_frames(num_samples: int, kernels: tuple[int, ...] = MERT_CONV_KERNELS,
                strides: tuple[int, ...] = MERT_CONV_STRIDES) -> int:
    """Frames out of a stack of unpadded 1-d convolutions after cropping to a multiple of the total stride.

    This is MERT's frame count: 749 for 240,000 samples (10 s at 24 kHz); 0 when the input is too short.
    """
    length = num_samples - num_samples % math.prod(strides)
    for kernel, stride in zip(kernels, strides):
        if length < kernel:
            return 0
        length = (length - kernel) // stride + 1
    return length


def standardise_clips(audio: torch.Tensor, eps: float = MERT_NORMALIZE_EPS) -> torch.Tensor:
    """Each row of ``[B, T]`` to zero mean and unit variance, ``(x - mean) / sqrt(var + eps)`` (MERT's extractor)."""
    mean = audio.mean(dim=-1, keepdim=True)
    var = audio.var(dim=-1, keepdim=True, unbiased=False)
    return (audio - mean) / torch.sqrt(var + eps)


def standardise_frames(features: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise every frame of ``[..., dim]`` features to zero mean and unit variance over its dims."""
    return torch.nn.functional.layer_norm(features, features.shape[-1:], eps=eps)



class MertEncoder(SemanticEncoder):
    """MERT-v1-95M through ``transformers.HubertModel`` (no remote code): one hidden layer, frames standardised."""

    name = "mert-v1-95m"
    offline = False
    frame_rate = MERT_FRAME_RATE

    def __init__(self, weights: str = MERT_HUB_ID, layer: int = MERT_LAYER, config: Any = None,
                 normalize_input: bool = False) -> None:
        """Load ``weights`` (hub id or folder) from the local cache, or build a random model from a ``HubertConfig``.

        ``config`` gives the real architecture at any size with random weights (tests); ``layer`` indexes
        ``hidden_states`` (0 = projected conv features, i = output of transformer layer i); ``normalize_input``
        standardises each clip first, as MERT's feature extractor does.
        """
        from transformers import HubertModel

        if config is None:
            try:
                model, info = HubertModel.from_pretrained(weights, local_files_only=True, output_loading_info=True)
            except OSError:
                raise weights_missing(weights, "MERT") from None
            missing = [key for key in info["missing_keys"] if key != "masked_spec_embed"]
            if missing:
                raise RuntimeError(f"{weights}: checkpoint does not fit HubertModel, missing {missing[:3]}...")
            self.weights: str | None = weights
        else:
            model = HubertModel(config)
            self.weights = None
        if not 0 <= layer <= model.config.num_hidden_layers:
            raise ValueError(f"layer {layer} out of range: the model has {model.config.num_hidden_layers} layers")
        self.model = model.eval()
        self.layer = layer
        self.normalize_input = bool(normalize_input)
        self.dim = model.config.hidden_size
        self._kernels = tuple(model.config.conv_kernel)
        self._strides = tuple(model.config.conv_stride)

    def to(self, device: str | torch.device) -> "MertEncoder":
        """Move the model to ``device``."""
        self.model.to(device)
        return self

    def num_frames(self, num_samples: int) -> int:
        """MERT frames for ``num_samples`` (749 per 10 s at 24 kHz)."""
        return conv_frames(num_samples, self._kernels, self._strides)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Per-frame standardised ``hidden_states[layer]`` ``[B, frames, dim]`` of 24 kHz audio."""
        audio = as_mono_batch(audio, self.name)
        hop = math.prod(self._strides)
        if self.num_frames(audio.shape[-1]) < 1:
            raise ValueError(f"{self.name}: {audio.shape[-1]} samples is too short for one frame")
        if self.normalize_input:
            audio = standardise_clips(audio)
        audio = audio[:, : audio.shape[-1] - audio.shape[-1] % hop]
        device = next(self.model.parameters()).device
        with torch.no_grad():
            output = self.model(audio.to(device), output_hidden_states=True)
        return standardise_frames(output.hidden_states[self.layer])

    def describe(self) -> dict[str, object]:
        """Name, implementation, weights and layer."""
        return {**super().describe(), "weights": self.weights, "layer": self.layer, "dim": self.dim,
                "normalize_input": self.normalize_input}


# Stand-in analysis: a 2048-point Hann window (85 ms, 11.7 Hz bins) centred on each MERT frame's 400-sample field.
DSP_N_FFT = 2048
MERT_FIELD = 400
N_CHROMA = 12
N_SHAPE = 5  # centroid, spread, roll-off, flatness, energy
ROLLOFF_FRACTION = 0.85
DSP_MIN_DIM, DSP_MAX_DIM = 24, 256
LOG_FLOOR = 1e-5


@lru_cache(maxsize=4)
def _dsp_filters(n_mels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mel (Slaney) and chroma filterbanks over the 2048-point spectrum, and the bin frequencies."""
    import librosa

    sr = SemanticEncoder.sample_rate
    mel = librosa.filters.mel(sr=sr, n_fft=DSP_N_FFT, n_mels=n_mels, fmin=0.0, fmax=sr / 2)
    chroma = librosa.filters.chroma(sr=sr, n_fft=DSP_N_FFT, n_chroma=N_CHROMA)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=DSP_N_FFT)
    return torch.from_numpy(mel).float(), torch.from_numpy(chroma).float(), torch.from_numpy(freqs).float()


def _log_khz(hz: torch.Tensor) -> torch.Tensor:
    """Frequencies as octaves relative to 1 kHz, halved (about [-1.5, 1.6] over 40 Hz..12 kHz)."""
    return torch.log2(hz.clamp_min(1.0) / 1000.0) / 2.0


class DSPSemanticEncoder(SemanticEncoder):
    """Offline stand-in: log-mel bands + chroma + spectral shape at MERT's 75 Hz grid, frames standardised."""

    name = "dsp-semantic"
    offline = True
    frame_rate = MERT_FRAME_RATE

    def __init__(self, dim: int = 128) -> None:
        """``dim`` features per frame: ``dim - 17`` log-mel bands, 12 chroma bins and 5 spectral-shape values."""
        if not DSP_MIN_DIM <= dim <= DSP_MAX_DIM:
            raise ValueError(f"dsp-semantic dim must be in [{DSP_MIN_DIM}, {DSP_MAX_DIM}], got {dim}")
        self.dim = dim
        self.n_mels = dim - N_CHROMA - N_SHAPE

    def num_frames(self, num_samples: int) -> int:
        """Same as MERT: 749 frames per 10 s at 24 kHz."""
        return conv_frames(num_samples)

    def _power_frames(self, audio: torch.Tensor) -> torch.Tensor:
        """Power spectra ``[B, 1025, frames]`` with frame i centred on sample ``320 i + 200``."""
        frames = self.num_frames(audio.shape[-1])
        if frames < 1:
            raise ValueError(f"{self.name}: {audio.shape[-1]} samples is too short for one frame")
        left = DSP_N_FFT // 2 - MERT_FIELD // 2
        total = MERT_HOP * (frames - 1) + DSP_N_FFT
        padded = torch.nn.functional.pad(audio, (left, max(0, total - left - audio.shape[-1])))[:, :total]
        window = torch.hann_window(DSP_N_FFT, device=audio.device)
        spec = torch.stft(padded, DSP_N_FFT, hop_length=MERT_HOP, window=window, center=False, return_complex=True)
        return spec.abs().pow(2)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Features ``[B, frames, dim]``: each group standardised per frame, then the whole frame standardised."""
        audio = as_mono_batch(audio, self.name)
        power = self._power_frames(audio)
        mel_fb, chroma_fb, freqs = (t.to(audio.device) for t in _dsp_filters(self.n_mels))
        log_mel = torch.log(torch.clamp(mel_fb @ power.sqrt(), min=LOG_FLOOR))
        chroma = chroma_fb @ power
        chroma = chroma / chroma.amax(dim=1, keepdim=True).clamp_min(LOG_FLOOR)
        total = power.sum(dim=1).clamp_min(LOG_FLOOR)
        weights = power / total[:, None]
        centroid = (weights * freqs[None, :, None]).sum(1)
        spread = ((weights * (freqs[None, :, None] - centroid[:, None]).pow(2)).sum(1)).sqrt()
        rolloff = freqs[(weights.cumsum(1) < ROLLOFF_FRACTION).sum(1).clamp_max(len(freqs) - 1)]
        log_power = torch.log(power.clamp_min(LOG_FLOOR))
        flatness = log_power.mean(1) - torch.log(power.mean(1).clamp_min(LOG_FLOOR))  # log(geo / arith), <= 0
        energy_db = 10.0 * torch.log10(total / DSP_N_FFT)
        shape = torch.stack([_log_khz(centroid), _log_khz(spread), _log_khz(rolloff), flatness / math.log(1000.0),
                             energy_db / 40.0], dim=1)
        features = torch.cat([standardise_frames(log_mel.transpose(1, 2)), standardise_frames(chroma.transpose(1, 2)),
                              shape.transpose(1, 2)], dim=-1)
        return standardise_frames(features)

    def describe(self) -> dict[str, object]:
        """Name, implementation and feature layout."""
        return {**super().describe(), "weights": None, "dim": self.dim, "n_mels": self.n_mels}
