"""Hypotheses: estimates recover effects planted in simulated pages, verdicts flip when the
effect is removed, Kaplan-Meier matches a hand computation, the audit catches what it must."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from microsub.analysis import audit, describe, explore, hypotheses, stats, verdicts
from microsub.analysis.features import FEATURE_SETS, FeatureSet


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simulate(
    n_sessions: int = 6000,
    *,
    base: float = -1.4,
    depth: float = 0.0,
    night: float = 0.0,
    power: float = 0.0,
    engaged: float = 0.0,
    after_purchase: float = 0.0,
    ctr: float = 0.0,
    buy_power: float = 0.0,
    buy_depth: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Pages of sessions whose leave probability after page d is
    sigmoid(base + depth·d + night·[hour in 1..3] + power·(pp − 4) + engaged·[engagement > 0]
    + after_purchase·[purchase on page d − 1] + ctr·z_ctr), with z_ctr the page's standardised
    log mean CTR. Purchases happen on 10 % of pages, times exp(buy_power·(pp − 4)
    + buy_depth·(d − 2))."""
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, n_sessions)
    pp = rng.integers(1, 8, n_sessions)
    alive = np.ones(n_sessions, bool)
    prev_bought = np.zeros(n_sessions, bool)
    parts = []
    for d in range(12):
        idx = np.flatnonzero(alive)
        if not len(idx):
            break
        k = len(idx)
        engagement = rng.poisson(1.0, k)
        p_buy = np.clip(0.1 * np.exp(buy_power * (pp[idx] - 4) + buy_depth * (d - 2)), 0, 1)
        bought = rng.random(k) < p_buy
        z_ctr = rng.normal(size=k)
        eta = (
            base
            + depth * d
            + night * np.isin(hour[idx], (1, 2, 3))
            + power * (pp[idx] - 4)
            + engaged * (engagement > 0)
            + after_purchase * prev_bought[idx]
            + ctr * z_ctr
        )
        leave = rng.random(k) < _sigmoid(eta)
        parts.append(
            pd.DataFrame(
                {
                    "session_id": idx,
                    "line_no": idx * 100 + d,
                    "action_page_id": d,
                    "hour": hour[idx],
                    "state_purchase_power": pp[idx],
                    "age_level": rng.integers(0, 7, k),
                    "gender": rng.integers(0, 2, k),
                    "n_clicks": engagement,
                    "n_carts": 0,
                    "n_favs": 0,
                    "n_purchases": bought.astype(int),
                    "engagement": engagement,
                    "page_value": np.where(bought, np.round(rng.lognormal(4, 1, k), 2), 0.0),
                    "mean_ctr": np.exp(-3.4 + 0.5 * z_ctr),
                    "mean_cvr": np.exp(-6.0 + 0.5 * rng.normal(size=k)),
                    "mean_log_price": 4.0 + 0.5 * rng.normal(size=k),
                    "done": leave.astype(int),
                    "truncated": ((~leave) & (d == 11)).astype(int),
                }
            )
        )
        prev_bought[idx] = bought
        alive[idx[leave]] = False
    pages = pd.concat(parts, ignore_index=True)
    pages["reward"] = pages["page_value"]
    return pages.sort_values(["session_id", "line_no"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("estimate", "low", "high", "p", "expected", "verdict"),
    [
        (1.30, 1.20, 1.40, 0.001, ">", "supported"),
        (1.30, 1.20, 1.40, 0.001, "<", "not supported"),  # significant, wrong side
        (1.005, 0.99, 1.02, 0.40, ">", "not supported"),  # interval inside the band
        (1.005, 1.001, 1.009, 0.001, ">", "not supported"),  # significant but negligible
        (1.20, 0.80, 1.60, 0.30, ">", "inconclusive"),  # too wide to tell
        (1.05, 1.01, 1.15, 0.01, ">", "inconclusive"),  # significant, estimate in the band
        (math.nan, math.nan, math.nan, math.nan, ">", "inconclusive"),
    ],
)
def test_verdict_rule_on_ratios(estimate, low, high, p, expected, verdict):
    got = verdicts.decide(
        estimate, low, high, p, null=1.0, expected=expected, scale="ratio", margin=1.10
    )
    assert got == verdict


def test_verdict_rule_on_differences():
    kw = {"null": 0.0, "expected": ">", "scale": "difference", "margin": 0.05}
    assert verdicts.decide(0.10, 0.08, 0.12, 1e-6, **kw) == "supported"
    assert verdicts.decide(0.01, -0.02, 0.04, 0.5, **kw) == "not supported"
    assert verdicts.decide(0.04, -0.03, 0.11, 0.3, **kw) == "inconclusive"


def test_holm_adjustment_matches_a_hand_computation():
    base = hypotheses.fatigue(simulate(1500, depth=0.3))
    ps = [0.01, 0.04, 0.03, math.nan]
    family = [dataclasses.replace(base, key=f"h{i}", p_value=p) for i, p in enumerate(ps)]
    adjusted = verdicts.adjust(family)
    # sorted 0.01, 0.03, 0.04 with m = 3: 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04)
    assert [r.p_adjusted for r in adjusted[:3]] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3].p_adjusted)
    # the verdict and the sentence follow the adjusted p-value
    assert adjusted[0].verdict == verdicts.decide(
        base.estimate,
        base.ci_low,
        base.ci_high,
        0.03,
        null=1.0,
        expected=">",
        scale="ratio",
        margin=base.margin,
    )
    assert "p = 0.030" in adjusted[0].summary


