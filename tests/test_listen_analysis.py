"""Table 3 analysis: statistics against independent computations, calibration over simulated crossed studies
(interval coverage and null rejection inside a band around the nominal rate, so too wide fails as well as too
narrow), screening of planted honest and careless raters, and the written report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sag_bench.listening_test import statistics
from sag_bench.listening_test.analysis import analyze_ratings, rater_z_scores
from sag_bench.listening_test.screening import ScreeningRules, screen_raters
from sag_bench.listening_test.study import StudyError
from sag_bench.reporting.table3 import PAPER_TABLE3, latex, markdown
from tests.listen_simulation import CARELESS_KINDS, Design, run_studies, simulate

EQUAL = {name: 3.0 for name in ("a", "b", "c", "d", "e")}
PLANTED = tuple(kind for kind in CARELESS_KINDS for _ in range(2))


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
    y = np.array([2, 3, 4, 1, 3, 2, 2, 1, 3, 2])  # ties among the differences: normal approximation
    statistic, p, effect = statistics.wilcoxon_signed_rank(x, y)
    assert p == pytest.approx(stats.wilcoxon(x, y, method="asymptotic").pvalue)
    assert 0 < effect <= 1 and p < 0.05
    assert statistics.wilcoxon_signed_rank(y, x)[2] == pytest.approx(-effect)
    assert statistics.wilcoxon_signed_rank(x, x) == (0.0, 1.0, 0.0)
    distinct = np.array([0.5, 1.25, -0.75, 2.0, 1.5])
    # Exact: W- = 2 (rank of -0.75); 3 of the 32 sign patterns give W- <= 2; two-sided 6/32.
    assert statistics.wilcoxon_signed_rank(distinct, np.zeros(5))[1] == pytest.approx(6 / 32)


def test_crossed_mean_hand_computed_two_by_two():
    # Raters x clips [[1, 2], [3, 5]]: D_rater = (1 + 4)/2/2, D_clip = (4 + 9)/2/2, D_none = (16 + 1)/2/2.
    result = statistics.crossed_mean(np.array([1.0, 2, 3, 5]), np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert (result.var_rater, result.var_clip, result.var_residual) == pytest.approx((3.0, 1.0, 0.25))
    assert result.se ** 2 == pytest.approx(3.0 / 2 + 1.0 / 2 + 0.25 / 4)
    # Mean squares / N: rater 6.25 / 4, clip 2.25 / 4, error 0.25 / 4, each with 1 df.
    assert result.df == pytest.approx(2.0625 ** 2 / (1.5625 ** 2 + 0.5625 ** 2 + 0.0625 ** 2))


def test_crossed_mean_equals_the_two_way_anova_estimates_on_a_balanced_table():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(6, 5)) + rng.normal(size=(6, 1)) + rng.normal(size=(1, 5))
    n_raters, n_clips = table.shape
    rows, cols, grand = table.mean(axis=1), table.mean(axis=0), table.mean()
    ms_rater = n_clips * rows.var(ddof=1)
    ms_clip = n_raters * cols.var(ddof=1)
    ms_error = ((table - rows[:, None] - cols[None, :] + grand) ** 2).sum() / ((n_raters - 1) * (n_clips - 1))
    raters, clips = np.meshgrid(np.arange(n_raters), np.arange(n_clips), indexing="ij")
    result = statistics.crossed_mean(table.ravel(), raters.ravel(), clips.ravel())
    assert result.var_rater == pytest.approx((ms_rater - ms_error) / n_clips)
    assert result.var_clip == pytest.approx((ms_clip - ms_error) / n_raters)
    assert result.var_residual == pytest.approx(ms_error)
    assert result.mean == pytest.approx(grand)
    assert result.se ** 2 == pytest.approx((ms_rater + ms_clip - ms_error) / table.size)
    df_error = (n_raters - 1) * (n_clips - 1)
    assert result.df == pytest.approx((ms_rater + ms_clip - ms_error) ** 2 / (
        ms_rater ** 2 / (n_raters - 1) + ms_clip ** 2 / (n_clips - 1) + ms_error ** 2 / df_error))


def test_crossed_standard_error_is_unbiased_on_an_unbalanced_design():
    """Each rater hears a different, overlapping set of clips; the mean of the estimated variances of the mean
    matches the variance of the mean over 3000 simulated studies."""
    rng = np.random.default_rng(1)
    pairs = [(r, c) for r in range(8) for c in range(12) if (c - 2 * r) % 12 < 5 + r % 3]
    raters, clips = np.array(pairs).T
    means, variances = [], []
    for _ in range(3000):
        values = (rng.normal(0, 0.6, 8)[raters] + rng.normal(0, 0.4, 12)[clips] +
                  rng.normal(0, 0.7, raters.size))
        result = statistics.crossed_mean(values, raters, clips)
        means.append(result.mean)
        variances.append(result.se ** 2)
    assert np.mean(variances) == pytest.approx(np.var(means), rel=0.08)


def test_crossed_mean_rejects_repeated_cells_and_reports_an_unseparable_design():
    with pytest.raises(ValueError, match="one value per rater x clip"):
        statistics.crossed_mean(np.array([1.0, 2.0]), np.array([0, 0]), np.array([3, 3]))
    single_rater = statistics.crossed_mean(np.array([1.0, 2.0, 4.0]), np.zeros(3, int), np.arange(3))
    assert np.isnan(single_rater.se) and np.isnan(single_rater.interval()[0]) and np.isnan(single_rater.p_value())


def test_fast_calibration_coverage_and_null_rejection_are_near_nominal():
    """100 studies of the FastSAG layout with five equal systems (rater, clip and system x clip effects): 500
    intervals and 1000 null pairs. The band fails an interval that is too wide as well as too narrow."""
    result = run_studies(Design(systems=EQUAL), range(100))
    print(f"\n{result}")
    assert 0.92 <= result.coverage["crossed"] <= 0.98
    assert 0.025 <= result.rejection["p"] <= 0.075
    assert result.coverage["naive"] < 0.8  # the band can tell a miscalibrated interval
    assert result.null_pairs == 1000


@pytest.mark.slow
def test_calibration_over_300_studies_with_planted_raters():
    planted = run_studies(Design(careless=PLANTED), range(300))
    null = run_studies(Design(systems=EQUAL), range(1000, 1300))
    print(f"\n{planted}\n{null}")
    for result in (planted, null):  # 300 studies: the coverage's standard error is about 0.013
        assert 0.92 <= result.coverage["crossed"] <= 0.98
    assert 0.03 <= null.rejection["p"] <= 0.07
    assert planted.honest_excluded < 0.05 and planted.careless_excluded > 0.95
    assert abs(planted.mos_bias) < 0.03


def test_screening_rates_over_studies_with_planted_raters():
    result = run_studies(Design(careless=PLANTED), range(12))
    assert result.honest_excluded < 0.05 and result.careless_excluded > 0.95


def test_screening_keeps_lenient_raters_and_excludes_careless_ones_with_reasons():
    ratings = simulate(Design(careless=CARELESS_KINDS), seed=4)
    lenient = ratings["rater_id"] == "r00"
    test = ratings["kind"] == "test"
    ratings.loc[lenient & test, "score"] = np.minimum(ratings.loc[lenient & test, "score"] + 1, 5)
    ratings.loc[lenient & (ratings["kind"] == "anchor"), "score"] = 3  # both broken anchors rated "Fair"
    ratings.loc[(ratings["rater_id"] == "r01") & (ratings["kind"] == "trap"), "score"] = 3
    table = screen_raters(ratings, ScreeningRules()).set_index("rater_id")
    excluded = set(table.index[table["excluded"]])
    assert excluded == {"r01", "clicker00", "straightliner01", "constant02"}
    assert table.loc["r00", "offset"] > 0.3 and table.loc["r00", "gold_points"] <= 2
    assert table.loc["r01", "reasons"] == "missed 1 attention traps"
    assert "correlation with the panel" in table.loc["clicker00", "reasons"]
    assert "correlation with the panel" in table.loc["straightliner01", "reasons"]
    assert "variance 0.00 < 0.1" in table.loc["constant02", "reasons"]
    strict = screen_raters(ratings, ScreeningRules(max_gold_points=0)).set_index("rater_id")
    assert strict.loc["r00", "excluded"]  # the rule is what keeps them, not an accident of the data


def test_screening_rules_from_a_study_spec():
    assert ScreeningRules.from_spec({"min_variance": 0.2}) == ScreeningRules(min_variance=0.2)
    with pytest.raises(StudyError, match="s.json: unknown screening rule.*max_gold_failures"):
        ScreeningRules.from_spec({"max_gold_failures": 0}, "s.json")


def test_planted_study_report_states_unit_and_method_beside_the_paper(tmp_path):
    design = Design(careless=CARELESS_KINDS)
    report = analyze_ratings(simulate(design, seed=3), out=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"table3.csv", "table3.md", "table3.tex", "table3.png",
                                                  "pairwise.csv", "raters.csv", "ratings.csv", "summary.json"}
    table = report.mos.set_index("system")
    for system, (label, paper) in PAPER_TABLE3.items():
        row = table.loc[system]
        assert row["ratings"] == 15 * 20 and row["raters"] == 15 and row["paper_mos"] == paper
        assert abs(row["mos"] - design.true_mos(system)) < 3 * row["se"]
        assert row["ci_naive_high"] - row["ci_naive_low"] < row["ci_high"] - row["ci_low"]
    text = markdown(report)
    print("\n" + text)
    assert "crossed raters x clips" in text and "per-clip mean differences (unit: clip)" in text
    assert "| groundtruth | 4.15 (Human-composed) |" in text and "naive" not in text
    tex = latex(report)
    assert r"\caption{" in tex and "unit: clip" in tex and "Human-composed & 4.15 &" in tex
    pairs = report.pairwise.set_index(["a", "b"])
    assert pairs.loc[("groundtruth", "randsong"), "significant"] and (pairs["clips"] == 100).all()
    assert pairs.loc[("groundtruth", "randsong"), "mean_diff"] == pytest.approx(
        table.loc["groundtruth", "mos"] - table.loc["randsong", "mos"])
    assert (report.pairwise["p_holm"] >= report.pairwise["p"]).all()


def test_screening_report_is_written_even_when_every_rater_is_excluded(tmp_path):
    ratings = simulate(Design(raters=0, careless=("constant", "constant")), seed=0)
    with pytest.raises(StudyError, match="every one of the 2 raters was excluded"):
        analyze_ratings(ratings, out=tmp_path)
    written = pd.read_csv(tmp_path / "raters.csv")
    assert written["excluded"].all() and written["reasons"].str.contains("variance 0.00").all()
    assert not (tmp_path / "table3.md").exists()


def test_per_rater_z_scores_remove_a_raters_offset():
    tests = pd.DataFrame({"rater_id": ["a"] * 3 + ["b"] * 3, "score": [1, 2, 3, 3, 4, 5]})
    z = rater_z_scores(tests).to_numpy()
    np.testing.assert_allclose(z[:3], z[3:])
    np.testing.assert_allclose(z[:3], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    constant = pd.DataFrame({"rater_id": ["c"] * 2, "score": [3, 3]})
    assert rater_z_scores(constant).tolist() == [0.0, 0.0]


def test_answers_without_a_play_count_are_left_out_of_the_mos():
    """An answer whose play count is missing counts as unplayed: pushing such answers to 5 changes neither the
    screening nor any MOS, and the rater's unplayed answers are counted in raters.csv."""
    ratings = simulate(Design(), seed=5)
    rows = ratings.index[ratings["kind"] == "test"][:60]
    pushed = ratings.assign(plays=ratings["plays"].astype("float64"))
    pushed.loc[rows, ["score", "plays"]] = [5, np.nan]
    unplayed = analyze_ratings(pushed)
    without = analyze_ratings(ratings.drop(index=rows))
    mos = unplayed.mos.set_index("system")["mos"]
    assert np.allclose(mos, without.mos.set_index("system")["mos"].loc[mos.index], atol=1e-12)
    assert unplayed.raters.set_index("rater_id").loc[ratings.loc[rows[0], "rater_id"], "unplayed"] == 60
    assert not unplayed.raters["excluded"].any()
