"""A two-part (hurdle) model for a zero-inflated, non-negative target such as the page value.

Most pages sell nothing; the few that do sell amounts spread over orders of magnitude. A single
regressor fitted to such a target averages the two regimes. The hurdle model separates them::

    E[y | x] = P(y > 0 | x) * E[y | y > 0, x]

The first factor comes from a binary classifier fitted on ``1[y > 0]``, the second from a
regressor fitted on the positive rows only.

With ``log_target=True`` (the default) the regressor is fitted on ``log1p(y)``, which tames the
long right tail, and its prediction ``eta(x)`` is mapped back with Duan's (1983) smearing
estimator rather than the biased ``expm1(eta)``: if ``log(1 + y) = eta(x) + eps`` with errors
independent of ``x``, then ``E[1 + y | x] = exp(eta(x)) * E[exp(eps)]``, and ``E[exp(eps)]`` is
estimated by the mean of ``exp`` of the training residuals::

    S = 1/m * sum_{i: y_i > 0} exp(log1p(y_i) - eta(x_i))
    E[y | y > 0, x] = S * exp(eta(x)) - 1          (clipped at 0)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, MetaEstimatorMixin, RegressorMixin, clone
from sklearn.utils import Tags, get_tags
from sklearn.utils.validation import check_is_fitted, validate_data

from microsub.errors import ModelError
from microsub.models.linear import LinearRegressionGD, LogisticRegressionGD


class HurdleRegressor(MetaEstimatorMixin, RegressorMixin, BaseEstimator):
    """``E[y|x] = P(y>0|x) * E[y|y>0,x]`` from a classifier and a regressor (module docstring).

    Args:
        classifier: binary classifier with ``predict_proba`` for ``1[y > 0]``; cloned in
            ``fit``. ``None``: ``LogisticRegressionGD()``.
        regressor: regressor for the positive rows; cloned in ``fit``.
            ``None``: ``LinearRegressionGD()``.
        log_target: fit the regressor on ``log1p(y)`` and map back with Duan's smearing.

    Attributes:
        classifier_: the fitted classifier, or None when the training target was all zero or
            all positive (then ``positive_rate_`` is used as the probability).
        regressor_: the fitted regressor, or None when the training target was all zero.
        positive_rate_: share of training rows with ``y > 0``.
        smearing_: Duan's factor ``S`` (1.0 when ``log_target=False``).
        n_features_in_: number of features seen in ``fit``.
    """

    def __init__(
        self,
        classifier: BaseEstimator | None = None,
        regressor: BaseEstimator | None = None,
        *,
        log_target: bool = True,
    ) -> None:
        self.classifier = classifier
        self.regressor = regressor
        self.log_target = log_target

    def _parts(self) -> tuple[BaseEstimator, BaseEstimator]:
        classifier = self.classifier if self.classifier is not None else LogisticRegressionGD()
        regressor = self.regressor if self.regressor is not None else LinearRegressionGD()
        return classifier, regressor

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        classifier, regressor = self._parts()
        tags.input_tags.allow_nan = (
            get_tags(classifier).input_tags.allow_nan and get_tags(regressor).input_tags.allow_nan
        )
        tags.target_tags.positive_only = True
        return tags

    def fit(self, X: ArrayLike, y: ArrayLike) -> HurdleRegressor:
        """Fit on ``X`` ``(n, d)`` and ``y`` ``(n,)`` with ``y >= 0`` (e.g. Yuan per page)."""
        # Finiteness is left to the two parts, which know whether they accept NaN.
        X, y = validate_data(self, X, y, ensure_all_finite=False, y_numeric=True)
        y = y.astype(np.float64)
        if np.any(y < 0) or np.isnan(y).any():
            raise ModelError(
                f"HurdleRegressor needs a target y >= 0 (a zero-inflated amount); found minimum "
                f"{np.nanmin(y)!r} or NaN. Shift or clip the target first."
            )
        classifier, regressor = self._parts()
        positive = y > 0
        self.positive_rate_ = float(positive.mean())
        self.classifier_ = None
        if 0.0 < self.positive_rate_ < 1.0:
            self.classifier_ = clone(classifier).fit(X, positive.astype(np.int64))
        self.regressor_ = None
        self.smearing_ = 1.0
        if positive.any():
            target = np.log1p(y[positive]) if self.log_target else y[positive]
            self.regressor_ = clone(regressor).fit(X[positive], target)
            if self.log_target:
                residuals = target - self.regressor_.predict(X[positive])
                self.smearing_ = float(np.mean(np.exp(residuals)))
        return self

    def predict_positive_proba(self, X: ArrayLike) -> np.ndarray:
        """``P(y > 0 | x)``, shape ``(n,)``."""
        check_is_fitted(self)
        X = validate_data(self, X, ensure_all_finite=False, reset=False)
        if self.classifier_ is None:
            return np.full(X.shape[0], self.positive_rate_)
        column = list(self.classifier_.classes_).index(1)
        return self.classifier_.predict_proba(X)[:, column]

    def predict_amount(self, X: ArrayLike) -> np.ndarray:
        """``E[y | y > 0, x]``, shape ``(n,)`` (0 where no training row was positive)."""
        check_is_fitted(self)
        X = validate_data(self, X, ensure_all_finite=False, reset=False)
        if self.regressor_ is None:
            return np.zeros(X.shape[0])
        eta = self.regressor_.predict(X)
        if self.log_target:
            return np.maximum(self.smearing_ * np.exp(eta) - 1.0, 0.0)
        return eta

    def predict(self, X: ArrayLike) -> np.ndarray:
        """``E[y | x] = P(y > 0 | x) * E[y | y > 0, x]``, shape ``(n,)``."""
        return self.predict_positive_proba(X) * self.predict_amount(X)
