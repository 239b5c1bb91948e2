"""Gradient-boosted regression trees with histogram split finding, written in NumPy.

The algorithm of scikit-learn's ``HistGradientBoosting*`` and LightGBM, kept short:

1. **Binning.** Each feature is cut at up to ``max_bins - 1`` thresholds (midpoints between the
   distinct values when there are few, quantiles otherwise, from at most 200 000 rows), so a
   value becomes a ``uint8`` bin code ``k`` with ``x <= threshold[k]``; a missing value (NaN) gets
   its own code :data:`MISSING_BIN`.
2. **Boosting.** Starting from the constant ``baseline`` (mean of ``y``, or the log-odds of the
   positive class), iteration ``m`` fits a tree to the gradients ``g_i`` and hessians ``h_i`` of the
   loss at the current raw predictions ``F_i`` and adds ``learning_rate`` times its leaf values:

   * squared loss ``(y - F)^2 / 2``:  ``g = F - y``, ``h = 1``;
   * log-loss ``log(1 + exp(F)) - y F``:  ``g = p - y``, ``h = p (1 - p)``, ``p = sigmoid(F)``.

3. **Trees, grown best-first.** For a node, per-feature histograms of ``g``, ``h`` and row counts
   over the bins come from ``np.bincount``; the sibling of the smaller child is the parent minus
   that child (the subtraction trick). A split "code ``<= k`` goes left", with the missing rows
   sent left or right, has the gain (``lambda = l2_regularization``)::

       gain = 1/2 * [ G_L^2 / (H_L + lambda) + G_R^2 / (H_R + lambda) - G^2 / (H + lambda) ]

   allowed when both children keep ``min_samples_leaf`` rows and a hessian sum of at least
   ``1e-3``. The leaf with the largest positive gain is split next, until ``max_leaf_nodes``
   leaves (or no positive gain, or ``max_depth``). A leaf's value is the Newton step
   ``-G / (H + lambda)``, times ``learning_rate``.

Missing values are supported: the direction of the missing rows is learnt at every split; when a
node saw no missing value for the split feature, missing values go to the child with more rows
(as in scikit-learn). Infinite values are rejected.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from microsub.errors import ModelError
from microsub.models.linear import Progress, check_two_classes
from microsub.models.losses import sigmoid

#: Bin code of a missing value; codes ``0 .. MISSING_BIN - 1`` hold the observed values.
MISSING_BIN = 255
#: Number of codes per feature in a histogram.
N_CODES = MISSING_BIN + 1
#: Largest number of bins for observed values.
MAX_BINS = 255
#: Rows used to find the bin thresholds (as in scikit-learn).
BINNING_SUBSAMPLE = 200_000
#: Smallest hessian sum of a child.
MIN_HESSIAN = 1e-3


# --------------------------------------------------------------------------------------------
# Binning
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BinMapper:
    """Per-feature thresholds: bin ``k`` of feature ``j`` holds ``thresholds[j][k-1] < x <=
    thresholds[j][k]``; the last bin holds values above every threshold."""

    thresholds: tuple[np.ndarray, ...]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Bin codes of ``X`` ``(n, d)``, as a ``(d, n)`` ``uint8`` array (feature-major, so that
        one feature's codes are contiguous for the histograms)."""
        codes = np.empty((X.shape[1], X.shape[0]), dtype=np.uint8)
        for j, thr in enumerate(self.thresholds):
            col = X[:, j]
            codes[j] = np.searchsorted(thr, col, side="left")
            codes[j, np.isnan(col)] = MISSING_BIN
        return codes


def fit_bins(X: np.ndarray, max_bins: int, rng: np.random.Generator) -> BinMapper:
    """Thresholds of at most ``max_bins`` bins per feature of ``X`` ``(n, d)``, NaNs ignored.

    With at most ``max_bins`` distinct values, the thresholds are the midpoints between them;
    otherwise the ``max_bins - 1`` inner quantiles (duplicates dropped). A random subsample of
    :data:`BINNING_SUBSAMPLE` rows is used when ``X`` is larger.
    """
    if X.shape[0] > BINNING_SUBSAMPLE:
        X = X[np.sort(rng.choice(X.shape[0], BINNING_SUBSAMPLE, replace=False))]
    thresholds = []
    for j in range(X.shape[1]):
        col = X[:, j]
        distinct = np.unique(col[~np.isnan(col)])
        if distinct.size <= max_bins:
            thr = 0.5 * (distinct[:-1] + distinct[1:])
        else:
            q = np.linspace(0, 100, max_bins + 1)[1:-1]
            thr = np.unique(np.percentile(col[~np.isnan(col)], q, method="midpoint"))
        thresholds.append(thr)
    return BinMapper(thresholds=tuple(thresholds))


