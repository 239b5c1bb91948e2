"""From-scratch estimators (gradient descent, boosted trees) with scikit-learn's API.

The losses and gradients of the linear models are pure functions in :mod:`.losses`; the
estimators are :class:`LinearRegressionGD`, :class:`LogisticRegressionGD` (:mod:`.linear`),
:class:`BoostedTreesRegressor`, :class:`BoostedTreesClassifier` (:mod:`.trees`) and the two-part
:class:`HurdleRegressor` (:mod:`.hurdle`).
"""

from __future__ import annotations

from microsub.models.hurdle import HurdleRegressor
from microsub.models.linear import LinearRegressionGD, LogisticRegressionGD
from microsub.models.trees import BoostedTreesClassifier, BoostedTreesRegressor

__all__ = [
    "BoostedTreesClassifier",
    "BoostedTreesRegressor",
    "HurdleRegressor",
    "LinearRegressionGD",
    "LogisticRegressionGD",
]
