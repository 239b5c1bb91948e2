"""Descriptive statistics of the pages: sessions, class balance, correlations, rewards,
survival. Pure: a pages frame in, small results out (no lake, no files).

Units and conventions
=====================

* A **page** at depth ``d`` is a row with ``action_page_id = d``; a **session** is a
  ``session_id``. The churn event of page ``d`` is ``done = 1``: the user left after page ``d``.
* **Known outcome.** A page whose session is *truncated* there below the cap (end of file, a
  page-id jump) has no known outcome: the log stops before we learn whether the user would have
  asked for the next page. Those pages are left out of every churn rate and churn model. A page
  truncated *at* the cap (page 11) counts as "did not leave": the user did not leave, the
  platform stopped the session.
* **Hazard** at depth ``d``: h(d) = (pages at depth d with done = 1) / (pages at depth d with a
  known outcome), the probability of leaving after page d among sessions that reached it. Each
  session has at most one page per depth, so the pages of one depth are independent and a
  Wilson (1927) interval is valid for them.
* **Survival** (Kaplan-Meier): a session's duration T is the number of pages after which its
  outcome is known: T = last page + 1 when it ended with ``done``; T = 12 when it was truncated
  at the cap (censored: it survived page 11); T = last page when truncated elsewhere (censored:
  the last page's outcome is unknown). A session whose first page is p > 0 (a page-id jump)
  enters the risk set at time p + 1 (delayed entry). With these conventions
  S(t) = Π_{d < t} (1 − h(d)) for sessions that start at page 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.exceptions import StatError
from lifelines.statistics import multivariate_logrank_test

from microsub.analysis.features import add_features, known_outcome
from microsub.analysis.stats import LEVEL
from microsub.contract import MAX_PAGE_ID

#: Purchase-power groups of the survival curves (levels as logged, 1..7).
PURCHASE_POWER_GROUPS: dict[str, tuple[int, ...]] = {
    "low (1-3)": (1, 2, 3),
    "middle (4-5)": (4, 5),
    "high (6-7)": (6, 7),
}


#: Pages after which the survival summary reads S(t).
SURVIVAL_AT = 5


#: Columns of the correlation matrix (pages table and derived features).
CORRELATION_COLUMNS = (
    "action_page_id",
    "state_purchase_power",
    "hour_sin",
    "hour_cos",
    "n_clicks",
    "n_carts",
    "n_favs",
    "n_purchases",
    "engagement",
    "reward",
    "mean_ctr",
    "mean_cvr",
    "mean_log_price",
    "cum_value",
    "pages_since_purchase",
    "done",
)


_DERIVED = ("hour_sin", "purchased", "cum_value", "pages_since_purchase", "prev_engagement")


@dataclass(frozen=True)
class RewardDistribution:
    """Non-zero page rewards (Yuan).

    Attributes:
        values: shape (n_nonzero,), the positive ``reward`` values.
        n_pages: pages looked at.
        share_nonzero: n_nonzero / n_pages.
        quantiles: ``{"p50": ..., "p90": ..., "p99": ...}`` of the positive values (Yuan).
        mean: mean positive value (Yuan).
        max: largest value (Yuan).
    """

    values: np.ndarray = field(repr=False, compare=False)
    n_pages: int
    share_nonzero: float
    quantiles: dict[str, float]
    mean: float
    max: float

    @property
    def n_nonzero(self) -> int:
        return int(len(self.values))

    @property
    def min(self) -> float:
        """Smallest positive value (Yuan; NaN when no page sells anything)."""
        return float(self.values.min()) if len(self.values) else math.nan


@dataclass(frozen=True)
class SurvivalCurves:
    """Kaplan-Meier curves of sessions by group (see "Survival" in the module docstring).

    Attributes:
        curves: one row per (group, pages): ``group``, ``pages`` (t, 0..12), ``survival``
            (S(t), share of sessions still running after t pages), ``ci_low``, ``ci_high``
            (lifelines' exponential Greenwood interval), ``at_risk``.
        summary: one row per group: ``group``, ``levels``, ``sessions``, ``events``,
            ``censored``, ``median_pages`` (inf when S never falls to 0.5), ``survival_at``
            (S after :data:`SURVIVAL_AT` pages).
        logrank_statistic, logrank_p: multivariate log-rank test of equal curves (delayed
            entry ignored: exact when no session opens with a page-id jump).
    """

    curves: pd.DataFrame
    summary: pd.DataFrame
    logrank_statistic: float
    logrank_p: float

    @property
    def smallest_gap_at(self) -> float:
        """Smallest difference between two groups' S(:data:`SURVIVAL_AT`) (a share of sessions;
        NaN with fewer than two groups)."""
        values = (
            np.sort(self.summary["survival_at"].to_numpy(dtype=float))
            if len(self.summary)
            else np.array([])
        )
        values = values[np.isfinite(values)]
        return float(np.diff(values).min()) if len(values) > 1 else math.nan

    @property
    def max_band_width(self) -> float:
        """Width of the widest confidence band, ``ci_high − ci_low`` over every group and t
        (a share of sessions; NaN without curves)."""
        if self.curves.empty:
            return math.nan
        width = (self.curves["ci_high"] - self.curves["ci_low"]).to_numpy(dtype=float)
        return float(np.nanmax(width)) if np.isfinite(width).any() else math.nan


def pages_frame(pages: pd.DataFrame) -> pd.DataFrame:
    """``pages`` with the derived features (added when absent) and ``known`` (outcome known)."""
    frame = pages if all(c in pages.columns for c in _DERIVED) else add_features(pages)
    if "known" not in frame.columns:
        frame = frame.copy()
        frame["known"] = known_outcome(frame)
    return frame


def session_table(pages: pd.DataFrame) -> pd.DataFrame:
    """One row per session.

    Returns:
        Columns ``session_id``, ``first_page``, ``last_page``, ``pages`` (rows), ``done``
        (1 if it ended with a terminal flag), ``truncated``, ``hour``, ``state_purchase_power``,
        ``total_reward`` (Yuan), ``n_purchases``, and the Kaplan-Meier ``duration`` and
        ``entry`` of the module docstring ("Survival").
    """
    df = pages.sort_values(["session_id", "line_no"], kind="stable")
    g = df.groupby("session_id", sort=True)
    out = pd.DataFrame(
        {
            "first_page": g["action_page_id"].first().astype(int),
            "last_page": g["action_page_id"].last().astype(int),
            "pages": g.size(),
            "done": g["done"].last().astype(int),
            "truncated": g["truncated"].last().astype(int),
            "hour": g["hour"].first(),
            "state_purchase_power": g["state_purchase_power"].first().astype(int),
            "total_reward": g["reward"].sum(),
            "n_purchases": g["n_purchases"].sum().astype(int),
        }
    ).reset_index()
    last = out["last_page"].to_numpy()
    capped = (out["truncated"].to_numpy() == 1) & (last >= MAX_PAGE_ID)
    out["duration"] = np.where(
        out["done"].to_numpy() == 1, last + 1, np.where(capped, MAX_PAGE_ID + 1, last)
    )
    first = out["first_page"].to_numpy()
    out["entry"] = np.where(first > 0, first + 1, 0)
    return out


def class_balance(pages: pd.DataFrame) -> pd.DataFrame:
    """Counts of the churn label ``done`` over pages.

    Returns:
        Two rows (``done`` 0 and 1): ``done``, ``label``, ``pages``, ``share``, and
        ``truncated`` (pages of that class without a known outcome: truncated below the cap).
    """
    done = pages["done"].to_numpy()
    unknown = (pages["truncated"].to_numpy() == 1) & (
        pages["action_page_id"].to_numpy() < MAX_PAGE_ID
    )
    n = len(done)
    rows = []
    for value, label in ((0, "stayed (asked for the next page)"), (1, "left after the page")):
        k = int((done == value).sum())
        rows.append(
            {
                "done": value,
                "label": label,
                "pages": k,
                "share": k / n if n else math.nan,
                "truncated": int(((done == value) & unknown).sum()),
            }
        )
    return pd.DataFrame(rows)


def correlation_matrix(
    pages: pd.DataFrame, columns: Sequence[str] = CORRELATION_COLUMNS
) -> pd.DataFrame:
    """Spearman rank correlations between numeric columns of the pages (and derived features).

    Rank correlation, because money and counts are heavy-tailed; columns that are constant in
    this data are dropped (their correlation is undefined).
    """
    frame = pages_frame(pages)
    cols = [c for c in columns if c in frame.columns and frame[c].nunique(dropna=True) > 1]
    return frame[cols].astype("float64").corr(method="spearman")


def reward_distribution(pages: pd.DataFrame) -> RewardDistribution:
    """The positive page rewards (Yuan) and their summary."""
    reward = pages["reward"].to_numpy(dtype=float)
    values = np.sort(reward[reward > 0])
    n = len(reward)
    if len(values):
        q = np.quantile(values, [0.5, 0.9, 0.99])
        quantiles = {"p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}
        mean, top = float(values.mean()), float(values.max())
    else:
        quantiles = {"p50": math.nan, "p90": math.nan, "p99": math.nan}
        mean = top = math.nan
    return RewardDistribution(
        values=values,
        n_pages=n,
        share_nonzero=len(values) / n if n else math.nan,
        quantiles=quantiles,
        mean=mean,
        max=top,
    )


def kaplan_meier(sessions: pd.DataFrame, label: str = "all") -> tuple[pd.DataFrame, float]:
    """Kaplan-Meier curve (lifelines) of a session table (:func:`session_table`).

    Sessions whose duration is below their entry (a page-id-jump session truncated on its first
    page: no known outcome) are left out. Without any session that ends with ``done`` (a log
    without terminal flags) there is no curve to estimate: survival and intervals are NaN.

    Returns:
        (curve, median): curve rows for t = 0..12 with ``group``, ``pages``, ``survival``,
        ``ci_low``, ``ci_high``, ``at_risk``; the median number of pages (inf if S stays
        above 0.5, NaN without events).
    """

    s = sessions[sessions["duration"] >= sessions["entry"]]
    timeline = np.arange(0, MAX_PAGE_ID + 2)
    kmf = KaplanMeierFitter(alpha=1 - LEVEL)
    entry = s["entry"].to_numpy() if (s["entry"] > 0).any() else None
    try:
        if not len(s) or not s["done"].any():
            raise StatError("no session ends with a terminal flag")
        kmf.fit(
            s["duration"], event_observed=s["done"], entry=entry, timeline=timeline, label=label
        )
    except StatError:
        empty = np.full(len(timeline), np.nan)
        curve = pd.DataFrame(
            {
                "group": label,
                "pages": timeline,
                "survival": empty,
                "ci_low": empty,
                "ci_high": empty,
                "at_risk": np.zeros(len(timeline), dtype=int),
            }
        )
        return curve, math.nan
    ci = kmf.confidence_interval_survival_function_
    table = kmf.event_table.reindex(timeline)
    at_risk = table["at_risk"].ffill().bfill().to_numpy()
    curve = pd.DataFrame(
        {
            "group": label,
            "pages": timeline,
            "survival": kmf.survival_function_.iloc[:, 0].to_numpy(),
            "ci_low": ci.iloc[:, 0].to_numpy(),
            "ci_high": ci.iloc[:, 1].to_numpy(),
            "at_risk": at_risk.astype(int),
        }
    )
    return curve, float(kmf.median_survival_time_)


def survival_by_purchase_power(
    pages: pd.DataFrame, groups: Mapping[str, tuple[int, ...]] = PURCHASE_POWER_GROUPS
) -> SurvivalCurves:
    """Kaplan-Meier curves of sessions by purchase-power group, and a log-rank test.

    Args:
        pages: the pages table.
        groups: label -> purchase-power levels; sessions outside every group are left out.
    """

    sessions = session_table(pages)
    curves, rows, parts = [], [], []
    for label, levels in groups.items():
        s = sessions[sessions["state_purchase_power"].isin(levels)]
        if s.empty:
            continue
        curve, median = kaplan_meier(s, label)
        curves.append(curve)
        s5 = curve.loc[curve["pages"] == SURVIVAL_AT, "survival"]
        rows.append(
            {
                "group": label,
                "levels": ", ".join(str(v) for v in levels),
                "sessions": len(s),
                "events": int(s["done"].sum()),
                "censored": int((s["done"] == 0).sum()),
                "median_pages": median,
                "survival_at": float(s5.iloc[0]) if len(s5) else math.nan,
            }
        )
        parts.append(s.assign(group=label))
    stat, p = math.nan, math.nan
    if len(parts) > 1:
        both = pd.concat(parts)
        if both["done"].nunique() > 1:
            test = multivariate_logrank_test(both["duration"], both["group"], both["done"])
            stat, p = float(test.test_statistic), float(test.p_value)
    return SurvivalCurves(
        curves=pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(),
        summary=pd.DataFrame(rows),
        logrank_statistic=stat,
        logrank_p=p,
    )


@dataclass(frozen=True)
class TrendFit:
    """How the fatigue trend, one logistic slope over pages 1-11, meets the observed hazard.

    Attributes:
        table: one row per depth d >= 1 of :func:`fatigue`'s table: ``action_page_id``,
            ``pages`` (at risk), ``rate``, ``ci_low``, ``ci_high``, ``trend`` (shares),
            ``gap`` (trend − rate, a share: positive where the trend overshoots) and
            ``outside`` (``"above"`` or ``"below"`` the interval, or ``""``).
        above, below: the depths where the trend lies above or below the observed interval.
        max_overshoot: the largest gap at the ``above`` depths (a share; NaN when none).
        max_overshoot_depth: the depth of that gap (NaN when none).
        max_undershoot: the largest rate − trend at the ``below`` depths (a share; NaN when
            none).
        pages_share_above: share of the fit's pages (depths >= 1) at the ``above`` depths.
        rises_every_page: the observed hazard rises from each depth d >= 1 to the next.
        fitted: whether there is a trend at all (False when the fatigue test could not run).
    """

    table: pd.DataFrame
    above: tuple[int, ...]
    below: tuple[int, ...]
    max_overshoot: float
    max_overshoot_depth: float
    max_undershoot: float
    pages_share_above: float
    rises_every_page: bool
    fitted: bool


def trend_fit(table: pd.DataFrame) -> TrendFit:
    """Where the fitted fatigue trend leaves the observed hazard's intervals.

    A single slope on the log-odds scale cannot bend: where the observed hazard flattens (at
    the deepest pages, which few sessions reach, so that they weigh little in the fit) the
    trend runs on and overshoots it.

    Args:
        table: :func:`fatigue`'s ``result.table`` (``action_page_id``, ``pages``, ``rate``,
            ``ci_low``, ``ci_high``, ``trend``).
    """
    t = table[table["action_page_id"] >= 1].reset_index(drop=True)
    t = t[["action_page_id", "pages", "rate", "ci_low", "ci_high", "trend"]].copy()
    t["gap"] = t["trend"] - t["rate"]
    t["outside"] = np.select(
        [t["trend"] > t["ci_high"], t["trend"] < t["ci_low"]], ["above", "below"], default=""
    )
    over, under = t[t["outside"] == "above"], t[t["outside"] == "below"]
    worst = over.loc[over["gap"].idxmax()] if len(over) else None
    total = float(t["pages"].sum())
    rates = t["rate"].to_numpy()
    return TrendFit(
        table=t,
        above=tuple(int(d) for d in over["action_page_id"]),
        below=tuple(int(d) for d in under["action_page_id"]),
        max_overshoot=float(worst["gap"]) if worst is not None else math.nan,
        max_overshoot_depth=float(worst["action_page_id"]) if worst is not None else math.nan,
        max_undershoot=float(-under["gap"].min()) if len(under) else math.nan,
        pages_share_above=float(over["pages"].sum()) / total if total else math.nan,
        rises_every_page=bool(len(rates) > 1 and (np.diff(rates) > 0).all()),
        fitted=bool(t["trend"].notna().any()),
    )
