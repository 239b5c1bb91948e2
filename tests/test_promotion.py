"""Champion or challenger: the promotion rule on held-out metrics."""

from __future__ import annotations

import numpy as np
import pytest

from microsub.serve import promotion

CHAMP = {"roc_auc": 0.78, "precision_at_20": 0.55}


@pytest.mark.parametrize(
    ("challenger", "promote"),
    [
        ({"roc_auc": 0.79, "precision_at_20": 0.56}, True),
        ({"roc_auc": 0.79, "precision_at_20": 0.55}, True),  # not lower on precision is enough
        ({"roc_auc": 0.79, "precision_at_20": 0.54}, False),  # better AUC, worse precision
        ({"roc_auc": 0.78, "precision_at_20": 0.60}, False),  # a tie on AUC keeps the champion
        ({"roc_auc": 0.77, "precision_at_20": 0.60}, False),
    ],
)
def test_churn_needs_a_higher_auc_and_no_lower_precision(challenger, promote) -> None:
    decision = promotion.decide("churn", challenger, CHAMP)
    assert decision.promote is promote
    assert decision.reason.startswith("challenger beats" if promote else "champion kept")
    assert decision.to_dict()["champion"] == CHAMP


@pytest.mark.parametrize(("rmse", "promote"), [(9.9, True), (10.0, False), (10.5, False)])
def test_value_needs_a_lower_rmse(rmse, promote) -> None:
    assert promotion.decide("value", {"rmse": rmse}, {"rmse": 10.0}).promote is promote


def test_without_a_champion_the_challenger_is_promoted() -> None:
    decision = promotion.decide("value", {"rmse": 50.0}, None)
    assert decision.promote and decision.reason == "no champion yet"


def test_held_out_metrics_are_the_gate_metrics_and_rmse() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1, 0, 0, 1])
    p = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.4, 0.35, 0.05, 0.15, 0.7])
    churn = promotion.held_out_metrics("churn", y, p)
    assert set(churn) == {"roc_auc", "precision_at_20"}
    assert churn["precision_at_20"] == 1.0  # the top 2 of 10 are both leavers
    assert churn["roc_auc"] == pytest.approx(23 / 24)  # one leaver (0.35) below one stayer (0.4)
    value = promotion.held_out_metrics("value", np.array([0.0, 3.0]), np.array([1.0, 3.0]))
    assert value == {"rmse": pytest.approx(np.sqrt(0.5))}
