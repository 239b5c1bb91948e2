"""The exploration's eight hypotheses, tested with honest uncertainty. Pure: a pages frame in,
:class:`~microsub.analysis.verdicts.HypothesisResult` out.

Conventions (known outcome, hazard, survival) are those of :mod:`microsub.analysis.describe`;
intervals, dependence and multiple testing those of :mod:`microsub.analysis.stats`; verdicts
those of :mod:`microsub.analysis.verdicts`.

What the tests can and cannot show
==================================

Every estimate is an association in observational data. Adjusting for page depth (fixed effects)
removes the most obvious confounder (deeper pages draw fewer clicks and end more often), and for
purchase power where it matters, but not the user's unobserved propensity to leave, which also
drives clicks and purchases. The hazard by depth is computed on the sessions still running at
that depth: as users prone to leaving drop out early, the survivors at depth d are a selected
group, so the population hazard mixes each user's fatigue with that selection (survivor bias).
A rising population hazard is therefore a lower bound on the typical user's fatigue, a falling
one could be selection alone, and no per-user statement follows from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.cbook import boxplot_stats
from scipy.stats import spearmanr
from statsmodels.genmod.generalized_linear_model import GLMResultsWrapper

from microsub.analysis.describe import pages_frame, session_table
from microsub.analysis.stats import (
    LEVEL,
    Coef,
    bootstrap_ci,
    cluster_rates,
    depth_dummies,
    glm,
    ratio_of,
    testable,
)
from microsub.analysis.verdicts import MARGINS, HypothesisResult, adjust, make_result
from microsub.contract import MAX_PAGE_ID

#: The two windows of the hour comparison: "about 2 AM" and "about 8 PM" (hours of day).
NIGHT_HOURS = (1, 2, 3)


EVENING_HOURS = (19, 20, 21)


def _leave_odds_ratio(
    rows: pd.DataFrame, exposure: pd.Series, covariates: Sequence[pd.Series] = ()
) -> tuple[Coef | None, str | None]:
    """The odds ratio of leaving after a page with ``exposure``, at the same depth.

    logit h = a + b·exposure + Σ_k c_k·covariate_k + depth fixed effects on ``rows``, clustered
    by session; the estimate is exp(b).

    Args:
        rows: the pages of the test (``done``, ``action_page_id``, ``session_id``), usually
            those with a known outcome.
        exposure: one value per row, indexed like ``rows``; its name names the coefficient.
        covariates: further columns indexed like ``rows``, in the design's order; those that
            do not vary on ``rows`` are dropped.

    Returns:
        (exp(b) with its interval and p-value, None), or (None, the reason of
        :func:`testable`) when the outcome or the exposure does not vary.
    """
    y = rows["done"].to_numpy()
    reason = testable(y, exposure.to_numpy())
    if reason is not None:
        return None, reason
    # a covariate that does not vary (one purchase-power level, say) duplicates the intercept
    # and would make the design singular: it adjusts for nothing, so it is left out
    varying = [c for c in covariates if c.nunique() > 1]
    X = pd.concat([exposure, *varying, depth_dummies(rows["action_page_id"])], axis=1)
    return ratio_of(glm(y, X, rows["session_id"].to_numpy()), str(exposure.name)), None


def hazard_by_depth(pages: pd.DataFrame) -> pd.DataFrame:
    """h(d) with a Wilson interval per depth (pages with a known outcome).

    Returns:
        One row per depth: ``action_page_id``, ``pages`` (at risk), ``sessions``, ``events``,
        ``rate`` (the hazard), ``ci_low``, ``ci_high``, ``deff``.
    """
    frame = pages_frame(pages)
    return cluster_rates(frame[frame["known"]], "action_page_id")


def fatigue(pages: pd.DataFrame) -> HypothesisResult:
    """Fatigue: past the first page, does the hazard of leaving rise with depth?

    Discrete-time logistic hazard on pages with depth d ≥ 1 and a known outcome,
    logit h = a + b·d + c·purchase power + e·sin(hour) + f·cos(hour), clustered by session;
    the estimate is the odds ratio per page, exp(b). Page 0 is left out of the trend: its high
    rate is a bounce (sessions that never start), reported in ``details`` (``bounce_rate``
    against ``page1_rate``) and in the table. The profile terms hold the observed mix of users
    fixed as depth grows; the unobserved mix is the survivor bias of the module docstring.
    """
    frame = pages_frame(pages)
    table = hazard_by_depth(frame)
    rows = frame[frame["known"] & (frame["action_page_id"] >= 1)]
    y = rows["done"].to_numpy()
    reason = testable(y, rows["action_page_id"].to_numpy())
    coef = None
    trend = np.full(len(table), np.nan)
    if reason is None:
        X = rows[["action_page_id", "state_purchase_power", "hour_sin", "hour_cos"]]
        X = X.loc[:, X.nunique() > 1]
        res = glm(y, X, rows["session_id"].to_numpy())
        coef = ratio_of(res, "action_page_id")
        # fitted hazard at the profile means, for the figure
        grid = pd.DataFrame({c: np.full(len(table), rows[c].mean()) for c in X.columns})
        grid["action_page_id"] = table["action_page_id"].to_numpy()
        fitted = res.predict(
            np.column_stack([np.ones(len(grid)), grid[list(X.columns)].to_numpy()])
        )
        trend = np.where(table["action_page_id"].to_numpy() >= 1, fitted, np.nan)
    table = table.assign(trend=trend)
    rate = dict(zip(table["action_page_id"], table["rate"], strict=True))
    return make_result(
        key="fatigue",
        name="Fatigue",
        question="Past the first page, is a deeper page more likely to be the last one?",
        statistic="odds ratio of leaving per page of depth (pages 1-11)",
        method="logistic hazard model on pages 1-11 with known outcome, adjusted for purchase "
        "power and hour; session-clustered standard errors",
        coef=coef,
        expected=">",
        margin=MARGINS["ratio_per_step"],
        rows=rows,
        table=table,
        details={
            "bounce_rate": float(rate.get(0, math.nan)),
            "page1_rate": float(rate.get(1, math.nan)),
            "last_rate": float(table["rate"].iloc[-1]) if len(table) else math.nan,
            "last_depth": float(table["action_page_id"].iloc[-1]) if len(table) else math.nan,
        },
        reason=reason,
    )


def hour_of_day(
    pages: pd.DataFrame,
    night: Sequence[int] = NIGHT_HOURS,
    evening: Sequence[int] = EVENING_HOURS,
) -> HypothesisResult:
    """Hour: do sessions around 2 AM end faster than sessions around 8 PM?

    The churn rate per hour of day (pages with a known outcome, cluster-adjusted Wilson
    intervals) is the table behind the line chart. The test compares the two windows
    (``night`` and ``evening`` hours) on pages with a known outcome:
    logit h = a + b·[night] + depth fixed effects, clustered by session; the estimate is the
    odds ratio exp(b), night against evening at the same depth (night sessions are shorter, so
    an unadjusted rate would mix the hour with the depth mix). ``details`` holds each window's
    leave rate and mean pages per session, and the hours of the highest and lowest churn rate
    (``peak_hour``, ``peak_rate``, ``low_hour``, ``low_rate``).
    """
    frame = pages_frame(pages)
    known = frame[frame["known"] & frame["hour"].notna()]
    table = cluster_rates(known, "hour") if len(known) else pd.DataFrame()
    sessions = session_table(frame)
    if len(table):
        length = sessions.groupby("hour")["pages"].mean()
        table["mean_pages"] = table["hour"].map(length).to_numpy()
        table["window"] = np.select(
            [table["hour"].isin(night), table["hour"].isin(evening)],
            ["night", "evening"],
            default="",
        )
    rows = known[known["hour"].isin(list(night) + list(evening))]
    is_night = rows["hour"].isin(night).to_numpy().astype(float)
    coef, reason = None, "the log has no hour of day"
    if len(rows):
        coef, reason = _leave_odds_ratio(rows, pd.Series(is_night, index=rows.index, name="night"))
    details: dict[str, float] = {}
    if coef is not None:
        for label, hours in (("night", night), ("evening", evening)):
            part = rows[rows["hour"].isin(hours)]
            details[f"{label}_rate"] = float(part["done"].mean())
            details[f"{label}_mean_pages"] = float(
                sessions.loc[sessions["hour"].isin(hours), "pages"].mean()
            )
            details[f"{label}_sessions"] = float(part["session_id"].nunique())
        peak, low = table.loc[table["rate"].idxmax()], table.loc[table["rate"].idxmin()]
        details.update(
            peak_hour=float(peak["hour"]),
            peak_rate=float(peak["rate"]),
            low_hour=float(low["hour"]),
            low_rate=float(low["rate"]),
        )
    return make_result(
        key="hour",
        name="Hour of day",
        question="Do sessions around 2 AM (1-3 h) end faster than sessions around 8 PM (19-21 h)?",
        statistic="odds ratio of leaving, 1-3 h vs 19-21 h, same depth",
        method="logistic model of leaving on pages of the two windows with depth fixed "
        "effects; session-clustered standard errors",
        coef=coef,
        expected=">",
        margin=MARGINS["ratio_per_contrast"],
        rows=rows,
        table=table,
        details=details,
        reason=reason,
    )


def _box_stats(values: np.ndarray) -> dict[str, float]:
    """Tukey box-plot statistics (matplotlib's ``boxplot_stats``: quartiles, whiskers at the
    last points within 1.5 IQR) and the mean; NaN for no values."""
    keys = ("q1", "median", "q3", "whislo", "whishi", "mean")
    if len(values) == 0:
        return dict.fromkeys(keys, math.nan)
    stats = boxplot_stats(values, whis=1.5)[0]
    stats["median"] = stats["med"]
    return {k: float(stats[k]) for k in keys}


def purchase_power_value(
    pages: pd.DataFrame, *, n_boot: int = 300, random_state: int = 0
) -> HypothesisResult:
    """Purchase power vs total session reward: do higher levels spend more per session?

    Spearman's rank correlation between a session's purchase-power level and its total reward
    (Yuan; zero for the many sessions that buy nothing), one row per session (independent);
    p-value from scipy, interval from a bootstrap over sessions. The table has one row per
    level: ``sessions``, ``buying_share`` (sessions with a purchase), ``mean_reward`` and the
    box-plot statistics of the total reward of the *buying* sessions (the others are all 0).
    """

    sessions = session_table(pages)
    rows = []
    for level, s in sessions.groupby("state_purchase_power", sort=True):
        buying = s.loc[s["total_reward"] > 0, "total_reward"].to_numpy()
        rows.append(
            {
                "state_purchase_power": int(level),
                "sessions": len(s),
                "buying_share": float((s["total_reward"] > 0).mean()),
                "mean_reward": float(s["total_reward"].mean()),
                "buying_sessions": len(buying),
                **_box_stats(buying),
            }
        )
    table = pd.DataFrame(rows)
    x = sessions["state_purchase_power"].to_numpy(dtype=float)
    v = sessions["total_reward"].to_numpy(dtype=float)
    reason = testable(v, x)
    coef = None
    if reason is None:

        def rho(a: np.ndarray, b: np.ndarray) -> float:
            return float(spearmanr(a, b).statistic)

        test = spearmanr(x, v)
        low, high = bootstrap_ci(rho, x, v, n_boot=n_boot, level=LEVEL, random_state=random_state)
        coef = Coef(float(test.statistic), low, high, float(test.pvalue))
    return make_result(
        key="purchase_power_value",
        name="Purchase power and spend",
        question="Do sessions of higher purchase-power levels spend more in total?",
        statistic="Spearman correlation of purchase power and total session reward",
        method=f"rank correlation over sessions; percentile bootstrap over sessions "
        f"({n_boot} resamples)",
        coef=coef,
        expected=">",
        margin=MARGINS["correlation"],
        rows=pages,
        table=table,
        null=0.0,
        scale="difference",
        details={"buying_share": float((v > 0).mean()) if len(v) else math.nan},
        reason=reason,
    )


def purchase_power_churn(pages: pd.DataFrame) -> HypothesisResult:
    """Purchase power vs churn: do higher levels leave less, at the same depth?

    logit h = a + b·(purchase-power level) + depth fixed effects on pages with a known outcome,
    clustered by session; the estimate is the odds ratio per level, exp(b). The table holds the
    churn rate per level (cluster-adjusted Wilson intervals).
    """
    frame = pages_frame(pages)
    rows = frame[frame["known"]]
    table = cluster_rates(rows, "state_purchase_power")
    coef, reason = _leave_odds_ratio(rows, rows["state_purchase_power"].astype(float))
    return make_result(
        key="purchase_power_churn",
        name="Purchase power and churn",
        question="At the same depth, do users of higher purchase-power levels leave less?",
        statistic="odds ratio of leaving per purchase-power level, same depth",
        method="logistic model of leaving with depth fixed effects; session-clustered "
        "standard errors",
        coef=coef,
        expected="<",
        margin=MARGINS["ratio_per_step"],
        rows=rows,
        table=table,
        reason=reason,
    )


#: Engagement levels of the engagement table (clicks + carts on the page).
ENGAGEMENT_BINS = (0, 1, 2, 3, 4)


#: Depth bands of the engagement table.
DEPTH_BANDS = {"page 0": (0, 0), "pages 1-3": (1, 3), "pages 4-11": (4, MAX_PAGE_ID)}


def engagement_retention(pages: pd.DataFrame) -> HypothesisResult:
    """Engagement on page t vs retention at t + 1: does a page with a click or a cart more
    often lead to a request for the next page?

    logit h = a + b·[engagement > 0] + c·(purchase power) + depth fixed effects on pages with a
    known outcome, clustered by session; the estimate is the odds ratio of leaving exp(b)
    (below 1: engaged pages are followed by a next page more often). The table holds the
    retention rate 1 − h per engagement level (0, 1, 2, 3, 4+) and depth band; ``details``
    the retention of engaged and other pages, and in how many of the ``depth_bands`` the
    engaged pages are retained more often (``depth_bands_engaged_higher``).
    """
    frame = pages_frame(pages)
    rows = frame[frame["known"]].copy()
    level = np.minimum(rows["engagement"].to_numpy(), ENGAGEMENT_BINS[-1])
    rows["engagement_level"] = level
    depth = rows["action_page_id"].to_numpy()
    rows["depth_band"] = np.select(
        [(depth >= lo) & (depth <= hi) for lo, hi in DEPTH_BANDS.values()],
        list(DEPTH_BANDS),
        default="",
    )
    rows["stayed"] = 1 - rows["done"]
    table = cluster_rates(rows, ["depth_band", "engagement_level"], y="stayed")
    table["engagement_label"] = [
        f"{v}+" if v == ENGAGEMENT_BINS[-1] else str(v) for v in table["engagement_level"]
    ]
    engaged = (rows["engagement"].to_numpy() > 0).astype(float)
    coef, reason = _leave_odds_ratio(
        rows,
        pd.Series(engaged, index=rows.index, name="engaged"),
        [rows["state_purchase_power"].astype(float)],
    )
    details: dict[str, float] = {}
    if coef is not None:
        y = rows["done"].to_numpy()
        band = rows["depth_band"].to_numpy()
        gaps = [
            1 - y[(band == b) & (engaged == 1)].mean() > 1 - y[(band == b) & (engaged == 0)].mean()
            for b in DEPTH_BANDS
            if ((band == b) & (engaged == 1)).any() and ((band == b) & (engaged == 0)).any()
        ]
        details = {
            "retention_engaged": float(1 - y[engaged == 1].mean()),
            "retention_not_engaged": float(1 - y[engaged == 0].mean()),
            "engaged_share": float(engaged.mean()),
            "depth_bands": float(len(gaps)),
            "depth_bands_engaged_higher": float(sum(gaps)),
        }
    return make_result(
        key="engagement",
        name="Engagement",
        question="Is a page with a click or an add-to-cart less often the last page than a "
        "page without, at the same depth?",
        statistic="odds ratio of leaving, engaged vs not engaged page, same depth",
        method="logistic model of leaving with depth fixed effects and purchase power; "
        "session-clustered standard errors",
        coef=coef,
        expected="<",
        margin=MARGINS["ratio_per_contrast"],
        rows=rows,
        table=table,
        details=details,
        reason=reason,
    )


def purchase_reset(pages: pd.DataFrame) -> HypothesisResult:
    """Does a purchase reset the churn clock? The hazard on the page after a purchase against
    pages at the same depth whose previous page had none.

    Pages t ≥ 1 (within their session) with a known outcome; exposure = a purchase on page
    t − 1. logit h = a + b·[purchase on t − 1] + depth fixed effects + c·(purchase power)
    + e·ln(1 + engagement on t − 1), clustered by session; the estimate is exp(b). Depth is the
    main confounder (purchases and leaving both change with depth); purchase power and the
    previous page's engagement separate the reset from "buyers are engaged, loyal users" as far
    as observed columns allow. The table holds the hazard per depth for both kinds of page
    (Wilson intervals: one page per session and depth).
    """
    frame = pages_frame(pages).sort_values(["session_id", "line_no"], kind="stable")
    first = frame["session_id"].ne(frame["session_id"].shift()).to_numpy()
    prev_bought = np.r_[0, frame["purchased"].to_numpy()[:-1]]
    frame = frame.assign(after_purchase=np.where(first, 0, prev_bought), first_row=first)
    rows = frame[frame["known"] & ~frame["first_row"]]
    table = cluster_rates(rows, ["action_page_id", "after_purchase"])
    exposure = rows["after_purchase"].to_numpy().astype(float)
    coef, reason = _leave_odds_ratio(
        rows,
        pd.Series(exposure, index=rows.index, name="after_purchase"),
        [
            rows["state_purchase_power"].astype(float),
            np.log1p(rows["prev_engagement"].astype(float)),
        ],
    )
    details: dict[str, float] = {}
    if coef is not None:
        y = rows["done"].to_numpy()
        details = {
            "rate_after_purchase": float(y[exposure == 1].mean()),
            "rate_without": float(y[exposure == 0].mean()),
            "pages_after_purchase": float((exposure == 1).sum()),
        }
    return make_result(
        key="purchase_reset",
        name="Purchase resets the clock",
        question="At the same depth, is the page after a purchase less often the last one?",
        statistic="odds ratio of leaving, page after a purchase vs none, same depth",
        method="logistic model of leaving with depth fixed effects, purchase power and the "
        "previous page's engagement; session-clustered standard errors",
        coef=coef,
        expected="<",
        margin=MARGINS["ratio_per_contrast"],
        rows=rows,
        table=table,
        details=details,
        reason=reason,
    )


#: The item-mix variables, standardised over pages: name -> (label, transform of the column).
MIX_VARIABLES: dict[str, tuple[str, Callable[[pd.DataFrame], np.ndarray]]] = {
    "z_log_ctr": ("mean predicted CTR (log)", lambda f: np.log(f["mean_ctr"].to_numpy(float))),
    "z_log_cvr": ("mean predicted CVR (log)", lambda f: np.log(f["mean_cvr"].to_numpy(float))),
    "z_log_price": ("mean log price", lambda f: f["mean_log_price"].to_numpy(float)),
}


def _mix_design(rows: pd.DataFrame) -> pd.DataFrame:
    cols = {}
    for name, (_, transform) in MIX_VARIABLES.items():
        with np.errstate(divide="ignore"):
            v = transform(rows)
        v = np.where(np.isfinite(v), v, np.nan)
        sd = np.nanstd(v)
        cols[name] = (v - np.nanmean(v)) / sd if sd > 0 else np.zeros_like(v)
    X = pd.DataFrame(cols, index=rows.index).fillna(0.0)
    power = rows["state_purchase_power"].astype(float)
    # as in _leave_odds_ratio: a purchase power that does not vary adjusts for nothing
    adjust = [power] if power.nunique() > 1 else []
    return pd.concat([X, *adjust, depth_dummies(rows["action_page_id"])], axis=1)


def _mix_table(res: GLMResultsWrapper, outcome: str) -> pd.DataFrame:
    rows = []
    for name, (label, _) in MIX_VARIABLES.items():
        c = ratio_of(res, name)
        rows.append(
            {
                "outcome": outcome,
                "variable": name,
                "label": label,
                "ratio": c.estimate,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "p_value": c.p_value,
            }
        )
    return pd.DataFrame(rows)


def _mix_fit(
    rows: pd.DataFrame, y: np.ndarray, *, family: str, term: str, outcome: str
) -> tuple[Coef, pd.DataFrame]:
    """The GLM of ``y`` (one value per row of ``rows``) on :func:`_mix_design`, clustered by
    session: the ratio of ``term`` and the :func:`_mix_table` of all three mix terms."""
    res = glm(y, _mix_design(rows), rows["session_id"].to_numpy(), family=family)
    return ratio_of(res, term), _mix_table(res, outcome)


def item_mix_churn(pages: pd.DataFrame) -> HypothesisResult:
    """Item mix vs churn: does a page of more clickable items (higher mean predicted CTR) lead
    to less leaving?

    logit h = a + Σ_k b_k z_k + c·(purchase power) + depth fixed effects on pages with a known
    outcome, clustered by session, with z_k the page's standardised mean log CTR, mean log CVR
    and mean log price (:data:`MIX_VARIABLES`). The estimate is the odds ratio per standard
    deviation of the CTR term, exp(b_ctr); the table holds all three (the figure). The mix is
    not adjusted for the page's clicks: its effect through engagement is part of what the
    platform's choice of items does.
    """
    frame = pages_frame(pages)
    rows = frame[frame["known"]]
    y = rows["done"].to_numpy()
    reason = testable(y)
    coef, table = None, pd.DataFrame()
    if reason is None:
        coef, table = _mix_fit(
            rows, y, family="binomial", term="z_log_ctr", outcome="churn (odds ratio)"
        )
    return make_result(
        key="item_mix_churn",
        name="Item mix and churn",
        question="At the same depth, is a page of more clickable items (higher predicted CTR) "
        "less often the last one?",
        statistic="odds ratio of leaving per SD of the page's mean log CTR",
        method="logistic model of leaving on the standardised mix (CTR, CVR, price), purchase "
        "power and depth fixed effects; session-clustered standard errors",
        coef=coef,
        expected="<",
        margin=MARGINS["ratio_per_contrast"],
        rows=rows,
        table=table,
        reason=reason,
    )


def item_mix_spend(pages: pd.DataFrame) -> HypothesisResult:
    """Item mix vs spend: does a page of items more likely to convert (higher mean predicted
    CVR) sell more?

    Poisson pseudo-likelihood (log link) for the mean page reward,
    log E[reward] = a + Σ_k b_k z_k + c·(purchase power) + depth fixed effects, on all pages,
    clustered by session (the sandwich errors make it valid for a non-negative, zero-heavy
    amount in Yuan, whatever its variance); the estimate is the ratio of mean spend per
    standard deviation of the CVR term, exp(b_cvr); the table holds all three terms.
    """
    frame = pages_frame(pages)
    y = frame["reward"].to_numpy(dtype=float)
    reason = None if (y > 0).any() else "no page has a purchase"
    coef, table = None, pd.DataFrame()
    if reason is None:
        coef, table = _mix_fit(
            frame, y, family="poisson", term="z_log_cvr", outcome="spend (ratio of means)"
        )
    return make_result(
        key="item_mix_spend",
        name="Item mix and spend",
        question="At the same depth, does a page of items more likely to convert (higher "
        "predicted CVR) sell more?",
        statistic="ratio of mean page reward per SD of the page's mean log CVR",
        method="Poisson pseudo-likelihood (log link) on the standardised mix, purchase power "
        "and depth fixed effects; session-clustered standard errors",
        coef=coef,
        expected=">",
        margin=MARGINS["ratio_per_contrast"],
        rows=frame,
        table=table,
        reason=reason,
    )


def run_hypotheses(
    pages: pd.DataFrame,
    *,
    n_boot: int = 300,
    random_state: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[HypothesisResult, ...]:
    """The eight hypothesis tests, Holm-adjusted as one family (see the module docstring)."""
    frame = pages_frame(pages)
    tests: list[Callable[[pd.DataFrame], HypothesisResult]] = [
        fatigue,
        hour_of_day,
        lambda f: purchase_power_value(f, n_boot=n_boot, random_state=random_state),
        purchase_power_churn,
        engagement_retention,
        purchase_reset,
        item_mix_churn,
        item_mix_spend,
    ]
    results = []
    for test in tests:
        results.append(test(frame))
        if progress is not None:
            progress(1)
    return adjust(results)
