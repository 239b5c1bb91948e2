"""What a retention programme is worth, at the configured traffic and at the platform's scale,
and the next steps ranked by what they are worth.

The business study (:mod:`microsub.business.study`) prices every programme per month at the
configured traffic (``sessions_per_month``), in each simulator it ran: the learned simulator
(what the models promise) and, on synthetic data, the true generator (what the shoppers would
deliver). This module turns one programme's rows into money at any scale:

* net value per session, US$: :math:`v = \\text{net}_{\\text{month}} / S_{\\text{config}}`
  (value kept times the value margin over the exchange rate, minus what the interventions
  cost, per session; intervals likewise from the study's 95 % bounds);
* per month at scale :math:`S`: :math:`v \\cdot S`; per year: :math:`12 \\, v \\cdot S`;
* the headline: the true generator's estimate when it ran (else the learned simulator's), with
  an interval from the lower of the simulators' lower bounds to the higher of their upper
  bounds, so the gap between the simulator and the truth is part of the uncertainty;
* the sim-to-truth ratio :math:`g = v_{\\text{truth}} / v_{\\text{learned}}`.

Linear scaling assumes the per-session effect and cost hold at any traffic (a budget that
grows with traffic). Pure functions: frames in, frames out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from microsub.business.config import BusinessConfig
from microsub.business.study import CONTROLS

#: The simulators of the business study, the one closest to the truth last.
SIMULATORS = ("learned", "truth")


def _rows(programmes: pd.DataFrame, policy: str) -> pd.DataFrame:
    rows = programmes[programmes["policy"] == policy].set_index("simulator")
    if rows.empty:
        raise KeyError(f"no programme {policy!r}; programmes: {sorted(set(programmes['policy']))}")
    return rows


def per_session(row: Mapping[str, Any], config: BusinessConfig) -> tuple[float, float, float]:
    """Net value per session in US$ (estimate, 95 % low, high): the study's monthly net value
    at the configured traffic divided by that traffic.

    Args:
        row: a programme row (``net_usd``, ``net_usd_low``, ``net_usd_high``; US$ a month).
        config: the configuration the study ran with.
    """
    s = config.sessions_per_month
    return (row["net_usd"] / s, row["net_usd_low"] / s, row["net_usd_high"] / s)


def worth_table(programmes: pd.DataFrame, policy: str, config: BusinessConfig) -> pd.DataFrame:
    """One programme's worth in each simulator that ran it.

    Args:
        programmes: the study's programme table (``policy``, ``simulator``, ``net_usd`` and
            its bounds, ``churn_reduction`` and its bounds).
        policy: the programme.
        config: the configuration the study ran with.

    Returns:
        One row per simulator (learned first): ``simulator``, ``churn_reduction`` (+ ``_low``,
        ``_high``), ``per_session`` (+ bounds, US$), ``per_month`` (+ bounds, US$ at the
        configured traffic), ``platform_month`` and ``platform_year`` (+ bounds, US$ at the
        platform's scale).
    """
    rows = _rows(programmes, policy)
    platform = config.platform_sessions_per_month
    out = []
    for sim in (s for s in SIMULATORS if s in rows.index):
        r = rows.loc[sim]
        v, lo, hi = per_session(r, config)
        record: dict[str, Any] = {"simulator": sim}
        for name in ("churn_reduction", "churn_reduction_low", "churn_reduction_high"):
            record[name] = float(r[name])
        for suffix, x in (("", v), ("_low", lo), ("_high", hi)):
            record[f"per_session{suffix}"] = x
            record[f"per_month{suffix}"] = x * config.sessions_per_month
            record[f"platform_month{suffix}"] = x * platform
            record[f"platform_year{suffix}"] = 12 * x * platform
        out.append(record)
    return pd.DataFrame(out)


@dataclass(frozen=True)
class Worth:
    """The headline worth of a programme at the platform's scale (US$).

    Attributes:
        policy: the programme.
        basis: ``"truth"`` (the true generator's estimate) or ``"learned"`` (no truth ran).
        per_session, month, month_low, month_high, year, year_low, year_high: the estimate
            and the interval (module docstring), per session and at the platform's scale.
        churn_reduction, churn_reduction_low, churn_reduction_high: in the basis simulator.
        gap: the sim-to-truth ratio of net value per session (None without the truth).
        sessions_per_month: the platform's sessions a month the money is scaled to.
    """

    policy: str
    basis: str
    per_session: float
    month: float
    month_low: float
    month_high: float
    year: float
    year_low: float
    year_high: float
    churn_reduction: float
    churn_reduction_low: float
    churn_reduction_high: float
    gap: float | None
    sessions_per_month: float


def headline(programmes: pd.DataFrame, policy: str, config: BusinessConfig) -> Worth:
    """The headline worth of ``policy`` at the platform's scale: the truth's estimate when it
    ran, with the envelope of both simulators' intervals (module docstring)."""
    t = worth_table(programmes, policy, config).set_index("simulator")
    basis = "truth" if "truth" in t.index else "learned"
    b = t.loc[basis]
    low = float(t["platform_month_low"].min())
    high = float(t["platform_month_high"].max())
    gap = None
    if basis == "truth" and t.loc["learned", "per_session"] != 0:
        gap = float(t.loc["truth", "per_session"] / t.loc["learned", "per_session"])
    return Worth(
        policy=policy,
        basis=basis,
        per_session=float(b["per_session"]),
        month=float(b["platform_month"]),
        month_low=low,
        month_high=high,
        year=12 * float(b["platform_month"]),
        year_low=12 * low,
        year_high=12 * high,
        churn_reduction=float(b["churn_reduction"]),
        churn_reduction_low=float(b["churn_reduction_low"]),
        churn_reduction_high=float(b["churn_reduction_high"]),
        gap=gap,
        sessions_per_month=config.platform_sessions_per_month,
    )


def best_spending(sensitivity: pd.DataFrame) -> pd.Series | None:
    """The row of the sensitivity table (``policy``, ``factor``, ``cost_usd``, ``net_usd``)
    with the largest net value among programmes that spend (controls excluded): how good paid
    interventions get under the most favourable scaled effect. None when none spends."""
    spending = sensitivity[(sensitivity["cost_usd"] > 0) & ~sensitivity["policy"].isin(CONTROLS)]
    return spending.loc[spending["net_usd"].idxmax()] if len(spending) else None


def next_steps(
    programmes: pd.DataFrame,
    verdict: Mapping[str, Any],
    gates: pd.DataFrame,
    config: BusinessConfig,
    *,
    synthetic: bool,
) -> pd.DataFrame:
    """What to do next, ranked by what it is worth a month; steps that cannot be priced from
    this run follow, in the order of the gates.

    Priced steps: test the recommended programme on live traffic (its headline worth); weigh
    the programme with the largest net value if it is not the recommended one (the difference
    of their worth at the platform's scale); stop every targeting programme that loses money
    (its loss a month at the configured budget; controls are
    comparisons, never funded). Unpriced: every gate that fails or was not
    measured, and, on synthetic data, rerunning on the real log.

    Args:
        programmes: the study's programme table.
        verdict: the study's verdict (``recommended``, ``best``).
        gates: :func:`~microsub.business.gates.evaluate_gates` rows (``gate``, ``verdict``,
            ``value``, ``target``).
        config: the configuration the study ran with.
        synthetic: whether the run's data is the synthetic generator's.

    Returns:
        ``step``, ``worth_usd_month`` (NaN when not priced), ``basis``; ranked.
    """
    rec = verdict["recommended"]
    rec_worth = headline(programmes, rec, config)
    priced = [(
        f"Test {rec} against the current ranking on live traffic",
        rec_worth.month,
        f"its net value a month at the platform's scale ({rec_worth.basis} simulator)",
    )]  # fmt: skip
    best = verdict.get("best")
    if best and best != rec:
        diff = headline(programmes, best, config).month - rec_worth.month
        priced.append((
            f"Weigh {best} against the recommendation: more value, less churn reduction",
            diff,
            "the difference of their net values a month at the platform's scale",
        ))  # fmt: skip
    for policy, rows in programmes.groupby("policy", sort=False):
        if policy in CONTROLS:
            continue
        r = rows.set_index("simulator")
        sim = "truth" if "truth" in r.index else "learned"
        if r.loc[sim, "cost_usd"] > 0 and r.loc[sim, "net_usd"] < 0:
            priced.append((
                f"Stop funding {policy}",
                -float(r.loc[sim, "net_usd"]),
                f"the money it loses a month at the configured budget ({sim} simulator)",
            ))  # fmt: skip
    priced.sort(key=lambda step: -step[1])
    unpriced = []
    for g in gates.itertuples(index=False):
        if g.verdict == "not measured":
            unpriced.append((f"Measure {g.gate}", float("nan"), f"gate {g.target}: not measured"))
        elif g.verdict == "fail":
            unpriced.append((
                f"Raise {g.gate} to {g.target}", float("nan"),
                "a failing gate: no programme ships until it passes",
            ))  # fmt: skip
    if synthetic:
        unpriced.append((
            "Rerun the whole pipeline on the real log", float("nan"),
            "every number of this run comes from the synthetic generator",
        ))  # fmt: skip
    return pd.DataFrame(priced + unpriced, columns=["step", "worth_usd_month", "basis"])
