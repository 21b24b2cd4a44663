"""Codecs: Encodec's real architecture on a tiny random config (8 codebooks, 750 frames / 10 s) and the offline
residual k-means mel codec (same layout; reconstruction improves with every codebook; state round trip)."""

import pytest
import torch
from transformers import EncodecConfig

from sag_bench.audio import mel_spectrogram, normalise_mel
from sag_bench.backbones.base import WeightsMissingError
from sag_bench.backbones.codec import EncodecCodec, MelRVQCodec, codec_frames
from tests.backbone_helpers import SR, sine, use_empty_hub_cache


@pytest.fixture(scope="module")
def tiny_encodec() -> EncodecCodec:
    torch.manual_seed(0)
    codec = EncodecCodec(config=EncodecConfig(num_filters=4, hidden_size=16, codebook_dim=16, num_lstm_layers=1,
                                              codebook_size=1024))
    with torch.no_grad():  # random init leaves codebooks at zero: draw entries around the encoder's frames
        frames = codec.model.encoder(torch.randn(1, 1, SR) * 0.1)[0]
        mean, spread = frames.mean(-1), frames.std(-1)
        for stage, layer in enumerate(codec.model.quantizer.layers):
            layer.codebook.embed.copy_((mean if stage == 0 else 0.0) + spread * torch.randn(1024, len(spread)))
    return codec


def _clips(count: int = 6, seconds: float = 1.0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    freqs = [196.0, 247.0, 294.0, 370.0, 440.0, 587.0]
    return [sine(freqs[i % 6], seconds, 0.3) * (1.0 + 0.5 * sine(2.0 + i, seconds, 1.0))
            + 0.01 * torch.randn(int(SR * seconds), generator=generator) for i in range(count)]


@pytest.fixture(scope="module")
def fitted_rvq() -> MelRVQCodec:
    return MelRVQCodec(n_codebooks=4, codebook_size=32, kmeans_iters=10, griffin_lim_iters=4).fit(_clips(),
                                                                                                  progress=False)


def test_frame_counts():
    assert codec_frames(240_000) == 750
    assert codec_frames(SR) == 75 and codec_frames(SR + 1) == 76


def test_encodec_layout_and_frames_for_ten_seconds(tiny_encodec):
    assert (tiny_encodec.n_codebooks, tiny_encodec.codebook_size, tiny_encodec.frame_rate) == (8, 1024, 75.0)
    codes = tiny_encodec.encode(torch.randn(1, 240_000) * 0.1)
    assert codes.shape == (1, 8, 750) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < 1024
    assert all(len(row.unique()) > 10 for row in codes[0])  # filled codebooks: codes vary over time


def test_encodec_decodes_from_the_first_q_codebooks(tiny_encodec):
    audio = torch.randn(2, SR + 100) * 0.1
    codes = tiny_encodec.encode(audio)
    assert codes.shape == (2, 8, codec_frames(SR + 100)) == (2, 8, 76)
    coarse, full = tiny_encodec.decode(codes[:, :3]), tiny_encodec.decode(codes)
    assert coarse.shape == full.shape == (2, 76 * 320)
    assert not torch.allclose(coarse, full)
    with pytest.raises(ValueError, match="q <= 8"):
        tiny_encodec.decode(torch.zeros(1, 9, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        tiny_encodec.decode(torch.full((1, 2, 5), 1024))


def test_encodec_bandwidth_sets_codebooks():
    config = EncodecConfig(num_filters=4, hidden_size=16, codebook_dim=16, num_lstm_layers=1, codebook_size=1024)
    assert EncodecCodec(bandwidth=1.5, config=config).n_codebooks == 2
    assert EncodecCodec(bandwidth=24.0, config=config).n_codebooks == 32
    with pytest.raises(ValueError, match="bandwidth 5.0"):
        EncodecCodec(bandwidth=5.0, config=config)


def test_encodec_missing_weights_message(tmp_path, monkeypatch):
    use_empty_hub_cache(monkeypatch, tmp_path)
    with pytest.raises(WeightsMissingError, match=r"hf download facebook/encodec_24khz"):
        EncodecCodec()


def test_rvq_refuses_to_encode_before_fit():
    with pytest.raises(RuntimeError, match="not fitted"):
        MelRVQCodec().encode(torch.zeros(1, SR))
    with pytest.raises(ValueError, match="smaller codebook_size"):
        MelRVQCodec(codebook_size=1024).fit(_clips(2), progress=False)


def test_rvq_layout_matches_encodec(fitted_rvq):
    assert fitted_rvq.features(torch.zeros(1, 240_000)).shape == (1, 750, 100)
    codes = fitted_rvq.encode(torch.stack(_clips(2)))
    assert codes.shape == (2, 4, 75) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < 32


def test_rvq_reconstruction_improves_with_each_codebook(fitted_rvq):
    audio = torch.stack(_clips(3))
    reference = normalise_mel(mel_spectrogram(audio))
    codes = fitted_rvq.encode(audio)
    errors = [float((fitted_rvq.decode_mel(codes[:, :q]) - reference).pow(2).mean()) for q in range(1, 5)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 0.6 * errors[0]


def test_rvq_decodes_audio_of_encodec_length(fitted_rvq):
    audio = _clips(1)[0][None]
    decoded = fitted_rvq.decode(fitted_rvq.encode(audio)[:, :2])
    assert decoded.shape == (1, 75 * 320) and torch.isfinite(decoded).all()
    spectrum = torch.fft.rfft(decoded[0]).abs()
    assert abs(float(spectrum.argmax()) * SR / decoded.shape[-1] - 196.0) < 10.0  # the clip's pitch survives


def test_rvq_state_round_trip_and_determinism(fitted_rvq):
    audio = torch.stack(_clips(2))
    restored = MelRVQCodec(n_codebooks=4, codebook_size=32).load_state_dict(fitted_rvq.state_dict())
    assert torch.equal(restored.encode(audio), fitted_rvq.encode(audio))
    refit = MelRVQCodec(n_codebooks=4, codebook_size=32, kmeans_iters=10).fit(_clips(), progress=False)
    assert torch.equal(refit.state_dict()["codebooks"], fitted_rvq.state_dict()["codebooks"])
    with pytest.raises(ValueError, match=r"expected \(8, 32, 100\)"):
        MelRVQCodec(n_codebooks=8, codebook_size=32).load_state_dict(fitted_rvq.state_dict())
    assert restored.describe()["fitted"] and not MelRVQCodec().describe()["fitted"]


def test_encodec_loads_a_saved_checkpoint_through_the_real_loader(tiny_encodec, tmp_path):
    tiny_encodec.model.save_pretrained(tmp_path)
    loaded = EncodecCodec(weights=str(tmp_path))
    audio = torch.randn(1, SR // 2) * 0.1
    assert torch.equal(loaded.encode(audio), tiny_encodec.encode(audio))
    assert loaded.describe()["weights"] == str(tmp_path)
