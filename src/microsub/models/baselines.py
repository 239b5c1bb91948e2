"""Baselines a model has to beat: the depth hazard (the fatigue curve as a classifier).

Constant regressors (the training mean, zero) come from :class:`sklearn.dummy.DummyRegressor`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from microsub.contract import MAX_PAGE_ID


class DepthHazardClassifier(ClassifierMixin, BaseEstimator):
    """P(leave | depth): the share of training pages at each depth after which the user left.

    The fatigue curve of chapter 03 as a classifier, the baseline a churn model has to beat.

    Args:
        column: index of the depth column (``action_page_id``) in ``X``.
    """

    def __init__(self, column: int = 0) -> None:
        self.column = column

    def fit(self, X: Any, y: Any) -> DepthHazardClassifier:
        """Rates per depth from ``X`` ``(n, d)`` and 0/1 ``y`` ``(n,)``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        self.classes_ = np.array([0, 1])
        depth = np.clip(X[:, self.column].round().astype(int), 0, MAX_PAGE_ID)
        n = np.bincount(depth, minlength=MAX_PAGE_ID + 1)
        k = np.bincount(depth, weights=y.astype(float), minlength=MAX_PAGE_ID + 1)
        prior = float(np.mean(y))
        self.rate_ = np.where(n > 0, k / np.maximum(n, 1), prior)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, 2)`` probabilities of staying and leaving."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        depth = np.clip(X[:, self.column].round().astype(int), 0, MAX_PAGE_ID)
        p = self.rate_[depth]
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """1 where the hazard is at least one half."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
