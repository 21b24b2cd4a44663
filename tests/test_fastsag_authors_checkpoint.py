"""The authors' FastSAG checkpoint layout: outputs of their own modules (fixture) reproduced through our loader."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from sag_bench.errors import UserError
from sag_bench.modules import edm
from sag_bench.systems.fastsag import authors_checkpoint as authors
from sag_bench.systems.fastsag import checkpoint as ckpt
from sag_bench.systems.fastsag.config import VARIANTS, load_preset
from sag_bench.systems.fastsag.model import FastSAGModel
from sag_bench.systems.fastsag.system import FastSAGSystem

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "fastsag-authors"
TOLERANCE = 1e-4  # max abs difference allowed against the authors' numbers
SYSTEMS = {"perceiver": "fastsag", "interpolate": "fastsag-interpolate"}


@pytest.fixture(scope="module")
def io() -> dict:
    return torch.load(FIXTURES / "small_io.pt", map_location="cpu")


def _model(resampler: str, io: dict) -> FastSAGModel:
    """The fixture's weights through the loader behind ``--ckpt`` (head count: the fixture's, not in any shape)."""
    loaded = ckpt.read(FIXTURES / "small_state_dict.pt", VARIANTS[SYSTEMS[resampler]],
                       perceiver_heads=io["sizes"]["perceiver_heads"])
    model = FastSAGModel(loaded.config)
    ckpt.load_into(model, loaded.weights, "fixture")
    return model.eval()


def _max_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    return (ours - theirs).abs().max().item()


@pytest.mark.parametrize("resampler", list(SYSTEMS))
def test_sizes_come_from_the_tensors(resampler, io):
    loaded = ckpt.read(FIXTURES / "small_state_dict.pt", VARIANTS[SYSTEMS[resampler]],
                       perceiver_heads=io["sizes"]["perceiver_heads"])
    model, sizes = loaded.config.model, io["sizes"]
    assert loaded.layout == "authors"
    assert (model.semantic_dim, model.semantic_stacks, model.semantic_layers) == \
        (sizes["semantic_dim"], sizes["semantic_stacks"], sizes["semantic_layers"])
    assert (model.prior_stacks, model.prior_layers, model.unet_dim, list(model.unet_mults)) == \
        (sizes["prior_stacks"], sizes["prior_layers"], sizes["unet_dim"], sizes["unet_mults"])
    assert (model.mel_frames, model.padded_frames, model.n_mels) == \
        (sizes["mel_frames"], sizes["padded_frames"], sizes["mel_bins"])
    if resampler == "perceiver":
        assert (model.perceiver_latents, model.perceiver_latent_dim, model.perceiver_depth,
                model.perceiver_head_dim, model.perceiver_query_dim, model.perceiver_ff_mult) == \
            (sizes["perceiver_latents"], sizes["perceiver_latent_dim"], sizes["perceiver_depth"],
             sizes["perceiver_head_dim"], sizes["perceiver_query_dim"], sizes["perceiver_ff_mult"])
    # the backbone stand-ins are reported, never silently dropped
    assert any("vocoder.*" in group for group in loaded.left_out)
    assert any("wav2vec.*" in group for group in loaded.left_out)
    assert any("Perceiver" in group for group in loaded.left_out) == (resampler == "interpolate")


@pytest.mark.parametrize("resampler", list(SYSTEMS))
def test_condition_matches_the_authors(resampler, io):
    model = _model(resampler, io)
    with torch.no_grad():
        predicted, mu, _ = model.condition(io["semantic"], None)
    expected = io["results"][resampler]
    errors = (_max_error(predicted, expected["semantic_prediction"]),
              _max_error(mu[..., : model.mel_frames], expected["mu"]))
    print(resampler, "semantic_prediction, mu max abs error:", errors)
    assert max(errors) < TOLERANCE


@pytest.mark.slow  # two 51-call samplers on 100 x 1024 mels: minutes on 2 shared cores
@pytest.mark.parametrize("resampler", list(SYSTEMS))
def test_paper_sampler_matches_the_authors_51_calls(resampler, io):
    model = _model(resampler, io)
    paper = load_preset("paper", VARIANTS[SYSTEMS[resampler]]).inference
    with torch.no_grad():
        _, mu, mask = model.condition(io["semantic"], None)
        sample = model.sample(mu, mask, paper.steps, paper.sampler, io["z"], paper.schedule)
    error = _max_error(sample, io["results"][resampler]["sample"])
    print(resampler, f"{paper.steps}-step sample max abs error:", error)
    assert paper.steps == io["sizes"]["sampler_steps"] == 50
    assert edm.network_calls(paper.steps, paper.sampler, paper.schedule) == 51
    assert error < TOLERANCE


def test_every_paper_key_maps_onto_the_paper_preset():
    with open(FIXTURES / "paper_state_dict_keys.tsv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 694
    with torch.device("meta"):
        state = {row["key"]: torch.empty([int(n) for n in row["shape"].split("x")]) for row in rows}
        loaded = authors.translate(state, VARIANTS["fastsag"])
        paper = load_preset("paper", VARIANTS["fastsag"])
        assert loaded.config.model == paper.model  # every size read from the shapes equals the preset's
        ours = FastSAGModel(paper).state_dict()
    assert set(loaded.weights) == set(ours)
    assert all(loaded.weights[k].shape == ours[k].shape for k in ours)
    assert not loaded.left_out  # the fixture's key list holds only the model (no backbone entries)


def test_system_takes_the_authors_file_and_refuses_other_files(tmp_path, io):
    system = FastSAGSystem(checkpoint=FIXTURES / "small_state_dict.pt")
    info = system.describe()
    assert info["checkpoint_layout"] == "authors" and info["network_calls_per_window"] == 51
    assert info["checkpoint_left_out"]
    with pytest.raises(UserError, match="fastsag and fastsag-interpolate"):
        FastSAGSystem(checkpoint=FIXTURES / "small_state_dict.pt", condition="mel")
    other = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, other)
    with pytest.raises(UserError, match=r"other\.pt: neither a sag-bench FastSAG checkpoint"):
        FastSAGSystem(checkpoint=other)
