"""Vocoders for the BigVGAN 24 kHz 100-band log-mel: BigVGAN itself (real) and Griffin-Lim on the same mel (offline).

Input is the un-normalised log-mel of :func:`sag_bench.audio.mel_spectrogram` ``[B, 100, F]``; output ``[B, F * 256]``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sag_bench.audio import HOP_SIZE, MEL_PADDING, N_FFT, N_MELS, WIN_SIZE, framed_stft, mel_basis
from sag_bench.backbones.base import Vocoder
from sag_bench.backbones.hub import weights_missing

BIGVGAN_HUB_ID = "nvidia/bigvgan_24khz_100band"
# Fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013): momentum on the projected spectrum.
GRIFFIN_LIM_MOMENTUM = 0.99
# Multiplicative non-negative least-squares refinements (Lee & Seung 2001) of the pseudo-inverse magnitude.
NNLS_ITERS = 16
NNLS_EPS = 1e-10


def _check_mel(mel: torch.Tensor, who: str) -> torch.Tensor:
    if mel.dim() == 2:
        mel = mel[None]
    if mel.dim() != 3 or mel.shape[1] != N_MELS:
        raise ValueError(f"{who}: expected a log-mel [B, {N_MELS}, frames], got shape {tuple(mel.shape)}")
    return mel.float()


class BigVGANVocoder(Vocoder):
    """BigVGAN 24 kHz 100-band through the ``bigvgan`` package: weight norm removed, eval mode, no CUDA kernel."""

    name = "bigvgan-24k-100band"
    offline = False

    def __init__(self, weights: str = BIGVGAN_HUB_ID, config: dict[str, Any] | None = None) -> None:
        """Load ``weights`` (hub id or folder) from the local cache, or build a random model from hyper-parameters.

        ``config`` takes the keys of BigVGAN's ``config.json`` (``upsample_rates``, ``resblock`` ...): the real
        architecture at any size (tests). The upsampling must total 256 (the mel hop) over 100 mel bands.
        """
        import bigvgan

        if config is None:
            try:
                model = bigvgan.BigVGAN.from_pretrained(weights, use_cuda_kernel=False, local_files_only=True)
            except OSError:
                raise weights_missing(weights, "BigVGAN") from None
            self.weights: str | None = weights
        else:
            model = bigvgan.BigVGAN(bigvgan.AttrDict(config), use_cuda_kernel=False)
            self.weights = None
        upsampling = math.prod(model.h.upsample_rates)
        if upsampling != HOP_SIZE or model.h.num_mels != N_MELS:
            raise ValueError(f"BigVGAN config upsamples {upsampling}x from {model.h.num_mels} mels; "
                             f"the 24 kHz mel needs {HOP_SIZE}x from {N_MELS}")
        model.remove_weight_norm()
        self.model = model.eval()

    def to(self, device: str | torch.device) -> "BigVGANVocoder":
        """Move the generator to ``device``."""
        self.model.to(device)
        return self

    def decode(self, mel: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, F * 256]`` in [-1, 1] for a log-mel ``[B, 100, F]``."""
        mel = _check_mel(mel, self.name)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model(mel.to(device))[:, 0]

    def describe(self) -> dict[str, object]:
        """Name, implementation and weights."""
        return {**super().describe(), "weights": self.weights}


def mel_to_magnitude(mel: torch.Tensor, iters: int = NNLS_ITERS) -> torch.Tensor:
    """Linear STFT magnitude ``[B, 513, F]`` whose mel matches ``exp(mel)``: pseudo-inverse, then NNLS refinement."""
    basis = mel_basis(mel.device)
    target = torch.exp(mel)
    magnitude = (torch.linalg.pinv(basis) @ target).clamp_min(NNLS_EPS)
    numerator = basis.T @ target
    for _ in range(iters):
        magnitude = magnitude * numerator / (basis.T @ (basis @ magnitude) + NNLS_EPS)
    return magnitude


def _fold(frames: torch.Tensor) -> torch.Tensor:
    """Overlap-add ``[B, 1024, F]`` frames at hop 256 into ``[B, 256 (F - 1) + 1024]`` samples."""
    length = HOP_SIZE * (frames.shape[-1] - 1) + N_FFT
    return torch.nn.functional.fold(frames, output_size=(1, length), kernel_size=(1, N_FFT),
                                    stride=(1, HOP_SIZE))[:, 0, 0]


def _overlap_add(spec: torch.Tensor, window: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
    """Least-squares inverse of :func:`sag_bench.audio.framed_stft`: windowed overlap-add divided by the squared-window ``envelope``."""
    return _fold(torch.fft.irfft(spec, n=N_FFT, dim=1) * window[None, :, None]) / envelope


class GriffinLimVocoder(Vocoder):
    """Offline stand-in: fast Griffin-Lim on the magnitude recovered from the same BigVGAN mel (same framing)."""

    name = "griffin-lim"
    offline = True

    def __init__(self, n_iter: int = 32, seed: int = 0) -> None:
        """``n_iter`` Griffin-Lim iterations from random phases drawn with ``seed``."""
        if n_iter < 1:
            raise ValueError(f"griffin-lim needs n_iter >= 1, got {n_iter}")
        self.n_iter = n_iter
        self.seed = seed

    def decode(self, mel: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, F * 256]`` for a log-mel ``[B, 100, F]``; deterministic for a given seed. Every row starts
        from the same random phases, so a row's waveform does not depend on the other rows of the batch."""
        mel = _check_mel(mel, self.name)
        magnitude = mel_to_magnitude(mel)
        window = torch.hann_window(WIN_SIZE, device=mel.device)
        envelope = _fold(window.pow(2)[None, :, None].expand(1, -1, mel.shape[-1])).clamp_min(1e-8)
        generator = torch.Generator().manual_seed(self.seed)
        phase = torch.rand(magnitude.shape[1:], generator=generator).to(mel.device).expand_as(magnitude) * (2 * math.pi)
        angles = torch.polar(torch.ones_like(magnitude), phase)
        previous = torch.zeros_like(angles)
        blend = GRIFFIN_LIM_MOMENTUM / (1.0 + GRIFFIN_LIM_MOMENTUM)
        for _ in range(self.n_iter):
            rebuilt = framed_stft(_overlap_add(magnitude * angles, window, envelope))
            angles = torch.sgn(rebuilt - blend * previous)
            previous = rebuilt
        padded = _overlap_add(magnitude * angles, window, envelope)
        return padded[:, MEL_PADDING : MEL_PADDING + HOP_SIZE * mel.shape[-1]]

    def describe(self) -> dict[str, object]:
        """Name, implementation and settings."""
        return {**super().describe(), "weights": None, "n_iter": self.n_iter, "seed": self.seed}
