"""Every registered system's ``paper`` preset builds with its own backbone options, on tiny random configurations of
the real backbones (transformers HubertConfig for MERT, EncodecConfig for Encodec, a small BigVGAN), and generates."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import EncodecConfig, HubertConfig

from sag_bench import registry
from sag_bench.systems.catalog import PERTURBATIONS
from sag_bench.backbones.semantic import MERT_LAYER
from sag_bench.systems.fastsag.system import FastSAGSystem
from sag_bench.systems.singsong.checkpoint import SingSongBundle, build_stage
from sag_bench.systems.singsong.config import STAGES, load_preset
from sag_bench.systems.singsong.system import SingSongSystem
from sag_bench.systems.singsong.tokenizer import SingSongTokenizer, build_backbones
from tests.test_backbones_vocoder import SMALL_BIGVGAN

pytestmark = pytest.mark.usefixtures("one_thread")
SR = 24_000
# Systems without model presets (they copy human-composed audio).
NO_PRESET = {"randsong", "groundtruth"} | {entry.name for entry in PERTURBATIONS}


def mert_config() -> HubertConfig:
    """MERT-v1-95M's conv stack and width (768, as the paper presets expect) with thin layers up to layer 7."""
    return HubertConfig(hidden_size=768, num_hidden_layers=MERT_LAYER, num_attention_heads=2, intermediate_size=32,
                        conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                        conv_bias=False, feat_extract_norm="group", feat_proj_layer_norm=True,
                        do_stable_layer_norm=False, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16)


def encodec_config() -> EncodecConfig:
    """Encodec 24 kHz's layout (75 Hz, 1024-entry codebooks) at a small width."""
    return EncodecConfig(num_filters=4, hidden_size=16, codebook_dim=16, num_lstm_layers=1, codebook_size=1024)


def _vocals(seconds: float) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return (0.3 * torch.sin(2 * torch.pi * 330 * t))[None]


def _fastsag(name: str) -> FastSAGSystem:
    # steps=1: the paper's schedule (one more level than steps) makes 2 network calls
    system = registry.build("systems", name, preset="paper", steps=1, semantic_options={"config": mert_config()},
                            vocoder_options={"config": SMALL_BIGVGAN})
    system.load("cpu")
    assert system.network_calls() == 2 and system.config.inference.schedule == "fastsag-code"
    return system


def _singsong(name: str) -> SingSongSystem:
    config = load_preset("paper")
    assert config.semantic_options == {"normalize_input": True}  # the option that used to be a TypeError
    config = replace(config, semantic_options={**config.semantic_options, "config": mert_config()},
                     codec_options={**config.codec_options, "config": encodec_config()})
    encoder, codec = build_backbones(config)
    assert encoder.normalize_input and encoder.dim == 768 and codec.n_codebooks == 8
    torch.manual_seed(0)
    tokenizer = SingSongTokenizer(encoder, codec, torch.randn(config.semantic_vocab, encoder.dim))
    bundle = SingSongBundle(config, tokenizer, {s: build_stage(config, tokenizer, s).eval() for s in STAGES})
    system = SingSongSystem.from_bundle(bundle, stages=registry.entry("systems", name).kwargs["stages"])
    system.load("cpu")
    return system


def test_every_registered_system_is_covered():
    families = {name: registry.entry("systems", name).target.rsplit(":", 1)[-1] for name in registry.names("systems")}
    assert {name for name, cls in families.items() if cls not in ("FastSAGSystem", "SingSongSystem")} == NO_PRESET


def test_every_paper_preset_builds_its_backbones_with_its_own_options():
    """Fast: each paper preset's backbones from the preset's options (plus a tiny ``config``), no model."""
    from sag_bench.systems.fastsag.config import VARIANTS
    from sag_bench.systems.fastsag.config import load_preset as fastsag_preset

    singsong = load_preset("paper")
    built = [registry.build("backbones", singsong.semantic_backbone, **singsong.semantic_options, config=mert_config()),
             registry.build("backbones", singsong.codec, **singsong.codec_options, config=encodec_config())]
    for variant in VARIANTS.values():
        fastsag = fastsag_preset("paper", variant)
        built += [registry.build("backbones", fastsag.semantic_encoder, **fastsag.semantic_options, config=mert_config()),
                  registry.build("backbones", fastsag.vocoder, **fastsag.vocoder_options, config=SMALL_BIGVGAN)]
        assert built[-2].dim == fastsag.model.semantic_dim
    assert built[0].normalize_input and not built[2].normalize_input
    assert all(backbone.describe()["name"] for backbone in built)


@pytest.mark.slow  # paper-size models (182M parameters for FastSAG, 3 x 1024-wide LMs for SingSong): ~5 min on 2 cores
@pytest.mark.parametrize("name", sorted(set(registry.names("systems")) - NO_PRESET))
def test_paper_preset_builds_and_generates(name):
    torch.manual_seed(0)
    seconds = 0.4
    system = _fastsag(name) if name.startswith("fastsag") else _singsong(name)
    out = system.generate(_vocals(seconds), seed=0)
    assert system.sample_rate == SR
    assert out.shape == (1, int(seconds * SR)) and torch.isfinite(out).all()
