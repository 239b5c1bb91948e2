"""Retention programmes in the simulator: targeting, the budget, effects, uplift, fairness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microsub.business import targeting as T
from microsub.business.config import load_config
from microsub.business.fairness import audit, mitigation_cost
from microsub.business.programme import chain_risk, compare, play
from microsub.business.study import run_business
from microsub.business.uplift import qini_coefficient, qini_curve, qini_table, trial
from microsub.business.value import StakeTable
from microsub.sim.build import build_simulator
from microsub.sim.learned import LearnedSimulator

N = 3000


@pytest.fixture(scope="module")
def simulator(session_tables) -> LearnedSimulator:
    items = session_tables.items.select(["line_no", "ctr", "cvr", "price"])
    return build_simulator(session_tables.pages, items, n_pools=256)


@pytest.fixture(scope="module")
def stake(session_tables) -> StakeTable:
    return StakeTable.from_pages(session_tables.pages)


def _play(simulator, stake, targeting, config=None, **kw):
    config = config or load_config()
    return play(simulator, targeting, config, stake, chain_risk(simulator.models),
                n_sessions=kw.pop("n_sessions", N), seed=kw.pop("seed", 3), **kw)  # fmt: skip


def test_value_at_stake_is_what_continuing_shoppers_went_on_to_spend(session_tables, stake):
    pages = session_tables.pages
    s = pages.sort_values(["session_id", "line_no"])
    total = s.groupby("session_id")["page_value"].transform("sum")
    before = s.groupby("session_id")["page_value"].cumsum()
    cont = (s["action_page_id"] == 2) & (s["has_next"] == 1)
    expected = (total - before)[cont].mean()
    # depth 2 averaged over the purchase-power cells, weighted by their pages
    cells = stake.pages[2]
    assert np.average(stake.yuan[2], weights=cells) == pytest.approx(expected, rel=0.05)
    assert (stake.yuan >= 0).all() and stake.lookup(np.array([2]), np.array([6]))[0] >= 0


def test_tiers_cover_every_risk_once():
    tiers = load_config().interventions
    risk = np.array([0.0, 0.3, 0.5, 0.79, 0.8, 1.0])
    assert T.tier_of(risk, tiers).tolist() == [2, 2, 1, 1, 0, 0]


def test_expected_value_acts_only_where_the_gain_beats_the_cost():
    tiers = load_config().interventions
    risk, stake_usd = np.array([0.9, 0.9, 0.2]), np.array([1.0, 500.0, 500.0])
    tier, priority = T.ExpectedValue().propose(risk, stake_usd, tiers, np.random.default_rng(0))
    # $1 at stake pays for nothing; $500 at 90 % risk pays for outreach (0.9*500*0.4 = 180 > 50)
    assert tier.tolist()[0] == T.NONE and tier[1] == 0
    gain = 0.2 * 500 * np.array([t.effect for t in tiers])
    net = gain - np.array([t.cost_usd for t in tiers])
    assert tier[2] == int(np.argmax(net))
    assert priority[1] == pytest.approx(0.9 * 500 * 0.4 / 50)


def test_threshold_spends_the_budget_best_first():
    ratio = np.array([5.0, 1.5, 3.0, 2.0])
    cost = np.array([10.0, 10.0, 10.0, 10.0])
    assert T.calibrate_threshold(ratio, cost, 25.0) == 2.0  # 5 and 3 fit, 2 does not
    assert T.calibrate_threshold(ratio, cost, 1000.0) == 1.0


@pytest.mark.parametrize("policy", [T.RiskTiers(), T.RandomSpend(0.5)])
@pytest.mark.parametrize("budget", [0.0, 7.5, 300.0])
def test_the_budget_is_never_exceeded(simulator, stake, policy, budget):
    run = _play(simulator, stake, policy, budget_usd=budget)
    assert run.spend.sum() <= budget + 1e-9
    assert run.pages_log["cost"].sum() == pytest.approx(run.spend.sum())
    if budget == 0:
        assert (run.pages_log["tier"] == T.NONE).all()


def test_the_default_budget_is_the_monthly_budget_per_session(simulator, stake):
    run = _play(simulator, stake, T.RiskTiers())
    config = load_config()
    assert run.budget == pytest.approx(N * config.budget_usd_per_month / config.sessions_per_month)
    assert run.spend.sum() <= run.budget


def test_doubling_every_effect_cannot_lower_the_retained_value(simulator, stake):
    config = load_config()
    unlimited = float("inf")
    base = _play(simulator, stake, T.NoIntervention())
    once = _play(simulator, stake, T.RiskTiers(), config, budget_usd=unlimited)
    twice = _play(simulator, stake, T.RiskTiers(), config.scaled(2.0), budget_usd=unlimited)
    # the same shoppers and draws: a stronger effect can only keep a shopper longer
    assert (twice.value >= once.value - 1e-9).all()
    assert (once.value >= base.value - 1e-9).all()
    assert (twice.pages >= once.pages).all()
    kept_once, kept_twice = (once.value - base.value).sum(), (twice.value - base.value).sum()
    assert kept_twice >= kept_once > 0
    r1, r2 = compare(once, base, config), compare(twice, base, config)
    assert r2["churn_reduction"] > r1["churn_reduction"] > 0


def test_compare_reports_money_per_month(simulator, stake):
    config = load_config()
    base = _play(simulator, stake, T.NoIntervention())
    run = _play(simulator, stake, T.RiskTiers(), budget_usd=float("inf"))
    row = compare(run, base, config)
    month = config.sessions_per_month
    assert row["cost_usd"] == pytest.approx(run.spend.mean() * month)
    usd = (run.value - base.value).mean() * config.value_margin / config.yuan_per_usd
    assert row["retained_usd"] == pytest.approx(usd * month)
    assert row["net_usd"] == pytest.approx(row["retained_usd"] - row["cost_usd"])
    assert row["roi"] == pytest.approx(row["net_usd"] / row["cost_usd"])
    assert row["churn_reduction_low"] <= row["churn_reduction"] <= row["churn_reduction_high"]


def test_qini_of_a_perfect_and_a_useless_score():
    rng = np.random.default_rng(0)
    n = 20_000
    p = rng.uniform(0, 1, n)  # the effect scales with the risk, as in the programme
    treated = rng.random(n) < 0.5
    stayed = rng.random(n) >= p * np.where(treated, 0.6, 1.0)
    good = qini_curve(p, treated, stayed)
    useless = qini_curve(rng.random(n), treated, stayed)
    assert qini_coefficient(good) > 0.2 > abs(qini_coefficient(useless))
    assert good["qini"].iloc[-1] == pytest.approx(useless["qini"].iloc[-1])


def test_a_randomised_trial_treats_half_the_pages(simulator, stake):
    config = load_config()
    run = trial(simulator, config, stake, chain_risk(simulator.models), tier=1, n_sessions=N,
                seed=5)  # fmt: skip
    treated = (run.pages_log["tier"] != T.NONE).mean()
    assert treated == pytest.approx(0.5, abs=0.02)
    curves, summary = qini_table(run, config.interventions[1])
    assert set(summary["score"]) == {"churn risk", "expected value kept", "random"}
    best = summary.set_index("score")["qini_coefficient"]
    assert best["churn risk"] > best["random"]


def test_fairness_audit_by_gender_and_age(simulator, stake):
    run = _play(simulator, stake, T.RiskTiers(), budget_usd=float("inf"))
    groups, summary = audit(run)
    assert set(summary["attribute"]) == {"gender", "age level"}
    g = groups[groups["attribute"] == "gender"].set_index("group")
    log = run.pages_log
    for gender in (0, 1):
        rate = (log.loc[log["gender"] == gender, "tier"] != T.NONE).mean()
        assert g.loc[gender, "selection_rate"] == pytest.approx(rate)
    ratio = summary.set_index("attribute").loc["gender", "demographic_parity_ratio"]
    assert ratio == pytest.approx(g["selection_rate"].min() / g["selection_rate"].max())
    # nobody selected: every group at the same (zero) rate
    none = _play(simulator, stake, T.NoIntervention())
    assert (audit(none)[1]["demographic_parity_ratio"] == 1.0).all()
    assert mitigation_cost(none, 0.8, 1000) == 0.0


def test_mitigation_prices_the_missing_selections():
    from microsub.business.programme import ProgrammeRun

    log = pd.DataFrame({
        "gender": [0] * 10 + [1] * 10, "age_level": [0] * 20,
        "tier": [0] * 10 + [0] * 2 + [T.NONE] * 8, "cost": [5.0] * 12 + [0.0] * 8,
    })  # fmt: skip
    run = ProgrammeRun("p", "x", np.zeros(4), np.ones(4), np.zeros(4, bool), np.zeros(4), 0.0,
                       log)  # fmt: skip
    # group 1 needs 0.8 * 1.0 - 0.2 = 0.6 of its 10 pages more: 6 interventions of $5,
    # over 4 sessions, for 100 sessions a month
    assert mitigation_cost(run, 0.8, 100) == pytest.approx(6 * 5 / 4 * 100)


def test_study_measures_the_gates_of_the_recommended_programme(simulator, stake):
    result = run_business(simulator, stake, load_config(), truth=None, n_sessions=1500, seed=2)
    p = result.programmes
    assert set(p["simulator"]) == {"learned"} and len(p) == 6
    assert result.verdict["recommended"] in set(p["policy"])
    rec = result.row(result.verdict["recommended"])
    assert result.measurements["churn_reduction"] == rec["churn_reduction"]
    assert 0 <= result.measurements["demographic_parity_ratio"] <= 1
    assert set(result.sensitivity["factor"]) == set(load_config().sensitivity_factors)
    assert list(result.breakeven["tier"]) == [t.name for t in load_config().interventions]
    doc = result.to_dict()
    assert set(doc["tables"]) == set(result.TABLES)
