"""Vocoders: Griffin-Lim inverts the BigVGAN mel (spectral convergence, pitch, length); BigVGAN's real architecture
on a small random config maps F mel frames to F * 256 samples."""

import pytest
import torch

from sag_bench.audio import mel_basis, mel_spectrogram
from sag_bench.backbones.base import WeightsMissingError
from sag_bench.backbones.vocoder import BigVGANVocoder, GriffinLimVocoder, mel_to_magnitude
from tests.backbone_helpers import SR, sine, use_empty_hub_cache


# BigVGAN 24 kHz 100-band layout (upsampling 4*4*2*2*2*2 = 256) at a small width.
SMALL_BIGVGAN = {
    "resblock": "1", "num_mels": 100, "upsample_rates": [4, 4, 2, 2, 2, 2],
    "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4], "upsample_initial_channel": 128,
    "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
    "activation": "snakebeta", "snake_logscale": True,
}


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor, edge: int = 0) -> float:
    """||M - M'||_F / ||M||_F on linear mel magnitudes, leaving out ``edge`` frames at each end."""
    reference, estimate = (m[..., edge : m.shape[-1] - edge].exp() for m in (reference, estimate))
    return float((reference - estimate).norm() / reference.norm())


def dominant_frequency(audio: torch.Tensor) -> float:
    spectrum = torch.fft.rfft(audio * torch.hann_window(audio.shape[-1])).abs()
    return float(spectrum.argmax()) * SR / audio.shape[-1]


def test_mel_to_magnitude_reproduces_the_mel():
    mel = mel_spectrogram(sine(440.0) + sine(1250.0, amplitude=0.2))
    magnitude = mel_to_magnitude(mel)
    assert magnitude.shape == (1, 513, mel.shape[-1]) and (magnitude >= 0).all()
    assert spectral_convergence(mel, torch.log(mel_basis() @ magnitude)) < 0.02


@pytest.mark.parametrize("freq", [220.0, 440.0, 1000.0])
def test_griffin_lim_round_trip_keeps_spectrum_and_pitch(freq):
    mel = mel_spectrogram(sine(freq, seconds=0.5))
    audio = GriffinLimVocoder(n_iter=32).decode(mel)
    assert audio.shape == (1, mel.shape[-1] * 256)
    # The frames whose window reaches into the reflect padding (4 at each end) cannot be matched exactly.
    assert spectral_convergence(mel, mel_spectrogram(audio), edge=4) < 0.1
    assert abs(dominant_frequency(audio[0]) - freq) / freq < 0.02


def test_griffin_lim_more_iterations_converge_further():
    mel = mel_spectrogram(sine(330.0, 0.5) + sine(495.0, 0.5, amplitude=0.3))
    errors = [spectral_convergence(mel, mel_spectrogram(GriffinLimVocoder(n_iter=n).decode(mel))) for n in (1, 32)]
    assert errors[1] < 0.5 * errors[0]


def test_griffin_lim_seeded_and_batched():
    mel = mel_spectrogram(torch.stack([sine(300.0, 0.5), sine(600.0, 0.5)]))
    first, again = GriffinLimVocoder(n_iter=4, seed=1).decode(mel), GriffinLimVocoder(n_iter=4, seed=1).decode(mel)
    assert torch.equal(first, again)
    assert not torch.equal(first, GriffinLimVocoder(n_iter=4, seed=2).decode(mel))
    assert first.shape == (2, mel.shape[-1] * 256)


def test_griffin_lim_rejects_wrong_mel_shape():
    with pytest.raises(ValueError, match=r"\[B, 100, frames\]"):
        GriffinLimVocoder().decode(torch.zeros(1, 80, 10))
    with pytest.raises(ValueError, match="n_iter"):
        GriffinLimVocoder(n_iter=0)


def test_bigvgan_small_config_maps_frames_to_256_samples():
    torch.manual_seed(0)
    vocoder = BigVGANVocoder(config=SMALL_BIGVGAN)
    assert not any(name.endswith(("weight_g", "weight_v")) for name, _ in vocoder.model.named_parameters())
    audio = vocoder.decode(torch.randn(2, 100, 8) - 5.0)
    assert audio.shape == (2, 8 * 256)
    assert torch.isfinite(audio).all() and audio.abs().max() <= 1.0
    assert vocoder.describe() == {"name": "bigvgan-24k-100band", "offline": False, "weights": None}


def test_bigvgan_rejects_a_config_with_the_wrong_hop():
    with pytest.raises(ValueError, match="needs 256x from 100"):
        BigVGANVocoder(config={**SMALL_BIGVGAN, "upsample_rates": [4, 4, 2, 2, 2, 1]})


def test_bigvgan_missing_weights_message(tmp_path, monkeypatch):
    use_empty_hub_cache(monkeypatch, tmp_path)
    with pytest.raises(WeightsMissingError, match=r"hf download nvidia/bigvgan_24khz_100band"):
        BigVGANVocoder()


def test_bigvgan_loads_a_saved_generator_through_the_real_loader(tmp_path):
    import bigvgan

    torch.manual_seed(0)
    generator = bigvgan.BigVGAN(bigvgan.AttrDict(SMALL_BIGVGAN))
    generator.save_pretrained(tmp_path)  # config.json + bigvgan_generator.pt, with weight norm, as published
    generator.remove_weight_norm()
    mel = torch.randn(1, 100, 6) - 5.0
    with torch.no_grad():
        expected = generator.eval()(mel)[:, 0]
    loaded = BigVGANVocoder(weights=str(tmp_path))
    assert torch.allclose(loaded.decode(mel), expected, atol=1e-6)
