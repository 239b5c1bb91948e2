"""The compiled boosted trees predict exactly what the estimators predict: the champions on
held-out pages, hurdles of every shape, missing values, one row at a time."""

from __future__ import annotations

import numpy as np
import pytest
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
from microsub.serve.compiled import CompiledHurdle, CompiledTrees, compile_model


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
    np.testing.assert_array_equal(fast_value.predict(x_value), value.predict(x_value))
    for i in range(0, 3000, 97):  # one page at a time, as the service scores
        np.testing.assert_array_equal(
            fast_value.predict(x_value[i : i + 1]), value.predict(x_value[i : i + 1])
        )


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
    np.testing.assert_array_equal(compile_model(model).predict(X_fit), model.predict(X_fit))


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
