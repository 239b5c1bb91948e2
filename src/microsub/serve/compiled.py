"""Serving-time form of the from-scratch boosted trees: every tree descended at once.

:class:`microsub.models.BoostedTreesClassifier` and ``...Regressor`` predict tree by tree (one
NumPy pass per tree and per level): right for training-time batches, but one page costs about
40 µs per tree, 4 ms for 100 trees and twice that for a hurdle model with two forests, most of
the latency budget of the scoring service. :func:`compile_model` turns such an estimator into
an equivalent predictor whose trees are one node table ``(n_trees, n_nodes)``: each level of
the descent is a handful of NumPy operations over all trees and rows together, so one page
costs about as much as one tree did.

Same numbers: the bins come from the estimator's own ``BinMapper.transform``, the leaf values
are summed in the estimator's order (baseline first, then tree by tree, a sequential
``cumsum``), the probability uses the same ``sigmoid``, and the hurdle combines its parts as
``HurdleRegressor.predict`` does. ``tests/test_compiled.py`` checks equality to 1e-12 on the
held-out pages; any other estimator is served as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from microsub.errors import ServingError
from microsub.models import BoostedTreesClassifier, BoostedTreesRegressor, HurdleRegressor
from microsub.models.losses import sigmoid
from microsub.models.trees import MISSING_BIN, BinMapper

#: Rows descended together (bounds the ``(rows, trees)`` work arrays in batch scoring).
BLOCK_ROWS = 4096


@dataclass(frozen=True)
class Forest:
    """All trees of a fitted boosted-trees estimator as one flat node table.

    Node ``roots[t] + k`` is node ``k`` of tree ``t``; children are global node ids.

    Attributes:
        bins: the estimator's bin mapper; n_features: columns ``X`` must have.
        roots: ``(n_trees,)`` global id of each tree's root.
        feature, threshold, missing_left, left, right, value: ``(n_nodes,)`` arrays over the
            nodes of every tree (``feature`` -1 and ``left``/``right`` -1 at a leaf).
        baseline: the raw prediction before the first tree.
    """

    bins: BinMapper
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
    def of(cls, estimator: BoostedTreesClassifier | BoostedTreesRegressor) -> Forest:
        """The forest of a fitted estimator."""
        trees = estimator.trees_
        sizes = np.array([len(t.feature) for t in trees], dtype=np.intp)
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)

        def children(attr: str) -> np.ndarray:
            parts = [np.where(getattr(t, attr) >= 0, getattr(t, attr) + root, -1)
                     for t, root in zip(trees, roots, strict=True)]  # fmt: skip
            return np.concatenate(parts).astype(np.intp)

        def flat(attr: str, dtype: Any) -> np.ndarray:
            return np.concatenate([getattr(t, attr) for t in trees]).astype(dtype)

        return cls(
            bins=estimator.bin_mapper_,
            n_features=int(estimator.n_features_in_),
            roots=roots,
            feature=flat("feature", np.intp),
            threshold=flat("threshold", np.int64),
            missing_left=flat("missing_left", bool),
            left=children("left"),
            right=children("right"),
            value=flat("value", np.float64),
            baseline=float(estimator.baseline_),
        )

    def raw(self, X: np.ndarray) -> np.ndarray:
        """``baseline + sum of the trees`` for ``X`` ``(n, d)``, shape ``(n,)``."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ServingError(
                f"expected a (rows, {self.n_features}) feature matrix, got shape {X.shape}"
            )
        return np.concatenate(
            [self._raw_block(X[i : i + BLOCK_ROWS]) for i in range(0, len(X), BLOCK_ROWS)]
            or [np.empty(0)]
        )

    def _raw_block(self, X: np.ndarray) -> np.ndarray:
        codes = self.bins.transform(X)  # (d, n)
        n = X.shape[0]
        rows = np.arange(n)[:, None]
        node = np.broadcast_to(self.roots, (n, self.roots.size))
        while True:  # one level of every tree per pass, until all rows sit on leaves
            f = self.feature[node]
            inner = f >= 0
            if not inner.any():
                break
            code = codes[np.where(inner, f, 0), rows]
            go_left = np.where(
                code == MISSING_BIN, self.missing_left[node], code <= self.threshold[node]
            )
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        # the estimator's order: baseline, then tree 0, tree 1, ... (a sequential sum)
        start = np.full((n, 1), self.baseline)
        return np.cumsum(np.hstack([start, self.value[node]]), axis=1)[:, -1]


@dataclass(frozen=True)
class CompiledTrees:
    """A boosted-trees classifier or regressor, compiled (``predict`` / ``predict_proba``)."""

    forest: Forest
    classes_: np.ndarray | None = None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` probabilities of ``classes_[0]`` and ``classes_[1]`` (classifier)."""
        p = sigmoid(self.forest.raw(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Regressor: the raw sum; classifier: the likelier label."""
        raw = self.forest.raw(X)
        if self.classes_ is None:
            return raw
        return self.classes_[(raw > 0).astype(np.intp)]


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


def compile_model(estimator: Any) -> Any:
    """The fast equivalent of ``estimator`` when it is (or is a hurdle of) the from-scratch
    boosted trees; any other estimator is returned as it is."""
    if isinstance(estimator, BoostedTreesClassifier):
        return CompiledTrees(Forest.of(estimator), np.asarray(estimator.classes_))
    if isinstance(estimator, BoostedTreesRegressor):
        return CompiledTrees(Forest.of(estimator))
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


__all__ = ["BLOCK_ROWS", "CompiledHurdle", "CompiledTrees", "Forest", "compile_model"]
