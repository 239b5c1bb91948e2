"""Scoring pages with the champion models: batch (a pages table) and online (one session).

Pure: frames and arrays in, frames and arrays out; the pipeline reads and publishes, the app
receives and answers. Both paths compute features with the same code, the compiled history
kernel of :mod:`microsub.analysis.features`: the batch path through
:func:`~microsub.analysis.features.add_features` on a whole pages table, the online path through
:func:`~microsub.analysis.features.session_rows` on the pages of one session so far
(:func:`page_table`, a small float64 array), whose last row is the page to score. A page's
features depend only on its session's pages up to it, so both paths give the same numbers
(``tests/test_scoring.py`` checks every page of a held-out sample). The online path builds no
DataFrame and makes one compiled call for the features: one page costs tens of microseconds
where the pandas pass cost milliseconds.

Scores:

* ``p_leave``: P(the shopper leaves after this page), the churn champion's ``predict_proba``
  (feature set ``churn``, end of the page);
* ``expected_value``: expected Yuan spent on this page, the value champion's ``predict``
  (feature set ``value``, start of the page), floored at 0: spend is never negative, so neither
  is its expectation, but a linear champion extrapolates below zero on pages unlike its
  training pages (``max(0, f(x))`` is also never further from the true expectation than
  ``f(x)``).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from microsub.analysis import features
from microsub.errors import ContractError, ServingError
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
PAGE_FIELDS = features.SESSION_FIELDS


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
    positive: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fast_churn", compile_model(self.churn))
        object.__setattr__(self, "fast_value", compile_model(self.value))
        object.__setattr__(self, "positive", list(self.churn.classes_).index(1))

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
        return self.predict_matrices(
            features.feature_matrix(frame, TASKS["churn"][0]).to_numpy(),
            features.feature_matrix(frame, TASKS["value"][0]).to_numpy(),
        )

    def predict_matrices(
        self, x_churn: np.ndarray, x_value: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(p_leave, expected_value)``, each ``(n,)``, from the design matrices ``(n, d)`` of
        the ``churn`` and ``value`` feature sets (float64, the sets' column order)."""
        small = x_churn.shape[0] <= FAST_ROWS
        churn, value = (self.fast_churn, self.fast_value) if small else (self.churn, self.value)
        p_leave = churn.predict_proba(x_churn)[:, self.positive]
        spend = np.maximum(np.asarray(value.predict(x_value), dtype=np.float64), 0.0)
        return np.asarray(p_leave, dtype=np.float64), spend


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


_FIELD_VALUES = operator.itemgetter(*PAGE_FIELDS)
_FIELD_ATTRIBUTES = operator.attrgetter(*PAGE_FIELDS)
#: The columns of both models' design rows, churn's first (what :func:`score_tables` asks of
#: :func:`~microsub.analysis.features.session_rows`).
_COLUMNS = (features.FEATURE_SETS[TASKS["churn"][0]].columns
            + features.FEATURE_SETS[TASKS["value"][0]].columns)  # fmt: skip
_N_CHURN = len(features.FEATURE_SETS[TASKS["churn"][0]].columns)


def page_table(pages: Sequence[Any]) -> np.ndarray:
    """One session's pages so far as a ``(n_pages, len(PAGE_FIELDS))`` float64 array, columns
    in :data:`PAGE_FIELDS` order, first page first (what the online path scores).

    Args:
        pages: mappings with the keys of :data:`PAGE_FIELDS`, or objects with them as
            attributes (the app's validated pages): counts, Yuan, rates, log prices as in the
            pages contract.

    Raises:
        KeyError / AttributeError: a page lacks a field.
    """
    values = _FIELD_VALUES if pages and isinstance(pages[0], Mapping) else _FIELD_ATTRIBUTES
    return np.array([values(page) for page in pages], dtype=np.float64).reshape(
        len(pages), len(PAGE_FIELDS)
    )


def score_tables(tables: Sequence[np.ndarray], scorer: Scorer) -> tuple[np.ndarray, np.ndarray]:
    """``(p_leave, expected_value)``, each ``(k,)``, of the last page of each of ``k`` sessions,
    each given as its :func:`page_table`: one feature pass, one prediction per model.

    Raises:
        ContractError: no session, a session without pages, or an hour that is not 0..23.
    """
    if not tables:
        raise ContractError("score_tables needs at least one session's page table")
    table = tables[0] if len(tables) == 1 else np.concatenate(tables)
    lengths = np.fromiter((len(t) for t in tables), dtype=np.intp, count=len(tables))
    rows = features.session_rows(table, lengths, _COLUMNS)
    return scorer.predict_matrices(rows[:, :_N_CHURN], rows[:, _N_CHURN:])


def online_features(pages: Sequence[Any]) -> pd.DataFrame:
    """The feature row of the last of a session's ``pages`` as the online path computes it: a
    one-row frame of :data:`~microsub.analysis.features.SESSION_COLUMNS` (float64)."""
    rows = features.session_rows(page_table(pages), [len(pages)], features.SESSION_COLUMNS)
    return pd.DataFrame(rows, columns=list(features.SESSION_COLUMNS))


def score_session(pages: Sequence[Any], scorer: Scorer) -> tuple[float, float]:
    """``(p_leave, expected_value)`` of the last of a session's ``pages`` (online path)."""
    return score_sessions([pages], scorer)[0]


def score_sessions(sessions: Sequence[Sequence[Any]], scorer: Scorer) -> list[tuple[float, float]]:
    """:func:`score_session` of several sessions at once (one feature pass, one prediction):
    what the service does with the requests that arrive while it is busy. A session's features
    depend only on its own pages and the compiled models score each row on its own, so each
    answer equals its :func:`score_session`."""
    p_leave, value = score_tables([page_table(pages) for pages in sessions], scorer)
    return list(zip(p_leave.tolist(), value.tolist(), strict=True))


__all__ = [
    "FAST_ROWS",
    "PAGE_FIELDS",
    "SCORES_DATASET",
    "SCORES_SCHEMA",
    "Scorer",
    "online_features",
    "page_table",
    "score_pages",
    "score_session",
    "score_sessions",
    "score_tables",
]
