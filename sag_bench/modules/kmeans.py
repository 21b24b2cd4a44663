"""Seeded k-means in torch: k-means++ initialisation and chunked full-batch Lloyd iterations.

Used for SingSong's semantic tokenizer (k = 1024 over MERT features) and the offline mel codec's residual stages.
Distances are computed in chunks of rows, so memory stays at ``O(chunk * k + N * D)`` for 100k+ points.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

# Rows per distance block: 8192 x 1024 float32 distances = 32 MiB.
CHUNK_ROWS = 8192
# k-means++ seeding looks at most this many points per centroid (a random subsample), keeping init O(k^2 * 8 * D).
INIT_POINTS_PER_CLUSTER = 8


def _squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``[n, k]`` squared Euclidean distances (clamped at 0 against rounding)."""
    cross = x @ centroids.T
    return (x.pow(2).sum(1, keepdim=True) - 2.0 * cross + centroids.pow(2).sum(1)[None]).clamp_min(0.0)


def _nearest(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and squared distance to the nearest centroid for every row of ``x``, chunk by chunk."""
    indices, distances = [], []
    for start in range(0, x.shape[0], CHUNK_ROWS):
        block = _squared_distances(x[start : start + CHUNK_ROWS], centroids)
        best, index = block.min(dim=1)
        indices.append(index)
        distances.append(best)
    return torch.cat(indices), torch.cat(distances)


def assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid ``[N]`` (int64) for each row of ``x [N, D]``."""
    if x.dim() != 2 or centroids.dim() != 2 or x.shape[1] != centroids.shape[1]:
        raise ValueError(f"assign needs x [N, D] and centroids [k, D]; got {tuple(x.shape)} and {tuple(centroids.shape)}")
    return _nearest(x.float(), centroids.float().to(x.device))[0]


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next centroid drawn with probability ~ D(x)^2."""
    n = x.shape[0]
    norms = x.pow(2).sum(1)
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    closest = (norms - 2.0 * (x @ x[chosen[0]]) + norms[chosen[0]]).clamp_min(0.0)
    for _ in range(1, k):
        total = closest.sum()
        # Once every point coincides with a centroid, fall back to a uniform choice.
        weights = (closest / total).cpu() if total > 0 else torch.ones(n)
        index = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(index)
        closest = torch.minimum(closest, (norms - 2.0 * (x @ x[index]) + norms[index]).clamp_min(0.0))
    return x[chosen].clone()


def fit_kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0, progress: bool = False) -> torch.Tensor:
    """Centroids ``[k, D]`` of ``x [N, D]`` by k-means++ seeding then ``iters`` Lloyd iterations.

    Deterministic for a given ``seed``. Stops early once assignments no longer change. A cluster that loses all
    its points is re-seeded at the point currently farthest from its centroid.
    """
    if x.dim() != 2:
        raise ValueError(f"fit_kmeans needs a [N, D] matrix, got shape {tuple(x.shape)}")
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k-means with k={k} needs at least k points; got {x.shape[0]}")
    x = x.float()
    generator = torch.Generator().manual_seed(seed)
    sample_size = min(x.shape[0], k * INIT_POINTS_PER_CLUSTER)
    sample = torch.randperm(x.shape[0], generator=generator)[:sample_size].to(x.device)
    centroids = _kmeans_plus_plus(x[sample], k, generator)
    previous = None
    for _ in tqdm(range(iters), desc=f"k-means (k={k})", disable=not progress, leave=False):
        labels, distances = _nearest(x, centroids)
        if previous is not None and torch.equal(labels, previous):
            break
        previous = labels
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        empty = (counts == 0).nonzero()[:, 0]
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1.0)[:, None], centroids)
        if len(empty):
            far = distances.topk(len(empty)).indices
            centroids[empty] = x[far]
    return centroids
