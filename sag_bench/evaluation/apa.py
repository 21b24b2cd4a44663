"""APA, Accompaniment Prompt Adherence (Grachten & Nistal 2025, arXiv 2503.06346), over our embedders.

APA = 1/2 + (FAD(C, R') - FAD(C, R)) / (2 FAD(R, R')), clipped to [0, 1]: R are the matched (vocals,
accompaniment) pairs of the reference, R' the same pairs with each vocal given the accompaniment of a clip of
another song, C the candidate pairs; every pair is embedded as one mix. 1 means the candidates sit with the
matched pairs, 0 with the mismatched ones.

The measure itself (Frechet distances on the pairs' statistics, the clipping, the degenerate cases) is the authors'
package ``audio-metrics`` (:func:`audio_metrics.metrics.apa.apa` on :class:`audio_metrics.data.AudioMetricsData`).
What we supply, and why it differs from the package's defaults (see README, "APA"):

* the mix of a pair is our FAD protocol's evaluated mix (vocals + 0.9 x accompaniment, :func:`eval_mix`), not the
  package's ``L0`` mix, which loudness-normalises the accompaniment to the vocals' loudness: that would make an
  accompaniment 40 dB under the voice, or silence, look like a full one;
* embeddings are our embedders' frames over each whole clip (``pooling="frames"``, as our FAD), not one vector
  per 5 s window: chorale clips are 10 s and few, so per-window vectors would leave the covariances singular;
  ``pooling="clip"`` (one mean vector per clip) is the package's one-vector-per-window layout with the window
  equal to the clip;
* R' pairs each vocal with a clip of *another song*, drawn by seeded permutations (the package shuffles windows
  with an unseeded buffer, which may pair a window with its own song), pooled over ``MISMATCH_DRAWS`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from sag_bench.audio import resample
from sag_bench.evaluation.fad import ClipMoments, GaussianStats
from sag_bench.audio import MIX_GAIN
from sag_bench.evaluation.protocol import eval_mix

POOLINGS = ("frames", "clip")
# R' is an expectation over mismatched pairings: one seeded pairing of 48 clips is a noisy estimate of it.
MISMATCH_DRAWS = 4
EMBED_BATCH = 8


def shuffled_partners(groups: Sequence[str], seed: int, attempts: int = 10_000) -> np.ndarray:
    """A seeded permutation ``p`` with ``groups[p[i]] != groups[i]`` for all i (partners from another song)."""
    groups_arr = np.asarray(groups)
    rng = np.random.default_rng(seed)
    for _ in range(attempts):
        order = rng.permutation(len(groups_arr))
        if not np.any(groups_arr[order] == groups_arr):
            return order
    raise ValueError("cannot pair every clip with a clip of another song (too few songs?)")


def embed_audio(embedder: Any, audios: Sequence[np.ndarray], sample_rate: int) -> list[np.ndarray]:
    """Float32 embeddings ``[frames, dim]`` of mono clips at ``sample_rate`` by a loaded fadtk ``ModelLoader``
    (ours embed in batches; fadtk's own loaders clip by clip)."""
    from sag_bench.evaluation.embedders import BatchEmbedder

    clips = [resample(np.asarray(a, dtype=np.float32).reshape(-1), sample_rate, embedder.sr) for a in audios]
    with torch.inference_mode():
        if isinstance(embedder, BatchEmbedder):
            out = [e for start in range(0, len(clips), EMBED_BATCH)
                   for e in embedder.embed_batch(clips[start:start + EMBED_BATCH])]
        else:
            out = [embedder._get_embedding(clip) for clip in clips]
    return [np.asarray(e.detach().float().cpu().numpy() if hasattr(e, "detach") else e, np.float32)
            .reshape(-1, embedder.num_features) for e in out]


def pair_embeddings(embedder: Any, vocals: Sequence[np.ndarray], accompaniments: Sequence[np.ndarray],
                    sample_rate: int, gain: float = MIX_GAIN) -> list[np.ndarray]:
    """Embeddings of each (vocals, accompaniment) pair's evaluated mix (``vocals + gain x accompaniment``)."""
    mixes = [np.asarray(eval_mix(v, a, gain)) for v, a in zip(vocals, accompaniments)]
    return embed_audio(embedder, mixes, sample_rate)


def _pool(embeddings: Sequence[np.ndarray], pooling: str) -> list[np.ndarray]:
    if pooling not in POOLINGS:
        raise ValueError(f"unknown APA pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
    return list(embeddings) if pooling == "frames" else [np.asarray(e).mean(axis=0, keepdims=True) for e in embeddings]


def metrics_data(stats: GaussianStats) -> Any:
    """Our float64 statistics as the package's :class:`AudioMetricsData` (mean, covariance, count)."""
    from audio_metrics.data import AudioMetricsData

    return AudioMetricsData.deserialize({"mean": torch.from_numpy(stats.mu), "cov": torch.from_numpy(stats.cov),
                                         "n": stats.n, "store_embeddings": False, "embeddings": None, "radii": {},
                                         "dtype": torch.float64})


@dataclass
class APAReference:
    """The matched (R) and mismatched (R') reference statistics and their distance FAD(R, R')."""

    reference: Any  # AudioMetricsData
    anti_reference: Any  # AudioMetricsData
    distance: float
    pooling: str
    matched_stats: GaussianStats  # R's statistics as ours (float64), e.g. as a FAD reference

    @classmethod
    def of(cls, matched: Sequence[np.ndarray], mismatched: Sequence[np.ndarray],
           pooling: str = "frames") -> "APAReference":
        """From per-clip embeddings of the matched and the mismatched pairs."""
        from audio_metrics.metrics.apa import apa_compute_d_x_xp

        matched_stats = _stats(_pool(matched, pooling))
        reference = metrics_data(matched_stats)
        anti_reference = metrics_data(_stats(_pool(mismatched, pooling)))
        return cls(reference, anti_reference, float(apa_compute_d_x_xp(reference, anti_reference)), pooling,
                   matched_stats)

    def moments(self, candidate: Sequence[np.ndarray]) -> ClipMoments:
        """Per-clip moments of candidate embeddings under this reference's pooling (for bootstrap weights)."""
        return ClipMoments.of(_pool(candidate, self.pooling))

    def score(self, candidate: ClipMoments, weights: np.ndarray | None = None) -> float:
        """APA of the candidate clips, each taken ``weights[i]`` times (all once by default)."""
        from audio_metrics.metrics.apa import apa

        weights = np.ones(len(candidate.counts)) if weights is None else np.asarray(weights, np.float64)
        return float(apa(metrics_data(candidate.combine(weights)), self.reference, self.anti_reference,
                         self.distance))


def _stats(embeddings: Sequence[np.ndarray]) -> GaussianStats:
    return ClipMoments.of(embeddings).combine(np.ones(len(embeddings)))


def apa_reference(embedder: Any, vocals: Sequence[np.ndarray], accompaniments: Sequence[np.ndarray],
                  songs: Sequence[str], sample_rate: int, seed: int = 0, pooling: str = "frames",
                  gain: float = MIX_GAIN, draws: int = MISMATCH_DRAWS) -> APAReference:
    """R from the true pairs, R' from each vocal with the accompaniment of another song's clip, pooled over
    ``draws`` seeded pairings (seeds ``seed``, ``seed + 1``, ...)."""
    if draws < 1:
        raise ValueError(f"APA needs at least one mismatched pairing, not draws={draws}")
    matched = pair_embeddings(embedder, vocals, accompaniments, sample_rate, gain)
    mismatched = [embedding for draw in range(draws)
                  for embedding in pair_embeddings(embedder, vocals, [accompaniments[j] for j in
                                                                      shuffled_partners(songs, seed + draw)],
                                                   sample_rate, gain)]
    return APAReference.of(matched, mismatched, pooling)