def test_cluster_rates_widen_intervals_only_for_pooled_sessions():
    # one page per session: design effect 1 (plain Wilson)
    one = pd.DataFrame(
        {"g": 0, "session_id": np.arange(400), "done": np.r_[np.ones(100), np.zeros(300)]}
    )
    r1 = stats.cluster_rates(one, "g").iloc[0]
    lo, hi = stats.wilson_interval(np.array([100]), np.array([400]))
    assert r1["rate"] == pytest.approx(0.25)
    assert r1["deff"] == pytest.approx(1.0, abs=0.01)
    assert (r1["ci_low"], r1["ci_high"]) == pytest.approx((lo[0], hi[0]), abs=1e-3)
    # four identical pages per session: the information is that of 100 sessions (deff ~ 4)
    four = pd.DataFrame(
        {
            "g": 0,
            "session_id": np.repeat(np.arange(100), 4),
            "done": np.repeat(np.r_[np.ones(25), np.zeros(75)], 4),
        }
    )
    r4 = stats.cluster_rates(four, "g").iloc[0]
    assert r4["deff"] == pytest.approx(4.0, rel=0.02)
    lo, hi = stats.wilson_interval(np.array([25]), np.array([100]))
    assert (r4["ci_low"], r4["ci_high"]) == pytest.approx((lo[0], hi[0]), abs=2e-3)


# --------------------------------------------------------------------------------------------
# Hypotheses recover planted effects, and flip without them
# --------------------------------------------------------------------------------------------
def test_fatigue_recovers_the_planted_depth_effect_and_flips_without_it():
    with_effect = hypotheses.fatigue(simulate(6000, depth=0.25))
    assert with_effect.ci_low < math.exp(0.25) < with_effect.ci_high
    assert with_effect.estimate == pytest.approx(math.exp(0.25), rel=0.05)
    assert with_effect.verdict == "supported"
    flat = hypotheses.fatigue(simulate(6000, depth=0.0))
    assert flat.estimate == pytest.approx(1.0, abs=0.03)
    assert flat.verdict in ("not supported", "inconclusive")
    assert flat.verdict != "supported"


def test_hazard_by_depth_is_the_share_leaving_among_pages_with_known_outcome():
    pages = simulate(800, depth=0.2, seed=3)
    table = hypotheses.hazard_by_depth(pages)
    for _, row in table.iterrows():
        at = pages[pages["action_page_id"] == row["action_page_id"]]
        known = at[~((at["truncated"] == 1) & (at["action_page_id"] < 11))]
        assert row["pages"] == len(known)
        assert row["rate"] == pytest.approx(known["done"].mean())
        assert row["ci_low"] <= row["rate"] <= row["ci_high"]


