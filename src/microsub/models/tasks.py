"""The two tasks' data: a split by session into fit, validation and test parts, and the design
matrices of churn and value on each part (churn keeps the pages with a known outcome)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from microsub.analysis import features
from microsub.analysis.features import known_outcome
from microsub.models import (
    evaluation,
)
from microsub.models.specs import TASKS, BenchmarkConfig


@dataclass(frozen=True)
class TaskData:
    """Design matrices of one task on the three parts of the split.

    Attributes:
        X: part (``"fit"``, ``"validation"``, ``"test"``) -> ``(n_part, d)`` float64 features.
        y: part -> ``(n_part,)`` target.
        sessions: part -> ``(n_part,)`` session id of each row.
        columns: feature names, in the order of the columns of ``X``.
    """

    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    sessions: dict[str, np.ndarray]
    columns: list[str]


def split_sessions(
    sessions: np.ndarray, config: BenchmarkConfig, random_state: int
) -> dict[str, np.ndarray]:
    """Row indices of the fit, validation and test parts, grouped by session.

    Args:
        sessions: ``(n,)`` session id of every page.

    Returns:
        part -> sorted int64 row indices; the three parts cover every row once, and no session
        has rows in two parts.
    """
    outer = evaluation.grouped_split(
        sessions, test_size=config.test_size, random_state=random_state
    )
    inner = evaluation.grouped_split(
        sessions[outer.train], test_size=config.validation_size, random_state=random_state + 1
    )
    return {
        "fit": outer.train[inner.train],
        "validation": outer.train[inner.test],
        "test": outer.test,
    }


def task_data(frame: pd.DataFrame, rows: dict[str, np.ndarray], task: str) -> TaskData:
    """The design matrices of ``task`` on the parts ``rows`` of ``frame``
    (:func:`features.add_features` output); churn keeps the pages with a known outcome."""
    set_name, target = TASKS[task]
    X_all = features.feature_matrix(frame, set_name).to_numpy()
    y_all = frame[target].to_numpy().astype(np.float64)
    keep = known_outcome(frame) if task == "churn" else np.ones(len(frame), dtype=bool)
    sessions = frame["session_id"].to_numpy()
    X, y, s = {}, {}, {}
    for part, idx in rows.items():
        idx = idx[keep[idx]]
        X[part], s[part] = np.ascontiguousarray(X_all[idx]), sessions[idx]
        y[part] = y_all[idx].astype(np.int64) if task == "churn" else y_all[idx]
    return TaskData(X=X, y=y, sessions=s, columns=list(features.FEATURE_SETS[set_name].columns))
