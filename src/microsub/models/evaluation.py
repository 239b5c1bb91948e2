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
    out = frame.groupby("bin").agg(mean_predicted=("p", "mean"), observed=("y", "mean"),
                                   count=("y", "size"))
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