def test_trend_fit_finds_the_depths_where_the_trend_overshoots_the_interval():
    # a hazard that flattens after depth 3, a trend that keeps rising: it overshoots at 4 and 5
    table = pd.DataFrame(
        {
            "action_page_id": [0, 1, 2, 3, 4, 5],
            "pages": [1000, 800, 600, 400, 150, 50],
            "rate": [0.40, 0.10, 0.15, 0.20, 0.21, 0.22],
            "ci_low": [0.37, 0.08, 0.12, 0.16, 0.15, 0.12],
            "ci_high": [0.43, 0.12, 0.18, 0.24, 0.28, 0.34],
            "trend": [np.nan, 0.11, 0.15, 0.17, 0.30, 0.38],
        }
    )
    fit = describe.trend_fit(table)
    assert list(fit.table["action_page_id"]) == [1, 2, 3, 4, 5]  # page 0 is outside the fit
    assert fit.above == (4, 5)
    assert fit.below == ()
    assert fit.max_overshoot == pytest.approx(0.38 - 0.22)
    assert fit.max_overshoot_depth == 5
    assert math.isnan(fit.max_undershoot)
    assert fit.pages_share_above == pytest.approx(200 / 2000)
    assert fit.rises_every_page
    # a trend below an interval, and a hazard that falls once
    lower = table.assign(trend=[np.nan, 0.11, 0.10, 0.17, 0.22, 0.25], rate=table["rate"])
    lower.loc[5, "rate"] = 0.20
    fit = describe.trend_fit(lower)
    assert fit.above == () and fit.below == (2,)
    assert fit.max_undershoot == pytest.approx(0.15 - 0.10)
    assert math.isnan(fit.max_overshoot) and fit.pages_share_above == 0
    assert not fit.rises_every_page
    assert fit.fitted
    assert not describe.trend_fit(table.assign(trend=np.nan)).fitted


def test_fatigue_trend_fit_of_a_planted_single_slope_stays_in_the_intervals():
    fit = describe.trend_fit(hypotheses.fatigue(simulate(6000, depth=0.25)).table)
    assert len(fit.above) + len(fit.below) <= 1  # the model is right: at most a chance miss


def test_hour_compares_night_with_evening_at_the_same_depth():
    planted = hypotheses.hour_of_day(simulate(12000, night=0.8, seed=1))
    assert planted.ci_low < math.exp(0.8) < planted.ci_high
    assert planted.verdict == "supported"
    assert planted.details["night_rate"] > planted.details["evening_rate"]
    assert list(planted.table["hour"]) == list(range(24))
    none = hypotheses.hour_of_day(simulate(12000, night=0.0, seed=1))
    assert none.verdict != "supported"
    assert none.ci_low < 1.0 < none.ci_high


def test_hour_details_name_the_hours_of_the_highest_and_lowest_churn():
    result = hypotheses.hour_of_day(simulate(4000, night=0.8, seed=2))
    table, d = result.table, result.details
    assert d["peak_rate"] == table["rate"].max() and d["low_rate"] == table["rate"].min()
    assert table.set_index("hour").loc[d["peak_hour"], "rate"] == d["peak_rate"]
    assert d["peak_hour"] in hypotheses.NIGHT_HOURS or d["peak_rate"] > d["night_rate"]


def test_hour_is_untestable_without_hours():
    pages = simulate(500)
    pages["hour"] = np.nan
    r = hypotheses.hour_of_day(pages)
    assert math.isnan(r.estimate) and r.verdict == "inconclusive"
    assert "not testable" in r.summary


def test_engagement_and_purchase_power_effects_have_the_planted_sign():
    pages = simulate(6000, engaged=-1.0, power=-0.2, seed=2)
    eng = hypotheses.engagement_retention(pages)
    assert eng.ci_low < math.exp(-1.0) < eng.ci_high and eng.verdict == "supported"
    churn = hypotheses.purchase_power_churn(pages)
    assert churn.ci_low < math.exp(-0.2) < churn.ci_high and churn.verdict == "supported"
    # retention table: share of pages followed by a next page, per level and depth band
    t = eng.table
    assert set(t["depth_band"]) == set(hypotheses.DEPTH_BANDS)
    assert (t["rate"].between(0, 1)).all()
    null = hypotheses.engagement_retention(simulate(6000, engaged=0.0, seed=2))
    assert null.verdict != "supported"


