"""Seeded k-means in torch: k-means++ initialisation and chunked full-batch Lloyd iterations.

Used for SingSong's semantic tokenizer (k = 1024 over MERT features) and the offline mel codec's residual stages.
Distances are computed in chunks of rows, so memory stays at ``O(chunk * k + N * D)`` for 100k+ points.
"""

from __future__ import annotations

import warnings

import torch
from tqdm import tqdm

# Rows per distance block: 8192 x 1024 float32 distances = 32 MiB.
CHUNK_ROWS = 8192
# k-means++ seeding looks at most this many points per centroid (a random subsample), keeping init O(k^2 * 8 * D).
INIT_POINTS_PER_CLUSTER = 8


def _nearest(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest centroid and ``|c|^2 - 2 x.c`` (squared distance minus ``|x|^2``) for each row of ``x``.

    One fused matrix product per chunk of rows; ``|x|^2`` does not change the argmin, so it is left out.
    """
    centroid_norms = centroids.pow(2).sum(1)
    indices, scores = [], []
    for start in range(0, x.shape[0], CHUNK_ROWS):
        best, index = torch.addmm(centroid_norms, x[start : start + CHUNK_ROWS], centroids.T, alpha=-2.0).min(dim=1)
        indices.append(index)
        scores.append(best)
    return torch.cat(indices), torch.cat(scores)


def _cluster_sums(x: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per-cluster sums ``[k, D]`` as a sparse one-hot product (far faster than index_add_ on CPU)."""
    rows = torch.stack([labels, torch.arange(len(labels), device=x.device)])
    with warnings.catch_warnings():  # torch warns once that invariant checks are off; the indices are valid
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        one_hot = torch.sparse_coo_tensor(rows, torch.ones(len(labels), device=x.device), (k, len(labels)))
        return torch.sparse.mm(one_hot, x)


def assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid ``[N]`` (int64) for each row of ``x [N, D]``."""
    if x.dim() != 2 or centroids.dim() != 2 or x.shape[1] != centroids.shape[1]:
        raise ValueError(f"assign needs x [N, D] and centroids [k, D]; got {tuple(x.shape)}, {tuple(centroids.shape)}")
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
    norms = x.pow(2).sum(1)
    previous = None
    for _ in tqdm(range(iters), desc=f"k-means (k={k})", disable=not progress, leave=False):
        labels, scores = _nearest(x, centroids)
        if previous is not None and torch.equal(labels, previous):
            break
        previous = labels
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        means = _cluster_sums(x, labels, k) / counts.clamp_min(1.0)[:, None]
        centroids = torch.where(counts[:, None] > 0, means, centroids)
        empty = (counts == 0).nonzero()[:, 0]
        if len(empty):
            farthest = (scores + norms).topk(len(empty)).indices
            centroids[empty] = x[farthest]
    return centroids
