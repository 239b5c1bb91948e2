"""scikit-learn conformance of the from-scratch estimators: one test, as scikit-learn does it.

``parametrize_with_checks`` runs scikit-learn's estimator checks (API, input validation, tags,
pickling, invariances, minimal accuracy on toy data) on every estimator. No check is marked as an
expected failure. The boosted trees use 20 iterations here to keep the suite fast: the checks
test the API, the accuracy tests live in ``test_models_trees.py``.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from microsub.models import (
    BoostedTreesClassifier,
    BoostedTreesRegressor,
    HurdleRegressor,
    LinearRegressionGD,
    LogisticRegressionGD,
)

ESTIMATORS = [
    LinearRegressionGD(),
    LogisticRegressionGD(),
    LinearRegressionGD(preconditioner="full"),
    LogisticRegressionGD(preconditioner="diagonal"),
    LinearRegressionGD(batch_size=16, max_iter=50, tol=1e-4, random_state=0),
    LogisticRegressionGD(batch_size=16, max_iter=50, tol=1e-4, random_state=0),
    BoostedTreesRegressor(max_iter=20),
    BoostedTreesClassifier(max_iter=20),
    HurdleRegressor(),
    HurdleRegressor(BoostedTreesClassifier(max_iter=20), BoostedTreesRegressor(max_iter=20)),
]


# The checks' toy data are often separable: penalised logistic coefficients then grow for many
# epochs in mini-batch mode, which is reported by a ConvergenceWarning and is not a failure.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
