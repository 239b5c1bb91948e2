"""Metrics and splits for churn (classification) and value (regression), pure functions.

Scores are computed with :mod:`sklearn.metrics` where it has them; what it lacks (precision at the
top k %, a binned calibration table, bootstrap intervals over sessions) is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.model_selection import GroupShuffleSplit


@dataclass(frozen=True)
class Split:
    """Row indices of a train/test split grouped by session.

    Attributes:
        train: int64 row indices of the training pages.
        test: int64 row indices of the test pages.
    """

    train: np.ndarray
    test: np.ndarray


def grouped_split(groups: np.ndarray, *, test_size: float = 0.25, random_state: int = 0) -> Split:
    """Split rows so that no group (session) has pages on both sides.

    Args:
        groups: shape (n,), the session id of each row.
        test_size: share of *sessions* held out, in (0, 1).
        random_state: seed.

    Returns:
        A :class:`Split`; ``set(groups[train]) & set(groups[test])`` is empty.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    groups = np.asarray(groups)
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
    train, test = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return Split(train=np.sort(train), test=np.sort(test))


def precision_at_top(y_true: np.ndarray, score: np.ndarray, share: float = 0.2) -> float:
    """Precision among the ``share`` of rows with the highest scores.

    precision@k = (1/k) · Σ_{i in top k} y_i with k = ceil(share · n). Ties at the cut are broken
    by a stable sort of ``-score`` (row order), so the result is deterministic.

    Args:
        y_true: shape (n,), labels in {0, 1}.
        score: shape (n,), higher = more likely positive.
        share: fraction of rows targeted, in (0, 1].
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    y_true = np.asarray(y_true)
    k = max(1, int(np.ceil(share * len(y_true))))
    top = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k]
    return float(y_true[top].mean())


def calibration_table(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Observed vs predicted frequency in quantile bins of the predicted probability.

    Returns:
        One row per non-empty bin: ``mean_predicted``, ``observed``, ``count``.
    """
    prob = np.asarray(prob, dtype=float)
    y_true = np.asarray(y_true, dtype=float)
    edges = np.unique(np.quantile(prob, np.linspace(0, 1, n_bins + 1)))
    bins = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, max(len(edges) - 2, 0))
    frame = pd.DataFrame({"bin": bins, "p": prob, "y": y_true})
    out = frame.groupby("bin").agg(
        mean_predicted=("p", "mean"), observed=("y", "mean"), count=("y", "size")
    )
    return out.reset_index(drop=True)


def classification_metrics(
    y_true: np.ndarray, prob: np.ndarray, *, threshold: float = 0.5, top_share: float = 0.2
) -> dict[str, float]:
    """Churn metrics of predicted probabilities.

    Args:
        y_true: shape (n,), 1 = the user left after this page.
        prob: shape (n,), predicted P(leave).
        threshold: probability above which a page is flagged (for F1 and the confusion matrix).
        top_share: share targeted for ``precision_at_20``-style precision.

    Returns:
        ``roc_auc``, ``pr_auc`` (average precision), ``f1``, ``precision_at_20`` (at
        ``top_share``), ``brier``, ``log_loss``, ``base_rate``, ``threshold``, and the confusion
        counts ``tn``, ``fp``, ``fn``, ``tp``.
    """
    y_true = np.asarray(y_true).astype(int)
    prob = np.clip(np.asarray(prob, dtype=float), 1e-15, 1 - 1e-15)
    pred = (prob >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, pred, labels=[0, 1]).ravel()
    return {
        "roc_auc": float(skm.roc_auc_score(y_true, prob)),
        "pr_auc": float(skm.average_precision_score(y_true, prob)),
        "f1": float(skm.f1_score(y_true, pred, zero_division=0)),
        "precision_at_20": precision_at_top(y_true, prob, top_share),
        "brier": float(skm.brier_score_loss(y_true, prob)),
        "log_loss": float(skm.log_loss(y_true, prob, labels=[0, 1])),
        "base_rate": float(y_true.mean()),
        "threshold": float(threshold),
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
    }


