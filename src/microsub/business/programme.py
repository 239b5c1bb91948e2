"""A retention programme played in a simulator: interventions under a budget, page by page.

:func:`play` runs ``n`` simulated sessions under the logged page policy (the platform's own
ranking) and, after every page, lets a targeting policy (:mod:`microsub.business.targeting`)
propose interventions; proposals are granted in priority order while the budget lasts (it is
never exceeded). A granted intervention of tier ``k`` multiplies that shopper's probability of
leaving now by ``1 - e_k`` and costs ``c_k`` (an assumption: the log holds no intervention);
the simulator then plays the rest of the session.

Runs are compared on the same simulated shoppers (common random numbers): every session is
stepped with the same draws whatever the policy, so a session's path changes only where an
intervention changed its outcome, and per-session differences against the run without
interventions are paired.

Churn is the share of pages after which the shopper leaves (the micro-subscription's churn
per period): ``churn = leaves / pages``; ``churn reduction = 1 - churn / churn without``.
Money per month scales the per-session means by ``sessions_per_month``; value is the Yuan
spent times ``value_margin / yuan_per_usd``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from microsub.analysis.stats import LEVEL, z_value
from microsub.business.config import BusinessConfig
from microsub.business.targeting import NONE, Targeting
from microsub.business.value import StakeTable
from microsub.models.chain import SessionModels, pre_design
from microsub.sim.learned import LearnedSimulator
from microsub.sim.session import PageContext
from microsub.sim.truth import TrueSimulator

#: Bootstrap replicates of the churn-reduction interval.
N_BOOT = 300


def chain_risk(models: SessionModels) -> Callable[[PageContext], np.ndarray]:
    """The churn model's risk of a page just played: P(leave) by the chain's leave link."""

    def risk(ctx: PageContext) -> np.ndarray:
        x = pre_design(ctx.depth, ctx.purchase_power, ctx.hour, ctx.prev_engagement,
                       ctx.prev_value, ctx.prev_since_purchase, ctx.mix)  # fmt: skip
        return models.leave_probability(x, ctx.engagement, ctx.bought, ctx.value)

    return risk


@dataclass(frozen=True)
class ProgrammeRun:
    """``n`` sessions of one targeting policy.

    Attributes:
        policy, simulator: names.
        value: ``(n,)`` Yuan per session; pages: ``(n,)``; left: ``(n,)`` ended by leaving;
        spend: ``(n,)`` US$ of interventions per session; budget: US$ the run could spend.
        pages_log: one row per page played: ``session``, ``depth``, ``gender``,
            ``age_level``, ``risk``, ``p_leave`` (before any intervention), ``stake_usd``,
            ``tier`` (-1 none), ``cost``, ``left`` (after the page).
    """

    policy: str
    simulator: str
    value: np.ndarray
    pages: np.ndarray
    left: np.ndarray
    spend: np.ndarray
    budget: float
    pages_log: pd.DataFrame


@dataclass
class _Ledger:
    """What a run accumulates as it goes."""

    remaining: float
    records: list[dict[str, np.ndarray]]


def _grant(tier: np.ndarray, priority: np.ndarray, cost: np.ndarray, ledger: _Ledger) -> np.ndarray:
    """The proposals granted: best priority first, while the remaining budget pays."""
    proposed = np.flatnonzero(tier != NONE)
    order = proposed[np.argsort(-priority[proposed], kind="stable")]
    granted = order[np.cumsum(cost[order]) <= ledger.remaining + 1e-9]
    out = np.full(len(tier), NONE, np.int64)
    out[granted] = tier[granted]
    ledger.remaining -= float(cost[granted].sum())
    return out


def play(
    simulator: LearnedSimulator | TrueSimulator,
    targeting: Targeting,
    config: BusinessConfig,
    stake: StakeTable,
    risk: Callable[[PageContext], np.ndarray],
    *,
    n_sessions: int,
    seed: int,
    budget_usd: float | None = None,
    page_action: int = 0,
    name: str = "",
    label: str = "",
) -> ProgrammeRun:
    """Run ``n_sessions`` sessions of ``targeting`` (module docstring).

    Args:
        simulator: a batch simulator.
        targeting: the policy proposing interventions.
        config: the business configuration (tiers, money).
        stake: value at stake by depth and purchase power.
        risk: the churn model's risk of a page just played (:func:`chain_risk`).
        n_sessions: sessions to run.
        seed: seed of the simulator's draws (the same for every policy compared); the
            targeting's own randomness uses another stream.
        budget_usd: the run's budget (default: ``n_sessions`` times the monthly budget per
            session).
        page_action: the simulator's discrete action on every page (0: the logged ranking;
            another re-ranks every page, a lever that costs no intervention).
        name: the programme's name (default: the targeting policy's).
        label: the simulator's name in the result.
    """
    tiers = config.interventions
    effect = np.array([t.effect for t in tiers] + [0.0])  # index -1: no intervention
    price = np.array([t.cost_usd for t in tiers] + [0.0])
    budget = budget_usd if budget_usd is not None else n_sessions * config.budget_usd_per_session
    rng, policy_rng = np.random.default_rng(seed), np.random.default_rng(seed + 10_007)
    s = simulator.start(rng, n_sessions)
    active = np.ones(n_sessions, bool)
    value, pages = np.zeros(n_sessions), np.zeros(n_sessions, np.int64)
    left, spend = np.zeros(n_sessions, bool), np.zeros(n_sessions)
    ledger = _Ledger(budget, [])
    to_usd = config.value_margin / config.yuan_per_usd

    def decide(ctx: PageContext) -> np.ndarray:
        r = risk(ctx)
        stake_usd = stake.lookup(ctx.depth, ctx.purchase_power) * to_usd
        tier, priority = targeting.propose(r, stake_usd, tiers, policy_rng)
        tier = np.where(active, tier, NONE)
        granted = _grant(tier, priority, price[tier], ledger)
        spend[:] += price[granted]
        ledger.records.append({
            "session": np.flatnonzero(active), "depth": ctx.depth[active],
            "gender": ctx.gender[active], "age_level": ctx.age_level[active],
            "risk": r[active], "p_leave": ctx.p_leave[active], "stake_usd": stake_usd[active],
            "tier": granted[active], "cost": price[granted][active],
        })  # fmt: skip
        return 1.0 - effect[granted]

    while active.any():
        out = simulator.step(rng, s, np.full(n_sessions, page_action, np.int64), decide=decide)
        value[active] += out.reward[active]
        pages[active] += 1
        left[active] |= out.terminated[active]
        ledger.records[-1]["left"] = out.terminated[active]
        active &= ~(out.terminated | out.truncated)
    log = pd.DataFrame({k: np.concatenate([r[k] for r in ledger.records])
                        for k in ledger.records[0]})  # fmt: skip
    return ProgrammeRun(name or targeting.name, label or simulator.kind, value, pages, left,
                        spend, budget, log)  # fmt: skip


def _normal(x: np.ndarray) -> tuple[float, float, float]:
    half = z_value() * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def compare(run: ProgrammeRun, base: ProgrammeRun, config: BusinessConfig,
            seed: int = 0) -> dict[str, float | str]:  # fmt: skip
    """One row of the targeting table: ``run`` against ``base`` (no intervention), paired.

    Returns:
        ``policy``, ``simulator``, ``churn`` and ``churn_base`` (leaves per page),
        ``churn_reduction`` with ``_low``/``_high`` (session bootstrap, ``LEVEL``),
        ``retained_yuan`` per session (paired normal interval), per month in US$:
        ``retained_usd``, ``cost_usd``, ``net_usd`` (with interval), ``roi`` (net / cost),
        ``interventions`` per session, ``spent_share`` (of the run's budget).
    """
    n = len(run.value)
    churn = run.left.sum() / run.pages.sum()
    churn_base = base.left.sum() / base.pages.sum()
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(N_BOOT):
        i = rng.integers(0, n, n)
        boot.append(1 - (run.left[i].sum() / run.pages[i].sum())
                    / (base.left[i].sum() / base.pages[i].sum()))  # fmt: skip
    lo, hi = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    to_usd = config.value_margin / config.yuan_per_usd
    month = config.sessions_per_month
    kept, kept_lo, kept_hi = _normal(run.value - base.value)
    net, net_lo, net_hi = _normal((run.value - base.value) * to_usd - run.spend)
    cost = float(run.spend.mean()) * month
    return {
        "policy": run.policy,
        "simulator": run.simulator,
        "churn": float(churn),
        "churn_base": float(churn_base),
        "churn_reduction": float(1 - churn / churn_base),
        "churn_reduction_low": float(lo),
        "churn_reduction_high": float(hi),
        "retained_yuan": kept,
        "retained_yuan_low": kept_lo,
        "retained_yuan_high": kept_hi,
        "retained_usd": kept * to_usd * month,
        "cost_usd": cost,
        "net_usd": net * month,
        "net_usd_low": net_lo * month,
        "net_usd_high": net_hi * month,
        "roi": net * month / cost if cost > 0 else float("nan"),
        "interventions": float((run.pages_log["tier"] != NONE).sum() / n),
        "spent_share": float(run.spend.sum() / run.budget) if run.budget > 0 else 0.0,
    }


def paired_difference(
    a: ProgrammeRun, b: ProgrammeRun, config: BusinessConfig
) -> tuple[float, float, float]:
    """Net US$ per month of ``a`` minus ``b`` (same sessions), with a normal interval."""
    to_usd = config.value_margin / config.yuan_per_usd
    diff = (a.value - b.value) * to_usd - (a.spend - b.spend)
    mean, low, high = _normal(diff)
    month = config.sessions_per_month
    return mean * month, low * month, high * month
