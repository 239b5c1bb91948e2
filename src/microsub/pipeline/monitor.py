"""Drift monitoring: features and scores of a current dataset against a reference one.

Both datasets (named as in :func:`microsub.pipeline.score.read_dataset`) get the features of
:func:`microsub.analysis.features.add_features` and the champions' scores; every feature of the
``churn`` and ``value`` sets and both scores are compared (:func:`microsub.serve.drift.drift`),
and the report is stored as ``reports/drift.json``.

``reports/drift.json`` (:meth:`microsub.serve.drift.DriftReport.to_dict`, plus ``reference``,
``current`` and ``models``)::

    {"status": "ok" | "watch" | "act", "retrain": bool,
     "act": [columns with PSI >= 0.2], "watch": [columns with 0.1 <= PSI < 0.2],
     "thresholds": {"watch": 0.1, "act": 0.2}, "n_reference": int, "n_current": int,
     "bins": 10,
     "columns": [{"column", "psi", "status", "ks_statistic", "ks_pvalue", "reference_mean",
                  "current_mean"}, ...],
     "reference": {source of the reference}, "current": {source of the current},
     "models": {"churn": version, "value": version}}
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from microsub import contract
from microsub.analysis import features
from microsub.config import Settings
from microsub.lake import Lake
from microsub.pipeline.score import read_dataset
from microsub.serve import drift, registry, scoring

#: Key of the report in the ``reports`` bucket.
REPORT_KEY = "drift.json"
#: The scores compared beside the features.
SCORE_COLUMNS = ("p_leave", "expected_value")


def monitored_columns() -> list[str]:
    """Every feature of the ``churn`` and ``value`` sets (once each), then the two scores."""
    cols: list[str] = []
    for name in ("churn", "value"):
        cols += [c for c in features.FEATURE_SETS[name].columns if c not in cols]
    return [*cols, *SCORE_COLUMNS]


def scored_features(pages: pd.DataFrame, scorer: scoring.Scorer) -> pd.DataFrame:
    """The pages with their features and the two scores (``p_leave``, ``expected_value``)."""
    frame = features.add_features(pages)
    frame["p_leave"], frame["expected_value"] = scorer.predict(frame)
    return frame


def monitor(
    settings: Settings, lake: Lake, reference: str, current: str, *, key: str = REPORT_KEY
) -> dict[str, Any]:
    """Compare ``current`` with ``reference`` and store the report at ``reports/<key>``.

    Returns:
        The report (module docstring); ``report["retrain"]`` says whether retraining is due.

    Raises:
        ServingError: no champion registered (the scores need them).
    """
    scorer = scoring.Scorer.from_models(registry.champions(settings))
    ref_pages, ref_source = read_dataset(lake, reference)
    cur_pages, cur_source = read_dataset(lake, current)
    result = drift.drift(
        scored_features(ref_pages, scorer), scored_features(cur_pages, scorer),
        monitored_columns(),
    )  # fmt: skip
    report = {
        **result.to_dict(),
        "reference": ref_source,
        "current": cur_source,
        "models": scorer.versions,
    }
    lake.put_json(contract.BUCKET_REPORTS, key, report)
    return lake.get_json(contract.BUCKET_REPORTS, key)
