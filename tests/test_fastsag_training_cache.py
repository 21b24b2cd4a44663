"""FastSAG training reads the accompaniments' target features from a content-hash cache instead of recomputing
them every step; the vocals' augmentation and features stay per step."""

from __future__ import annotations

import csv

import pytest
import torch

from sag_bench import registry
from sag_bench.audio import rescale_for_features
from sag_bench.datasets.manifest import ClipDataset
from sag_bench.store import ContentCache
from sag_bench.systems.fastsag.features import Features, cached_targets
from sag_bench.systems.fastsag.model import FastSAGModel
from sag_bench.systems.fastsag.train import (CLIPPED_BLOCKS, ClipPairs, FastSAGLoss, FeatureClips, crop,
                                             window_starts)
from sag_bench.training import LoopSettings, train_loop
from tests.fastsag_helpers import MICRO_WINDOW, micro_config


def _features(name: str = "fastsag") -> Features:
    config = micro_config(name)
    return Features(config, registry.build("backbones", config.semantic_encoder, **config.semantic_options))


@pytest.fixture
def computed(monkeypatch) -> list[int]:
    """Counts the calls of Features.targets (each one computes a clip's target features)."""
    calls: list[int] = []
    original = Features.targets
    monkeypatch.setattr(Features, "targets", lambda self, audio: calls.append(1) or original(self, audio))
    return calls


def test_cache_is_hit_on_a_second_run_and_keyed_by_content_and_settings(tmp_path, computed):
    features, cache = _features(), ContentCache(tmp_path, "targets")
    audio = torch.sin(torch.arange(4 * MICRO_WINDOW) * 0.05) * 0.3
    first = cached_targets(features, audio, cache)
    assert len(computed) == 1 and set(first) == {"mel", "semantic"}
    assert first["mel"].shape == (100, 240) and first["semantic"].shape[1] == 48
    again = cached_targets(_features(), audio.clone(), ContentCache(tmp_path, "targets"))  # a new run, same files
    assert len(computed) == 1 and all(torch.equal(first[k], again[k]) for k in first)
    changed = audio.clone()
    changed[1000] += 0.1
    assert not torch.equal(cached_targets(features, changed, cache)["mel"], first["mel"]) and len(computed) == 2
    raw_mel = cached_targets(_features("fastsag-no-norm"), audio, cache)["mel"]  # other settings, other key
    assert len(computed) == 3 and not torch.equal(raw_mel, first["mel"])


def test_window_targets_are_slices_of_the_clip_features():
    features = _features()
    audio = torch.randn(4 * MICRO_WINDOW) * 0.2
    clip = features.targets(audio)
    start = 3 * features.window_grid
    window = rescale_for_features(audio[None])[:, start: start + MICRO_WINDOW]
    sliced = FastSAGLoss(features.config, features).targets({k: v[None] for k, v in clip.items()}, [start])
    assert features.window_grid == 1280
    torch.testing.assert_close(sliced["mel"][0, :, 3:-3], features.mel(window)[0, :, 3:-3])  # edges: padding
    torch.testing.assert_close(sliced["semantic"][0, 4:-4], features.semantic(window)[0, 4:-4], atol=1e-4, rtol=1e-4)


def test_window_starts_stay_on_the_grid_and_inside_the_clip():
    torch.manual_seed(0)
    starts = window_starts(200, 10_000, 3000, 1280)
    assert set(starts) == {0, 1280, 2560, 3840, 5120, 6400} and window_starts(3, 2000, 3000, 1280) == [0, 0, 0]
    rows = torch.arange(20.0).view(2, 10)
    assert crop(rows, [1, 4], 3, dim=-1).tolist() == [[1, 2, 3], [14, 15, 16]]


def _train(clips: FeatureClips, out_dir) -> list[str]:
    config = clips.features.config
    torch.manual_seed(0)
    settings = LoopSettings(steps=2, batch_size=2, lr=1e-3, seed=0, grad_clip=1.0, device="cpu")
    result = train_loop(FastSAGModel(config), clips, FastSAGLoss(config, clips.features), settings, out_dir,
                        clip_groups=CLIPPED_BLOCKS)
    with open(result.loss_csv, newline="") as handle:
        return [row["loss"] for row in csv.DictReader(handle)]


def test_training_with_the_cache_gives_the_same_losses_as_without(tmp_path, dataset_builder, computed, one_thread):
    data = ClipDataset(dataset_builder(tmp_path / "data", songs=2, clips_per_song=1, seconds=2.0, all_train=True))
    pairs = ClipPairs(data, data.records("train"), cache=True)
    features, cache = _features(), ContentCache(tmp_path / "cache", "targets")
    uncached = _train(FeatureClips(pairs, features, None), tmp_path / "uncached")
    assert len(computed) == 4  # 2 steps x 2 items, every access computes
    first = _train(FeatureClips(pairs, features, cache, keep_in_memory=True), tmp_path / "first")
    assert len(computed) == 4 + 2  # each clip once
    second = _train(FeatureClips(pairs, features, cache), tmp_path / "second")
    assert len(computed) == 6  # a second run only reads
    assert len(uncached) == 2 and first == uncached and second == uncached  # bitwise: the losses' repr in losses.csv


def test_small_preset_extends_tiny_and_snapshots_load_as_systems(tmp_path):
    from dataclasses import replace as replaced

    from sag_bench.systems.fastsag.config import VARIANTS, load_preset
    from sag_bench.systems.fastsag.model import FastSAGModel
    from sag_bench.systems.fastsag.system import FastSAGSystem
    from sag_bench.systems.fastsag.train import snapshot_writer
    from tests.fastsag_helpers import micro_config

    tiny, small = (load_preset(name, VARIANTS["fastsag"]) for name in ("tiny", "small"))
    assert small.model == tiny.model and small.inference == tiny.inference
    assert (small.train.steps, small.train.snapshot_every, small.train.lr) == (1500, 250, tiny.train.lr)
    with pytest.raises(ValueError, match="multiple of checkpoint_every"):
        replaced(small.train, snapshot_every=300)

    config = micro_config("fastsag")
    config = replaced(config, train=replaced(config.train, checkpoint_every=2, snapshot_every=4))
    write = snapshot_writer(tmp_path / "snapshots", "fastsag", config)
    state = FastSAGModel(config).state_dict()
    for step in (2, 4, 6, 8):
        write(step, state)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["fastsag_step000004.pt",
                                                                          "fastsag_step000008.pt"]
    system = FastSAGSystem(checkpoint=str(tmp_path / "snapshots" / "fastsag_step000008.pt"), steps=2)
    system.load("cpu")
    assert system.describe()["name"] == "fastsag"