# --------------------------------------------------------------------------------------------
# One tree
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tree:
    """A fitted tree as parallel arrays over its nodes (node 0 is the root).

    Attributes:
        feature: split feature, ``-1`` at a leaf.
        threshold: split bin code: codes ``<= threshold`` go left.
        missing_left: whether missing values go left.
        left, right: child node ids (``-1`` at a leaf).
        value: leaf value (already multiplied by the learning rate); 0 at inner nodes.
    """

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray

    def predict_codes(self, codes: np.ndarray) -> np.ndarray:
        """Leaf values for binned rows ``codes`` ``(d, n)``, shape ``(n,)``."""
        return self.value[self.apply_codes(codes)]

    def apply_codes(self, codes: np.ndarray) -> np.ndarray:
        """Leaf node ids of binned rows ``codes`` ``(d, n)``; all rows descend together, one level
        per loop, and leave the loop when they reach a leaf."""
        node = np.zeros(codes.shape[1], dtype=np.intp)
        rows = np.arange(codes.shape[1])
        while rows.size:
            nd = node[rows]
            f = self.feature[nd]
            inner = f >= 0
            rows, nd, f = rows[inner], nd[inner], f[inner]
            code = codes[f, rows]
            go_left = np.where(
                code == MISSING_BIN, self.missing_left[nd], code <= self.threshold[nd]
            )
            node[rows] = np.where(go_left, self.left[nd], self.right[nd])
        return node


@dataclass
class _Split:
    gain: float
    feature: int
    threshold: int
    missing_left: bool


@dataclass
class _Node:
    rows: np.ndarray
    hist: np.ndarray  # (3, d, N_CODES): gradient, hessian and count histograms
    depth: int
    split: _Split | None = None


@dataclass(frozen=True)
class TreeParams:
    """Growth limits of one tree (see the module docstring)."""

    max_leaf_nodes: int | None
    max_depth: int | None
    min_samples_leaf: int
    l2_regularization: float
    learning_rate: float


def histograms(
    codes: np.ndarray, rows: np.ndarray, g: np.ndarray, h: np.ndarray | None
) -> np.ndarray:
    """``(3, d, N_CODES)`` sums of ``g``, ``h`` (1 when ``h`` is None) and counts per bin."""
    d = codes.shape[0]
    out = np.empty((3, d, N_CODES))
    gr = g[rows]
    hr = h[rows] if h is not None else None
    for j in range(d):
        c = codes[j, rows]
        out[0, j] = np.bincount(c, weights=gr, minlength=N_CODES)
        out[2, j] = np.bincount(c, minlength=N_CODES)
        out[1, j] = np.bincount(c, weights=hr, minlength=N_CODES) if hr is not None else out[2, j]
    return out


def find_split(hist: np.ndarray, params: TreeParams) -> _Split | None:
    """Best split of a node from its histograms ``(3, d, N_CODES)``, or None if none has gain > 0.

    All features, thresholds and both directions of the missing rows are scored at once (the
    gain formula is in the module docstring).
    """
    lam = params.l2_regularization
    msl = params.min_samples_leaf
    total = hist[:, 0, :].sum(axis=1)  # (3,) G, H, count of the node
    observed = np.cumsum(hist[:, :, :MISSING_BIN], axis=2)  # (3, d, 255) left sums
    missing = hist[:, :, MISSING_BIN][:, :, np.newaxis]  # (3, d, 1)
    left = np.stack([observed, observed + missing])  # (2, 3, d, 255): missing right / left
    right = total[np.newaxis, :, np.newaxis, np.newaxis] - left
    gl, hl, cl = left[:, 0], left[:, 1], left[:, 2]
    gr, hr, cr = right[:, 0], right[:, 1], right[:, 2]
    valid = (cl >= msl) & (cr >= msl) & (hl >= MIN_HESSIAN) & (hr >= MIN_HESSIAN)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = gl**2 / (hl + lam) + gr**2 / (hr + lam) - total[0] ** 2 / (total[1] + lam)
    gain = np.where(valid, 0.5 * gain, -np.inf)
    best = int(np.argmax(gain))
    direction, feature, threshold = np.unravel_index(best, gain.shape)
    if not gain.flat[best] > 0:
        return None
    if missing[2, feature, 0] > 0:
        missing_left = bool(direction == 1)
    else:  # no missing value seen here: send future ones to the larger child
        missing_left = bool(cl[0, feature, threshold] >= cr[0, feature, threshold])
    return _Split(float(gain.flat[best]), int(feature), int(threshold), missing_left)


