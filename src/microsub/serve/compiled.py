"""Serving-time form of the models: one page scored in microseconds, the estimators' numbers.

An estimator's ``predict`` is built for batches: it validates its input, and the tree
ensembles predict tree by tree (:class:`microsub.models.BoostedTreesClassifier` one NumPy pass
per tree and level, scikit-learn's ``HistGradientBoosting*`` one Cython call per tree). For one
page that is 0.3 to 4 ms of overhead, most of the scoring service's latency budget.
:func:`compile_model` turns an estimator into an equivalent predictor without that overhead:

* **Boosted trees** (the scratch ones and scikit-learn's ``HistGradientBoostingClassifier`` /
  ``...Regressor`` without categorical features): all trees in one flat node table
  (:class:`Forest`), descended row by row by one compiled (numba) kernel. A split sends ``x``
  left when ``x <= threshold`` and a missing value (NaN) the way the node says. The scratch
  trees split on bin codes; ``code <= c`` is ``x <= thresholds[c]`` (codes count the bin
  thresholds below ``x``, which are sorted), so their node table holds those raw thresholds
  and no binning is needed. The sum runs in the estimators' order: baseline, then tree 0, tree
  1, ... one addition at a time.
* **Standardised linear models** (``make_pipeline(StandardScaler(), model)`` with the scratch
  :class:`~microsub.models.LinearRegressionGD` / :class:`~microsub.models.LogisticRegressionGD`
  or scikit-learn's ``LinearRegression``, ``Ridge``, ``SGDRegressor``, ``LogisticRegression``):
  ``z = sum_j ((x_j - mean_j) / scale_j) w_j + b``, the scaler's subtraction and division, then
  the dot product summed in feature order by the same kind of kernel, then the model's link.
* **Hurdles** (:class:`~microsub.models.HurdleRegressor`) of any of these: their parts compiled,
  combined as ``HurdleRegressor.predict`` does.

Same numbers: the trees' raw sums and probabilities equal the estimators' exactly (the same
additions in the same order, the same ``sigmoid`` / ``expit``); a linear model's dot product is
summed in a fixed order where the estimator calls BLAS, so it equals the estimator to about
1e-15 relative and, unlike BLAS, gives a row the same number whatever other rows are scored with
it. ``tests/test_compiled.py`` checks both on the champions and on every kind above; any other
estimator is served as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from microsub.errors import ServingError
from microsub.models import (
    BoostedTreesClassifier,
    BoostedTreesRegressor,
    HurdleRegressor,
    LinearRegressionGD,
    LogisticRegressionGD,
)
from microsub.models.losses import sigmoid


@njit(cache=True)
def _forest_sum(X, roots, feature, threshold, missing_left, left, right, value, baseline):  # noqa: ANN001, ANN202 - numba
    """``baseline + sum over trees of the leaf value`` of each row of ``X`` ``(n, d)``.

    Node arrays as in :class:`Forest`; a row goes left at a node when its value is missing and
    ``missing_left``, or when it is ``<= threshold``. Returns ``(n,)``.
    """
    n = X.shape[0]
    out = np.empty(n)
    for i in range(n):
        total = baseline
        for t in range(roots.shape[0]):
            node = roots[t]
            while feature[node] >= 0:
                x = X[i, feature[node]]
                go_left = missing_left[node] if np.isnan(x) else x <= threshold[node]
                node = left[node] if go_left else right[node]
            total += value[node]
        out[i] = total
    return out


@njit(cache=True)
def _affine(X, mean, scale, weights, intercept):  # noqa: ANN001, ANN202 - numba
    """``sum_j ((X[i, j] - mean[j]) / scale[j]) * weights[j] + intercept`` per row of ``X``
    ``(n, d)``, summed in feature order. Returns ``(n,)``."""
    n, d = X.shape
    out = np.empty(n)
    for i in range(n):
        total = 0.0
        for j in range(d):
            total += ((X[i, j] - mean[j]) / scale[j]) * weights[j]
        out[i] = total + intercept
    return out


def _rows(X: np.ndarray, n_features: int) -> np.ndarray:
    """``X`` as a C-contiguous float64 ``(n, n_features)`` array (what the kernels read)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ServingError(f"expected a (rows, {n_features}) feature matrix, got shape {X.shape}")
    return X


