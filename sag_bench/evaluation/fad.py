"""Frechet Audio Distance over fadtk embedders, with a content-keyed embedding cache and float64 statistics.

Our layer over fadtk: embeddings are cached by (sha256 of the file's content, embedder name and settings), so a
regenerated file under the same name is embedded again (fadtk keys by file name and goes stale); clips are
batched; the device is an argument; nothing global is touched; embeddings stay float32 and statistics are float64.
The score also reports a seeded paired bootstrap CI over clips (reference and evaluated clips resampled together),
a seeded FAD-inf, per-clip FADs and a warning when a set has too few frames for its covariance;
:func:`score_floor` gives the ground-truth floor (split-half FAD of the reference set).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from sag_bench.audio import AudioError, load_audio
from sag_bench.store import ContentCache, sha256_bytes, sha256_file

# A covariance estimated from fewer frames than this multiple of the dimension is (near-)singular: FAD unreliable.
MIN_FRAMES_PER_DIM = 2
# FAD-inf (Gui et al. 2024, "Adapting Frechet Audio Distance for Generative Music Evaluation"; fadtk defaults):
# FAD at 25 sample sizes from 500 frames to all frames, extrapolated linearly in 1/n to n -> infinity.
FAD_INF_STEPS = 25
FAD_INF_MIN_N = 500
# How embeddings are read from audio files (part of the cache key): our loader, mono float32, soxr VHQ resampling.
AUDIO_LOADING = "sag_bench.audio.load_audio:mono-float32-soxr-vhq"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")


class EmbeddingCache:
    """Embeddings keyed by (sha256 of the audio file, embedder name + settings) in a :class:`ContentCache`."""

    def __init__(self, cache_dir: str | Path, embedder: Any) -> None:
        from sag_bench.evaluation.embedders import embedder_settings

        self.settings = {**embedder_settings(embedder), "audio_loading": AUDIO_LOADING}
        self._settings_json = json.dumps(self.settings, sort_keys=True, default=str)
        self.store = ContentCache(cache_dir, f"embeddings/{embedder.name}")

    def key(self, path: str | Path) -> str:
        """Cache key of ``path``: changes whenever the file's bytes or the embedder's settings change."""
        return sha256_bytes(f"{sha256_file(path)}|{self._settings_json}".encode())

    def get(self, path: str | Path) -> np.ndarray | None:
        """The cached embedding ``[frames, dim]`` (float32) of ``path``, or None."""
        return self.store.get(self.key(path))

    def put(self, path: str | Path, embedding: np.ndarray) -> np.ndarray:
        """Store the embedding of ``path``."""
        return self.store.put(self.key(path), np.asarray(embedding, dtype=np.float32))


def _read_for(embedder: Any, path: Path) -> Any:
    """Audio as the embedder takes it: our loader at its rate, or the loader's own ``load_wav`` if it has one."""
    from sag_bench.evaluation.embedders import ModelLoader

    if type(embedder).load_wav is not ModelLoader.load_wav:
        return embedder.load_wav(path)
    return embedder.enforce_min_len(load_audio(path, embedder.sr))


def _to_numpy(embedding: Any, path: Path, dim: int) -> np.ndarray:
    array = embedding.detach().float().cpu().numpy() if hasattr(embedding, "detach") else np.asarray(embedding)
    array = array.reshape(-1, dim) if array.ndim == 1 and array.size == dim else array
    if array.ndim != 2 or array.shape[1] != dim:
        raise AudioError(path, f"embedder returned shape {array.shape}, expected [frames, {dim}]")
    if not np.isfinite(array).all():
        raise AudioError(path, "embedding contains NaN or infinite values")
    return array.astype(np.float32)


def embed_files(files: Sequence[str | Path], embedder: Any, cache_dir: str | Path, batch_size: int = 8,
                device: str | None = None) -> list[np.ndarray]:
    """Float32 embeddings ``[frames, dim]`` of ``files`` (in order), computed in batches and cached by content.

    ``embedder`` is a loaded ``ModelLoader`` (see :func:`sag_bench.evaluation.embedders.load_embedder`); with
    ``device`` it is moved there first. Our embedders embed ``batch_size`` clips per forward pass; fadtk's take
    one clip at a time.
    """
    import torch

    from sag_bench.evaluation.embedders import BatchEmbedder, move_embedder

    if device is not None:
        move_embedder(embedder, device)
    cache = EmbeddingCache(cache_dir, embedder)
    paths = [Path(f) for f in files]
    results: list[np.ndarray | None] = [cache.get(p) for p in paths]
    todo = [i for i, value in enumerate(results) if value is None]
    dim = int(embedder.num_features)
    with tqdm(total=len(todo), desc=f"embedding ({embedder.name})", unit="file", disable=not todo) as progress:
        for start in range(0, len(todo), max(1, batch_size)):
            chunk = todo[start : start + max(1, batch_size)]
            audios = [_read_for(embedder, paths[i]) for i in chunk]
            with torch.inference_mode():
                if isinstance(embedder, BatchEmbedder):
                    embeddings = embedder.embed_batch(audios)
                else:
                    embeddings = [embedder._get_embedding(audio) for audio in audios]
            for i, embedding in zip(chunk, embeddings):
                results[i] = cache.put(paths[i], _to_numpy(embedding, paths[i], dim))
            progress.update(len(chunk))
    return results  # type: ignore[return-value]