@pytest.mark.filterwarnings("error::statsmodels.tools.sm_exceptions.SingularMatrixWarning")
def test_engagement_details_count_the_depth_bands_where_engaged_pages_stay_more():
    retained = hypotheses.engagement_retention(simulate(4000, engaged=-1.0, seed=4)).details
    assert retained["depth_bands"] == len(hypotheses.DEPTH_BANDS)
    assert retained["depth_bands_engaged_higher"] == retained["depth_bands"]
    reversed_ = hypotheses.engagement_retention(simulate(4000, engaged=1.5, seed=4)).details
    assert reversed_["depth_bands_engaged_higher"] == 0


def test_strongest_ratio_is_the_estimate_farthest_from_one():
    results = explore.run_all(simulate(1500, depth=0.2, engaged=-1.5, seed=5), n_boot=20)
    top = verdicts.strongest_ratio(results.hypotheses)
    ratios = [r for r in results.hypotheses if r.scale == "ratio" and np.isfinite(r.estimate)]
    assert top is not None and top.scale == "ratio"
    assert abs(math.log(top.estimate)) == max(abs(math.log(r.estimate)) for r in ratios)
    assert verdicts.strongest_ratio([]) is None


def test_a_covariate_that_does_not_vary_is_left_out_not_a_singular_design():
    # one purchase-power level only (a log of one segment): the tests adjusted for purchase
    # power still estimate their effect instead of failing on a singular design matrix
    pages = simulate(6000, engaged=-1.0, after_purchase=-1.0, seed=7)
    pages["state_purchase_power"] = 3
    eng = hypotheses.engagement_retention(pages)
    assert eng.ci_low < math.exp(-1.0) < eng.ci_high
    for result in (hypotheses.purchase_reset(pages), hypotheses.item_mix_churn(pages)):
        assert math.isfinite(result.estimate) and result.ci_low < result.ci_high


def test_purchase_reset_compares_pages_at_the_same_depth():
    # leaving and buying both rise with depth, purchases do not change leaving: the naive
    # comparison finds pages after a purchase MORE often last; the depth-adjusted one finds
    # no effect
    pages = simulate(20000, depth=0.3, buy_depth=0.3, seed=5)
    none = hypotheses.purchase_reset(pages)
    naive = none.details["rate_after_purchase"] / none.details["rate_without"]
    assert naive > 1.1
    assert none.ci_low < 1.0 < none.ci_high
    assert none.verdict != "supported"
    planted = hypotheses.purchase_reset(simulate(8000, depth=0.2, after_purchase=-1.0, seed=4))
    assert planted.ci_low < math.exp(-1.0) < planted.ci_high
    assert planted.verdict == "supported"


def test_purchase_reset_exposure_is_the_previous_page_of_the_same_session():
    pages = simulate(300, seed=5)
    r = hypotheses.purchase_reset(pages)
    f = describe.pages_frame(pages)
    prev = f.groupby("session_id")["purchased"].shift(1)
    known_later = f["known"] & prev.notna()
    assert r.n_pages == int(known_later.sum())
    assert r.details["pages_after_purchase"] == float((prev[known_later] == 1).sum())


def test_item_mix_and_purchase_power_value():
    pages = simulate(6000, ctr=-0.5, buy_power=0.3, seed=6)
    churn = hypotheses.item_mix_churn(pages)
    # the simulated z_ctr is the standardised log mean CTR, so the OR per SD is exp(-0.5)
    assert churn.ci_low < math.exp(-0.5) < churn.ci_high and churn.verdict == "supported"
    others = churn.table.set_index("variable")
    assert others.loc["z_log_price", "ci_low"] < 1 < others.loc["z_log_price", "ci_high"]
    value = hypotheses.purchase_power_value(pages, n_boot=100)
    assert value.estimate > 0.05 and value.ci_low > 0 and value.verdict == "supported"
    assert value.table["buying_share"].is_monotonic_increasing
    flat = hypotheses.purchase_power_value(simulate(6000, seed=6), n_boot=100)
    assert flat.ci_low < 0 < flat.ci_high and flat.verdict != "supported"


def test_item_mix_spend_recovers_no_effect_when_spend_ignores_the_mix():
    r = hypotheses.item_mix_spend(simulate(4000, seed=7))
    assert r.ci_low < 1.0 < r.ci_high
    assert r.verdict != "supported"


def test_untestable_when_no_session_ends_with_a_terminal_flag():
    pages = simulate(300)
    pages["done"] = 0  # the 14-field sample has no terminal flags
    for test in (
        hypotheses.fatigue,
        hypotheses.purchase_power_churn,
        hypotheses.engagement_retention,
        hypotheses.purchase_reset,
    ):
        r = test(pages)
        assert math.isnan(r.estimate) and r.verdict == "inconclusive", r.key