@dataclass(frozen=True)
class Forest:
    """All trees of a fitted boosted-trees estimator as one flat node table.

    Node ``roots[t] + k`` is node ``k`` of tree ``t``; children are global node ids.

    Attributes:
        n_features: columns ``X`` must have.
        roots: ``(n_trees,)`` global id of each tree's root.
        feature: ``(n_nodes,)`` split feature, -1 at a leaf.
        threshold: ``(n_nodes,)`` float64: values ``<=`` it go left.
        missing_left: ``(n_nodes,)`` whether a missing value (NaN) goes left.
        left, right: ``(n_nodes,)`` children (unused at a leaf).
        value: ``(n_nodes,)`` leaf values (already scaled by the learning rate).
        baseline: the raw prediction before the first tree.
    """

    n_features: int
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    baseline: float

    @classmethod
    def _of_parts(cls, n_features: int, baseline: float, parts: list[dict[str, np.ndarray]]
                  ) -> Forest:  # fmt: skip
        """Concatenate per-tree node arrays (local child ids, ``feature`` -1 at leaves)."""
        sizes = np.array([len(p["feature"]) for p in parts], dtype=np.intp)
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)

        def children(key: str) -> np.ndarray:
            return np.concatenate(
                [
                    np.where(p["feature"] >= 0, p[key].astype(np.intp) + r, -1)
                    for p, r in zip(parts, roots, strict=True)
                ]  # fmt: skip
            ).astype(np.intp)

        def flat(key: str, dtype: Any) -> np.ndarray:
            return np.ascontiguousarray(np.concatenate([p[key] for p in parts]), dtype=dtype)

        return cls(
            n_features=n_features, roots=roots, feature=flat("feature", np.intp),
            threshold=flat("threshold", np.float64), missing_left=flat("missing_left", np.bool_),
            left=children("left"), right=children("right"), value=flat("value", np.float64),
            baseline=baseline,
        )  # fmt: skip

    @classmethod
    def of(cls, estimator: Any) -> Forest:
        """The forest of a fitted :class:`~microsub.models.BoostedTreesClassifier` /
        ``...Regressor`` or scikit-learn ``HistGradientBoosting*`` (one tree per iteration,
        no categorical features: see :func:`compile_model`)."""
        if isinstance(estimator, BoostedTreesClassifier | BoostedTreesRegressor):
            bins = estimator.bin_mapper_.thresholds
            parts = []
            for tree in estimator.trees_:
                inner = tree.feature >= 0
                # a split on code c is a split on the c-th bin threshold (inf: every value)
                raw = np.full(len(tree.feature), np.inf)
                for k in np.flatnonzero(inner):
                    thr = bins[tree.feature[k]]
                    code = int(tree.threshold[k])
                    raw[k] = thr[code] if code < len(thr) else np.inf
                parts.append({"feature": tree.feature, "threshold": raw,
                              "missing_left": tree.missing_left, "left": tree.left,
                              "right": tree.right, "value": tree.value})  # fmt: skip
            return cls._of_parts(int(estimator.n_features_in_), float(estimator.baseline_), parts)
        parts = []
        for (predictor,) in estimator._predictors:
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            parts.append({"feature": np.where(leaf, -1, nodes["feature_idx"]),
                          "threshold": nodes["num_threshold"],
                          "missing_left": nodes["missing_go_to_left"].astype(bool),
                          "left": nodes["left"], "right": nodes["right"],
                          "value": nodes["value"]})  # fmt: skip
        baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])
        return cls._of_parts(int(estimator.n_features_in_), baseline, parts)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """``baseline + sum of the trees`` for ``X`` ``(n, d)``, shape ``(n,)``."""
        X = _rows(X, self.n_features)
        return _forest_sum(X, self.roots, self.feature, self.threshold, self.missing_left,
                           self.left, self.right, self.value, self.baseline)  # fmt: skip


@dataclass(frozen=True)
class CompiledTrees:
    """A boosted-trees classifier or regressor, compiled (``predict`` / ``predict_proba``).

    Attributes:
        forest: the trees.
        classes_: the two labels (classifier) or None (regressor).
        link: ``"sigmoid"`` (:func:`microsub.models.losses.sigmoid`, the scratch trees) or
            ``"expit"`` (:func:`scipy.special.expit`, scikit-learn's) for a classifier.
    """

    forest: Forest
    classes_: np.ndarray | None = None
    link: str = "sigmoid"

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` probabilities of ``classes_[0]`` and ``classes_[1]`` (classifier)."""
        return _two_columns(_inverse_link(self.link, self.forest.raw(X)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Regressor: the raw sum; classifier: the likelier label."""
        raw = self.forest.raw(X)
        if self.classes_ is None:
            return raw
        return self.classes_[(raw > 0).astype(np.intp)]


@dataclass(frozen=True)
class CompiledLinear:
    """``make_pipeline(StandardScaler(), linear model)``, compiled.

    Attributes:
        mean, scale: ``(d,)`` the scaler's centring and scaling (0 and 1 where it does not).
        weights: ``(d,)`` coefficients on the standardised features; intercept: ``b``.
        classes_: the two labels (classifier) or None (regressor).
        link: ``"identity"`` (regressor), ``"sigmoid"`` (scratch logistic) or ``"expit"``
            (scikit-learn's ``LogisticRegression``).
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: float
    classes_: np.ndarray | None = None
    link: str = "identity"

    def decision(self, X: np.ndarray) -> np.ndarray:
        """``z = ((X - mean) / scale) w + b``, shape ``(n,)``."""
        X = _rows(X, self.weights.shape[0])
        return _affine(X, self.mean, self.scale, self.weights, self.intercept)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` probabilities of ``classes_[0]`` and ``classes_[1]`` (classifier)."""
        return _two_columns(_inverse_link(self.link, self.decision(X)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Regressor: ``z``; classifier: the likelier label (``classes_[1]`` when ``z > 0``)."""
        z = self.decision(X)
        if self.classes_ is None:
            return z
        return self.classes_[(z > 0).astype(np.intp)]


