"""FastSAG model: parameter parity with the paper (reference facts), variants, losses, determinism."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from sag_bench.errors import UserError
from sag_bench.systems.fastsag.config import VARIANTS, FastSAGConfig, load_preset, preset_names
from sag_bench.systems.fastsag.model import HALF_LOG_TWO_PI, FastSAGModel, parameter_counts
from tests.fastsag_helpers import micro_config

# Reference facts (computed from the authors' constructors): millions of parameters and our tolerance.
PAPER_PARAMETERS = {"semantic_projection": (158.2, 0.01), "prior_projection.resampler": (15.2, 0.01),
                    "prior_projection.encoder": (1.41, 0.01), "denoiser": (7.63, 0.05)}


def _meta_model(name: str, preset: str = "paper") -> FastSAGModel:
    with torch.device("meta"):
        return FastSAGModel(load_preset(preset, VARIANTS[name]))


def test_paper_preset_parameter_counts_match_the_reference():
    counts = parameter_counts(_meta_model("fastsag"))
    print({k: f"{v / 1e6:.3f}M" for k, v in counts.items()})
    for block, (millions, tolerance) in PAPER_PARAMETERS.items():
        assert counts[block] / 1e6 == pytest.approx(millions, rel=tolerance), block
    assert counts["total"] / 1e6 == pytest.approx(182.5, rel=0.01)
    without_perceiver = parameter_counts(_meta_model("fastsag-interpolate"))
    assert without_perceiver["prior_projection.resampler"] == 0
    assert without_perceiver["total"] / 1e6 == pytest.approx(167.2, rel=0.01)


def test_variants_have_the_blocks_they_need():
    mel_only = parameter_counts(_meta_model("fastsag-mel"))
    assert mel_only["semantic_projection"] == 0 and mel_only["prior_projection.resampler"] == 0
    both = _meta_model("fastsag-semantic-mel")
    assert both.semantic_projection is not None and both.prior_projection.resampler is not None
    assert set(preset_names()) >= {"paper", "tiny"}
    with pytest.raises(UserError, match="unknown FastSAG preset 'huge'"):
        load_preset("huge", VARIANTS["fastsag"])


def test_config_roundtrips_and_rejects_inconsistent_windows():
    config = load_preset("tiny", VARIANTS["fastsag-no-norm"])
    assert FastSAGConfig.from_dict(config.to_dict()) == config
    assert config.model.window_samples == 61440 and config.model.mel_frames == 240
    with pytest.raises(UserError, match="mel_frames 200"):
        replace(config.model, mel_frames=200)
    with pytest.raises(UserError, match="multiple of 4"):
        replace(config.model, padded_frames=242)


def _inputs(config: FastSAGConfig, batch: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    m = config.model
    return {"semantic": torch.randn(batch, 47, m.semantic_dim, generator=generator),
            "mel": torch.rand(batch, m.n_mels, m.mel_frames, generator=generator) * 2 - 1}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_forward_gives_the_losses_of_each_variant(name):
    config = micro_config(name)
    torch.manual_seed(0)
    model = FastSAGModel(config)
    x = _inputs(config)
    semantic = x["semantic"] if config.variant.uses_semantic else None
    mel = x["mel"] if config.variant.uses_vocal_mel else None
    with torch.no_grad():
        losses = model(semantic, mel, semantic, x["mel"])
        predicted, mu, mask = model.condition(semantic, mel)
    expected = {"prior", "diffusion"} | ({"semantic"} if config.variant.uses_semantic else set())
    assert set(losses) == expected
    assert losses["prior"].item() > HALF_LOG_TWO_PI  # NLL = 0.5 MSE + 0.5 ln(2 pi)
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert mu.shape == (2, 100, 64) and mask.shape == (2, 1, 64)
    assert mask[..., :60].eq(1).all() and mask[..., 60:].eq(0).all() and mu[..., 60:].eq(0).all()
    if predicted is not None:
        assert predicted.shape == semantic.shape


def test_sampling_is_deterministic_given_the_noise():
    config = micro_config("fastsag-interpolate")
    torch.manual_seed(0)
    model = FastSAGModel(config).eval()
    x = _inputs(config, batch=1)
    _, mu, mask = model.condition(x["semantic"], None)
    noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
    first = model.sample(mu, mask, steps=3, sampler="euler", noise=noise)
    assert first.shape == (1, 100, 60)
    assert torch.equal(first, model.sample(mu, mask, steps=3, sampler="euler", noise=noise))
    assert not torch.equal(first, model.sample(mu, mask, steps=3, sampler="euler", noise=noise + 0.1))
