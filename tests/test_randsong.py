"""RandSong and ground truth: draws never come from the clip's own song, are seeded, and batch-independent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sag_bench import registry
from sag_bench.audio import load_audio
from sag_bench.datasets.manifest import ClipDataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, dataset_builder):
    return dataset_builder(tmp_path_factory.mktemp("data"), songs=6, clips_per_song=2, seconds=1.0)


def _test_batch(data_dir):
    records = ClipDataset(data_dir).records("test")
    vocals = torch.from_numpy(np.stack([load_audio(r.vocals) for r in records]))
    return records, vocals


def test_groundtruth_returns_each_clips_own_accompaniment(data_dir):
    system = registry.build("systems", "groundtruth")
    system.prepare(data_dir)
    records, vocals = _test_batch(data_dir)
    out = system.generate(vocals, seed=0, clip_ids=[r.id for r in records])
    for record, audio in zip(records, out.numpy()):
        np.testing.assert_array_equal(audio, load_audio(record.accompaniment))


def test_randsong_never_uses_the_clips_own_song_and_is_seeded(data_dir):
    system = registry.build("systems", "randsong", pool_split="train")
    system.prepare(data_dir)
    records, vocals = _test_batch(data_dir)
    ids = [r.id for r in records]
    pool_audio = {r.id: load_audio(r.accompaniment) for r in ClipDataset(data_dir).records("train")}
    draws = {clip_id: system.draw(clip_id, seed=3) for clip_id in ids}
    song_of = {r.id: r.song for r in records}
    assert all(draws[c].song != song_of[c] for c in ids)
    first = system.generate(vocals, seed=3, clip_ids=ids).numpy()
    for clip_id, audio in zip(ids, first):
        np.testing.assert_array_equal(audio, pool_audio[draws[clip_id].id])
    one_by_one = np.concatenate([system.generate(vocals[i : i + 1], seed=3, clip_ids=[ids[i]]).numpy()
                                 for i in range(len(ids))])
    np.testing.assert_array_equal(first, one_by_one)  # batch-independent
    seeds = {tuple(system.draw(c, seed=s).id for c in ids) for s in range(8)}
    assert len(seeds) > 1  # the seed matters


def test_randsong_needs_clip_ids_and_a_pool(data_dir, tmp_path):
    system = registry.build("systems", "randsong", pool_split="nonexistent")
    with pytest.raises(ValueError, match="no clips of split 'nonexistent'"):
        system.prepare(data_dir)
    system = registry.build("systems", "randsong")
    system.prepare(data_dir)
    with pytest.raises(ValueError, match="needs the clip id"):
        system.generate(torch.zeros(1, 100), seed=0)
