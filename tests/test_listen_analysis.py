"""Table 3 analysis: statistics with known values, recovery of planted true means, screening of careless raters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sag_bench.listening_test import statistics
from sag_bench.listening_test.analysis import PAPER_TABLE3, ScreeningRules, analyze_ratings, rater_z_scores

# Rating distributions over the scores 1..5 with known expectations (the "true" MOS of each system).
TRUE_DISTRIBUTIONS = {
    "groundtruth": [0.00, 0.05, 0.15, 0.35, 0.45],   # 4.20
    "fastsag": [0.05, 0.20, 0.35, 0.30, 0.10],       # 3.20
    "randsong": [0.60, 0.30, 0.10, 0.00, 0.00],      # 1.50
}
SCALE = np.arange(1, 6)


def true_mean(name: str) -> float:
    return float(np.dot(TRUE_DISTRIBUTIONS[name], SCALE))


def simulate(raters: int, clips_per_rater: int, clips: int, seed: int, careless: bool = True) -> pd.DataFrame:
    """A ratings table like the export: every rater hears each of their clips with every system, plus 3 gold
    items (anchor 1-2, reference 3-5, trap exactly 2). Optionally a constant rater and a random clicker."""
    rng = np.random.default_rng(seed)
    rows = []

    def add(rater, kind, system, clip, score, expected=(None, None)):
        rows.append({"rater_id": rater, "item_id": f"{kind}/{system}/{clip}", "kind": kind, "system": system,
                     "clip": clip, "expected_min": expected[0], "expected_max": expected[1], "score": int(score)})

    people = [f"r{k:02d}" for k in range(raters)] + (["constant", "clicker"] if careless else [])
    for k, rater in enumerate(people):
        chosen = [(k * clips_per_rater + j) % clips for j in range(clips_per_rater)]
        for clip in chosen:
            for system, probabilities in TRUE_DISTRIBUTIONS.items():
                if rater == "constant":
                    score = 3
                elif rater == "clicker":
                    score = rng.integers(1, 6)
                else:
                    score = rng.choice(SCALE, p=probabilities)
                add(rater, "test", system, f"c{clip:03d}", score)
        careful = rater not in ("constant", "clicker")
        add(rater, "anchor", None, "c000", rng.integers(1, 3) if careful else 3, (1, 2))
        add(rater, "reference", None, "c001", rng.integers(3, 6) if careful else 3, (3, 5))
        add(rater, "trap", None, "c002", 2 if careful else 4 if rater == "clicker" else 3, (2, 2))
    return pd.DataFrame(rows)


def test_t_interval_matches_a_hand_computed_value():
    mean, low, high = statistics.t_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2  # t(0.975, 3) = 3.1824
    assert mean == 2.5 and low == pytest.approx(2.5 - half) and high == pytest.approx(2.5 + half)
    assert np.isnan(statistics.t_interval(np.array([3.0]))[1])


def test_holm_adjustment_known_values():
    np.testing.assert_allclose(statistics.holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(statistics.holm(np.array([0.5, 0.9])), [1.0, 1.0])


def test_wilcoxon_agrees_with_scipy_and_reports_direction():
    x = np.array([5, 4, 4, 5, 3, 4, 5, 4, 2, 5])
    y = np.array([2, 3, 4, 1, 3, 2, 2, 1, 3, 2])
    statistic, p, effect = statistics.wilcoxon_signed_rank(x, y)
    assert p == pytest.approx(stats.wilcoxon(x, y).pvalue)
    assert 0 < effect <= 1 and p < 0.05
    assert statistics.wilcoxon_signed_rank(y, x)[2] == pytest.approx(-effect)
    assert statistics.wilcoxon_signed_rank(x, x) == (0.0, 1.0, 0.0)


def test_planted_true_means_are_recovered_within_both_intervals_and_careless_raters_are_flagged():
    ratings = simulate(raters=15, clips_per_rater=20, clips=100, seed=3)
    report = analyze_ratings(ratings, ScreeningRules(), n_bootstrap=1000, seed=0)
    excluded = set(report.raters.loc[report.raters["excluded"], "rater_id"])
    assert excluded == {"constant", "clicker"}
    reasons = report.raters.set_index("rater_id")["reasons"]
    assert "variance 0.00" in reasons["constant"] and reasons["clicker"] == "failed 2 of 3 gold items"
    table = report.mos.set_index("system")
    print("\n" + report.markdown())
    for system in TRUE_DISTRIBUTIONS:
        row = table.loc[system]
        assert row["ratings"] == 15 * 20 and row["raters"] == 15
        assert row["ci_t_low"] < true_mean(system) < row["ci_t_high"], system
        assert row["ci_boot_low"] < true_mean(system) < row["ci_boot_high"], system
        assert row["paper_mos"] == PAPER_TABLE3[system][1]
    assert table["mos_z"]["groundtruth"] > table["mos_z"]["fastsag"] > table["mos_z"]["randsong"]
    assert report.raters["unplayed"].sum() == 0
    pairs = report.pairwise.set_index(["a", "b"])
    assert pairs["significant"].all() and (pairs["pairs"] == 300).all()
    assert pairs.loc[("groundtruth", "randsong"), "mean_diff"] == pytest.approx(
        table.loc["groundtruth", "mos"] - table.loc["randsong", "mos"])


def test_bootstrap_interval_covers_the_truth_at_about_the_nominal_rate():
    """Over 40 simulated studies the 95 % bootstrap interval should cover the true MOS nearly always."""
    covered = []
    for seed in range(40):
        ratings = simulate(raters=8, clips_per_rater=6, clips=24, seed=100 + seed, careless=False)
        tests = ratings[ratings["kind"] == "test"]
        codes = {name: k for k, name in enumerate(TRUE_DISTRIBUTIONS)}
        bounds = statistics.two_way_bootstrap(tests["score"].to_numpy(float), tests["system"].map(codes).to_numpy(),
                                              pd.factorize(tests["rater_id"])[0], pd.factorize(tests["clip"])[0],
                                              len(codes), 400, seed)
        covered += [low < true_mean(name) < high for name, (low, high) in zip(codes, bounds)]
    rate = float(np.mean(covered))
    print(f"\nbootstrap coverage over {len(covered)} intervals: {rate:.3f}")
    assert 0.85 <= rate <= 1.0


def test_naive_interval_is_narrower_than_the_rater_aware_ones_when_raters_disagree():
    ratings = simulate(raters=6, clips_per_rater=10, clips=20, seed=5, careless=False)
    shift = {f"r{k:02d}": (1 if k % 2 else -1) for k in range(6)}  # lenient and harsh raters
    test = ratings["kind"] == "test"
    ratings.loc[test, "score"] = np.clip(ratings.loc[test, "score"] + ratings.loc[test, "rater_id"].map(shift), 1, 5)
    row = analyze_ratings(ratings, ScreeningRules(min_variance=0.0), n_bootstrap=500).mos.iloc[1]
    assert (row["ci_naive_high"] - row["ci_naive_low"]) < (row["ci_t_high"] - row["ci_t_low"])
    assert (row["ci_naive_high"] - row["ci_naive_low"]) < (row["ci_boot_high"] - row["ci_boot_low"])


def test_per_rater_z_scores_remove_a_raters_offset():
    tests = pd.DataFrame({"rater_id": ["a"] * 3 + ["b"] * 3, "score": [1, 2, 3, 3, 4, 5]})
    z = rater_z_scores(tests).to_numpy()
    np.testing.assert_allclose(z[:3], z[3:])
    np.testing.assert_allclose(z[:3], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    constant = pd.DataFrame({"rater_id": ["c"] * 2, "score": [3, 3]})
    assert rater_z_scores(constant).tolist() == [0.0, 0.0]
