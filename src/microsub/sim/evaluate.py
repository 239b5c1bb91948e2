"""Policies evaluated with intervals, the simulator checked against held-out sessions, and the
gap between what a learned simulator promises and what the truth delivers.

Intervals: sessions are independent, so the mean Yuan per session and the mean pages per
session get normal intervals ``mean +- z sd / sqrt(n)`` (n >= 10,000 sessions per policy by
default), and the churn by depth (the hazard: the share of pages at depth ``d`` after which the
shopper left) a Wilson interval per depth (:func:`microsub.analysis.stats.wilson_interval`).
Every policy of a comparison is run on the same seed: the same shoppers and, as far as the
policies let them, the same draws (common random numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from microsub.analysis.describe import session_table
from microsub.analysis.features import known_outcome
from microsub.analysis.stats import LEVEL, wilson_interval, z_value
from microsub.contract import MAX_PAGE_ID
from microsub.sim.candidates import N_ACTIONS, support_share
from microsub.sim.learned import LearnedSimulator
from microsub.sim.policies import Policy
from microsub.sim.truth import TrueSimulator

#: Sessions per policy and simulator.
N_SESSIONS = 10_000
#: Depths of the hazard tables: 0..11.
DEPTHS = np.arange(MAX_PAGE_ID + 1)

#: Tolerances of the validation, stated before any comparison was run: the learned simulator
#: under the logged policy against the held-out sessions (plus the sampling error of the
#: comparison, see :func:`validation_table`).
TOLERANCES = {
    "reach": 0.03,  # share of sessions reaching page d, any d: absolute difference
    "hazard": 0.03,  # churn at depth d, depths with >= HAZARD_MIN_PAGES held-out pages
    "mean_pages": 0.05,  # mean pages per session: relative difference
    "mean_value": 0.10,  # mean Yuan per session: relative difference
    "buying_share": 0.02,  # share of sessions with a purchase: absolute difference
}
#: Held-out pages a depth needs before its hazard is held to the tolerance.
HAZARD_MIN_PAGES = 200


@dataclass(frozen=True)
class Rollout:
    """``n`` simulated sessions of one policy.

    Attributes:
        policy: the policy's name; simulator: which simulator ran it.
        value: ``(n,)`` Yuan per session; pages: ``(n,)`` pages shown; left: ``(n,)`` ended
            by leaving (else at the page cap); bought: ``(n,)`` any purchase.
        at_risk, leaves: ``(12,)`` pages shown and pages left after, by depth.
        actions: ``(10,)`` how often each discrete action was taken.
        support: share of the pages shown whose item mix lies within the logged pages' central
            99 % range (NaN when no logged mixes were given).
    """

    policy: str
    simulator: str
    value: np.ndarray
    pages: np.ndarray
    left: np.ndarray
    bought: np.ndarray
    at_risk: np.ndarray
    leaves: np.ndarray
    actions: np.ndarray
    support: float


def rollout(
    simulator: LearnedSimulator | TrueSimulator,
    policy: Policy,
    *,
    n_sessions: int = N_SESSIONS,
    seed: int = 0,
    label: str = "",
    logged_mix: np.ndarray | None = None,
) -> Rollout:
    """Run ``n_sessions`` whole sessions of ``policy`` in ``simulator`` (all at once).

    Args:
        simulator: a batch simulator.
        policy: the policy.
        n_sessions: sessions to run.
        seed: seed of every draw.
        label: the simulator's name in the result.
        logged_mix: ``(m, 3)`` item mixes of logged pages, for :attr:`Rollout.support`.
    """
    rng = np.random.default_rng(seed)
    s = simulator.start(rng, n_sessions)
    active = np.arange(n_sessions)
    value, pages = np.zeros(n_sessions), np.zeros(n_sessions, np.int64)
    left, bought = np.zeros(n_sessions, bool), np.zeros(n_sessions, bool)
    at_risk, leaves = np.zeros(len(DEPTHS), np.int64), np.zeros(len(DEPTHS), np.int64)
    actions = np.zeros(N_ACTIONS, np.int64)
    shown: list[np.ndarray] = []
    while len(active):
        action = np.asarray(policy(s.observation(), s.options, rng), np.int64)
        if logged_mix is not None:
            shown.append(s.options[np.arange(len(s)), action])
        depth = s.depth.copy()
        out = simulator.step(rng, s, action)
        value[active] += out.reward
        pages[active] += 1
        bought[active] |= out.bought
        left[active] |= out.terminated
        at_risk += np.bincount(depth, minlength=len(DEPTHS))[: len(DEPTHS)]
        leaves += np.bincount(depth[out.terminated], minlength=len(DEPTHS))[: len(DEPTHS)]
        actions += np.bincount(action, minlength=N_ACTIONS)
        keep = ~(out.terminated | out.truncated)
        if not keep.all():
            s, active = s.take(np.flatnonzero(keep)), active[keep]
    support = support_share(np.concatenate(shown), logged_mix) if logged_mix is not None else np.nan
    name = getattr(policy, "name", type(policy).__name__)
    return Rollout(name, label or simulator.kind, value, pages, left, bought, at_risk, leaves,
                   actions, support)  # fmt: skip


def mean_interval(x: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, low, high)``: the normal interval of a mean of independent values."""
    x = np.asarray(x, dtype=float)
    half = z_value() * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def summary(r: Rollout) -> dict[str, float | str]:
    """One row: value and pages per session with intervals, churn, buying share, support."""
    value, v_lo, v_hi = mean_interval(r.value)
    pages, p_lo, p_hi = mean_interval(r.pages)
    return {
        "policy": r.policy,
        "simulator": r.simulator,
        "sessions": len(r.value),
        "value": value,
        "value_low": v_lo,
        "value_high": v_hi,
        "pages": pages,
        "pages_low": p_lo,
        "pages_high": p_hi,
        "churn_share": float(r.left.mean()),
        "buying_share": float(r.bought.mean()),
        "support": r.support,
    }


