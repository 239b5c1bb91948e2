"""Success gates: pass/fail, and "not measured" where nothing measured a metric."""

from __future__ import annotations

import math

import pytest

from microsub.business import gates
from microsub.business.config import load_config


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("roc_auc", 0.80, True),
        ("roc_auc", 0.7999, False),
        ("scoring_p99_ms", 99.9, True),
        ("scoring_p99_ms", 100.0, False),
        ("precision_at_20", math.nan, False),
        ("churn_reduction", None, False),
    ],
)
def test_gate_passes(key, value, ok):
    assert load_config().gate(key).passes(value) is ok


def test_every_gate_is_reported_and_unmeasured_ones_fail():
    table = gates.evaluate_gates({"roc_auc": 0.83, "precision_at_20": 0.41}).set_index("key")
    assert set(table.index) == {g.key for g in load_config().gates}
    assert table.loc["roc_auc", "verdict"] == "pass"
    assert table.loc["precision_at_20", "verdict"] == "fail"
    assert table.loc["scoring_p99_ms", "verdict"] == "not measured"
    assert not table.loc["scoring_p99_ms", "passed"]
    assert math.isnan(table.loc["churn_reduction", "value"])
    assert table.loc["roc_auc", "target"] == ">= 0.8"
    assert table.loc["scoring_p99_ms", "target"] == "< 100 ms"


def test_only_the_chosen_keys():
    table = gates.evaluate_gates({"roc_auc": 0.9}, keys=("roc_auc",))
    assert list(table["key"]) == ["roc_auc"]


def test_unknown_gate_names_the_known_ones():
    with pytest.raises(KeyError, match="roc_auc"):
        load_config().gate("nope")


def test_records_for_the_findings_document():
    records = gates.gates_as_records()
    assert [r["key"] for r in records] == [g.key for g in load_config().gates]
    assert records[0]["rationale"]
