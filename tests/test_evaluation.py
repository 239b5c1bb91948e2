"""Metrics and the grouped split: values checked against hand computation or scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from microsub.analysis import stats
from microsub.models import evaluation


def test_precision_at_top_counts_the_highest_scores():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.05, 0.0, 0.4, 0.6])
    # top 20 % of 10 rows = 2 rows: scores 0.9 (y=1) and 0.8 (y=0)
    assert evaluation.precision_at_top(y, score, 0.2) == pytest.approx(0.5)
    # top 40 % = 0.9, 0.8, 0.7, 0.6 -> 3 positives of 4
    assert evaluation.precision_at_top(y, score, 0.4) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="share"):
        evaluation.precision_at_top(y, score, 0.0)


def test_grouped_split_keeps_sessions_whole():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(500), rng.integers(1, 12, 500))
    split = evaluation.grouped_split(groups, test_size=0.25, random_state=1)
    assert not set(groups[split.train]) & set(groups[split.test])
    assert len(split.train) + len(split.test) == len(groups)
    share = len(set(groups[split.test])) / 500
    assert share == pytest.approx(0.25, abs=0.01)


def test_classification_metrics_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.3
    prob = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, 2000), 0.001, 0.999)
    m = evaluation.classification_metrics(y, prob, threshold=0.4)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, prob), rel=1e-12)
    assert m["brier"] == pytest.approx(np.mean((prob - y) ** 2), rel=1e-12)
    assert m["tp"] + m["fn"] == y.sum()
    assert m["tp"] + m["fp"] == (prob >= 0.4).sum()
    assert m["base_rate"] == pytest.approx(y.mean())


def test_best_f1_threshold_maximises_f1():
    rng = np.random.default_rng(1)
    y = rng.random(1000) < 0.4
    prob = np.clip(0.4 + 0.4 * (y - 0.4) + rng.normal(0, 0.25, 1000), 0, 1)
    t = evaluation.best_f1_threshold(y, prob)
    best = skm.f1_score(y, prob >= t)
    for other in np.linspace(0.05, 0.95, 19):
        assert skm.f1_score(y, prob >= other) <= best + 1e-12


def test_calibration_table_of_calibrated_probabilities():
    rng = np.random.default_rng(2)
    prob = rng.random(200_000)
    y = rng.random(200_000) < prob
    table = evaluation.calibration_table(y, prob, n_bins=10)
    assert len(table) == 10
    assert table["count"].sum() == 200_000
    np.testing.assert_allclose(table["observed"], table["mean_predicted"], atol=0.01)


def test_regression_metrics():
    m = evaluation.regression_metrics([0, 0, 3, 1], [0, 1, 1, 1])
    assert m["mae"] == pytest.approx(0.75)
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 4))


def test_bootstrap_interval_covers_the_mean_and_widens_with_clustering():
    rng = np.random.default_rng(4)
    # 400 sessions whose pages share one outcome: page-level resampling understates the spread
    groups = np.repeat(np.arange(400), 5)
    y = np.repeat(rng.random(400) < 0.3, 5).astype(float)
    low_g, high_g = stats.bootstrap_ci(np.mean, y, groups=groups, n_boot=300)
    low_r, high_r = stats.bootstrap_ci(np.mean, y, n_boot=300)
    assert low_g < y.mean() < high_g
    assert (high_g - low_g) > 1.5 * (high_r - low_r)


# --------------------------------------------------------------------------------------------
# The selection rule: paired session bootstrap and ties
# --------------------------------------------------------------------------------------------
def _sessions(n_sessions: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_sessions), rng.integers(1, 8, n_sessions))
    return rng, groups


def test_paired_difference_is_the_metric_difference_with_an_interval_around_it():
    rng, groups = _sessions()
    y = rng.integers(0, 2, len(groups))
    good = y + rng.normal(0, 0.8, len(y))
    bad = y + rng.normal(0, 3.0, len(y))
    diff, low, high = evaluation.paired_difference("roc_auc", y, good, bad, groups, n_boot=100)
    expected = skm.roc_auc_score(y, good) - skm.roc_auc_score(y, bad)
    assert diff == pytest.approx(expected, abs=1e-12)
    assert low <= diff <= high and low > 0  # clearly better: the interval excludes zero
    # the same predictions: no difference, and no width
    assert evaluation.paired_difference("roc_auc", y, good, good, groups, n_boot=20) == (0, 0, 0)
    # RMSE, in the target's units
    r = rng.gamma(0.3, 20.0, len(groups))
    a, b = r + rng.normal(0, 5, len(r)), r + rng.normal(0, 5, len(r))
    diff, low, high = evaluation.paired_difference("rmse", r, a, b, groups, n_boot=100)
    assert diff == pytest.approx(
        np.sqrt(skm.mean_squared_error(r, a)) - np.sqrt(skm.mean_squared_error(r, b)), abs=1e-12
    )
    assert low <= 0 <= high  # two equally noisy predictions tie
    with pytest.raises(ValueError, match="metric"):
        evaluation.paired_difference("mae", r, a, b, groups)


def test_weighted_auc_is_the_auc_of_the_repeated_rows():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 200).astype(float)
    score = np.round(rng.normal(size=200), 1)  # ties between scores
    w = rng.integers(0, 4, 200).astype(float)
    values, codes = np.unique(score, return_inverse=True)
    repeated = np.repeat(np.arange(200), w.astype(int))
    expected = skm.roc_auc_score(y[repeated], score[repeated])
    assert evaluation._weighted_auc(y, codes, len(values), w) == pytest.approx(expected, abs=1e-12)


def _candidates(rows):
    return pd.DataFrame(rows, columns=["key", "validation", "difference", "ci_low", "ci_high",
                                       "complexity", "fit_s"])  # fmt: skip


def test_a_difference_within_the_noise_is_a_tie_won_by_the_simplest_then_the_fastest():
    candidates = _candidates([
        ("linear", 0.770, -0.035, -0.037, -0.032, 1, 0.3),   # clearly worse
        ("ours", 0.8051, -0.0002, -0.0005, 0.0001, 3, 11.0),  # within the noise: a tie
        ("theirs", 0.8053, 0.0, 0.0, 0.0, 3, 3.2),            # the top score
        ("baseline", 0.63, -0.17, -0.18, -0.16, 0, 0.01),     # simplest, but clearly worse
    ])  # fmt: skip
    out = evaluation.select_model(candidates, higher=True, tolerance=1e-9).set_index("key")
    assert out["top"].tolist() == [False, False, True, False]
    assert out["tied"].tolist() == [False, True, True, False]
    assert out.index[out["chosen"]].tolist() == ["theirs"]  # same complexity: the faster
    # a simpler tied model beats a faster, more complex one
    candidates.loc[1, "complexity"] = 2
    out = evaluation.select_model(candidates, higher=True, tolerance=1e-9)
    assert out.loc[out["chosen"], "key"].tolist() == ["ours"]


def test_a_clear_difference_is_a_win_and_the_tolerance_makes_equal_scores_tie():
    # lower is better (RMSE); the second model's interval excludes zero
    candidates = _candidates([
        ("a", 33.30, 0.0, 0.0, 0.0, 3, 5.0),
        ("b", 33.40, 0.10, 0.02, 0.20, 1, 0.1),
    ])  # fmt: skip
    out = evaluation.select_model(candidates, higher=False, tolerance=1e-6 * 33.3)
    assert out["tied"].tolist() == [True, False]
    assert out.loc[out["chosen"], "key"].tolist() == ["a"]
    # equal to one part in a million: a tie whatever the interval
    candidates.loc[1, ["validation", "difference", "ci_low", "ci_high"]] = [33.30001, 1e-5, 1e-5,
                                                                           2e-5]  # fmt: skip
    out = evaluation.select_model(candidates, higher=False, tolerance=1e-6 * 33.3)
    assert out["tied"].all() and out.loc[out["chosen"], "key"].tolist() == ["b"]


# --------------------------------------------------------------------------------------------
# Where the squared error comes from; what a score ranks
# --------------------------------------------------------------------------------------------
def test_squared_error_splits_into_the_worst_pages_and_the_rest():
    rng = np.random.default_rng(5)
    y = np.where(rng.random(1000) < 0.03, rng.lognormal(4, 1.5, 1000), 0.0)
    y[17] = 20_000.0  # one extreme purchase
    pred = np.full(1000, y.mean())
    total = np.sum((y - pred) ** 2)
    for k in (0, 1, 10):
        c = evaluation.squared_error_concentration(y, pred, k)
        assert c["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-12)
        # the decomposition sums to the total
        assert c["share"] * total + c["rmse_without"] ** 2 * (1000 - k) == pytest.approx(total)
        assert c["largest"] == 20_000.0 and c["pages"] == 1000
    one = evaluation.squared_error_concentration(y, pred, 1)
    assert one["share"] == pytest.approx((20_000.0 - y.mean()) ** 2 / total)
    assert one["share"] > 0.5 and one["rmse_without"] < one["rmse"] / 2
    assert evaluation.squared_error_concentration(y, pred, 0)["share"] == 0
    with pytest.raises(ValueError, match="k must"):
        evaluation.squared_error_concentration(y, pred, 1000)


def test_capture_curve_runs_from_nothing_to_everything_and_the_truth_ranks_best():
    rng = np.random.default_rng(6)
    y = rng.gamma(0.2, 10.0, 500)
    perfect = evaluation.capture_curve(y, y, points=11)
    noisy = evaluation.capture_curve(y, y + rng.normal(0, 5, 500), points=11)
    assert perfect["share_pages"].tolist() == pytest.approx(np.linspace(0, 1, 11).tolist())
    for curve in (perfect, noisy):
        assert curve["share_total"].iloc[0] == 0 and curve["share_total"].iloc[-1] == 1
        assert curve["share_total"].is_monotonic_increasing
    assert (perfect["share_total"] >= noisy["share_total"] - 1e-12).all()
    # at 20 % of the pages: the sum of the top 100 values over the total
    top = np.sort(y)[::-1][:100].sum() / y.sum()
    assert perfect.loc[2, "share_total"] == pytest.approx(top)