def _inverse_link(link: str, z: np.ndarray) -> np.ndarray:
    if link == "sigmoid":
        return sigmoid(z)
    if link == "expit":
        return expit(z)
    return z


def _two_columns(p: np.ndarray) -> np.ndarray:
    """``[1 - p, p]`` as the estimators build it."""
    proba = np.empty((p.shape[0], 2))
    proba[:, 1] = p
    proba[:, 0] = 1.0 - p
    return proba


@dataclass(frozen=True)
class CompiledHurdle:
    """A :class:`~microsub.models.HurdleRegressor` with compiled parts:
    ``E[y | x] = P(y > 0 | x) * E[y | y > 0, x]``."""

    positive_rate: float
    classifier: Any
    regressor: Any
    log_target: bool
    smearing: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Expected value, shape ``(n,)``."""
        X = np.asarray(X, dtype=np.float64)
        if self.classifier is None:
            p = np.full(X.shape[0], self.positive_rate)
        else:
            p = self.classifier.predict_proba(X)[:, list(self.classifier.classes_).index(1)]
        if self.regressor is None:
            return p * np.zeros(X.shape[0])
        eta = self.regressor.predict(X)
        amount = np.maximum(self.smearing * np.exp(eta) - 1.0, 0.0) if self.log_target else eta
        return p * amount


#: Linear models a standardised pipeline may end with, and their inverse link.
_LINEAR_LINKS: dict[type, str] = {
    LinearRegressionGD: "identity",
    LogisticRegressionGD: "sigmoid",
    LinearRegression: "identity",
    Ridge: "identity",
    SGDRegressor: "identity",
    LogisticRegression: "expit",
}


def _compile_linear(pipeline: Pipeline) -> CompiledLinear | None:
    """The compiled form of ``StandardScaler -> linear model``, or None for other pipelines."""
    if len(pipeline.steps) != 2:
        return None
    scaler, model = pipeline.steps[0][1], pipeline.steps[1][1]
    link = _LINEAR_LINKS.get(type(model))
    if type(scaler) is not StandardScaler or link is None:
        return None
    weights = np.ravel(model.coef_).astype(np.float64)
    d = weights.shape[0]
    classes = getattr(model, "classes_", None)
    if classes is not None and (len(classes) != 2 or np.ndim(model.coef_) != 2):
        return None  # multiclass: served as it is
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None
    return CompiledLinear(
        mean=np.zeros(d) if mean is None else np.ascontiguousarray(mean, dtype=np.float64),
        scale=np.ones(d) if scale is None else np.ascontiguousarray(scale, dtype=np.float64),
        weights=np.ascontiguousarray(weights),
        intercept=float(np.ravel(model.intercept_)[0]) if np.ndim(model.intercept_)
        else float(model.intercept_),
        classes_=None if classes is None else np.asarray(classes),
        link=link,
    )  # fmt: skip


def _hist_gb_compilable(estimator: Any) -> bool:
    """One tree per iteration (binary or squared-error), no categorical features."""
    return (
        getattr(estimator, "_preprocessor", None) is None
        and getattr(estimator, "is_categorical_", None) is None
        and int(estimator.n_trees_per_iteration_) == 1
        and (isinstance(estimator, HistGradientBoostingClassifier)
             or estimator.loss == "squared_error")
    )  # fmt: skip


def compile_model(estimator: Any) -> Any:
    """The fast equivalent of ``estimator`` (module docstring: boosted trees, standardised
    linear models, hurdles of them); any other estimator is returned as it is."""
    if isinstance(estimator, BoostedTreesClassifier):
        return CompiledTrees(Forest.of(estimator), np.asarray(estimator.classes_), "sigmoid")
    if isinstance(estimator, BoostedTreesRegressor):
        return CompiledTrees(Forest.of(estimator))
    if isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        if not _hist_gb_compilable(estimator):
            return estimator
        if isinstance(estimator, HistGradientBoostingClassifier):
            return CompiledTrees(Forest.of(estimator), np.asarray(estimator.classes_), "expit")
        return CompiledTrees(Forest.of(estimator))
    if isinstance(estimator, Pipeline):
        return _compile_linear(estimator) or estimator
    if isinstance(estimator, HurdleRegressor):
        return CompiledHurdle(
            positive_rate=float(estimator.positive_rate_),
            classifier=None if estimator.classifier_ is None
            else compile_model(estimator.classifier_),
            regressor=None if estimator.regressor_ is None
            else compile_model(estimator.regressor_),
            log_target=bool(estimator.log_target),
            smearing=float(estimator.smearing_),
        )  # fmt: skip
    return estimator


__all__ = ["CompiledHurdle", "CompiledLinear", "CompiledTrees", "Forest", "compile_model"]
