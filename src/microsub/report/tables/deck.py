"""Tables only the deck shows: few rows, few columns, words a room can read from the back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from microsub import fmt
from microsub.analysis.verdicts import HypothesisResult
from microsub.report.tables.business import gate_display

#: The five golden features, what each measures, and the hypothesis that tests it.
GOLDEN_FEATURES = (
    ("Purchase power", "the shopper's logged spending level", "purchase_power_churn"),
    ("Hour", "when the page was asked for (night vs evening)", "hour"),
    ("Engagement", "clicks + carts on the page", "engagement"),
    ("Page depth", "pages into the session", "fatigue"),
    ("Page value", "Yuan spent on the page", "purchase_reset"),
)


#: Words for a model's kind and implementation (a slide shows no class names).
_KINDS = {"linear": "linear model", "trees": "boosted trees", "hurdle": "hurdle model",
          "constant": "baseline"}  # fmt: skip
_IMPLEMENTATIONS = {"scratch": "from scratch", "scikit-learn": "scikit-learn",
                    "baseline": "baseline"}  # fmt: skip


def model_phrase(row: Mapping[str, Any]) -> str:
    """A model in words from its benchmark row (``kind``, ``implementation``):
    "boosted trees (scikit-learn)"."""
    if row["implementation"] == "baseline":
        return f"{str(row['model']).lower()} (baseline)"
    kind = _KINDS.get(row["kind"], str(row["kind"]))
    return f"{kind} ({_IMPLEMENTATIONS.get(row['implementation'], row['implementation'])})"


def feature_strategy(hypotheses: Sequence[HypothesisResult]) -> pd.DataFrame:
    """The five golden features with what each measures and the verdict on its hypothesis:
    ``Feature``, ``Measures``, ``Effect on leaving`` (the estimate and its 95 % interval),
    ``Verdict``."""
    by_key = {h.key: h for h in hypotheses}
    rows = []
    for name, measures, key in GOLDEN_FEATURES:
        h = by_key.get(key)
        effect = h.interval_text() if h is not None else "not tested"
        rows.append((name, measures, effect, h.verdict if h is not None else "not tested"))
    return pd.DataFrame(rows, columns=["Feature", "Measures", "Odds ratio of leaving", "Verdict"])


def data_overview(ingest: Mapping[str, Any], n_pages: int) -> pd.DataFrame:
    """What the ingestion read and kept: ``Quantity``, ``Count``."""
    rows = [
        ("Lines read", ingest["lines_read"]),
        ("Lines quarantined (malformed)", ingest["lines_quarantined"]),
        ("Pages kept", n_pages),
        ("Sessions", ingest["sessions"]),
        ("Sessions cut by the page cap (censored)", ingest["sessions_truncated"]),
    ]
    return pd.DataFrame([(q, fmt.format_count(n)) for q, n in rows], columns=["Quantity", "Count"])


def gate_summary(gates: pd.DataFrame) -> pd.DataFrame:
    """Every success gate in one line each: ``Gate``, ``Target``, ``Measured``, ``Verdict``
    (upper case, so a failure is seen from the back of the room): the book's gate table
    (:func:`~microsub.report.tables.business.gate_display`) without who measured it."""
    return gate_display(gates).drop(columns="Measured by")
