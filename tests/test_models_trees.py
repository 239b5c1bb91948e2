"""BoostedTreesRegressor / BoostedTreesClassifier against HistGradientBoosting*, and their parts.

Agreement (held-out data, same learning_rate, max_iter, max_leaf_nodes, l2_regularization,
min_samples_leaf, max_bins, no early stopping): ROC AUC within 0.01 of
HistGradientBoostingClassifier on make_classification (20 000 rows, 15 000 to train); RMSE
within 5 % of HistGradientBoostingRegressor on friedman1 (20 000 rows), also with 10 % NaN.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_friedman1
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import roc_auc_score, root_mean_squared_error

from microsub.errors import ModelError
from microsub.models import BoostedTreesClassifier, BoostedTreesRegressor
from microsub.models.trees import (
    MISSING_BIN,
    TreeParams,
    find_split,
    fit_bins,
    grow_tree,
    histograms,
)

SHARED = dict(learning_rate=0.1, max_iter=100, max_leaf_nodes=31, l2_regularization=1.0)
N_TRAIN = 15_000


def _split(X, y):
    return X[:N_TRAIN], X[N_TRAIN:], y[:N_TRAIN], y[N_TRAIN:]


@pytest.fixture(scope="module")
def friedman():
    X, y = make_friedman1(n_samples=20_000, noise=1.0, random_state=0)
    return _split(X, y)


def test_classifier_auc_matches_hist_gradient_boosting():
    X, y = make_classification(
        n_samples=20_000, n_features=20, n_informative=8, flip_y=0.05, random_state=0
    )
    Xtr, Xte, ytr, yte = _split(X, y)
    ours = BoostedTreesClassifier(**SHARED).fit(Xtr, ytr)
    ref = HistGradientBoostingClassifier(**SHARED, early_stopping=False).fit(Xtr, ytr)
    auc = roc_auc_score(yte, ours.predict_proba(Xte)[:, 1])
    auc_ref = roc_auc_score(yte, ref.predict_proba(Xte)[:, 1])
    assert abs(auc - auc_ref) <= 0.01
    assert auc >= 0.9  # the comparison is between two good models
    np.testing.assert_allclose(ours.predict_proba(Xte).sum(axis=1), 1.0)


def test_regressor_rmse_matches_hist_gradient_boosting(friedman):
    Xtr, Xte, ytr, yte = friedman
    ours = BoostedTreesRegressor(**SHARED).fit(Xtr, ytr)
    ref = HistGradientBoostingRegressor(**SHARED, early_stopping=False).fit(Xtr, ytr)
    rmse = root_mean_squared_error(yte, ours.predict(Xte))
    rmse_ref = root_mean_squared_error(yte, ref.predict(Xte))
    assert rmse <= 1.05 * rmse_ref
    assert rmse <= 0.5 * np.std(yte)


def test_regressor_with_missing_values_matches_hist_gradient_boosting(friedman):
    Xtr, Xte, ytr, yte = friedman
    rng = np.random.default_rng(0)
    Xtr = np.where(rng.random(Xtr.shape) < 0.1, np.nan, Xtr)
    Xte = np.where(rng.random(Xte.shape) < 0.1, np.nan, Xte)
    ours = BoostedTreesRegressor(**SHARED).fit(Xtr, ytr)
    ref = HistGradientBoostingRegressor(**SHARED, early_stopping=False).fit(Xtr, ytr)
    rmse = root_mean_squared_error(yte, ours.predict(Xte))
    assert rmse <= 1.05 * root_mean_squared_error(yte, ref.predict(Xte))


def test_missingness_itself_is_learnt():
    # the target is 1 exactly where feature 0 is missing: the NaN bin must be split off
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 3))
    missing = rng.random(2000) < 0.3
    X[missing, 0] = np.nan
    model = BoostedTreesClassifier(max_iter=20).fit(X, missing.astype(int))
    assert model.score(X, missing.astype(int)) == 1.0
    assert model.feature_importances_[0] > 0.99


def test_unseen_missing_values_follow_the_larger_child():
    X = np.arange(100, dtype=float)[:, np.newaxis]
    y = (X[:, 0] >= 70).astype(float)  # the split sends 70 rows left, 30 right
    model = BoostedTreesRegressor(max_iter=1, learning_rate=1.0, min_samples_leaf=5).fit(X, y)
    tree = model.trees_[0]
    assert tree.feature[0] == 0 and bool(tree.missing_left[0])
    assert model.predict(np.array([[np.nan]]))[0] == pytest.approx(model.predict([[0.0]])[0])


def test_infinite_values_are_rejected():
    X = np.ones((30, 2))
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        BoostedTreesRegressor().fit(X, np.arange(30.0))


def test_bins_are_midpoints_for_few_values_and_quantiles_for_many():
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.integers(0, 5, 1000).astype(float), rng.normal(size=1000)])
    X[::10, 1] = np.nan
    mapper = fit_bins(X, max_bins=16, rng=rng)
    np.testing.assert_allclose(mapper.thresholds[0], [0.5, 1.5, 2.5, 3.5])
    assert len(mapper.thresholds[1]) == 15
    codes = mapper.transform(X)
    assert codes.shape == (2, 1000) and codes.dtype == np.uint8
    np.testing.assert_array_equal(codes[0], X[:, 0])
    assert (codes[1, ::10] == MISSING_BIN).all()
    observed = codes[1][~np.isnan(X[:, 1])]
    counts = np.bincount(observed, minlength=16)
    assert observed.max() == 15 and counts.min() >= 0.8 * 900 / 16  # about equal-frequency


def test_subtraction_trick_equals_direct_histograms():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 40, size=(4, 500)).astype(np.uint8)
    g, h = rng.normal(size=500), rng.random(500)
    rows = np.arange(500)
    left = rows[codes[2] <= 17]
    right = rows[codes[2] > 17]
    parent = histograms(codes, rows, g, h)
    np.testing.assert_allclose(
        parent - histograms(codes, left, g, h), histograms(codes, right, g, h)
    )
    constant = histograms(codes, rows, g, None)  # h = 1: hessian sums equal counts
    np.testing.assert_array_equal(constant[1], constant[2])


def test_find_split_finds_the_step_and_its_gain():
    # one feature, bins 0..9, gradient -1 in bins 0..3 and +1 in bins 4..9, unit hessians
    codes = np.repeat(np.arange(10), 10).astype(np.uint8)[np.newaxis, :]
    g = np.where(codes[0] <= 3, -1.0, 1.0)
    hist = histograms(codes, np.arange(100), g, None)
    params = TreeParams(None, None, min_samples_leaf=1, l2_regularization=2.0, learning_rate=1)
    split = find_split(hist, params)
    assert (split.feature, split.threshold) == (0, 3)
    # G_L = -40, H_L = 40, G_R = 60, H_R = 60, G = 20, H = 100, lambda = 2
    expected = 0.5 * (40**2 / 42 + 60**2 / 62 - 20**2 / 102)
    assert split.gain == pytest.approx(expected, rel=1e-12)
    strict = TreeParams(None, None, min_samples_leaf=70, l2_regularization=2.0, learning_rate=1)
    assert find_split(hist, strict) is None  # no split leaves 70 rows on both sides


def test_leaf_values_are_newton_steps():
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 8, size=(3, 400)).astype(np.uint8)
    g, h = rng.normal(size=400), rng.random(400) + 0.1
    params = TreeParams(4, None, min_samples_leaf=20, l2_regularization=0.5, learning_rate=0.3)
    tree, leaves = grow_tree(codes, np.arange(400), g, h, params, np.zeros(3))
    assert len(leaves) == 4
    covered = np.concatenate([rows for rows, _ in leaves])
    np.testing.assert_array_equal(np.sort(covered), np.arange(400))
    leaf_of_row = tree.apply_codes(codes)
    for rows, value in leaves:
        assert value == pytest.approx(-0.3 * g[rows].sum() / (h[rows].sum() + 0.5), rel=1e-12)
        assert rows.size >= 20 and np.unique(leaf_of_row[rows]).size == 1


@pytest.mark.parametrize(("max_depth", "max_leaf_nodes"), [(2, None), (None, 5), (3, 6)])
def test_growth_limits_are_respected(friedman, max_depth, max_leaf_nodes):
    Xtr, _, ytr, _ = friedman
    model = BoostedTreesRegressor(
        max_iter=3, max_depth=max_depth, max_leaf_nodes=max_leaf_nodes
    ).fit(Xtr[:3000], ytr[:3000])
    for tree in model.trees_:
        n_leaves = int((tree.feature < 0).sum())
        depth = np.zeros(len(tree.feature), dtype=int)
        for node in range(len(tree.feature)):  # children are created after their parents
            if tree.feature[node] >= 0:
                depth[[tree.left[node], tree.right[node]]] = depth[node] + 1
        if max_depth is not None:
            assert depth.max() <= max_depth
        if max_leaf_nodes is not None:
            assert n_leaves <= max_leaf_nodes
        assert n_leaves >= 2


def test_training_loss_decreases_and_importances_find_the_signal(friedman):
    Xtr, _, ytr, _ = friedman
    seen: list[int] = []
    model = BoostedTreesRegressor(max_iter=30).fit(Xtr[:5000], ytr[:5000], progress=seen.append)
    assert seen == [1] * 30 and model.n_iter_ == 30
    assert np.all(np.diff(model.train_loss_) <= 1e-12)
    # friedman1: features 0-4 carry the signal, 5-9 are noise
    assert model.feature_importances_.sum() == pytest.approx(1.0)
    assert model.feature_importances_[:5].sum() > 0.97


def test_early_stopping_stops_on_noise():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 4))
    y = rng.normal(size=3000)  # nothing to learn: the validation loss stops improving early
    model = BoostedTreesRegressor(
        max_iter=500, early_stopping=True, n_iter_no_change=5, random_state=0
    ).fit(X, y)
    assert model.n_iter_ < 60
    assert len(model.validation_loss_) == model.n_iter_
    best = int(np.argmin(model.validation_loss_))
    assert model.n_iter_ - 1 - best >= 5


def test_classifier_any_two_labels_and_consistent_outputs():
    X, y = make_classification(n_samples=1000, random_state=1)
    labels = np.where(y == 1, "buy", "leave")
    model = BoostedTreesClassifier(max_iter=30).fit(X, labels)
    assert list(model.classes_) == ["buy", "leave"]
    z = model.decision_function(X)
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), np.where(z > 0, "leave", "buy"))


def test_regressor_is_deterministic_and_random_state_moves_the_validation_split():
    X, y = make_friedman1(n_samples=2000, random_state=2)
    a = BoostedTreesRegressor(max_iter=10).fit(X, y).predict(X)
    b = BoostedTreesRegressor(max_iter=10).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    kw = dict(max_iter=10, early_stopping=True, n_iter_no_change=50)
    c = BoostedTreesRegressor(**kw, random_state=0).fit(X, y).predict(X)
    d = BoostedTreesRegressor(**kw, random_state=1).fit(X, y).predict(X)
    assert not np.array_equal(c, d)


@pytest.mark.parametrize(
    ("param", "value"),
    [("learning_rate", 0.0), ("max_iter", 0), ("max_leaf_nodes", 1), ("max_depth", 0),
     ("min_samples_leaf", 0), ("l2_regularization", -1.0), ("max_bins", 256),
     ("validation_fraction", 1.0), ("n_iter_no_change", 0), ("tol", -1.0)],
)  # fmt: skip
def test_invalid_parameters_are_rejected(param, value):
    X, y = make_friedman1(n_samples=50, random_state=0)
    with pytest.raises(ModelError, match=param):
        BoostedTreesRegressor(**{param: value}).fit(X, y)