def audio_files(folder: str | Path) -> list[Path]:
    """The audio files directly inside ``folder``, sorted; raises :class:`FileNotFoundError` if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return files


@dataclass
class GaussianStats:
    """Mean, covariance (float64) and frame count of a set of embedding frames."""

    mu: np.ndarray
    cov: np.ndarray
    n: int

    @classmethod
    def of(cls, frames: np.ndarray) -> "GaussianStats":
        """Statistics of frames ``[n, dim]`` (unbiased covariance, as fadtk and numpy's ``cov``)."""
        frames = np.asarray(frames, dtype=np.float64)
        if len(frames) < 2:
            raise ValueError(f"FAD needs at least 2 embedding frames, got {len(frames)} (audio too short?)")
        return cls(frames.mean(axis=0), np.cov(frames, rowvar=False), len(frames))


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped to 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _trace_sqrt_product(sqrt_cov1: np.ndarray, cov2: np.ndarray) -> float:
    """``Tr(sqrtm(C1 C2))`` as the sum of square roots of the eigenvalues of ``sqrt(C1) C2 sqrt(C1)`` (PSD)."""
    inner = sqrt_cov1 @ cov2 @ sqrt_cov1
    values = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Frechet distance between N(mu1, cov1) and N(mu2, cov2), in float64.

    ``|mu1 - mu2|^2 + Tr(C1) + Tr(C2) - 2 Tr(sqrtm(C1 C2))``, with the last trace from the eigenvalues of the
    symmetric PSD matrix ``sqrt(C1) C2 sqrt(C1)`` (same spectrum as ``C1 C2``): real, never negative, and stable
    for singular covariances.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, cov {cov1.shape} vs {cov2.shape}")
    return _frechet_with_sqrt(mu1, cov1, sqrtm_psd(cov1), mu2, cov2)


def _frechet_with_sqrt(mu1: np.ndarray, cov1: np.ndarray, sqrt_cov1: np.ndarray, mu2: np.ndarray,
                       cov2: np.ndarray) -> float:
    diff = mu1 - mu2
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * _trace_sqrt_product(sqrt_cov1, cov2)
    return float(max(value, 0.0))


@dataclass
class ClipMoments:
    """Per-clip frame counts, means and scatter matrices (float64), combinable under bootstrap weights."""

    counts: np.ndarray  # [k]
    means: np.ndarray  # [k, d]
    scatters: np.ndarray  # [k, d, d], sum over the clip's frames of (x - mean)(x - mean)^T

    @classmethod
    def of(cls, embeddings: Sequence[np.ndarray]) -> "ClipMoments":
        """Moments of each clip's frames."""
        counts = np.array([len(e) for e in embeddings], dtype=np.float64)
        means = np.stack([np.asarray(e, np.float64).mean(axis=0) for e in embeddings])
        scatters = np.stack([(c := np.asarray(e, np.float64) - m).T @ c for e, m in zip(embeddings, means)])
        return cls(counts, means, scatters)

    def combine(self, weights: np.ndarray) -> GaussianStats:
        """Statistics of the frames of clip ``i`` taken ``weights[i]`` times (Chan et al.'s parallel formula)."""
        frames = weights * self.counts
        n = frames.sum()
        mu = frames @ self.means / n
        offsets = self.means - mu
        scatter = np.tensordot(weights, self.scatters, axes=1) + (offsets * frames[:, None]).T @ offsets
        return GaussianStats(mu, scatter / (n - 1), int(n))


@dataclass
class FADResult:
    """A FAD score with its uncertainty, extrapolation, per-clip values and reliability warning."""

    embedder: str
    score: float
    n_ref_frames: int
    n_eval_frames: int
    n_ref_clips: int
    n_eval_clips: int
    dim: int
    warning: str = ""
    ci_low: float | None = None
    ci_high: float | None = None
    bootstrap: int = 0
    fad_inf: float | None = None
    fad_inf_r2: float | None = None
    per_clip: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def set_warning(name: str, n_frames: int, dim: int) -> str:
    """A non-empty warning when ``n_frames < 2 * dim`` (covariance singular, FAD unreliable), else ``""``."""
    if n_frames >= MIN_FRAMES_PER_DIM * dim:
        return ""
    return (f"{name} set has {n_frames} frames < {MIN_FRAMES_PER_DIM} x {dim} dims: covariance singular, "
            f"FAD unreliable")


def bootstrap_scores(ref: ClipMoments, evaluated: ClipMoments, n_boot: int, seed: int) -> np.ndarray:
    """FAD of ``n_boot`` seeded resamples over clips, each set's clips keeping their frames together.

    Paired when both sets have the same number of clips (clip ``i`` of the reference goes with clip ``i`` of the
    evaluated set, as in a run): one draw of clip indices selects both sets' clips. Sets of different sizes are
    each drawn on their own. Either way the reference changes with every resample too.
    """
    rng = np.random.default_rng(seed)
    k_ref, k_eval = len(ref.counts), len(evaluated.counts)
    scores = np.empty(n_boot)
    for i in tqdm(range(n_boot), desc="FAD bootstrap", unit="resample", leave=False):
        eval_weights = np.bincount(rng.integers(0, k_eval, size=k_eval), minlength=k_eval).astype(np.float64)
        ref_weights = eval_weights if k_ref == k_eval else \
            np.bincount(rng.integers(0, k_ref, size=k_ref), minlength=k_ref).astype(np.float64)
        a, b = ref.combine(ref_weights), evaluated.combine(eval_weights)
        scores[i] = frechet_distance(a.mu, a.cov, b.mu, b.cov)
    return scores


def bootstrap_ci(ref: ClipMoments, evaluated: ClipMoments, n_boot: int, seed: int,
                 level: float = 0.95) -> tuple[float, float]:
    """Paired bootstrap CI of FAD over clips (see :func:`bootstrap_scores`), centred on the point estimate.

    A resample repeats clips, which raises FAD (its small-sample bias grows as the distinct clips shrink), so the
    raw percentile interval can sit wholly above the estimate. The interval is the ``level`` percentile range of
    the resampled FADs shifted by their bias (their mean minus the full-set FAD), clipped at 0: it contains the
    estimate whenever the resamples' mean lies inside their own central range. Identical paired sets give [0, 0].
    """
    ones_ref, ones_eval = np.ones(len(ref.counts)), np.ones(len(evaluated.counts))
    full_ref, full_eval = ref.combine(ones_ref), evaluated.combine(ones_eval)
    estimate = frechet_distance(full_ref.mu, full_ref.cov, full_eval.mu, full_eval.cov)
    scores = bootstrap_scores(ref, evaluated, n_boot, seed)
    bias = float(scores.mean()) - estimate
    low, high = np.quantile(scores, [(1 - level) / 2, (1 + level) / 2]) - bias
    return max(float(low), 0.0), max(float(high), 0.0)


# The ground-truth floor (what FAD reads when both sides are real music of the same source): FAD between two
# disjoint halves of the reference clips, drawn at random ``splits`` times with a seed. Each half has half the clips,
# so the floor carries roughly twice the small-sample bias of a full-size comparison: an upper estimate of the FAD
# that two independent sets of this size from the same distribution would score.
FLOOR_SPLITS = 20
FLOOR_DEFINITION = ("split-half FAD: mean over seeded random splits of the reference clips into two disjoint "
                    "halves (each half has half the clips; an upper estimate of the FAD of two same-source sets)")


@dataclass
class FloorResult:
    """The ground-truth floor: split-half FADs of the reference set, their mean and central 95 % range."""

    embedder: str
    score: float
    low: float
    high: float
    splits: int
    clips_per_half: int
    n_ref_clips: int
    seed: int
    definition: str = FLOOR_DEFINITION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def split_half_scores(embeddings: Sequence[np.ndarray], seed: int, splits: int = FLOOR_SPLITS) -> np.ndarray:
    """FAD between the two halves of ``splits`` seeded random splits of clips (frames stay with their clip)."""
    k = len(embeddings)
    if k < 4:
        raise ValueError(f"the split-half floor needs at least 4 reference clips, got {k}")
    moments, rng, half = ClipMoments.of(embeddings), np.random.default_rng(seed), k // 2
    scores = np.empty(splits)
    for i in range(splits):
        order = rng.permutation(k)
        first, second = np.zeros(k), np.zeros(k)
        first[order[:half]], second[order[half: 2 * half]] = 1.0, 1.0
        a, b = moments.combine(first), moments.combine(second)
        scores[i] = frechet_distance(a.mu, a.cov, b.mu, b.cov)
    return scores


def fad_inf(ref: GaussianStats, eval_frames: np.ndarray, seed: int, steps: int = FAD_INF_STEPS,
            min_n: int = FAD_INF_MIN_N) -> tuple[float, float]:
    """Seeded FAD-inf: (intercept of FAD against 1/n over bootstrapped frame sets, R^2 of that line)."""
    max_n = len(eval_frames)
    low = min(min_n, max_n // 2)
    if low < 2:
        raise ValueError(f"FAD-inf needs at least 4 evaluation frames, got {max_n}")
    ns = np.linspace(low, max_n, steps).astype(int)
    rng = np.random.default_rng(seed)
    sqrt_ref = sqrtm_psd(ref.cov)
    scores = []
    for n in tqdm(ns, desc="FAD-inf", unit="n", leave=False):
        sample = GaussianStats.of(eval_frames[rng.integers(0, max_n, size=n)])
        scores.append(_frechet_with_sqrt(ref.mu, ref.cov, sqrt_ref, sample.mu, sample.cov))
    xs, ys = 1.0 / ns, np.array(scores)
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = ys - (slope * xs + intercept)
    total = ((ys - ys.mean()) ** 2).sum()
    return float(intercept), float(1.0 - (residual**2).sum() / total) if total > 0 else 1.0


def _clip_names(files: Sequence[Path]) -> list[str]:
    stems = [f.stem for f in files]
    return stems if len(set(stems)) == len(stems) else [str(f) for f in files]


def score(ref_files: Sequence[str | Path], eval_files: Sequence[str | Path], embedder: Any, cache_dir: str | Path,
          *, inf: bool = False, per_clip: bool = False, bootstrap: int = 0, seed: int = 0, batch_size: int = 8,
          device: str | None = None) -> FADResult:
    """FAD between reference and evaluated audio files with one embedder (a loaded ``ModelLoader`` or a name).

    ``bootstrap`` > 0 adds a seeded 95 % CI over clips (paired when both lists have the same length: file ``i`` of
    each list is one pair; see :func:`bootstrap_ci`); ``inf`` a seeded FAD-inf; ``per_clip`` the FAD of each
    evaluated clip against the whole reference set (keyed by file stem).
    """
    embedder = _loaded(embedder, device)
    ref_paths, eval_paths = [Path(f) for f in ref_files], [Path(f) for f in eval_files]
    if not ref_paths or not eval_paths:
        raise FileNotFoundError("FAD needs at least one reference and one evaluated file")
    ref_emb = embed_files(ref_paths, embedder, cache_dir, batch_size, device)
    eval_emb = embed_files(eval_paths, embedder, cache_dir, batch_size, device)
    ref_frames, eval_frames = np.concatenate(ref_emb), np.concatenate(eval_emb)
    ref, evaluated = GaussianStats.of(ref_frames), GaussianStats.of(eval_frames)
    dim = ref_frames.shape[1]
    warnings = [w for w in (set_warning("reference", ref.n, dim), set_warning("evaluation", evaluated.n, dim)) if w]
    result = FADResult(embedder=embedder.name, score=frechet_distance(ref.mu, ref.cov, evaluated.mu, evaluated.cov),
                       n_ref_frames=ref.n, n_eval_frames=evaluated.n, n_ref_clips=len(ref_paths),
                       n_eval_clips=len(eval_paths), dim=dim, warning="; ".join(warnings), seed=seed)
    if bootstrap > 0:
        result.ci_low, result.ci_high = bootstrap_ci(ClipMoments.of(ref_emb), ClipMoments.of(eval_emb), bootstrap, seed)
        result.bootstrap = bootstrap
    if inf:
        result.fad_inf, result.fad_inf_r2 = fad_inf(ref, eval_frames, seed)
    if per_clip:
        sqrt_ref = sqrtm_psd(ref.cov)
        result.per_clip = {name: _frechet_with_sqrt(ref.mu, ref.cov, sqrt_ref, clip.mu, clip.cov)
                           for name, clip in zip(_clip_names(eval_paths), map(GaussianStats.of, eval_emb))}
    return result


def score_floor(ref_files: Sequence[str | Path], embedder: Any, cache_dir: str | Path, *, splits: int = FLOOR_SPLITS,
                seed: int = 0, batch_size: int = 8, device: str | None = None) -> FloorResult:
    """The ground-truth floor of the reference files with one embedder (see ``FLOOR_DEFINITION``), seeded."""
    embedder = _loaded(embedder, device)
    embeddings = embed_files([Path(f) for f in ref_files], embedder, cache_dir, batch_size, device)
    scores = split_half_scores(embeddings, seed, splits)
    low, high = np.quantile(scores, [0.025, 0.975])
    return FloorResult(embedder=embedder.name, score=float(scores.mean()), low=float(low), high=float(high),
                       splits=splits, clips_per_half=len(embeddings) // 2, n_ref_clips=len(embeddings), seed=seed)


def _loaded(embedder: Any, device: str | None) -> Any:
    """A loaded embedder: ``embedder`` itself, or the one named by it."""
    if not isinstance(embedder, str):
        return embedder
    from sag_bench.evaluation.embedders import load_embedder

    return load_embedder(embedder, device or "cpu")
