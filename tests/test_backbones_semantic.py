"""Semantic encoders: MERT's real architecture on a tiny random config, and the DSP stand-in on MERT's grid."""

import pytest
import torch
from transformers import HubertConfig

from sag_bench.backbones.base import WeightsMissingError
from sag_bench.backbones.semantic import DSPSemanticEncoder, MertEncoder, conv_frames
from tests.backbone_helpers import SR, sine, use_empty_hub_cache

TEN_SECONDS = 240_000


def tiny_hubert_config() -> HubertConfig:
    """The real MERT conv stack (same 749 frames / 10 s) with a tiny transformer."""
    return HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                        conv_bias=False, feat_extract_norm="group", feat_proj_layer_norm=True,
                        do_stable_layer_norm=False, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


@pytest.fixture(scope="module")
def tiny_mert() -> MertEncoder:
    torch.manual_seed(0)
    return MertEncoder(layer=2, config=tiny_hubert_config())


def test_frame_formula_known_values():
    assert conv_frames(TEN_SECONDS) == 749
    assert conv_frames(SR) == 74
    assert conv_frames(320) == 0  # shorter than the 400-sample receptive field once cropped
    assert conv_frames(640) == 1


def test_mert_tiny_config_shapes_and_standardisation(tiny_mert):
    audio = torch.randn(2, TEN_SECONDS) * 0.1
    features = tiny_mert.encode(audio)
    assert features.shape == (2, 749, 32)
    assert tiny_mert.num_frames(TEN_SECONDS) == 749 and tiny_mert.dim == 32 and tiny_mert.frame_rate == 75.0
    assert torch.allclose(features.mean(-1), torch.zeros(2, 749), atol=1e-5)
    assert torch.allclose(features.var(-1, unbiased=False), torch.ones(2, 749), atol=1e-3)


@pytest.mark.parametrize("samples", [SR, SR + 319, 12_345])
def test_dsp_stand_in_has_exactly_merts_frame_count(tiny_mert, samples):
    audio = torch.randn(1, samples) * 0.1
    real = tiny_mert.encode(audio).shape[1]
    assert real == conv_frames(samples)
    assert DSPSemanticEncoder().encode(audio).shape[1] == real


def test_mert_layer_out_of_range_and_short_input(tiny_mert):
    with pytest.raises(ValueError, match="layer 3 out of range"):
        MertEncoder(layer=3, config=tiny_hubert_config())
    with pytest.raises(ValueError, match="too short"):
        tiny_mert.encode(torch.zeros(1, 300))


def test_mert_missing_weights_message(tmp_path, monkeypatch):
    use_empty_hub_cache(monkeypatch, tmp_path)
    with pytest.raises(WeightsMissingError, match=r"m-a-p/MERT-v1-95M.*hf download m-a-p/MERT-v1-95M"):
        MertEncoder()


def test_describe_records_implementation(tiny_mert):
    assert tiny_mert.describe() == {"name": "mert-v1-95m", "offline": False, "weights": None, "layer": 2, "dim": 32,
                                    "normalize_input": False}
    assert DSPSemanticEncoder(dim=64).describe() == {"name": "dsp-semantic", "offline": True, "weights": None,
                                                     "dim": 64, "n_mels": 47}


def test_dsp_shapes_standardised_and_deterministic():
    encoder = DSPSemanticEncoder(dim=96)
    audio = torch.randn(2, TEN_SECONDS, generator=torch.Generator().manual_seed(0)) * 0.1
    features = encoder.encode(audio)
    assert features.shape == (2, 749, 96)
    assert torch.allclose(features.mean(-1), torch.zeros(2, 749), atol=1e-5)
    assert torch.allclose(features.var(-1, unbiased=False), torch.ones(2, 749), atol=1e-3)
    assert torch.equal(features, encoder.encode(audio))
    # batch-independent up to float summation order (batched kernels may group sums differently)
    torch.testing.assert_close(features[1], encoder.encode(audio[1])[0], atol=1e-5, rtol=1e-5)


def test_dsp_chroma_and_mel_follow_pitch():
    encoder = DSPSemanticEncoder(dim=128)
    chroma = slice(encoder.n_mels, encoder.n_mels + 12)
    a4, c5 = encoder.encode(sine(440.0))[0], encoder.encode(sine(523.25))[0]
    middle = slice(10, 60)
    assert a4[middle, chroma].argmax(-1).mode().values.item() == 9  # pitch class A (C = 0)
    assert c5[middle, chroma].argmax(-1).mode().values.item() == 0  # pitch class C
    a4_band = a4[middle, : encoder.n_mels].argmax(-1).mode().values.item()
    c5_band = c5[middle, : encoder.n_mels].argmax(-1).mode().values.item()
    assert c5_band > a4_band


def test_dsp_frames_are_local_in_time():
    """A tone starting at 5 s changes only frames whose analysis window reaches past 5 s."""
    encoder = DSPSemanticEncoder()
    audio = torch.zeros(TEN_SECONDS)
    noise = torch.randn(TEN_SECONDS, generator=torch.Generator().manual_seed(1)) * 1e-3
    onset = 5 * SR
    with_tone = audio.clone()
    with_tone[onset:] = sine(440.0, seconds=5.0)
    before, after = encoder.encode(audio + noise)[0], encoder.encode(with_tone + noise)[0]
    changed = (before - after).abs().amax(-1) > 1e-3
    first_changed = int(changed.nonzero()[0])
    # Frame i is centred on sample 320 i + 200 with a 2048-sample window.
    assert first_changed == (onset - 200 - 1024) // 320 + 1
    assert changed[first_changed:].all()


def test_dsp_dim_bounds():
    with pytest.raises(ValueError, match="dim must be in"):
        DSPSemanticEncoder(dim=8)


def test_mert_loads_a_saved_checkpoint_through_the_real_loader(tiny_mert, tmp_path):
    tiny_mert.model.save_pretrained(tmp_path)
    loaded = MertEncoder(weights=str(tmp_path), layer=2)
    audio = torch.randn(1, SR) * 0.1
    assert torch.allclose(loaded.encode(audio), tiny_mert.encode(audio), atol=1e-5)
    assert loaded.describe()["weights"] == str(tmp_path)


def test_mert_normalize_input_is_the_feature_extractors_standardisation():
    from transformers import Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    plain = MertEncoder(layer=2, config=tiny_hubert_config())
    normalising = MertEncoder(layer=2, config=tiny_hubert_config(), normalize_input=True)
    normalising.model.load_state_dict(plain.model.state_dict())
    audio = 0.2 * torch.randn(2, SR) + 0.05
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, do_normalize=True)
    standardised = torch.from_numpy(extractor(list(audio.numpy()), sampling_rate=SR,
                                              return_tensors="np")["input_values"]).float()
    assert torch.allclose(normalising.encode(audio), plain.encode(standardised), atol=1e-4)
    assert normalising.describe()["normalize_input"] and not plain.describe()["normalize_input"]