def best_f1_threshold(y_true: np.ndarray, prob: np.ndarray) -> float:
    """The probability threshold that maximises F1 on (training or validation) data.

    F1 = 2·P·R / (P + R) evaluated at every distinct score via the precision-recall curve.
    """
    precision, recall, thresholds = skm.precision_recall_curve(y_true, prob)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Value metrics: ``rmse``, ``mae`` (Yuan per page) and ``r2``."""
    y_true = np.asarray(y_true, dtype=float)
    pred = np.asarray(pred, dtype=float)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, pred))),
        "mae": float(skm.mean_absolute_error(y_true, pred)),
        "r2": float(skm.r2_score(y_true, pred)),
    }


# --------------------------------------------------------------------------------------------
# Choosing a model: paired session bootstrap of a validation score difference, and ties
# --------------------------------------------------------------------------------------------
#: Validation scores the selection rule knows, and whether higher is better.
SELECTION_METRICS = {"roc_auc": True, "rmse": False}


def _weighted_auc(y: np.ndarray, codes: np.ndarray, n_codes: int, w: np.ndarray) -> float:
    """ROC AUC of a score given as dense ranks ``codes`` (ties share a code), rows weighted by
    ``w``: ``sum_pos w · (W_neg below + W_neg tied / 2) / (W_pos · W_neg)``."""
    pos = np.bincount(codes, weights=w * y, minlength=n_codes)
    neg = np.bincount(codes, weights=w * (1.0 - y), minlength=n_codes)
    below = np.cumsum(neg) - neg
    total = pos.sum() * neg.sum()
    return float((pos * (below + 0.5 * neg)).sum() / total) if total > 0 else float("nan")


def _weighted_rmse(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    return float(np.sqrt(np.sum(w * (y - pred) ** 2) / np.sum(w)))


def paired_difference(
    metric: str,
    y_true: np.ndarray,
    score: np.ndarray,
    reference: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    random_state: int = 0,
) -> tuple[float, float, float]:
    """``metric(y, score) - metric(y, reference)`` and its paired session-bootstrap interval.

    Each replicate draws the sessions (``groups``) with replacement and weighs every row by
    the number of times its session was drawn, the same resample for both predictions (a
    paired comparison: what the two models share, the pages, cancels). The interval is the
    percentile interval of the replicated differences.

    Args:
        metric: ``"roc_auc"`` (``y_true`` in {0, 1}, scores) or ``"rmse"`` (Yuan, predictions).
        y_true, score, reference: shape (n,).
        groups: shape (n,), the session of each row.
        n_boot: replicates; level: coverage of the interval; random_state: seed.

    Returns:
        ``(difference, low, high)`` in the metric's units (AUC, or Yuan for RMSE).
    """
    if metric not in SELECTION_METRICS:
        raise ValueError(f"metric must be one of {sorted(SELECTION_METRICS)}, got {metric!r}")
    y = np.asarray(y_true, dtype=float)
    a, b = np.asarray(score, dtype=float), np.asarray(reference, dtype=float)
    if metric == "roc_auc":
        ranks = [np.unique(s, return_inverse=True) for s in (a, b)]
        prepared = [(inv, len(u)) for u, inv in ranks]

        def stat(w: np.ndarray) -> float:
            return (_weighted_auc(y, prepared[0][0], prepared[0][1], w)
                    - _weighted_auc(y, prepared[1][0], prepared[1][1], w))  # fmt: skip
    else:

        def stat(w: np.ndarray) -> float:
            return _weighted_rmse(y, a, w) - _weighted_rmse(y, b, w)

    codes, uniq = pd.factorize(np.asarray(groups))
    rng = np.random.default_rng(random_state)
    reps = np.array([
        stat(np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))[codes]
             .astype(float))
        for _ in range(n_boot)
    ])  # fmt: skip
    reps = reps[np.isfinite(reps)]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [tail, 1.0 - tail]) if len(reps) else (np.nan, np.nan)
    return stat(np.ones(len(y))), float(low), float(high)


def select_model(candidates: pd.DataFrame, *, higher: bool, tolerance: float) -> pd.DataFrame:
    """The selection rule: the best validation score, unless others tie with it.

    ``candidates`` has one row per model, in listing order, with ``key``, ``validation`` (the
    validation score), ``difference``, ``ci_low``, ``ci_high`` (the score minus the top
    model's, and its paired bootstrap interval; 0 for the top model itself), ``complexity``
    (0 constant, 1 one linear model, 2 two linear models, 3 one tree ensemble, 4 two) and
    ``fit_s`` (seconds).

    1. The *top* model has the best validation score (highest when ``higher``).
    2. A model *ties* with it when the interval of its difference contains 0 or the difference
       is at most ``tolerance`` in absolute value (a difference the reader would not act on).
    3. Among the tied models the *chosen* one is the simplest (lowest ``complexity``), then the
       fastest to fit, then the first listed. A model that beats all the others clearly is
       simply the top model.

    Returns:
        ``candidates`` with ``top``, ``tied`` and ``chosen`` (bool) columns added.
    """
    out = candidates.reset_index(drop=True).copy()
    scores = out["validation"].to_numpy(dtype=float)
    top = int(np.nanargmax(scores) if higher else np.nanargmin(scores))
    diff = out["difference"].to_numpy(dtype=float)
    contains_zero = (out["ci_low"].to_numpy() <= 0) & (out["ci_high"].to_numpy() >= 0)
    tied = contains_zero | (np.abs(diff) <= tolerance)
    tied[top] = True
    out["top"] = np.arange(len(out)) == top
    out["tied"] = tied
    order = out[tied].assign(_pos=np.flatnonzero(tied))
    order = order.sort_values(["complexity", "fit_s", "_pos"], kind="stable")
    out["chosen"] = np.arange(len(out)) == int(order["_pos"].iloc[0])
    return out


def squared_error_concentration(y_true: np.ndarray, pred: np.ndarray, k: int) -> dict[str, float]:
    """How much of the squared error the ``k`` worst-predicted pages carry.

    With ``e_i = y_i - pred_i``, ``SSE = sum_i e_i^2`` splits into the ``k`` largest ``e_i^2``
    (``SSE_k``) and the rest: ``share = SSE_k / SSE``; ``rmse = sqrt(SSE / n)`` and
    ``rmse_without = sqrt((SSE - SSE_k) / (n - k))``, the RMSE of the other ``n - k`` pages.

    Args:
        y_true, pred: shape (n,), Yuan per page; k: pages, ``0 <= k < n``.

    Returns:
        ``pages`` (n), ``largest`` (``max y``), ``rmse``, ``share``, ``rmse_without`` (Yuan).
    """
    y, p = np.asarray(y_true, dtype=float), np.asarray(pred, dtype=float)
    if not 0 <= k < len(y):
        raise ValueError(f"k must be in [0, {len(y)}), got {k}")
    sq = np.sort((y - p) ** 2)[::-1]
    total, top = float(sq.sum()), float(sq[:k].sum())
    return {
        "pages": len(y),
        "largest": float(y.max()),
        "rmse": float(np.sqrt(total / len(y))),
        "share": top / total if total > 0 else 0.0,
        "rmse_without": float(np.sqrt((total - top) / (len(y) - k))),
    }


def capture_curve(y_true: np.ndarray, score: np.ndarray, points: int = 101) -> pd.DataFrame:
    """Share of the total of ``y_true`` held by the pages with the highest ``score``.

    The pages are sorted by ``score``, highest first (ties in row order); at each share ``s`` of
    pages (``points`` evenly spaced values in [0, 1]) the curve gives
    ``sum_{top ceil(s n)} y / sum y``. A random order gives the diagonal, the order of
    ``y_true`` itself the highest curve there is.

    Returns:
        ``share_pages``, ``share_total`` (both in [0, 1]).
    """
    y = np.asarray(y_true, dtype=float)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(y[order])])
    share = np.linspace(0.0, 1.0, points)
    k = np.ceil(share * len(y)).astype(int)
    total = cum[-1] if cum[-1] != 0 else 1.0
    return pd.DataFrame({"share_pages": share, "share_total": cum[k] / total})