def grow_tree(
    codes: np.ndarray,
    rows: np.ndarray,
    g: np.ndarray,
    h: np.ndarray | None,
    params: TreeParams,
    importances: np.ndarray,
) -> tuple[Tree, list[tuple[np.ndarray, float]]]:
    """Grow one tree best-first on the training rows ``rows`` of ``codes`` ``(d, n)``.

    Args:
        codes: bin codes, feature-major.
        rows: indices of the rows to fit on.
        g, h: ``(n,)`` gradients and hessians (``h=None``: all ones).
        params: growth limits.
        importances: ``(d,)`` gains, incremented in place by every split made.

    Returns:
        The tree, and for every leaf its rows and value (so the caller can update the training
        predictions without descending the tree).
    """
    nodes = [_Node(rows=rows, hist=histograms(codes, rows, g, h), depth=0)]
    feature, threshold, missing_left, left, right = [-1], [0], [False], [-1], [-1]
    heap: list[tuple[float, int]] = []

    def consider(node_id: int) -> None:
        node = nodes[node_id]
        if params.max_depth is not None and node.depth >= params.max_depth:
            return
        if node.rows.size < 2 * params.min_samples_leaf:
            return
        node.split = find_split(node.hist, params)
        if node.split is not None:
            heapq.heappush(heap, (-node.split.gain, node_id))

    consider(0)
    n_leaves = 1
    while heap and (params.max_leaf_nodes is None or n_leaves < params.max_leaf_nodes):
        _, node_id = heapq.heappop(heap)
        node = nodes[node_id]
        split = node.split
        assert split is not None
        c = codes[split.feature, node.rows]
        go_left = np.where(c == MISSING_BIN, split.missing_left, c <= split.threshold)
        rows_l, rows_r = node.rows[go_left], node.rows[~go_left]
        if rows_l.size <= rows_r.size:
            hist_l = histograms(codes, rows_l, g, h)
            hist_r = node.hist - hist_l
        else:
            hist_r = histograms(codes, rows_r, g, h)
            hist_l = node.hist - hist_r
        importances[split.feature] += split.gain
        ids = []
        for child_rows, child_hist in ((rows_l, hist_l), (rows_r, hist_r)):
            nodes.append(_Node(rows=child_rows, hist=child_hist, depth=node.depth + 1))
            for lst, v in ((feature, -1), (threshold, 0), (missing_left, False)):
                lst.append(v)
            left.append(-1)
            right.append(-1)
            ids.append(len(nodes) - 1)
        feature[node_id], threshold[node_id] = split.feature, split.threshold
        missing_left[node_id] = split.missing_left
        left[node_id], right[node_id] = ids
        # an inner node's rows and histograms are no longer needed
        node.rows, node.hist = node.rows[:0], np.empty(0)
        n_leaves += 1
        for child in ids:
            consider(child)

    value = np.zeros(len(nodes))
    leaves = []
    for i, node in enumerate(nodes):
        if feature[i] < 0:
            g_sum = node.hist[0, 0].sum()
            denom = node.hist[1, 0].sum() + params.l2_regularization
            # a leaf of rows whose probabilities saturated at 0 or 1 has no curvature: no step
            value[i] = -params.learning_rate * g_sum / denom if denom > 0 else 0.0
            leaves.append((node.rows, value[i]))
    tree = Tree(
        feature=np.array(feature, dtype=np.intp),
        threshold=np.array(threshold, dtype=np.uint8),
        missing_left=np.array(missing_left, dtype=bool),
        left=np.array(left, dtype=np.intp),
        right=np.array(right, dtype=np.intp),
        value=value,
    )
    return tree, leaves


