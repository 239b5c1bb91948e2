"""The compiled models predict what the estimators predict: boosted trees (scratch and
scikit-learn's HistGradientBoosting) exactly, standardised linear models to 1e-12 (their
estimators sum with BLAS); on the champions' held-out pages, hurdles of every shape, missing
values, and one row at a time the same numbers as in a batch."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from microsub import pipeline
from microsub.analysis import features
from microsub.errors import ServingError
from microsub.models import (
    BoostedTreesClassifier,
    BoostedTreesRegressor,
    HurdleRegressor,
    LinearRegressionGD,
    LogisticRegressionGD,
)
from microsub.serve import registry
from microsub.serve.compiled import CompiledHurdle, CompiledLinear, CompiledTrees, compile_model

#: Tolerance of a compiled linear model against its estimator (fixed-order sum against BLAS).
LINEAR_RTOL = LINEAR_ATOL = 1e-12


def test_the_champions_compiled_predict_the_same_numbers(trained) -> None:
    pages = pipeline.read_pages(pipeline.run(trained, stages=())).to_pandas()
    frame = features.add_features(pages).iloc[-3000:]
    champions = registry.champions(trained)
    churn, value = champions["churn"].estimator, champions["value"].estimator
    x_churn = features.feature_matrix(frame, "churn").to_numpy()
    x_value = features.feature_matrix(frame, "value").to_numpy()
    fast_churn, fast_value = compile_model(churn), compile_model(value)
    assert isinstance(fast_churn, CompiledTrees | CompiledHurdle)
    np.testing.assert_array_equal(fast_churn.predict_proba(x_churn), churn.predict_proba(x_churn))
    np.testing.assert_array_equal(fast_churn.predict(x_churn), churn.predict(x_churn))
    # The value champion may be linear: its estimator sums with BLAS, so close, not equal.
    same = _close if isinstance(fast_value, CompiledLinear) else np.testing.assert_array_equal
    same(fast_value.predict(x_value), value.predict(x_value))
    for i in range(0, 3000, 97):  # one page at a time, as the service scores
        same(fast_value.predict(x_value[i : i + 1]), value.predict(x_value[i : i + 1]))
        # and one page alone gets exactly what it gets inside a batch
        np.testing.assert_array_equal(
            fast_value.predict(x_value[i : i + 1]), fast_value.predict(x_value)[i : i + 1]
        )


def _close(actual: np.ndarray, desired: np.ndarray) -> None:
    np.testing.assert_allclose(actual, desired, rtol=LINEAR_RTOL, atol=LINEAR_ATOL)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 5))
    X[rng.random(X.shape) < 0.05] = np.nan  # the missing-value bin
    y = (np.nan_to_num(X[:, 0]) + rng.normal(size=3000) > 0.8).astype(int)
    amount = np.where(y == 1, np.exp(np.nan_to_num(X[:, 1]) + 2.0), 0.0)
    return X, y, amount


def _trees(cls, **kw):
    return cls(max_iter=30, max_leaf_nodes=15, random_state=0, **kw)


@pytest.mark.parametrize(
    "model",
    [
        _trees(BoostedTreesRegressor),
        HurdleRegressor(classifier=_trees(BoostedTreesClassifier),
                        regressor=_trees(BoostedTreesRegressor)),
        HurdleRegressor(classifier=_trees(BoostedTreesClassifier),
                        regressor=_trees(BoostedTreesRegressor), log_target=True),
        HurdleRegressor(classifier=make_pipeline(StandardScaler(), LogisticRegressionGD()),
                        regressor=_trees(BoostedTreesRegressor)),
    ],
    ids=["trees", "hurdle", "hurdle-log", "hurdle-linear-classifier"],
)  # fmt: skip
def test_regressors_and_hurdles(data, model) -> None:
    X, _, amount = data
    X_fit = np.nan_to_num(X) if isinstance(model, HurdleRegressor) else X
    model.fit(X_fit, amount)
    fast = compile_model(model).predict(X_fit)
    if isinstance(model, HurdleRegressor) and not isinstance(
        model.classifier_, BoostedTreesClassifier
    ):
        np.testing.assert_allclose(fast, model.predict(X_fit), rtol=LINEAR_RTOL, atol=LINEAR_ATOL)
    else:
        np.testing.assert_array_equal(fast, model.predict(X_fit))
    _row_by_row_is_the_batch(compile_model(model).predict, X_fit)


def _row_by_row_is_the_batch(predict, X: np.ndarray) -> None:
    """A row scored alone gets the number it gets in a batch (equal, not close)."""
    batch = predict(X)
    for i in range(0, len(X), 113):
        np.testing.assert_array_equal(predict(X[i : i + 1]), batch[i : i + 1])


def test_hist_gradient_boosting_with_missing_values(data) -> None:
    X, y, amount = data
    clf = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    fast = compile_model(clf)
    assert isinstance(fast, CompiledTrees)
    np.testing.assert_array_equal(fast.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(fast.predict(X), clf.predict(X))
    _row_by_row_is_the_batch(fast.predict_proba, X)
    reg = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, amount)
    np.testing.assert_array_equal(compile_model(reg).predict(X), reg.predict(X))
    # a value never seen in training (NaN in a column that had none) goes where sklearn sends it
    X_new = np.nan_to_num(X)
    X_new[::7, 2] = np.nan
    clean = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(np.nan_to_num(X), y)
    np.testing.assert_array_equal(compile_model(clean).predict_proba(X_new),
                                  clean.predict_proba(X_new))  # fmt: skip


@pytest.mark.parametrize(
    "model",
    [make_pipeline(StandardScaler(), LinearRegressionGD()),
     make_pipeline(StandardScaler(), LogisticRegressionGD()),
     make_pipeline(StandardScaler(), LinearRegression()),
     make_pipeline(StandardScaler(), Ridge(alpha=3.0)),
     make_pipeline(StandardScaler(), SGDRegressor(random_state=0)),
     make_pipeline(StandardScaler(), LogisticRegression()),
     make_pipeline(StandardScaler(with_mean=False), LinearRegressionGD())],
    ids=["linear-gd", "logistic-gd", "lstsq", "ridge", "sgd", "logistic-lbfgs", "no-centring"],
)  # fmt: skip
def test_standardised_linear_models(data, model) -> None:
    X, y, amount = data
    X = np.nan_to_num(X)
    classifier = hasattr(model.steps[-1][1], "predict_proba")
    model.fit(X, y if classifier else amount)
    fast = compile_model(model)
    assert isinstance(fast, CompiledLinear)
    if classifier:
        np.testing.assert_allclose(fast.predict_proba(X), model.predict_proba(X),
                                   rtol=LINEAR_RTOL, atol=LINEAR_ATOL)  # fmt: skip
        np.testing.assert_array_equal(fast.predict(X), model.predict(X))
        np.testing.assert_array_equal(fast.classes_, model.classes_)
    np.testing.assert_allclose(fast.predict(X) if not classifier else fast.decision(X),
                               model.predict(X) if not classifier else model.decision_function(X),
                               rtol=LINEAR_RTOL, atol=LINEAR_ATOL)  # fmt: skip
    _row_by_row_is_the_batch(fast.predict_proba if classifier else fast.predict, X)


def test_what_cannot_be_compiled_is_served_as_it_is(data) -> None:
    X, y, _ = data
    X = np.nan_to_num(X)
    labels = np.digitize(X[:, 0], [-0.5, 0.5])  # three classes
    multi = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, labels)
    assert compile_model(multi) is multi
    cats = np.column_stack([X[:, :2], (X[:, 2] > 0).astype(float)])
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[2]).fit(cats, y)
    assert compile_model(categorical) is categorical
    other = make_pipeline(StandardScaler(), HistGradientBoostingRegressor(max_iter=5)).fit(X, y)
    assert compile_model(other) is other


def test_classifier_labels_and_missing_values(data) -> None:
    X, y, _ = data
    labels = np.where(y == 1, "left", "stayed")
    model = _trees(BoostedTreesClassifier).fit(X, labels)
    fast = compile_model(model)
    np.testing.assert_array_equal(fast.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(fast.predict(X), model.predict(X))


def test_a_hurdle_whose_rows_all_buy_has_no_classifier(data) -> None:
    X, _, amount = data
    model = HurdleRegressor(regressor=_trees(BoostedTreesRegressor)).fit(
        np.nan_to_num(X), amount + 1.0
    )
    assert model.classifier_ is None
    fast = compile_model(model)
    np.testing.assert_array_equal(fast.predict(np.nan_to_num(X)), model.predict(np.nan_to_num(X)))


def test_other_estimators_are_served_as_they_are_and_shapes_are_checked(data) -> None:
    X, y, _ = data
    linear = LinearRegressionGD().fit(np.nan_to_num(X), y.astype(float))
    assert compile_model(linear) is linear
    fast = compile_model(_trees(BoostedTreesRegressor).fit(X, y.astype(float)))
    with pytest.raises(ServingError, match=r"expected a \(rows, 5\) feature matrix"):
        fast.predict(X[:, :4])
    assert fast.predict(X[:0]).shape == (0,)
