"""FastSAG as a System: generation of any length, seeds, stage timing, checkpoints, real backbones on tiny configs,
and training from a dataset folder."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest
import torch
from transformers import HubertConfig

from sag_bench import registry
from sag_bench.backbones.base import WeightsMissingError
from sag_bench.errors import UserError
from sag_bench.systems.fastsag.model import HALF_LOG_TWO_PI
from sag_bench.systems.fastsag.system import FastSAGSystem
from sag_bench.systems.fastsag.train import train
from sag_bench.timing import StageTimer
from tests.fastsag_helpers import MICRO_WINDOW, micro_config, random_checkpoint


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> FastSAGSystem:
    path = random_checkpoint(tmp_path_factory.mktemp("ckpt") / "fastsag.pt")
    built = registry.build("systems", "fastsag", checkpoint=path, steps=2)
    built.load("cpu")
    return built


def test_any_length_gives_the_same_length_and_seeds_decide(system):
    vocals = torch.randn(2, int(2.3 * MICRO_WINDOW)) * 0.2  # three windows per row, six in one batch
    system.timer = StageTimer()
    out = system.generate(vocals, seed=1)
    assert out.shape == vocals.shape and torch.isfinite(out).all() and out.abs().max() > 0
    assert set(system.timer.seconds) == {"semantic", "condition", "sampler", "vocoder"}
    assert torch.equal(out, system.generate(vocals, seed=1))
    # row 0 does not depend on row 1 (up to float summation order in batched kernels)
    # (batched kernels' summation order, amplified by 32 Griffin-Lim iterations: 2e-4 here; other seeds differ by ~0.1)
    assert torch.allclose(out[:1], system.generate(vocals[:1], seed=1), atol=1e-3)
    short = system.generate(vocals[:1, :1000], seed=1)
    assert short.shape == (1, 1000)
    assert not torch.equal(short, system.generate(vocals[:1, :1000], seed=2))


def test_prior_output_vocodes_mu_without_the_sampler(system):
    """The ``output="prior"`` diagnostic: the vocoded prior of one window, the same for every seed, no denoiser call."""
    prior = registry.build("systems", "fastsag", checkpoint=system.checkpoint, steps=2, output="prior")
    prior.load("cpu")
    vocals = torch.randn(1, MICRO_WINDOW, generator=torch.Generator().manual_seed(3)) * 0.2
    out = prior.generate(vocals, seed=1)
    semantic, mel = prior.features.vocal_inputs(vocals)
    _, mu, _ = prior.model.condition(semantic, mel)
    expected = prior.vocoder.decode(prior.features.to_log_mel(mu[..., : prior.model.mel_frames]))
    torch.testing.assert_close(out, expected[:, : out.shape[-1]])
    assert torch.equal(out, prior.generate(vocals, seed=2))
    assert not torch.equal(system.generate(vocals, seed=1), system.generate(vocals, seed=2))
    assert prior.network_calls() == 0 and prior.describe()["output"] == "prior"
    with pytest.raises(UserError, match="output must be one of sample, prior"):
        registry.build("systems", "fastsag", checkpoint=system.checkpoint, output="mean")


def test_describe_records_backbones_and_weights(system):
    info = system.describe()
    assert info["name"] == "fastsag" and info["weights"] == "checkpoint" and info["steps"] == 2
    assert info["backbones"]["semantic_encoder"]["name"] == "dsp-semantic"
    assert info["backbones"]["vocoder"]["name"] == "griffin-lim"
    assert info["parameters"]["denoiser"] > 0


def test_checkpoint_of_another_variant_or_kind_is_a_clear_error(tmp_path):
    path = random_checkpoint(tmp_path / "interp.pt", "fastsag-interpolate")
    assert registry.build("systems", "fastsag-interpolate", checkpoint=path).name == "fastsag-interpolate"
    with pytest.raises(UserError, match="checkpoint is fastsag-interpolate, but fastsag-mel was asked for"):
        registry.build("systems", "fastsag-mel", checkpoint=path)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="other.pt: neither a sag-bench FastSAG checkpoint .* nor the authors"):
        registry.build("systems", "fastsag", checkpoint=tmp_path / "other.pt")
    with pytest.raises(UserError, match="needs checkpoint=PATH"):
        registry.build("systems", "fastsag-no-norm")


def test_paper_preset_without_weights_names_what_to_fetch(monkeypatch, tmp_path):
    from tests.backbone_helpers import use_empty_hub_cache

    use_empty_hub_cache(monkeypatch, tmp_path)
    with pytest.raises(WeightsMissingError, match="m-a-p/MERT-v1-95M"):
        FastSAGSystem(preset="paper").load("cpu")


def test_real_backbone_code_paths_on_tiny_random_configs():
    hubert = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                          conv_bias=False, feat_extract_norm="group", num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=4)
    bigvgan = {"resblock": "1", "num_mels": 100, "upsample_rates": [4, 4, 4, 4], "upsample_kernel_sizes": [8, 8, 8, 8],
               "upsample_initial_channel": 32, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]],
               "activation": "snakebeta", "snake_logscale": True}
    base = micro_config("fastsag")
    config = replace(base, semantic_encoder="mert-v1-95m", semantic_options={}, vocoder="bigvgan-24k-100band",
                     vocoder_options={}, model=replace(base.model, semantic_dim=32))
    torch.manual_seed(0)
    mert_system = FastSAGSystem(config=config, steps=2, semantic_options={"config": hubert, "layer": 2},
                                vocoder_options={"config": bigvgan})
    mert_system.load("cpu")
    out = mert_system.generate(torch.randn(1, MICRO_WINDOW + 5000) * 0.1, seed=0)
    assert out.shape == (1, MICRO_WINDOW + 5000) and torch.isfinite(out).all()
    backbones = mert_system.describe()["backbones"]
    assert backbones["semantic_encoder"]["name"] == "mert-v1-95m" and backbones["semantic_encoder"]["dim"] == 32
    assert backbones["vocoder"]["name"] == "bigvgan-24k-100band"
    assert mert_system.describe()["weights"] == "random init"


def test_training_writes_resumable_checkpoint_losses_and_loadable_weights(tmp_path, dataset_builder):
    data = dataset_builder(tmp_path / "data", songs=3, clips_per_song=1, seconds=3.0, all_train=True)
    result = train("fastsag-interpolate", data, tmp_path / "run", preset="tiny", steps=1, seed=0, device="cpu")
    with open(result.loss_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == ["0"]
    assert set(rows[0]) == {"step", "loss", "semantic", "prior", "diffusion"}
    total = float(rows[0]["semantic"]) + float(rows[0]["prior"]) + float(rows[0]["diffusion"])
    assert float(rows[0]["loss"]) == pytest.approx(total, rel=1e-5)  # weights 1, 1, 1
    weights = tmp_path / "run" / "fastsag-interpolate.pt"
    assert weights.stat().st_size < 3_000_000
    loaded = registry.build("systems", "fastsag-interpolate", checkpoint=weights)
    assert loaded.config.preset == "tiny" and loaded.config.train.steps == 1
    with pytest.raises(FileExistsError, match="--resume"):
        train("fastsag-interpolate", data, tmp_path / "run", preset="tiny", steps=2)
    with pytest.raises(UserError, match="not tiny/fastsag"):
        train("fastsag", data, tmp_path / "run", preset="tiny", steps=2, resume=True)


@pytest.mark.slow
def test_tiny_training_lowers_each_loss(tmp_path, dataset_builder):
    data = dataset_builder(tmp_path / "data", songs=4, clips_per_song=1, seconds=3.0, all_train=True)
    result = train("fastsag", data, tmp_path / "run", preset="tiny", steps=80, seed=0, device="cpu")
    with open(result.loss_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    floors = {"semantic": 0.0, "prior": HALF_LOG_TWO_PI, "diffusion": 0.0}  # the prior NLL's constant part
    for name, floor in floors.items():
        first = sum(float(r[name]) - floor for r in rows[:15]) / 15
        last = sum(float(r[name]) - floor for r in rows[-15:]) / 15
        assert last < 0.9 * first, (name, first, last)


def test_committed_checkpoints_rebuild_their_own_system():
    from pathlib import Path

    import sag_bench

    files = sorted((Path(sag_bench.__file__).parent / "checkpoints").glob("fastsag*.pt"))
    assert files, "no committed FastSAG checkpoints"
    for path in files:
        assert path.stat().st_size <= 3_000_000, path.name
        system = registry.build("systems", path.stem, checkpoint=path)
        assert system.name == path.stem and system.config.preset == "small"
