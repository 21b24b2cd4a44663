"""APA over our embedders: the authors' package does the measure; our figures match its own end-to-end pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sag_bench.evaluation.apa import (apa_reference, embed_audio, metrics_data, pair_embeddings,
                                      shuffled_partners)
from sag_bench.evaluation.embedders import load_embedder
from sag_bench.evaluation.fad import GaussianStats, frechet_distance
from sag_bench.evaluation.protocol import eval_mix
from tests.conftest import build_dataset


def test_shuffled_partners_come_from_other_songs() -> None:
    songs = ["a", "a", "b", "b", "c", "c"]
    order = shuffled_partners(songs, seed=3)
    assert sorted(order) == list(range(6)) and all(songs[j] != songs[i] for i, j in enumerate(order))
    np.testing.assert_array_equal(order, shuffled_partners(songs, seed=3))
    with pytest.raises(ValueError, match="another song"):
        shuffled_partners(["a", "a"], seed=0)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, list, list[str]]:
    from sag_bench.datasets.manifest import ClipDataset

    dataset = ClipDataset(build_dataset(tmp_path_factory.mktemp("synthetic"), songs=4, clips_per_song=3,
                                                  seconds=4.0))
    loaded = [dataset.load(record) for record in dataset.records()]
    return [p.vocals for p in loaded], [p.accompaniment for p in loaded], [p.song for p in loaded]


def test_apa_is_one_for_the_reference_and_low_for_mismatched_pairs(pairs) -> None:
    vocals, accompaniments, songs = pairs
    embedder = load_embedder("dsp-spectral")
    reference = apa_reference(embedder, vocals, accompaniments, songs, 24_000, seed=0)
    truth = reference.moments(pair_embeddings(embedder, vocals, accompaniments, 24_000))
    assert reference.score(truth) == pytest.approx(1.0)
    other = [accompaniments[j] for j in shuffled_partners(songs, seed=7)]
    assert reference.score(reference.moments(pair_embeddings(embedder, vocals, other, 24_000))) < 0.3
    # the package's Frechet distance on our statistics agrees with ours (float64 both)
    stats = [GaussianStats(d.mean.numpy(), d.cov.numpy(), d.n) for d in (reference.reference, reference.anti_reference)]
    assert reference.distance == pytest.approx(frechet_distance(stats[0].mu, stats[0].cov, stats[1].mu, stats[1].cov),
                                               rel=1e-6)
    assert metrics_data(stats[0]).n == stats[0].n


def test_our_apa_matches_the_packages_own_pipeline(pairs) -> None:
    """audio-metrics end to end (its windowing, pair mixing, batching, statistics and APA) with our embedder
    plugged in (one mean vector per window, the window = the clip) and our protocol's mix, against ours."""
    from audio_metrics import AudioMetrics
    from audio_metrics.embed import ItemCategory, embedding_pipeline
    from audio_metrics.util.gpu_parallel import GPUWorkerHandler

    vocals, accompaniments, songs = pairs
    ours = load_embedder("dsp-spectral")

    class PooledEmbedder:  # the package's embedder interface
        sr = ours.sr

        def get_device(self) -> torch.device:
            return torch.device("cpu")

        def forward(self, data: dict) -> dict:
            clips = embed_audio(ours, list(data["audio"]), self.sr)
            return {"embedding": torch.from_numpy(np.stack([e.mean(axis=0) for e in clips]))}

    class CPUWorkers(GPUWorkerHandler):  # the package runs embedders on GPUs only; here the model stays put
        def get_model_on_gpu(self, model, target_gpu_i):
            return model

    class CPUAudioMetrics(AudioMetrics):
        def _get_gpu_handler(self, device_indices):
            return CPUWorkers((0,))

    def mix(audio: np.ndarray, sr: int) -> np.ndarray:
        return np.asarray(eval_mix(audio[:, 0], audio[:, 1]))

    seconds = len(vocals[0]) / ours.sr
    partners = shuffled_partners(songs, seed=0)
    candidate = [accompaniments[(i + 1) % len(accompaniments)] * 0.5 for i in range(len(vocals))]
    stacked = lambda accs: [np.stack([v, a], axis=1) for v, a in zip(vocals, accs)]  # noqa: E731

    package = CPUAudioMetrics(metrics=["apa"], embedder=PooledEmbedder(), mix_function=mix, win_dur=seconds)
    for target, accs in (("mix_reference", accompaniments), ("mix_anti_reference", [accompaniments[j] for j in partners])):
        data = embedding_pipeline(stacked(accs), embedder=package.embedder, mix_function=mix,
                                  gpu_handler=package.gpu_handler, apa_mode="candidate", win_dur=seconds)
        setattr(package, target, data[ItemCategory.aligned])
    theirs = {"truth": package.evaluate(stacked(accompaniments))["apa"],
              "candidate": package.evaluate(stacked(candidate))["apa"]}

    reference = apa_reference(ours, vocals, accompaniments, songs, ours.sr, seed=0, pooling="clip", draws=1)
    mine = {name: reference.score(reference.moments(pair_embeddings(ours, vocals, accs, ours.sr)))
            for name, accs in (("truth", accompaniments), ("candidate", candidate))}
    assert 0.0 <= theirs["candidate"] < 0.9
    assert mine == pytest.approx(theirs, abs=1e-6)
