"""Metrics and the grouped split: values checked against hand computation or scikit-learn."""

from __future__ import annotations

import numpy as np
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
