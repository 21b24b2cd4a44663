"""SingSong tokenizer: offline (DSP semantic + mel-rvq) and real-architecture (tiny random MERT + Encodec) round trips."""

from __future__ import annotations

import math

import pytest
import torch

from sag_bench.systems.singsong.config import N_COARSE, N_FINE, load_preset
from sag_bench.systems.singsong.tokenizer import add_noise, fit_tokenizer, load_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # token-by-token decoding: one torch thread

SR = 24_000


def _clips(n: int, seconds: float, seed: int) -> list[torch.Tensor]:
    """Seeded two-tone clips with a little noise (stand-ins for vocals / accompaniments)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    clips = []
    for _ in range(n):
        f1, f2 = 110 + 330 * torch.rand(2, generator=gen)
        clips.append(0.3 * torch.sin(2 * math.pi * f1 * t) + 0.2 * torch.sin(2 * math.pi * 2.5 * f2 * t)
                     + 0.01 * torch.randn(t.shape, generator=gen))
    return clips


@pytest.fixture(scope="module")
def offline_tokenizer():
    config = load_preset("tiny")
    config = type(config)(**{**config.__dict__, "semantic_vocab": 16, "kmeans_max_frames": 2000,
                             "codec_options": {"codebook_size": 32, "kmeans_iters": 5, "griffin_lim_iters": 4}})
    return config, fit_tokenizer(config, _clips(2, 2.0, 0), _clips(2, 2.0, 1), seed=0)


def test_offline_tokenizer_frame_counts_and_ranges(offline_tokenizer):
    config, tokenizer = offline_tokenizer
    audio = torch.stack(_clips(2, 10.0, 5))
    assert tokenizer.num_frames(audio.shape[-1]) == 750  # 75 Hz
    ids = tokenizer.semantic_ids(audio)
    codes = tokenizer.codes(audio)
    assert ids.shape == (2, 1, 750) and codes.shape == (2, N_COARSE + N_FINE, 750)
    assert 0 <= ids.min() and ids.max() < 16 and len(ids.unique()) > 1
    assert 0 <= codes.min() and codes.max() < 32
    for q in (N_COARSE, N_COARSE + N_FINE):
        assert tokenizer.decode(codes[:, :q], audio.shape[-1]).shape == audio.shape


def test_offline_tokenizer_save_load_round_trip(offline_tokenizer, tmp_path):
    config, tokenizer = offline_tokenizer
    tokenizer.save(tmp_path)
    again = load_tokenizer(tmp_path, config)
    audio = torch.stack(_clips(1, 2.0, 9))
    assert torch.equal(again.semantic_ids(audio), tokenizer.semantic_ids(audio))
    assert torch.equal(again.codes(audio), tokenizer.codes(audio))


def test_add_noise_is_seeded_with_sigma():
    audio = torch.zeros(2, 48_000)
    a = add_noise(audio, 0.01, torch.Generator().manual_seed(1))
    b = add_noise(audio, 0.01, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert abs(a.std().item() - 0.01) < 5e-4
    assert add_noise(audio, 0.0, None) is audio


def test_real_encodec_and_mert_architectures_feed_the_stages():
    """Tiny random HubertModel (MERT) + EncodecModel: 749 -> 750 frames, codes drive all three stages, decode."""
    from transformers import EncodecConfig, HubertConfig

    from sag_bench.backbones.codec import EncodecCodec
    from sag_bench.backbones.semantic import MertEncoder
    from sag_bench.systems.singsong.config import StageConfig
    from sag_bench.systems.singsong.stages import StageLM, stage_layout
    from sag_bench.systems.singsong.tokenizer import SingSongTokenizer

    torch.manual_seed(0)
    mert = MertEncoder(config=HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_bias=False,
        feat_extract_norm="group", feat_proj_layer_norm=True, do_stable_layer_norm=False,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4), layer=2)
    codec = EncodecCodec(config=EncodecConfig(num_filters=4, hidden_size=16, codebook_dim=16, num_lstm_layers=1,
                                              codebook_size=1024))
    for layer in codec.model.quantizer.layers:  # random init leaves codebooks at zero: give them content
        layer.codebook.embed.normal_()
    tokenizer = SingSongTokenizer(mert, codec, torch.randn(8, 32))
    audio = torch.stack(_clips(1, 10.0, 3))
    assert mert.encode(audio).shape[1] == 749
    ids, codes = tokenizer.semantic_ids(audio), tokenizer.codes(audio)
    assert ids.shape == (1, 1, 750) and codes.shape == (1, 8, 750)
    assert 0 <= codes.min() and codes.max() < 1024 and 0 <= ids.min() and ids.max() < 8

    small = StageConfig(dim=16, depth=1, heads=2, temperature=1.0)
    models = {s: StageLM(stage_layout(s, tokenizer.semantic_vocab, tokenizer.codebook_size), small, 750).eval()
              for s in ("semantic", "coarse", "fine")}
    window = ids[..., :6]
    gen = torch.Generator().manual_seed(0)
    semantic = models["semantic"].generate(window, gen)
    coarse = models["coarse"].generate(semantic, gen)
    fine = models["fine"].generate(coarse, gen)
    assert semantic.shape == (1, 1, 6) and coarse.shape == (1, 3, 6) and fine.shape == (1, 5, 6)
    # the fine stage is teacher-forcible on real codec codes
    assert torch.isfinite(models["fine"].loss(codes[:, :3, :6], codes[:, 3:, :6]))
    audio_out = tokenizer.decode(torch.cat([coarse, fine], dim=1), 6 * 320)
    assert audio_out.shape == (1, 6 * 320) and torch.isfinite(audio_out).all()
