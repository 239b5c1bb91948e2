"""Scoring pages with the champion models: batch (a pages table) and online (one session).

Pure: frames in, frames out; the pipeline reads and publishes, the app receives and answers.
Both paths compute features with the same code, :func:`microsub.analysis.features.add_features`
and :func:`~microsub.analysis.features.feature_matrix`: the batch path on a whole pages table,
the online path on the pages of one session so far (:func:`session_frame`), whose last row is
the page to score. A page's features depend only on its session's pages up to it, so both
paths give the same numbers (``tests/test_scoring.py`` checks every page of a held-out sample).

Scores:

* ``p_leave``: P(the shopper leaves after this page), the churn champion's ``predict_proba``
  (feature set ``churn``, end of the page);
* ``expected_value``: expected Yuan spent on this page, the value champion's ``predict``
  (feature set ``value``, start of the page).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from microsub.analysis import features
from microsub.errors import ServingError
from microsub.models.specs import TASKS
from microsub.serve.compiled import compile_model
from microsub.serve.registry import LoadedModel

#: The ``scores`` dataset: one row per scored page.
SCORES_SCHEMA = pa.schema(
    [
        pa.field("session_id", pa.int64(), nullable=False),
        pa.field("line_no", pa.int64(), nullable=False),
        pa.field("action_page_id", pa.int8(), nullable=False),
        pa.field("p_leave", pa.float64(), nullable=False),
        pa.field("expected_value", pa.float64(), nullable=False),
        pa.field("churn_model_version", pa.int32(), nullable=False),
        pa.field("value_model_version", pa.int32(), nullable=False),
    ]
)
#: Name of the scores dataset in manifests.
SCORES_DATASET = "scores"
#: Fields of one page that a client sends to the online path (the rest is derived).
PAGE_FIELDS = (
    "action_page_id",
    "hour",
    "state_purchase_power",
    "n_clicks",
    "n_carts",
    "n_favs",
    "n_purchases",
    "page_value",
    "mean_ctr",
    "mean_cvr",
    "mean_log_price",
)


#: Up to this many rows, the compiled form of the models predicts (one page online: about ten
#: times faster); above it, the estimators' own ``predict`` (faster on batches). Both give the
#: same numbers (:mod:`microsub.serve.compiled`).
FAST_ROWS = 256


@dataclass(frozen=True)
class Scorer:
    """The two champion estimators, their versions and feature sets.

    Attributes:
        churn, value: fitted estimators (``predict_proba`` / ``predict`` on float64 arrays).
        churn_version, value_version: registered versions (MLflow's version numbers).
        fast_churn, fast_value: their compiled forms (:func:`~microsub.serve.compiled.
            compile_model`), used for at most :data:`FAST_ROWS` rows.
    """

    churn: Any
    value: Any
    churn_version: int
    value_version: int
    fast_churn: Any = field(init=False, repr=False)
    fast_value: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fast_churn", compile_model(self.churn))
        object.__setattr__(self, "fast_value", compile_model(self.value))

    @classmethod
    def from_models(cls, models: Mapping[str, LoadedModel]) -> Scorer:
        """A scorer from :func:`microsub.serve.registry.champions`.

        Raises:
            ServingError: a model was trained on other feature columns than the code computes
                (retrain it).
        """
        for task, model in models.items():
            expected = features.FEATURE_SETS[TASKS[task][0]].columns
            if tuple(model.info.features) != tuple(expected):
                raise ServingError(
                    f"{model.info.uri} was trained on features {list(model.info.features)}, but "
                    f"this code computes {list(expected)} for {task}; retrain with `microsub run`"
                )
        return cls(
            churn=models["churn"].estimator,
            value=models["value"].estimator,
            churn_version=int(models["churn"].info.version),
            value_version=int(models["value"].info.version),
        )

    @property
    def versions(self) -> dict[str, int]:
        """``{"churn": version, "value": version}``."""
        return {"churn": self.churn_version, "value": self.value_version}

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(p_leave, expected_value)``, each ``(n,)``, for the rows of ``frame``, a table with
        the feature columns of :func:`~microsub.analysis.features.add_features`."""
        x_churn = features.feature_matrix(frame, TASKS["churn"][0]).to_numpy()
        x_value = features.feature_matrix(frame, TASKS["value"][0]).to_numpy()
        small = len(frame) <= FAST_ROWS
        churn, value = (self.fast_churn, self.fast_value) if small else (self.churn, self.value)
        p_leave = churn.predict_proba(x_churn)[:, list(churn.classes_).index(1)]
        return np.asarray(p_leave, dtype=np.float64), np.asarray(
            value.predict(x_value), dtype=np.float64
        )


def score_pages(pages: pd.DataFrame, scorer: Scorer) -> pd.DataFrame:
    """Batch scores of a pages table (contract columns; any row order).

    Returns:
        One row per page, sorted by (``session_id``, ``line_no``), with the columns of
        :data:`SCORES_SCHEMA`: the page key, ``p_leave`` (probability), ``expected_value``
        (Yuan) and the two model versions.
    """
    frame = features.add_features(pages)
    p_leave, value = scorer.predict(frame)
    return pd.DataFrame(
        {
            "session_id": frame["session_id"].to_numpy(np.int64),
            "line_no": frame["line_no"].to_numpy(np.int64),
            "action_page_id": frame["action_page_id"].to_numpy(np.int8),
            "p_leave": p_leave,
            "expected_value": value,
            "churn_model_version": np.full(len(frame), scorer.churn_version, np.int32),
            "value_model_version": np.full(len(frame), scorer.value_version, np.int32),
        }
    )


def sessions_frame(sessions: Sequence[Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """A pages table of several sessions, each given by its pages so far, in order (online).

    Args:
        sessions: per session, one mapping per page with the keys of :data:`PAGE_FIELDS`
            (counts, Yuan, rates, log prices as in the pages contract).

    Returns:
        The pages with ``session_id`` = the session's index in ``sessions``, ``line_no``
        0..n-1 and ``engagement`` = clicks + carts (the contract's definition), ready for
        :func:`~microsub.analysis.features.add_features`.
    """
    lengths = np.array([len(pages) for pages in sessions], dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    columns: dict[str, Any] = {
        "session_id": np.repeat(np.arange(len(sessions), dtype=np.int64), lengths),
        "line_no": np.arange(int(lengths.sum()), dtype=np.int64) - starts,
    }
    for key in PAGE_FIELDS:
        columns[key] = [page[key] for pages in sessions for page in pages]
    frame = pd.DataFrame(columns)
    frame["engagement"] = frame["n_clicks"] + frame["n_carts"]
    return frame


def session_frame(pages: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """:func:`sessions_frame` of one session (``session_id`` 0)."""
    return sessions_frame([pages])


def online_features(pages: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The feature row of the last of a session's ``pages`` (a one-row frame of
    :func:`~microsub.analysis.features.add_features` columns)."""
    return features.add_features(session_frame(pages)).iloc[[-1]]


def score_session(pages: Sequence[Mapping[str, Any]], scorer: Scorer) -> tuple[float, float]:
    """``(p_leave, expected_value)`` of the last of a session's ``pages`` (online path)."""
    p_leave, value = scorer.predict(online_features(pages))
    return float(p_leave[0]), float(value[0])


def score_sessions(
    sessions: Sequence[Sequence[Mapping[str, Any]]], scorer: Scorer
) -> list[tuple[float, float]]:
    """:func:`score_session` of several sessions at once (one feature pass, one prediction):
    what the service does with the requests that arrive while it is busy. A session's features
    depend only on its own pages, so each answer equals its :func:`score_session`."""
    frame = features.add_features(sessions_frame(sessions))  # sorted by session, then page
    last = np.cumsum([len(pages) for pages in sessions]) - 1
    p_leave, value = scorer.predict(frame.iloc[last])
    return [(float(p), float(v)) for p, v in zip(p_leave, value, strict=True)]


__all__ = [
    "FAST_ROWS",
    "PAGE_FIELDS",
    "SCORES_DATASET",
    "SCORES_SCHEMA",
    "Scorer",
    "online_features",
    "score_pages",
    "score_session",
    "score_sessions",
    "session_frame",
    "sessions_frame",
]
