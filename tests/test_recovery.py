"""Recovery: the generator's leave logit refitted on its own log covers the true coefficients
when the log has no unobserved propensity, and misses them, towards zero, when it has one."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from microsub.analysis import recovery
from microsub.analysis.describe import pages_frame
from microsub.data import ingest, synth
from microsub.sim import dynamics
from microsub.sim.params import DEFAULT_PARAMS

N_PAGES = 40_000


def _pages(folder: Path, params, seed: int = 3) -> pd.DataFrame:
    log = folder / "log.txt"
    synth.generate(log, n_pages=N_PAGES, seed=seed, params=params)
    return ingest.read_pages(log).to_pandas()


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    params = recovery.without_propensity(DEFAULT_PARAMS)
    return recovery.recover_leave_model(_pages(tmp_path_factory.mktemp("control"), params), params)


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    pages = _pages(tmp_path_factory.mktemp("default"), DEFAULT_PARAMS)
    return recovery.recover_leave_model(pages, DEFAULT_PARAMS)


def test_the_table_holds_every_term_with_the_generator_s_true_value(control):
    p = recovery.without_propensity(DEFAULT_PARAMS)
    assert list(control["term"]) == [t.key for t in recovery.LEAVE_TERMS]
    truth = control.set_index("term")["truth"]
    assert truth["bounce"] == p.leave_bounce
    assert truth["depth"] == p.leave_depth
    assert truth["night_depth"] == pytest.approx(p.leave_depth * p.leave_night_fatigue)
    assert truth["since_purchase"] == p.leave_since_purchase
    assert truth["hour"] == p.leave_hour
    assert truth["power"] == p.leave_power
    assert truth["engagement"] == p.leave_engagement
    assert truth["mix"] == p.leave_mix
    inside = (control["ci_low"] <= control["truth"]) & (control["truth"] <= control["ci_high"])
    assert control["covered"].tolist() == inside.tolist()
    assert control["relative"].to_numpy() == pytest.approx(
        (control["estimate"] / control["truth"]).to_numpy()
    )


def test_without_the_hidden_propensity_the_fit_recovers_the_truth(control):
    # the logit is then the generator's own model (the CTR proxy aside): every estimate within
    # 15 % of its true value, and (95 % intervals, 8 terms) at least 6 true values covered
    assert control["relative"].between(0.85, 1.15).all(), control
    assert control["covered"].sum() >= 6, control


def test_with_the_hidden_propensity_the_depth_terms_are_pulled_towards_zero(default):
    rows = default.set_index("term")
    for term in ("depth", "night_depth", "power"):
        assert rows.loc[term, "relative"] < 0.95, (term, rows.loc[term])
        assert not rows.loc[term, "covered"], term
    # the engagement term carries part of the propensity: farther from zero than the truth
    assert rows.loc["engagement", "estimate"] > rows.loc["engagement", "truth"]


def test_generator_since_purchase_counts_depth_until_the_first_purchase():
    pages = pd.DataFrame(
        {
            "session_id": [0, 0, 0, 0, 1, 1],
            "line_no": [0, 1, 2, 3, 4, 5],
            "action_page_id": [0, 1, 2, 3, 0, 1],
            "hour": [20] * 6,
            "state_purchase_power": [4] * 6,
            "n_clicks": [1, 1, 0, 0, 0, 0],
            "n_carts": [0] * 6,
            "n_favs": [0] * 6,
            "n_purchases": [0, 1, 0, 0, 0, 0],
            "engagement": [1, 1, 0, 0, 0, 0],
            "page_value": [0.0, 10.0, 0, 0, 0, 0],
            "reward": [0.0, 10.0, 0, 0, 0, 0],
            "mean_ctr": [0.05] * 6,
            "mean_cvr": [0.01] * 6,
            "mean_log_price": [4.0] * 6,
            "done": [0, 0, 0, 1, 0, 1],
            "truncated": [0] * 6,
        }
    )
    frame = pages_frame(pages)
    # the generator: s = d before any purchase, 0 on the purchase page, then pages since it
    assert recovery.generator_since_purchase(frame).tolist() == [0, 0, 1, 2, 0, 1]
    design = recovery.leave_design(frame, DEFAULT_PARAMS)
    assert design["bounce"].tolist() == [1, 0, 0, 0, 1, 0]
    assert design["night_depth"].eq(0).all()  # 20 h is not night
    c = dynamics.hour_log_traffic(DEFAULT_PARAMS)[20]
    assert design["hour"].to_numpy() == pytest.approx(np.full(6, -c))  # subtracted term
    assert design["engagement"].tolist() == pytest.approx([-math.log(2)] * 2 + [0.0] * 4)
    expected_mix = -(math.log(0.05) - DEFAULT_PARAMS.log_ctr_mean)
    assert design["mix"].to_numpy() == pytest.approx(np.full(6, expected_mix))


def test_with_control_matches_terms_and_flags_the_control_coverage(control):
    run = control.assign(covered=False)
    joined = recovery.with_control(run, control.iloc[:-1])  # the control lacks the last term
    assert joined["control_estimate"].iloc[:-1].tolist() == control["estimate"].iloc[:-1].tolist()
    assert joined["control_covered"].iloc[:-1].tolist() == control["covered"].iloc[:-1].tolist()
    assert joined["control_relative"].iloc[:-1].tolist() == control["relative"].iloc[:-1].tolist()
    assert math.isnan(joined["control_estimate"].iloc[-1])
    assert not joined["control_covered"].iloc[-1]
    assert not joined["covered"].any()


def test_without_propensity_switches_off_only_the_propensity():
    p = recovery.without_propensity(DEFAULT_PARAMS)
    assert p.leave_user_sd == 0 and p.click_user_corr == 0
    assert (
        p.replace(
            leave_user_sd=DEFAULT_PARAMS.leave_user_sd,
            click_user_corr=DEFAULT_PARAMS.click_user_corr,
        )
        == DEFAULT_PARAMS
    )
