"""Uplift: which targeting score finds the shoppers an intervention actually keeps.

A simulated randomised trial: every page of every simulated session is treated with one
intervention with probability 1/2, independently (:func:`trial`). For a targeting score, the
**Qini curve** ranks the pages by score, best first, and at each fraction ``phi`` of them counts
the stays the treatment added (Radcliffe, 2007)::

    Q(phi) = Y_T(phi) - Y_C(phi) * N_T(phi) / N_C(phi)

with ``Y`` the pages after which the shopper stayed and ``N`` the pages, among the treated
(``T``) and control (``C``) pages in the top ``phi``. A score that finds persuadable shoppers
rises fast; a random score follows the diagonal to ``Q(1)``. The Qini coefficient is the area
between a curve and that diagonal, as a share of the area under the diagonal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from microsub.business.config import BusinessConfig, Intervention
from microsub.business.programme import ProgrammeRun, play
from microsub.business.targeting import NONE
from microsub.business.value import StakeTable
from microsub.sim.learned import LearnedSimulator

#: Points of a Qini curve.
CURVE_POINTS = 101


class _Coin:
    """A targeting policy that treats each page with probability 1/2 with one tier."""

    name = "randomised trial (half of the pages treated)"

    def __init__(self, tier: int) -> None:
        self.tier = tier

    def propose(self, risk, stake_usd, tiers, rng):  # noqa: ANN001, ANN201
        treat = rng.random(len(risk)) < 0.5
        return np.where(treat, self.tier, NONE), np.ones(len(risk))


def trial(
    simulator: LearnedSimulator,
    config: BusinessConfig,
    stake: StakeTable,
    risk,  # noqa: ANN001 - a risk function of a page context
    *,
    tier: int,
    n_sessions: int,
    seed: int,
) -> ProgrammeRun:
    """A randomised trial of intervention ``tier`` (budget unlimited)."""
    return play(simulator, _Coin(tier), config, stake, risk, n_sessions=n_sessions, seed=seed,
                budget_usd=float("inf"))  # fmt: skip


def scores(log: pd.DataFrame, tier: Intervention) -> dict[str, np.ndarray]:
    """The targeting scores of the trial's pages: churn risk, expected dollars kept by the
    tier (``risk * stake * effect``), and a random score."""
    rng = np.random.default_rng(0)
    return {
        "churn risk": log["risk"].to_numpy(),
        "expected value kept": (log["risk"] * log["stake_usd"]).to_numpy() * tier.effect,
        "random": rng.random(len(log)),
    }


def qini_curve(score: np.ndarray, treated: np.ndarray, stayed: np.ndarray) -> pd.DataFrame:
    """``phi`` (share of pages targeted) and ``qini`` (:data:`CURVE_POINTS` points)."""
    order = np.argsort(-score, kind="stable")
    t, y = treated[order].astype(float), stayed[order].astype(float)
    n_t, n_c = np.cumsum(t), np.cumsum(1 - t)
    y_t, y_c = np.cumsum(t * y), np.cumsum((1 - t) * y)
    q = y_t - np.divide(y_c * n_t, n_c, out=np.zeros_like(y_c), where=n_c > 0)
    k = np.linspace(0, len(score), CURVE_POINTS).astype(int)
    return pd.DataFrame({"phi": k / len(score), "qini": np.r_[0.0, q][k]})


def qini_coefficient(curve: pd.DataFrame) -> float:
    """Area between the curve and the random diagonal, over the diagonal's area."""
    phi, q = curve["phi"].to_numpy(), curve["qini"].to_numpy()
    diagonal = phi * q[-1]
    area = float(np.sum((q[1:] + q[:-1] - diagonal[1:] - diagonal[:-1]) / 2 * np.diff(phi)))
    return area / (q[-1] / 2) if q[-1] > 0 else float("nan")


def qini_table(run: ProgrammeRun, tier: Intervention) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Qini curves of every score on a trial, and each score's Qini coefficient.

    Returns:
        ``(curves, summary)``: curves ``score``, ``phi``, ``qini`` (stays added per page of the
        trial); summary ``score``, ``qini_coefficient``, ``stays_added`` (at ``phi = 1``).
    """
    log = run.pages_log
    treated = log["tier"].to_numpy() != NONE
    stayed = ~log["left"].to_numpy().astype(bool)
    curves, rows = [], []
    for name, score in scores(log, tier).items():
        c = qini_curve(score, treated, stayed).assign(score=name)
        c["qini"] /= len(log)
        curves.append(c)
        rows.append({"score": name, "qini_coefficient": qini_coefficient(c),
                     "stays_added": float(c["qini"].iloc[-1])})  # fmt: skip
    return pd.concat(curves, ignore_index=True), pd.DataFrame(rows)