# --------------------------------------------------------------------------------------------
# Survival
# --------------------------------------------------------------------------------------------
def _pages_of(sessions: list[tuple[int, int, int]]) -> pd.DataFrame:
    """Pages from (first page, last page, done) per session."""
    rows = []
    for sid, (first, last, done) in enumerate(sessions):
        for d in range(first, last + 1):
            rows.append(
                (sid, sid * 100 + d, d, int(d == last and done), int(d == last and not done))
            )
    df = pd.DataFrame(
        rows, columns=["session_id", "line_no", "action_page_id", "done", "truncated"]
    )
    df["hour"], df["state_purchase_power"], df["reward"], df["n_purchases"] = 12, 5, 0.0, 0
    return df


def test_kaplan_meier_matches_a_hand_computation():
    # sessions: left after page 0, after page 1 (x2), truncated at page 2 by the end of the
    # file (outcome of page 2 unknown: censored at 2), left after page 3, capped at page 11
    pages = _pages_of([(0, 0, 1), (0, 1, 1), (0, 1, 1), (0, 2, 0), (0, 3, 1), (0, 11, 0)])
    s = describe.session_table(pages)
    assert list(s["duration"]) == [1, 2, 2, 2, 4, 12]
    curve, median = describe.kaplan_meier(s)
    got = dict(zip(curve["pages"], curve["survival"], strict=True))
    # t=1: 1 of 6 leaves; t=2: 2 of 5 (the censored one counts at risk at 2); t=4: 1 of 2
    s1 = 5 / 6
    s2 = s1 * (1 - 2 / 5)
    s4 = s2 * (1 - 1 / 2)
    assert got[0] == 1.0
    assert got[1] == pytest.approx(s1)
    assert got[2] == pytest.approx(s2) and got[3] == pytest.approx(s2)
    assert got[4] == pytest.approx(s4) and got[12] == pytest.approx(s4)
    assert 2.0 <= median <= 4.0  # S(2) = 0.5 exactly: the median is 2 or 4 by convention


def test_kaplan_meier_is_the_product_of_one_minus_the_hazards():
    pages = simulate(3000, depth=0.15, seed=8)
    hazard = hypotheses.hazard_by_depth(pages).set_index("action_page_id")["rate"]
    curve, _ = describe.kaplan_meier(describe.session_table(pages))
    product = np.cumprod(1 - hazard.reindex(range(12)).fillna(0).to_numpy())
    assert curve["survival"].to_numpy()[1:] == pytest.approx(product, abs=1e-9)


def test_delayed_entry_keeps_page_jump_sessions_out_of_earlier_risk_sets():
    # a session seen from page 3 (a page-id jump) must not count at risk for leaving after
    # pages 0..2: with it, S(1) stays 1 - 1/2, as if it were not there
    pages = _pages_of([(0, 0, 1), (0, 5, 1), (3, 5, 1)])
    curve, _ = describe.kaplan_meier(describe.session_table(pages))
    got = dict(zip(curve["pages"], curve["survival"], strict=True))
    assert got[1] == pytest.approx(0.5)
    # at t=6 both remaining sessions (one entered at 4) leave
    assert got[6] == pytest.approx(0.0)


def test_survival_without_terminal_flags_is_not_estimated():
    pages = simulate(300, seed=16)
    pages["done"] = 0  # a log without terminal flags: every session is censored
    curve, median = describe.kaplan_meier(describe.session_table(pages))
    assert curve["survival"].isna().all() and math.isnan(median)
    surv = describe.survival_by_purchase_power(pages)
    assert math.isnan(surv.logrank_p)


def test_survival_by_purchase_power_orders_the_groups_when_power_retains():
    surv = describe.survival_by_purchase_power(simulate(6000, power=-0.3, seed=9))
    still = surv.summary.set_index("group")["survival_at"]
    assert still["low (1-3)"] < still["middle (4-5)"] < still["high (6-7)"]
    assert surv.logrank_p < 1e-6
    assert set(surv.curves["group"]) == set(describe.PURCHASE_POWER_GROUPS)


