"""Policies, their evaluation with intervals, the validation and the gap to the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microsub.models.evaluation import grouped_split
from microsub.sim import evaluate as ev
from microsub.sim import policies as P
from microsub.sim.build import build_simulator
from microsub.sim.candidates import N_ACTIONS
from microsub.sim.learned import LearnedSimulator
from microsub.sim.study import run_study
from microsub.sim.truth import TrueSimulator


@pytest.fixture(scope="module")
def simulator(session_tables) -> LearnedSimulator:
    items = session_tables.items.select(["line_no", "ctr", "cvr", "price"])
    return build_simulator(session_tables.pages, items, n_pools=256)


def test_simple_policies_act_as_named(simulator) -> None:
    rng = np.random.default_rng(0)
    s = simulator.start(rng, 500)
    obs, cand = s.observation(), s.options
    assert (P.FixedPolicy(0)(obs, cand, rng) == 0).all() and P.FixedPolicy(0).name == "logged"
    assert P.FixedPolicy(9).name == "fixed a=2 b=1"
    random = P.RandomPolicy()(obs, cand, rng)
    assert set(np.unique(random)) == set(range(N_ACTIONS))
    with pytest.raises(ValueError, match="0..9"):
        P.FixedPolicy(10)


def test_greedy_takes_the_action_of_highest_expected_value(simulator) -> None:
    rng = np.random.default_rng(1)
    s = simulator.start(rng, 300)
    for _ in range(2):  # some history
        simulator.step(rng, s, np.full(len(s), 3))
    greedy = P.GreedyPolicy(simulator.models)(s.observation(), s.options, rng)
    expected = simulator.expected_values(s)
    assert (greedy == np.argmax(expected, axis=1)).all()
    assert P.hours_from_observation(s.observation()) == pytest.approx(s.hour, nan_ok=True)


def test_rollout_accounts_for_every_page(simulator) -> None:
    r = ev.rollout(simulator, P.RandomPolicy(), n_sessions=3000, seed=4, label="learned")
    assert r.at_risk.sum() == r.pages.sum() == r.actions.sum()
    assert r.leaves.sum() == r.left.sum()
    assert r.at_risk[0] == 3000 and (np.diff(r.at_risk) <= 0).all()
    assert ((r.pages == 12) | r.left).all()  # every session ends by leaving or at the cap
    row = ev.summary(r)
    assert row["value_low"] < row["value"] < row["value_high"]
    assert row["value"] == pytest.approx(r.value.mean())
    h = ev.hazard_table(r)
    assert (h["ci_low"] <= h["rate"]).all() and (h["rate"] <= h["ci_high"]).all()


def test_mean_interval_covers_at_the_stated_rate() -> None:
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(400):
        m, lo, hi = ev.mean_interval(rng.exponential(2.0, 400))
        hits += lo <= 2.0 <= hi
    assert 0.92 <= hits / 400 <= 0.98


def test_cem_learns_a_policy_worth_more_than_its_start(simulator) -> None:
    config = P.CEMConfig(iterations=5, population=12, elite=4, sessions=600)
    policy, history = P.train_cem(simulator, config=config, seed=0)
    assert len(history) == 5 and policy.weights.shape == (8, N_ACTIONS)
    start = P.mean_session_value(simulator, P.FixedPolicy(0), 3000, 77)
    learned = P.mean_session_value(simulator, policy, 3000, 77)
    assert learned > start * 1.2


def test_validation_of_a_simulator_on_its_own_kind_of_data(session_tables) -> None:
    pages = session_tables.pages
    split = grouped_split(pages["session_id"].to_numpy(), test_size=0.5, random_state=0)
    half = np.zeros(len(pages), bool)
    half[split.train] = True
    items = session_tables.items.select(["line_no", "ctr", "cvr", "price"])
    sim_a = build_simulator(pages[half].reset_index(drop=True),
                            items.filter(half), n_pools=256)  # fmt: skip
    held_out = ev.Observed.from_pages(pages[~half])
    r = ev.rollout(sim_a, P.FixedPolicy(0), n_sessions=10_000, seed=2)
    fitted_on = int(pages[half]["session_id"].nunique())
    table = ev.validation_table(r, held_out, fitted_on)
    assert len(table) >= 11 + 8 + 3
    assert table["within"].all(), table[~table["within"]].to_string()
    # a simulator that does not resemble the log fails it
    wrong = ev.validation_table(
        ev.rollout(sim_a, P.FixedPolicy(2), n_sessions=10_000, seed=2), held_out, fitted_on
    )
    assert not wrong["within"].all()


def test_gap_and_ranking_tables() -> None:
    def fake(name: str, value: float) -> ev.Rollout:
        z = np.zeros(10)
        return ev.Rollout(name, "x", np.full(10, value), np.ones(10), z > 0, z > 0,
                          np.zeros(12), np.zeros(12), np.zeros(10), np.nan)  # fmt: skip

    promised = [fake("a", 3.0), fake("b", 2.0), fake("c", 1.0)]
    truth = [fake("a", 1.0), fake("b", 2.5), fake("c", 0.5)]
    gaps = ev.gap_table(promised, {"truth": truth})
    assert gaps["gap_truth"].tolist() == [-2.0, 0.5, -0.5]
    rank = ev.ranking_agreement(gaps, "truth")
    assert rank["best_promised"] == "a" and rank["best_delivered"] == "b"
    assert not rank["same_best"] and rank["spearman"] == pytest.approx(0.5)


def test_study_reports_every_policy_in_every_simulator(session_tables) -> None:
    result = run_study(
        session_tables.pages, session_tables.items, truth_params=TrueSimulator().params,
        n_sessions=1500, seed=3, cem=P.CEMConfig(iterations=2, population=6, elite=2,
                                                 sessions=300),
    )  # fmt: skip
    t = result.policies
    assert set(t["simulator"]) == {"A", "B", "truth"}
    assert (t.groupby("simulator").size() == 13).all()
    assert set(t["policy"]) >= {"random", "logged", "greedy (expected Yuan of the page)",
                                "learned (cross-entropy, linear)", "fixed a=1 b=1"}  # fmt: skip
    assert (t["sessions"] == 1500).all() and t["support"].between(0, 1).all()
    assert list(result.gaps.columns) == ["policy", "promised", "B", "gap_B", "truth",
                                         "gap_truth"]  # fmt: skip
    assert set(result.rankings) == {"B", "truth"}
    assert set(result.simulators) == {"all", "A", "B"}
    doc = result.to_dict()
    assert doc["truth"]["available"] and isinstance(doc["validation_passed"], bool)
    assert pd.DataFrame(doc["tables"]["policies"]).shape == t.shape