def policy_table(rollouts: Sequence[Rollout]) -> pd.DataFrame:
    """:func:`summary` of each rollout, one row per (policy, simulator)."""
    return pd.DataFrame([summary(r) for r in rollouts])


def hazard_table(r: Rollout) -> pd.DataFrame:
    """Churn by depth of a rollout: ``depth``, ``pages``, ``left``, ``rate``, ``ci_low``,
    ``ci_high`` (Wilson), depths with at least one page."""
    keep = r.at_risk > 0
    low, high = wilson_interval(r.leaves[keep], r.at_risk[keep])
    return pd.DataFrame(
        {
            "depth": DEPTHS[keep],
            "pages": r.at_risk[keep],
            "left": r.leaves[keep],
            "rate": r.leaves[keep] / r.at_risk[keep],
            "ci_low": low,
            "ci_high": high,
        }
    )


@dataclass(frozen=True)
class Observed:
    """Held-out logged sessions, summarised as a :class:`Rollout` is.

    Attributes:
        value, pages, left, bought: per complete session (starting at page 0, ending by leaving
            or at the cap).
        at_risk, leaves: ``(12,)`` pages with a known outcome and pages left after, by depth.
    """

    value: np.ndarray
    pages: np.ndarray
    left: np.ndarray
    bought: np.ndarray
    at_risk: np.ndarray
    leaves: np.ndarray

    @classmethod
    def from_pages(cls, pages: pd.DataFrame) -> Observed:
        """From a pages table (contract columns)."""
        sessions = session_table(pages)
        whole = (sessions["first_page"] == 0) & (
            (sessions["done"] == 1) | (sessions["last_page"] >= MAX_PAGE_ID)
        )
        s = sessions[whole]
        known = pages[known_outcome(pages)]
        depth = known["action_page_id"].to_numpy().astype(np.int64)
        done = known["done"].to_numpy() == 1
        return cls(
            value=s["total_reward"].to_numpy(float),
            pages=s["pages"].to_numpy(),
            left=s["done"].to_numpy() == 1,
            bought=s["n_purchases"].to_numpy() > 0,
            at_risk=np.bincount(depth, minlength=len(DEPTHS))[: len(DEPTHS)],
            leaves=np.bincount(depth[done], minlength=len(DEPTHS))[: len(DEPTHS)],
        )

    def as_rollout(self) -> Rollout:
        """The held-out sessions in a rollout's shape (policy ``"logged"``)."""
        return Rollout("logged", "held-out sessions", self.value, self.pages, self.left,
                       self.bought, self.at_risk, self.leaves, np.zeros(N_ACTIONS, np.int64),
                       np.nan)  # fmt: skip


def reach(pages: np.ndarray) -> np.ndarray:
    """``(11,)`` share of sessions that reach page d, for d = 1..11."""
    return np.array([(pages > d).mean() for d in range(1, MAX_PAGE_ID + 1)])


def _proportion_se(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n)) if n > 0 else np.nan


def _mean_se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan


