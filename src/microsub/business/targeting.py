"""Whom to act on: targeting policies that pick an intervention tier for each page.

After each page, every shopper has a churn risk ``r`` (the churn model's probability that
they leave now) and a value at stake ``V`` (US$, :mod:`microsub.business.value`). A policy
proposes, per page, an intervention tier ``k`` (or none) and a priority; the programme
(:mod:`microsub.business.programme`) grants proposals in priority order while the budget
lasts. Tier ``k`` costs ``c_k`` and removes the share ``e_k`` of the leave probability, so its
expected gain is ``g_k = r * V * e_k`` (dollars of value kept) and its net gain ``g_k - c_k``.

* :class:`NoIntervention`: nothing (the baseline every policy is measured against);
* :class:`RiskTiers`: the framework's fixed tiers: the tier whose risk band holds ``r``, for
  every page; priority ``r``;
* :class:`ExpectedValue`: act where ``r V e_k > c_k``: the tier with the largest net gain,
  when its gain per dollar ``g_k / c_k`` is at least ``threshold`` (>= 1, so net gain > 0);
  priority ``g_k / c_k``. The threshold is set so that the budget is spent in order of gain per
  dollar until it runs out (:func:`calibrate_threshold`);
* :class:`RandomSpend`: the same spend at random: each page is proposed with probability
  ``rate``, with a tier drawn from ``tier_shares``; priority random.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from microsub.business.config import Intervention

#: Tier index of "no intervention".
NONE = -1


class Targeting(Protocol):
    """``propose(risk, stake_usd, rng) -> (tier (n,), priority (n,))``."""

    name: str

    def propose(
        self,
        risk: np.ndarray,
        stake_usd: np.ndarray,
        tiers: tuple[Intervention, ...],
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]: ...


def tier_of(risk: np.ndarray, tiers: tuple[Intervention, ...]) -> np.ndarray:
    """The index of the tier whose band ``[min_risk, max_risk)`` holds each risk (the top
    band includes 1)."""
    out = np.full(len(risk), NONE, np.int64)
    for k, t in enumerate(tiers):
        upper = risk <= t.max_risk if t.max_risk >= 1.0 else risk < t.max_risk
        out[(risk >= t.min_risk) & upper] = k
    return out


@dataclass(frozen=True)
class NoIntervention:
    """Never intervene."""

    name: str = "no intervention"

    def propose(self, risk, stake_usd, tiers, rng):  # noqa: ANN001, ANN201
        return np.full(len(risk), NONE, np.int64), np.zeros(len(risk))


@dataclass(frozen=True)
class RiskTiers:
    """The fixed risk tiers of the framework, on every page, highest risk first."""

    name: str = "fixed risk tiers"

    def propose(self, risk, stake_usd, tiers, rng):  # noqa: ANN001, ANN201
        return tier_of(risk, tiers), np.asarray(risk, float)


def gains(
    risk: np.ndarray, stake_usd: np.ndarray, tiers: tuple[Intervention, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``(gain, cost)``, each ``(n, n_tiers)``: expected dollars kept ``r V e_k`` and ``c_k``."""
    effect = np.array([t.effect for t in tiers])
    cost = np.array([t.cost_usd for t in tiers])
    gain = (np.asarray(risk, float) * np.asarray(stake_usd, float))[:, None] * effect[None, :]
    return gain, np.broadcast_to(cost, gain.shape)


@dataclass(frozen=True)
class ExpectedValue:
    """Act where the expected value kept exceeds the cost (module docstring).

    Attributes:
        threshold: smallest gain per dollar acted on (>= 1).
    """

    threshold: float = 1.0
    name: str = "expected-value targeting"

    def propose(self, risk, stake_usd, tiers, rng):  # noqa: ANN001, ANN201
        gain, cost = gains(risk, stake_usd, tiers)
        net = np.where(gain / cost >= max(self.threshold, 1.0), gain - cost, -np.inf)
        best = np.argmax(net, axis=1)
        rows = np.arange(len(best))
        act = np.isfinite(net[rows, best]) & (net[rows, best] > 0)
        tier = np.where(act, best, NONE)
        return tier, np.where(act, gain[rows, best] / cost[rows, best], 0.0)


@dataclass(frozen=True)
class RandomSpend:
    """Random pages, random tiers: a spend without targeting.

    Attributes:
        rate: probability that a page is proposed.
        tier_shares: probability of each tier among the proposals.
    """

    rate: float
    tier_shares: tuple[float, ...] = field(default=())
    name: str = "random allocation (same spend)"

    def propose(self, risk, stake_usd, tiers, rng):  # noqa: ANN001, ANN201
        n = len(risk)
        shares = np.asarray(self.tier_shares or [1.0 / len(tiers)] * len(tiers), float)
        tier = rng.choice(len(tiers), size=n, p=shares / shares.sum())
        chosen = rng.random(n) < self.rate
        return np.where(chosen, tier, NONE), rng.random(n)


def calibrate_threshold(ratio: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """The gain per dollar at which proposals sorted by it, best first, use up ``budget``.

    Args:
        ratio: gain per dollar of each proposal of a pilot run without a budget.
        cost: their costs, US$.
        budget: the budget of the run, US$.

    Returns:
        The ratio of the last proposal the budget pays for, or 1.0 (act on every positive net
        gain) when the budget covers them all.
    """
    order = np.argsort(-ratio, kind="stable")
    spent = np.cumsum(cost[order])
    k = int(np.searchsorted(spent, budget, side="right"))
    if k >= len(order):
        return 1.0
    return float(max(1.0, ratio[order][k]))
