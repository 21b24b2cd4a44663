"""FAD: closed-form agreement, parity with fadtk, content-keyed cache, warnings, bootstrap, FAD-inf, per-clip."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from sag_bench.audio import save_audio
from sag_bench.evaluation import fad
from sag_bench.evaluation.embedders import BatchEmbedder
from sag_bench.evaluation.fadtk_compat import import_fadtk


class FrameEmbedder(BatchEmbedder):
    """Reads consecutive samples as ``dim``-d frames: the file's samples *are* the embedding frames."""

    def __init__(self, dim: int) -> None:
        super().__init__(f"frames-{dim}", dim, 24_000)
        self.hop = dim
        self.calls = 0

    def load_model(self) -> None:
        self.model = "identity"

    def embed_batch(self, audios: list[np.ndarray]) -> list[torch.Tensor]:
        self.calls += len(audios)
        return [torch.from_numpy(np.asarray(a, np.float32)[: len(a) // self.hop * self.hop].reshape(-1, self.hop))
                for a in audios]


def write_gaussian_clips(folder: Path, mu: np.ndarray, sigma: np.ndarray, clips: int, frames: int,
                         seed: int) -> list[Path]:
    """Clips whose samples, read in frames of len(mu), are i.i.d. N(mu, diag(sigma^2))."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(clips):
        samples = (mu + sigma * rng.standard_normal((frames, len(mu)))).reshape(-1)
        paths.append(save_audio(folder / f"clip{i:03d}.wav", samples.astype(np.float32)))
    return paths


def test_fad_of_gaussian_samples_matches_closed_form(tmp_path: Path) -> None:
    mu1, sigma1 = np.array([0.0, 0.1, -0.1, 0.05]), np.array([0.1, 0.2, 0.05, 0.1])
    mu2, sigma2 = np.array([0.1, 0.1, 0.0, 0.05]), np.array([0.15, 0.1, 0.05, 0.2])
    # For diagonal covariances: |mu1 - mu2|^2 + sum (sigma1 - sigma2)^2.
    closed = float(((mu1 - mu2) ** 2).sum() + ((sigma1 - sigma2) ** 2).sum())
    assert closed == pytest.approx(0.0425)
    ref = write_gaussian_clips(tmp_path / "ref", mu1, sigma1, clips=10, frames=20_000, seed=1)
    ev = write_gaussian_clips(tmp_path / "eval", mu2, sigma2, clips=10, frames=20_000, seed=2)
    result = fad.score(ref, ev, FrameEmbedder(4), tmp_path / "cache")
    assert result.n_ref_frames == result.n_eval_frames == 200_000 and result.dim == 4
    assert result.score == pytest.approx(closed, rel=0.02)
    assert result.warning == ""
    assert fad.frechet_distance(mu1, np.diag(sigma1**2), mu2, np.diag(sigma2**2)) == pytest.approx(closed, rel=1e-12)


def test_frechet_distance_equals_fadtk_to_1e6_relative() -> None:
    calc = import_fadtk("fadtk.fad").calc_frechet_distance
    rng = np.random.default_rng(0)
    for dim in (8, 64, 128):
        a, b = rng.standard_normal((4 * dim, dim)), rng.standard_normal((4 * dim, dim)) * 1.3 + 0.2
        mu1, cov1 = a.mean(0), np.cov(a, rowvar=False)
        mu2, cov2 = b.mean(0), np.cov(b, rowvar=False)
        ours = fad.frechet_distance(mu1, cov1, mu2, cov2)
        theirs = float(np.real(calc(mu1, cov1, mu2, cov2)))
        assert ours == pytest.approx(theirs, rel=1e-6)
        assert ours > 0


def test_frechet_distance_identical_and_singular() -> None:
    rng = np.random.default_rng(3)
    frames = rng.standard_normal((10, 32))  # 10 frames in 32 dims: singular covariance
    stats = fad.GaussianStats.of(frames)
    assert np.linalg.matrix_rank(stats.cov) == 9
    assert fad.frechet_distance(stats.mu, stats.cov, stats.mu, stats.cov) == pytest.approx(0.0, abs=1e-9)
    other = fad.GaussianStats.of(rng.standard_normal((10, 32)))
    assert fad.frechet_distance(stats.mu, stats.cov, other.mu, other.cov) > 0
    with pytest.raises(ValueError, match="mismatched"):
        fad.frechet_distance(stats.mu, stats.cov, stats.mu[:3], stats.cov[:3, :3])


def test_regenerated_file_with_same_name_is_embedded_again(tmp_path: Path) -> None:
    embedder = FrameEmbedder(4)
    path = tmp_path / "gen" / "clip.wav"
    save_audio(path, np.full(400, 0.25, np.float32))
    first = fad.embed_files([path], embedder, tmp_path / "cache")[0]
    again = fad.embed_files([path], embedder, tmp_path / "cache")[0]
    assert embedder.calls == 1  # second call is a cache hit
    np.testing.assert_array_equal(first, again)
    save_audio(path, np.full(400, -0.5, np.float32))  # same name, new content
    regenerated = fad.embed_files([path], embedder, tmp_path / "cache")[0]
    assert embedder.calls == 2
    assert regenerated.shape == (100, 4) and regenerated.dtype == np.float32
    assert np.all(regenerated == -0.5) and np.all(first == 0.25)


def test_cache_key_depends_on_embedder_settings(tmp_path: Path) -> None:
    path = save_audio(tmp_path / "a.wav", np.zeros(240, np.float32))
    small, large = fad.EmbeddingCache(tmp_path, FrameEmbedder(4)), fad.EmbeddingCache(tmp_path, FrameEmbedder(8))
    assert small.key(path) != large.key(path)
    assert small.key(path) == fad.EmbeddingCache(tmp_path, FrameEmbedder(4)).key(path)


def test_warning_when_a_set_has_fewer_frames_than_twice_the_dimension(tmp_path: Path) -> None:
    mu, sigma = np.zeros(16), np.full(16, 0.1)
    ref = write_gaussian_clips(tmp_path / "ref", mu, sigma, clips=4, frames=100, seed=1)
    few = write_gaussian_clips(tmp_path / "few", mu, sigma, clips=2, frames=15, seed=2)  # 30 frames < 32
    result = fad.score(ref, few, FrameEmbedder(16), tmp_path / "cache")
    assert "evaluation set has 30 frames < 2 x 16 dims" in result.warning
    assert "reference" not in result.warning
    assert result.to_dict()["warning"] == result.warning
    assert fad.set_warning("evaluation", 32, 16) == ""


def test_bootstrap_fad_inf_and_per_clip_are_seeded(tmp_path: Path) -> None:
    ref = write_gaussian_clips(tmp_path / "ref", np.zeros(4), np.full(4, 0.1), clips=30, frames=100, seed=1)
    ev = write_gaussian_clips(tmp_path / "eval", np.full(4, 0.05), np.full(4, 0.1), clips=30, frames=100, seed=2)
    outlier = write_gaussian_clips(tmp_path / "outlier", np.full(4, 0.3), np.full(4, 0.1), clips=1, frames=100, seed=3)
    ev[17] = outlier[0].replace(outlier[0].with_stem("clip017_outlier"))
    embedder = FrameEmbedder(4)
    options = dict(inf=True, per_clip=True, bootstrap=200)
    first = fad.score(ref, ev, embedder, tmp_path / "cache", seed=7, **options)
    second = fad.score(ref, ev, embedder, tmp_path / "cache", seed=7, **options)
    other = fad.score(ref, ev, embedder, tmp_path / "cache", seed=8, **options)
    assert first.to_dict() == second.to_dict()
    assert (first.ci_low, first.fad_inf) != (other.ci_low, other.fad_inf)
    assert first.ci_low < first.score < first.ci_high
    assert first.score == pytest.approx(4 * 0.05**2 + 0.3**2 * 4 / 30, rel=0.3)
    assert abs(first.fad_inf - first.score) < 0.25 * first.score and 0.0 <= first.fad_inf_r2 <= 1.0
    assert len(first.per_clip) == 30 and "clip017_outlier" in first.per_clip and "clip016" in first.per_clip
    assert max(first.per_clip, key=first.per_clip.get) == "clip017_outlier"
    frames = fad.embed_files([ev[3]], embedder, tmp_path / "cache")[0]
    clip, ref_stats = fad.GaussianStats.of(frames), fad.GaussianStats.of(np.concatenate(
        fad.embed_files(ref, embedder, tmp_path / "cache")))
    assert first.per_clip["clip003"] == pytest.approx(
        fad.frechet_distance(ref_stats.mu, ref_stats.cov, clip.mu, clip.cov), rel=1e-9)


def test_clip_moments_reproduce_direct_statistics() -> None:
    rng = np.random.default_rng(5)
    clips = [rng.standard_normal((n, 6)) + i for i, n in enumerate((30, 50, 70))]
    weights = np.array([2.0, 0.0, 1.0])
    combined = fad.ClipMoments.of(clips).combine(weights)
    direct = fad.GaussianStats.of(np.concatenate([clips[0], clips[0], clips[2]]))
    assert combined.n == direct.n == 130
    np.testing.assert_allclose(combined.mu, direct.mu, rtol=1e-12)
    np.testing.assert_allclose(combined.cov, direct.cov, rtol=1e-10, atol=1e-12)


def test_scoring_leaves_process_globals_alone(tmp_path: Path) -> None:
    handlers = logging.getLogger().handlers[:]
    import_fadtk("fadtk.fad")
    ref = write_gaussian_clips(tmp_path / "ref", np.zeros(4), np.full(4, 0.1), clips=2, frames=50, seed=1)
    fad.score(ref, ref, FrameEmbedder(4), tmp_path / "cache")
    assert torch.is_grad_enabled()
    assert logging.getLogger().handlers == handlers


def test_audio_files_lists_audio_and_rejects_empty_folder(tmp_path: Path) -> None:
    save_audio(tmp_path / "b.wav", np.zeros(10, np.float32))
    save_audio(tmp_path / "a.wav", np.zeros(10, np.float32))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in fad.audio_files(tmp_path)] == ["a.wav", "b.wav"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        fad.audio_files(tmp_path / "empty")


def test_fad_command_prints_score_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sag_bench.cli import main

    t = np.arange(24_000) / 24_000
    for folder, shift in (("ref", 0.0), ("eval", 30.0)):
        for i in range(3):
            save_audio(tmp_path / folder / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 40 * i + shift) * t)))
    common = ["fad", "--embedder", "dsp-spectral", str(tmp_path / "ref"), str(tmp_path / "eval"),
              "--cache", str(tmp_path / "cache")]
    assert main(common + ["--per-clip"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FAD[dsp-spectral] = ") and "evaluated 63 (3 clips), 64 dims" in out
    assert "warning: reference set has 63 frames < 2 x 64 dims" in out and "; evaluation set has 63" in out
    assert "  c2\t" in out
    assert main(common + ["--json"]) == 0
    import json

    record = json.loads(capsys.readouterr().out)
    assert record["n_eval_frames"] == 63 and record["score"] > 0 and record["embedder"] == "dsp-spectral"
    assert main(["fad", "--embedder", "dsp-spectral", str(tmp_path / "missing"), str(tmp_path / "eval")]) == 2
    assert "missing: not a folder" in capsys.readouterr().err


def _random_clips(rng: np.random.Generator, clips: int, frames: int, shift: float) -> list[np.ndarray]:
    """Clips of 6-d frames around a per-clip centre (clips differ, as songs do)."""
    return [rng.standard_normal((frames, 6)) + shift + 0.5 * rng.standard_normal(6) for _ in range(clips)]


@pytest.mark.parametrize("seed", range(5))
def test_paired_bootstrap_ci_contains_the_estimate_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref, evaluated = _random_clips(rng, 12, 20, 0.0), _random_clips(rng, 12, 20, 0.3)
    stats = [fad.GaussianStats.of(np.concatenate(clips)) for clips in (ref, evaluated)]
    estimate = fad.frechet_distance(stats[0].mu, stats[0].cov, stats[1].mu, stats[1].cov)
    low, high = fad.bootstrap_ci(fad.ClipMoments.of(ref), fad.ClipMoments.of(evaluated), 200, seed)
    assert low < estimate < high
    # sets of different sizes are drawn each on their own, and the interval still brackets the estimate
    low, high = fad.bootstrap_ci(fad.ClipMoments.of(ref[:9]), fad.ClipMoments.of(evaluated), 200, seed)
    short = fad.GaussianStats.of(np.concatenate(ref[:9]))
    assert low < fad.frechet_distance(short.mu, short.cov, stats[1].mu, stats[1].cov) < high


def test_paired_bootstrap_moves_the_reference_and_is_zero_for_identical_sets() -> None:
    rng = np.random.default_rng(3)
    ref = fad.ClipMoments.of(_random_clips(rng, 10, 20, 0.0))
    assert fad.bootstrap_ci(ref, ref, 100, seed=0) == pytest.approx((0.0, 0.0), abs=1e-9)
    # resampling the evaluated set alone against a fixed reference would not give 0 for identical sets
    assert fad.bootstrap_scores(ref, ref, 50, seed=0).max() < 1e-9


def test_split_half_floor_is_positive_on_real_variation_and_zero_without() -> None:
    rng = np.random.default_rng(4)
    varied = _random_clips(rng, 16, 20, 0.0)
    scores = fad.split_half_scores(varied, seed=1, splits=10)
    assert len(scores) == 10 and scores.min() > 0.05
    assert np.array_equal(scores, fad.split_half_scores(varied, seed=1, splits=10))
    assert not np.array_equal(scores, fad.split_half_scores(varied, seed=2, splits=10))
    same = [varied[0]] * 8
    assert fad.split_half_scores(same, seed=1, splits=5).max() < 1e-9
    with pytest.raises(ValueError, match="at least 4"):
        fad.split_half_scores(varied[:3], seed=0)


def test_score_floor_reads_files_through_the_cache(tmp_path: Path) -> None:
    ref = write_gaussian_clips(tmp_path / "ref", np.zeros(4), np.full(4, 0.1), clips=8, frames=100, seed=1)
    result = fad.score_floor(ref, FrameEmbedder(4), tmp_path / "cache", splits=6, seed=3)
    direct = fad.split_half_scores(fad.embed_files(ref, FrameEmbedder(4), tmp_path / "cache"), seed=3, splits=6)
    assert result.score == pytest.approx(direct.mean()) and result.low <= result.score <= result.high
    assert (result.clips_per_half, result.n_ref_clips, result.splits) == (4, 8, 6) and result.score > 0
    assert "split-half" in result.to_dict()["definition"]
