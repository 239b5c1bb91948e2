"""Success gates: targets as stated in the business case, pass/fail logic."""

from __future__ import annotations

import math

import pytest

from microsub.business import gates


def test_gates_hold_the_business_targets():
    targets = {g.key: (g.direction, g.target) for g in gates.GATES}
    assert targets == {
        "roc_auc": (">=", 0.80),
        "precision_at_20": (">=", 0.60),
        "scoring_p99_ms": ("<", 100.0),
        "demographic_parity_ratio": (">=", 0.80),
        "churn_reduction": (">=", 0.20),
    }


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("roc_auc", 0.80, True),
        ("roc_auc", 0.7999, False),
        ("scoring_p99_ms", 99.9, True),
        ("scoring_p99_ms", 100.0, False),
        ("precision_at_20", math.nan, False),
    ],
)
def test_gate_passes(key, value, ok):
    assert gates.gate(key).passes(value) is ok


def test_evaluate_gates_only_measured_ones_by_default():
    table = gates.evaluate_gates({"roc_auc": 0.83, "precision_at_20": 0.41})
    assert list(table["key"]) == ["roc_auc", "precision_at_20"]
    assert list(table["verdict"]) == ["pass", "fail"]
    assert table.loc[0, "target"] == ">= 0.8"


def test_unknown_gate_names_the_known_ones():
    with pytest.raises(KeyError, match="roc_auc"):
        gates.gate("nope")