def validation_table(sim: Rollout, held_out: Observed, fitted_on: int) -> pd.DataFrame:
    """The learned simulator under the logged policy against held-out sessions.

    A check passes when ``|difference| <= tolerance + z * se``: the tolerance is what we accept
    of the simulator (:data:`TOLERANCES`); ``se``, the standard error of the difference, is what
    finite samples leave unknown. The held-out side's is its sampling error; the simulated
    side's is that of a sample of ``min(simulated, fitted_on)`` sessions, because the
    simulator's parameters carry the sampling error of the ``fitted_on`` sessions it was fitted
    on, however many sessions it plays (for relative checks, both on the relative scale).

    Returns:
        One row per check: ``check``, ``simulated``, ``held_out``, ``difference``,
        ``tolerance``, ``sampling`` (``z * se``), ``within`` (bool), ``relative``.
    """
    rows = []
    z = z_value()

    def add(check: str, values: tuple[float, float], ses: tuple[float, float], key: str,
            relative: bool) -> None:  # fmt: skip
        (a, b), (se_a, se_b) = values, ses
        diff = (a / b - 1) if relative else a - b
        se = float(np.hypot(se_a / b, se_b * a / b**2) if relative else np.hypot(se_a, se_b))
        tol = TOLERANCES[key]
        rows.append({"check": check, "simulated": a, "held_out": b, "difference": diff,
                     "tolerance": tol, "sampling": z * se, "within": abs(diff) <= tol + z * se,
                     "relative": relative})  # fmt: skip

    n_sim, n_obs = min(len(sim.pages), fitted_on), len(held_out.pages)
    for d, (a, b) in enumerate(zip(reach(sim.pages), reach(held_out.pages), strict=True), 1):
        ses = (_proportion_se(a, n_sim), _proportion_se(b, n_obs))
        add(f"sessions reaching page {d}", (a, b), ses, "reach", relative=False)
    for d in DEPTHS:
        if held_out.at_risk[d] >= HAZARD_MIN_PAGES and sim.at_risk[d] > 0:
            h_sim = sim.leaves[d] / sim.at_risk[d]
            h_obs = held_out.leaves[d] / held_out.at_risk[d]
            ses = (
                _proportion_se(h_sim, min(sim.at_risk[d], held_out.at_risk[d] * fitted_on / n_obs)),
                _proportion_se(h_obs, held_out.at_risk[d]),
            )
            add(f"churn after page {d}", (h_sim, h_obs), ses, "hazard", relative=False)
    for check, key, a, b in (
        ("pages per session", "mean_pages", sim.pages, held_out.pages),
        ("Yuan per session", "mean_value", sim.value, held_out.value),
    ):
        se_sim = a.std(ddof=1) / np.sqrt(n_sim)
        add(check, (a.mean(), b.mean()), (se_sim, _mean_se(b)), key, relative=True)
    a, b = sim.bought.mean(), held_out.bought.mean()
    add("sessions with a purchase", (a, b), (_proportion_se(a, n_sim), _proportion_se(b, n_obs)),
        "buying_share", relative=False)  # fmt: skip
    return pd.DataFrame(rows)


def gap_table(promised: Sequence[Rollout], other: Mapping[str, Sequence[Rollout]]) -> pd.DataFrame:
    """What a simulator promised each policy against what other simulators delivered.

    Args:
        promised: the rollouts in the simulator the policies were learned in.
        other: name -> rollouts of the same policies (same order) elsewhere.

    Returns:
        One row per policy: ``policy``, ``promised`` (Yuan per session), and per other
        simulator its value and ``gap_<name>`` = delivered - promised.
    """
    table = pd.DataFrame(
        {"policy": [r.policy for r in promised], "promised": [r.value.mean() for r in promised]}
    )
    for name, rollouts in other.items():
        table[name] = [r.value.mean() for r in rollouts]
        table[f"gap_{name}"] = table[name] - table["promised"]
    return table


def ranking_agreement(gaps: pd.DataFrame, column: str) -> dict[str, float | bool | str]:
    """Does the ranking of policies by what was promised survive in ``column``?

    Returns:
        ``spearman`` (rank correlation of promised and delivered values over the policies),
        ``best_promised`` and ``best_delivered`` (policy names), and ``same_best``.
    """
    rho = float(spearmanr(gaps["promised"], gaps[column]).statistic)
    best_p = str(gaps.loc[gaps["promised"].idxmax(), "policy"])
    best_d = str(gaps.loc[gaps[column].idxmax(), "policy"])
    return {"spearman": rho, "best_promised": best_p, "best_delivered": best_d,
            "same_best": best_p == best_d}  # fmt: skip