# --------------------------------------------------------------------------------------------
# Descriptive pieces
# --------------------------------------------------------------------------------------------
def test_class_balance_and_rewards_count_what_they_say():
    pages = simulate(1000, seed=10)
    balance = describe.class_balance(pages).set_index("done")
    assert balance.loc[1, "pages"] == int(pages["done"].sum())
    assert balance["pages"].sum() == len(pages)
    assert balance["share"].sum() == pytest.approx(1.0)
    rewards = describe.reward_distribution(pages)
    assert rewards.n_nonzero == int((pages["reward"] > 0).sum())
    assert rewards.quantiles["p50"] == pytest.approx(
        np.median(pages.loc[pages["reward"] > 0, "reward"])
    )


def test_correlation_matrix_is_a_symmetric_rank_correlation():
    corr = describe.correlation_matrix(simulate(1000, seed=11))
    assert list(corr.index) == list(corr.columns)
    assert np.allclose(corr.to_numpy(), corr.to_numpy().T)
    assert np.allclose(np.diag(corr.to_numpy()), 1.0)
    assert "n_carts" not in corr.columns  # constant in this data: dropped
    # reward and n_purchases move together by construction
    assert corr.loc["reward", "n_purchases"] > 0.9


# --------------------------------------------------------------------------------------------
# Audit
# --------------------------------------------------------------------------------------------
def _status(checks: tuple[audit.AuditCheck, ...]) -> dict[str, str]:
    return {c.check: c.status for c in checks}


def test_audit_passes_the_package_feature_sets_and_reports_what_cannot_be_met():
    status = _status(audit.audit_constraints(simulate(400, seed=12)))
    assert status["no direct identifier among the features"] == "pass"
    assert status["protected attributes excluded from every feature set"] == "pass"
    assert status["no feature is a strong proxy of a protected attribute"] == "pass"
    assert status["historical depth (calendar dates)"] == "cannot meet"
    assert status["freshness"] == "cannot meet"
    assert status["user identity across sessions"] == "cannot meet"


def test_audit_catches_a_protected_attribute_an_identifier_and_a_proxy():
    pages = simulate(400, seed=13)
    pages["user_email_hash"] = pages["session_id"] * 7  # an identifier in a feature set
    pages["gender_proxy"] = pages["gender"]  # perfectly correlated with gender
    bad = dict(FEATURE_SETS)
    bad["leaky"] = FeatureSet("leaky", "post", ("engagement", "age_level"), "protected")
    bad["ids"] = FeatureSet("ids", "post", ("user_email_hash", "session_id"), "identifiers")
    bad["proxy"] = FeatureSet("proxy", "post", ("gender_proxy",), "proxy")
    checks = audit.audit_constraints(pages, bad)
    status = _status(checks)
    assert status["protected attributes excluded from every feature set"] == "fail"
    assert status["no direct identifier among the features"] == "fail"
    assert status["no feature is a strong proxy of a protected attribute"] == "review"
    detail = {c.check: c.detail for c in checks}
    assert "leaky" in detail["protected attributes excluded from every feature set"]
    assert "user_email_hash" in detail["no direct identifier among the features"]
    assert "session_id" in detail["no direct identifier among the features"]


def test_audit_meets_historical_depth_when_the_log_has_dates():
    pages = simulate(200, seed=14)
    pages["event_date"] = pd.Timestamp("2019-05-13")
    status = _status(audit.audit_constraints(pages))
    assert status["historical depth (calendar dates)"] == "pass"
    assert status["freshness"] == "pass"


def test_run_all_bundles_eight_adjusted_tests():
    ex = explore.run_all(simulate(3000, depth=0.2, seed=15), n_boot=50)
    assert [r.key for r in ex.hypotheses] == [
        "fatigue",
        "hour",
        "purchase_power_value",
        "purchase_power_churn",
        "engagement",
        "purchase_reset",
        "item_mix_churn",
        "item_mix_spend",
    ]
    assert all(r.p_adjusted >= r.p_value for r in ex.hypotheses if np.isfinite(r.p_value))
    table = ex.verdict_table()
    assert len(table) == 8 and set(table["verdict"]) <= {
        "supported",
        "not supported",
        "inconclusive",
    }
    assert ex.result("fatigue").verdict == "supported"
    record = ex.result("hour").to_record()
    assert "table" not in record and isinstance(record["estimate"], float)
