"""What a programme is worth at scale, and the next steps ranked (microsub.business.worth)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from microsub.business.config import load_config
from microsub.business.gates import evaluate_gates
from microsub.business.study import RANDOM_CONTROL
from microsub.business.worth import best_spending, headline, next_steps, worth_table

CONFIG = load_config().model_copy(
    update={"sessions_per_month": 1_000, "platform_monthly_users": 2_000_000,
            "platform_sessions_per_user": 1.5}
)  # fmt: skip


def _row(policy: str, sim: str, net: float, low: float, high: float, cost: float = 0.0,
         churn: float = 0.1) -> dict:  # fmt: skip
    return {"policy": policy, "simulator": sim, "net_usd": net, "net_usd_low": low,
            "net_usd_high": high, "cost_usd": cost, "churn_reduction": churn,
            "churn_reduction_low": churn - 0.01, "churn_reduction_high": churn + 0.01}  # fmt: skip


PROGRAMMES = pd.DataFrame([
    _row("no intervention", "learned", 0, 0, 0, churn=0.0),
    _row("no intervention", "truth", 0, 0, 0, churn=0.0),
    _row("tiers", "learned", -900, -1_000, -800, cost=1_000, churn=0.001),
    _row("tiers", "truth", -950, -1_100, -700, cost=1_000, churn=0.001),
    _row(RANDOM_CONTROL, "learned", -1_000, -1_000, -1_000, cost=1_000, churn=0.0),
    _row(RANDOM_CONTROL, "truth", -1_000, -1_000, -1_000, cost=1_000, churn=0.0),
    _row("rerank", "learned", 500, 400, 600, churn=0.3),
    _row("rerank", "truth", 400, 250, 550, churn=0.25),
    _row("big", "learned", 800, 700, 900, churn=0.05),
    _row("big", "truth", 700, 600, 800, churn=0.01),
])  # fmt: skip
PLATFORM = 3_000_000  # 2,000,000 users x 1.5 sessions


def test_worth_scales_the_net_value_per_session_linearly() -> None:
    t = worth_table(PROGRAMMES, "rerank", CONFIG).set_index("simulator")
    assert list(t.index) == ["learned", "truth"]
    assert t.loc["truth", "per_session"] == pytest.approx(400 / 1_000)
    assert t.loc["truth", "per_month"] == pytest.approx(400)
    assert t.loc["truth", "platform_month"] == pytest.approx(0.4 * PLATFORM)
    assert t.loc["truth", "platform_year_low"] == pytest.approx(12 * 0.25 * PLATFORM)
    assert t.loc["learned", "churn_reduction_high"] == pytest.approx(0.31)


def test_headline_is_the_truth_with_both_simulators_in_its_interval() -> None:
    w = headline(PROGRAMMES, "rerank", CONFIG)
    assert w.basis == "truth"
    assert w.month == pytest.approx(0.4 * PLATFORM)
    # the envelope: the truth's lower bound (250) and its upper bound (550 < 600: learned's)
    assert w.month_low == pytest.approx(0.25 * PLATFORM)
    assert w.month_high == pytest.approx(0.6 * PLATFORM)
    assert w.month_low <= w.month <= w.month_high
    assert w.gap == pytest.approx(400 / 500)
    assert w.year == pytest.approx(12 * w.month)


def test_headline_without_the_truth_is_the_learned_simulator_alone() -> None:
    learned = PROGRAMMES[PROGRAMMES["simulator"] == "learned"]
    w = headline(learned, "rerank", CONFIG)
    assert (w.basis, w.gap) == ("learned", None)
    assert (w.month_low, w.month, w.month_high) == pytest.approx(
        (0.4 * PLATFORM, 0.5 * PLATFORM, 0.6 * PLATFORM)
    )
    with pytest.raises(KeyError, match=r"no programme .*nothing"):
        headline(learned, "nothing", CONFIG)


def test_next_steps_rank_priced_steps_first_and_never_fund_a_control() -> None:
    gates = evaluate_gates(
        {"roc_auc": 0.85, "precision_at_20": 0.5, "churn_reduction": 0.25,
         "scoring_p99_ms": None, "demographic_parity_ratio": 1.0},
        CONFIG.gates,
    )  # fmt: skip
    steps = next_steps(
        PROGRAMMES, {"recommended": "rerank", "best": "big"}, gates, CONFIG, synthetic=True
    )
    priced = steps[steps["worth_usd_month"].notna()]
    assert list(priced["worth_usd_month"]) == sorted(priced["worth_usd_month"], reverse=True)
    assert priced.iloc[0]["step"].startswith("Test rerank")
    assert priced.iloc[0]["worth_usd_month"] == pytest.approx(0.4 * PLATFORM)
    weigh = priced[priced["step"].str.startswith("Weigh big")]
    assert weigh["worth_usd_month"].item() == pytest.approx((0.7 - 0.4) * PLATFORM)
    stop = priced[priced["step"].str.startswith("Stop funding")]
    assert list(stop["step"]) == ["Stop funding tiers"]  # the random control is never funded
    assert stop["worth_usd_month"].item() == pytest.approx(950)
    unpriced = steps[steps["worth_usd_month"].isna()]["step"].tolist()
    assert unpriced == [
        "Raise Precision at top 20 % to >= 0.6",
        "Measure Scoring latency p99",
        "Rerun the whole pipeline on the real log",
    ]
    assert steps.index[steps["worth_usd_month"].isna()].min() > priced.index.max()
    on_real = next_steps(PROGRAMMES, {"recommended": "rerank", "best": "rerank"}, gates, CONFIG,
                         synthetic=False)  # fmt: skip
    assert not on_real["step"].str.contains("Weigh|real log").any()
    assert math.isnan(on_real.iloc[-1]["worth_usd_month"])


def test_best_spending_ignores_controls_and_programmes_that_spend_nothing() -> None:
    sens = pd.DataFrame({
        "policy": ["tiers", "tiers", "ev", RANDOM_CONTROL],
        "factor": [1.0, 2.0, 2.0, 2.0],
        "cost_usd": [100.0, 100.0, 0.0, 100.0],
        "net_usd": [-90.0, -40.0, 0.0, 50.0],
    })  # fmt: skip
    best = best_spending(sens)
    assert (best["policy"], best["factor"], best["net_usd"]) == ("tiers", 2.0, -40.0)
    assert best_spending(sens[sens["policy"] == "ev"]) is None