# --------------------------------------------------------------------------------------------
# Boosting
# --------------------------------------------------------------------------------------------
class _BoostedTrees(BaseEstimator):
    """Shared parameters and boosting loop; subclasses give the loss."""

    def __init__(
        self,
        *,
        learning_rate: float = 0.1,
        max_iter: int = 100,
        max_leaf_nodes: int | None = 31,
        max_depth: int | None = None,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        max_bins: int = 255,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-7,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_bins = max_bins
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _check_params(self) -> None:
        name = type(self).__name__

        def bad(param: str, rule: str) -> ModelError:
            return ModelError(f"{name}: {param} must be {rule}, got {getattr(self, param)!r}.")

        def is_int(v: object, low: int) -> bool:
            return isinstance(v, Integral) and not isinstance(v, bool) and v >= low

        if not isinstance(self.learning_rate, Real) or not self.learning_rate > 0:
            raise bad("learning_rate", "a float > 0")
        if not is_int(self.max_iter, 1):
            raise bad("max_iter", "an int >= 1")
        if self.max_leaf_nodes is not None and not is_int(self.max_leaf_nodes, 2):
            raise bad("max_leaf_nodes", "None or an int >= 2")
        if self.max_depth is not None and not is_int(self.max_depth, 1):
            raise bad("max_depth", "None or an int >= 1")
        if not is_int(self.min_samples_leaf, 1):
            raise bad("min_samples_leaf", "an int >= 1")
        if not isinstance(self.l2_regularization, Real) or not self.l2_regularization >= 0:
            raise bad("l2_regularization", "a float >= 0")
        if not is_int(self.max_bins, 2) or self.max_bins > MAX_BINS:
            raise bad("max_bins", f"an int in [2, {MAX_BINS}]")
        if not isinstance(self.validation_fraction, Real) or not 0 < self.validation_fraction < 1:
            raise bad("validation_fraction", "a float in (0, 1)")
        if not is_int(self.n_iter_no_change, 1):
            raise bad("n_iter_no_change", "an int >= 1")
        if not isinstance(self.tol, Real) or not self.tol >= 0:
            raise bad("tol", "a float >= 0")

    # The loss, per subclass.
    def _baseline(self, y: np.ndarray) -> float:
        raise NotImplementedError

    def _grad_hess(self, y: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _loss(self, y: np.ndarray, raw: np.ndarray) -> float:
        raise NotImplementedError

    def _boost(self, X: np.ndarray, y: np.ndarray, progress: Progress | None) -> None:
        """The boosting loop on validated ``X`` ``(n, d)`` and encoded ``y`` ``(n,)``."""
        self._check_params()
        rng = np.random.default_rng(self.random_state)
        n = X.shape[0]
        if self.early_stopping:
            order = rng.permutation(n)
            n_val = max(1, int(round(self.validation_fraction * n)))
            val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
            if train_rows.size == 0:
                raise ModelError(
                    f"{type(self).__name__}: early stopping leaves no training row "
                    f"({n} rows, validation_fraction={self.validation_fraction}); "
                    "use more rows or early_stopping=False."
                )
        else:
            val_rows, train_rows = np.empty(0, dtype=np.intp), np.arange(n)
        self.bin_mapper_ = fit_bins(X[train_rows], self.max_bins, rng)
        codes = self.bin_mapper_.transform(X)
        self.baseline_ = self._baseline(y[train_rows])
        raw = np.full(n, self.baseline_)
        params = TreeParams(
            max_leaf_nodes=self.max_leaf_nodes,
            max_depth=self.max_depth,
            min_samples_leaf=int(self.min_samples_leaf),
            l2_regularization=float(self.l2_regularization),
            learning_rate=float(self.learning_rate),
        )
        importances = np.zeros(X.shape[1])
        self.trees_: list[Tree] = []
        self.train_loss_ = []
        self.validation_loss_ = []
        codes_val = codes[:, val_rows]
        for _ in range(self.max_iter):
            g, h = self._grad_hess(y, raw)
            tree, leaves = grow_tree(codes, train_rows, g, h, params, importances)
            self.trees_.append(tree)
            for leaf_rows, value in leaves:
                raw[leaf_rows] += value
            self.train_loss_.append(self._loss(y[train_rows], raw[train_rows]))
            if progress is not None:
                progress(1)
            if self.early_stopping:
                raw[val_rows] += tree.predict_codes(codes_val)
                self.validation_loss_.append(self._loss(y[val_rows], raw[val_rows]))
                if self._should_stop(self.validation_loss_):
                    break
        self.n_iter_ = len(self.trees_)
        total = importances.sum()
        self.feature_importances_ = importances / total if total > 0 else importances

    def _should_stop(self, losses: list[float]) -> bool:
        """True when none of the last ``n_iter_no_change`` validation losses improved on the one
        before them by more than ``tol``."""
        k = self.n_iter_no_change
        if len(losses) <= k:
            return False
        reference = losses[-k - 1]
        return not any(loss < reference - self.tol for loss in losses[-k:])

    def _raw_predict(self, X: np.ndarray) -> np.ndarray:
        """``baseline + sum of the trees``, shape ``(n,)``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        codes = self.bin_mapper_.transform(X)
        raw = np.full(X.shape[0], self.baseline_)
        for tree in self.trees_:
            raw += tree.predict_codes(codes)
        return raw


_DOC_PARAMS = """
    Args:
        learning_rate: shrinkage of every tree's leaf values.
        max_iter: number of boosting iterations (trees).
        max_leaf_nodes: most leaves per tree (None: no limit).
        max_depth: most edges from root to leaf (None: no limit).
        min_samples_leaf: fewest training rows in a leaf.
        l2_regularization: ``lambda`` in the gain and in the leaf values ``-G / (H + lambda)``.
        max_bins: bins per feature for observed values (<= 255; NaN has a bin of its own).
        early_stopping: hold out ``validation_fraction`` of the rows and stop when the loss on
            them has not decreased by more than ``tol`` in ``n_iter_no_change`` iterations.
        validation_fraction, n_iter_no_change, tol: see ``early_stopping``.
        random_state: seed or Generator (binning subsample, validation split).

    Attributes:
        n_features_in_: number of features seen in ``fit``.
        n_iter_: number of trees.
        trees_: the fitted :class:`Tree` objects.
        baseline_: the constant raw prediction before the first tree.
        bin_mapper_: the :class:`BinMapper` fitted on the training rows.
        train_loss_: training loss after every iteration.
        validation_loss_: validation loss after every iteration (early stopping only).
        feature_importances_: ``(d,)`` total split gain per feature, normalised to sum to 1.
"""


class BoostedTreesRegressor(RegressorMixin, _BoostedTrees):
    __doc__ = (
        """Gradient-boosted trees for the squared loss ``(y - F)^2 / 2`` (see the module
    docstring); the counterpart of ``HistGradientBoostingRegressor``.
"""
        + _DOC_PARAMS
    )

    def _baseline(self, y: np.ndarray) -> float:
        return float(y.mean())

    def _grad_hess(self, y: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return raw - y, None

    def _loss(self, y: np.ndarray, raw: np.ndarray) -> float:
        return 0.5 * float(np.mean((y - raw) ** 2))

    def fit(
        self, X: ArrayLike, y: ArrayLike, *, progress: Progress | None = None
    ) -> BoostedTreesRegressor:
        """Fit on ``X`` ``(n, d)`` (NaN allowed) and ``y`` ``(n,)``; ``progress``: 1 per tree."""
        X, y = validate_data(
            self, X, y, dtype=np.float64, ensure_all_finite="allow-nan", y_numeric=True
        )
        self._boost(X, y.astype(np.float64), progress)
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions, shape ``(n,)``."""
        return self._raw_predict(X)


class BoostedTreesClassifier(ClassifierMixin, _BoostedTrees):
    __doc__ = (
        """Gradient-boosted trees for the binary log-loss (see the module docstring); the
    counterpart of ``HistGradientBoostingClassifier`` for two classes (any two labels). The raw
    prediction ``F`` is the log-odds of ``classes_[1]``.
"""
        + _DOC_PARAMS
        + """        classes_: the two labels, sorted.
"""
    )

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _baseline(self, y: np.ndarray) -> float:
        p = float(np.clip(y.mean(), 1e-12, 1 - 1e-12))
        return float(np.log(p / (1.0 - p)))

    def _grad_hess(self, y: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        p = sigmoid(raw)
        return p - y, p * (1.0 - p)

    def _loss(self, y: np.ndarray, raw: np.ndarray) -> float:
        return float(np.mean(np.logaddexp(0.0, raw) - y * raw))

    def fit(
        self, X: ArrayLike, y: ArrayLike, *, progress: Progress | None = None
    ) -> BoostedTreesClassifier:
        """Fit on ``X`` ``(n, d)`` (NaN allowed) and two-label ``y`` ``(n,)``; ``progress`` gets 1
        per tree."""
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self.classes_, y01 = np.unique(y, return_inverse=True)
        check_two_classes(type(self).__name__, self.classes_)
        self._boost(X, y01.astype(np.float64), progress)
        return self

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Raw scores (log-odds of ``classes_[1]``), shape ``(n,)``."""
        return self._raw_predict(X)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probabilities ``(n, 2)`` of ``classes_[0]`` and ``classes_[1]``."""
        p = sigmoid(self._raw_predict(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The label with the larger probability."""
        positive = self._raw_predict(X) > 0
        return self.classes_[positive.astype(np.intp)]
