"""The state of simulated sessions, what a policy observes of it, and what a step returns.

Both simulators (the learned one, :mod:`microsub.sim.learned`, and the true generator,
:mod:`microsub.sim.truth`) keep ``n`` sessions as arrays of shape ``(n,)`` in a
:class:`Sessions`, step them all at once and return a :class:`Step`; the Gymnasium
environments (:mod:`microsub.sim.env`, :mod:`microsub.sim.vector`) wrap them.

The observation of a session at the start of page ``t`` (:data:`OBSERVATION`):

====  ===================  ==========================================================  ========
 idx   name                 meaning                                                     range
====  ===================  ==========================================================  ========
 0     depth                page depth t (``action_page_id``)                           0..11
 1     purchase_power       the shopper's purchase-power level                          0..127
 2     hour_sin             sin(2 pi hour / 24) (0 when the log has no hour)            -1..1
 3     hour_cos             cos(2 pi hour / 24)                                         -1..1
 4     last_engagement      clicks + carts on page t-1 (0 on page 0)                    0..100
 5     session_value        Yuan spent on pages 0..t-1                                  0..1e7
 6     pages_since_purchase pages since the last purchase at the end of page t-1        0..12
                            (counting as if one happened just before page 0)
====  ===================  ==========================================================  ========

Age level and gender are kept (for fairness audits) but never observed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from microsub.contract import MAX_PAGE_ID

#: Names of the observation's entries, in order.
OBSERVATION = (
    "depth",
    "purchase_power",
    "hour_sin",
    "hour_cos",
    "last_engagement",
    "session_value",
    "pages_since_purchase",
)
#: Lower and upper bounds of the observation.
OBS_LOW = np.array([0, 0, -1, -1, 0, 0, 0], dtype=np.float32)
OBS_HIGH = np.array([MAX_PAGE_ID, 127, 1, 1, 100, 1e7, MAX_PAGE_ID + 1], dtype=np.float32)


@dataclass
class Sessions:
    """``n`` running sessions; every array has shape ``(n,)``.

    Attributes:
        depth: the page about to be shown.
        purchase_power, hour, age_level, gender: the shopper (hour NaN when unknown).
        last_engagement, session_value, since_purchase: the history (observation 4-6).
        options: ``(n, n_actions, 3)`` item mix each discrete action would show on this page.
        pool: index of the page's candidate pool (learned simulator) or -1.
        hour_sin, hour_cos: the hour on the circle (0 when unknown), observation 2-3.
        latent: what a simulator keeps that nobody observes, arrays with ``n`` rows (the
            true generator's shopper propensities and the page's candidate items).
    """

    depth: np.ndarray
    purchase_power: np.ndarray
    hour: np.ndarray
    age_level: np.ndarray
    gender: np.ndarray
    last_engagement: np.ndarray
    session_value: np.ndarray
    since_purchase: np.ndarray
    options: np.ndarray
    pool: np.ndarray
    hour_sin: np.ndarray
    hour_cos: np.ndarray
    latent: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.depth)

    def observation(self) -> np.ndarray:
        """``(n, 7)`` float32 observations (module docstring)."""
        return _observe(
            self.depth, self.purchase_power, self.hour_sin, self.hour_cos, self.last_engagement,
            self.session_value, self.since_purchase,
        )  # fmt: skip

    def take(self, index: np.ndarray) -> Sessions:
        """The sessions at ``index`` (new arrays)."""
        values = {
            f.name: getattr(self, f.name)[index]
            for f in dataclasses.fields(self)
            if f.name != "latent"
        }
        return Sessions(**values, latent={k: v[index] for k, v in self.latent.items()})

    def replace(self, index: np.ndarray, other: Sessions) -> None:
        """Put ``other``'s sessions at positions ``index`` (the autoreset of a vector env)."""
        for f in dataclasses.fields(self):
            if f.name != "latent":
                getattr(self, f.name)[index] = getattr(other, f.name)
        for key, values in self.latent.items():
            values[index] = other.latent[key]


@dataclass(frozen=True)
class Step:
    """What one page did to ``n`` sessions, arrays of shape ``(n,)``.

    Attributes:
        reward: Yuan spent on the page.
        engagement: clicks + carts on the page.
        bought: whether the page had a purchase.
        p_leave: the probability of leaving the simulator used.
        terminated: the shopper left after the page (churn).
        truncated: the session reached the page cap without leaving (censoring, not churn).
    """

    reward: np.ndarray
    engagement: np.ndarray
    bought: np.ndarray
    p_leave: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


@dataclass(frozen=True)
class PageContext:
    """A page just played, before the shopper decides whether to leave: what a retention
    programme (:mod:`microsub.business`) decides on. Arrays of shape ``(n,)`` unless noted.

    Attributes:
        depth, purchase_power, hour, age_level, gender: the page and the shopper.
        prev_engagement, prev_value, prev_since_purchase: the history before the page.
        mix: ``(n, 3)`` the item mix the page showed.
        engagement, bought, value: what the shopper did on the page (value in Yuan).
        p_leave: the simulator's probability that the shopper leaves now, before any
            intervention.
    """

    depth: np.ndarray
    purchase_power: np.ndarray
    hour: np.ndarray
    age_level: np.ndarray
    gender: np.ndarray
    prev_engagement: np.ndarray
    prev_value: np.ndarray
    prev_since_purchase: np.ndarray
    mix: np.ndarray
    engagement: np.ndarray
    bought: np.ndarray
    value: np.ndarray
    p_leave: np.ndarray


def page_context(
    before: Sessions, mix: np.ndarray, engagement: np.ndarray, bought: np.ndarray,
    value: np.ndarray, p_leave: np.ndarray,
) -> PageContext:  # fmt: skip
    """A :class:`PageContext` from the sessions as they were before the page (a copy)."""
    return PageContext(
        before.depth, before.purchase_power, before.hour, before.age_level, before.gender,
        before.last_engagement, before.session_value, before.since_purchase, mix,
        engagement, bought, value, p_leave,
    )  # fmt: skip


#: Decides, for the pages just played, a multiplier of each shopper's leave probability
#: (1: no intervention; 0.6: an intervention that removes 40 % of the risk).
Decide = Callable[[PageContext], np.ndarray]


def new_sessions(
    purchase_power: np.ndarray,
    hour: np.ndarray,
    age_level: np.ndarray,
    gender: np.ndarray,
    n_actions: int,
    latent: dict[str, np.ndarray] | None = None,
    hour_angles: tuple[np.ndarray, np.ndarray] | None = None,
) -> Sessions:
    """Sessions at page 0 with no history for these shoppers (arrays of shape ``(n,)``);
    ``hour_angles`` passes :func:`hour_circle` of ``hour`` when the caller has it."""
    n = len(purchase_power)
    hour = np.asarray(hour, np.float64)
    hour_sin, hour_cos = hour_angles if hour_angles is not None else hour_circle(hour)
    return Sessions(
        depth=np.zeros(n, np.int64),
        purchase_power=np.asarray(purchase_power, np.float64),
        hour=hour,
        age_level=np.asarray(age_level, np.int64),
        gender=np.asarray(gender, np.int64),
        last_engagement=np.zeros(n),
        session_value=np.zeros(n),
        since_purchase=np.zeros(n),
        options=np.empty((n, n_actions, 3)),
        pool=np.full(n, -1, np.int64),
        hour_sin=hour_sin,
        hour_cos=hour_cos,
        latent=latent or {},
    )


def hour_circle(hour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sin, cos)`` of ``2 pi hour / 24``, 0 where the hour is unknown (NaN)."""
    known = np.isfinite(hour)
    angle = 2 * np.pi * np.where(known, hour, 0.0) / 24
    return np.where(known, np.sin(angle), 0.0), np.where(known, np.cos(angle), 0.0)


def advance(s: Sessions, engagement: np.ndarray, value: np.ndarray, bought: np.ndarray) -> None:
    """Move every session to its next page after ``engagement``, ``value`` and ``bought``."""
    s.last_engagement = engagement.astype(np.float64)
    s.session_value = s.session_value + value
    s.since_purchase = np.where(bought, 0.0, s.since_purchase + 1.0)
    s.depth = s.depth + 1


def intervene(out: Step, uniform: np.ndarray, scale: np.ndarray, depth: np.ndarray) -> Step:
    """``out`` with the leave decision redrawn on the same uniforms: the shopper leaves when
    ``uniform < p_leave * scale``."""
    p_leave = out.p_leave * np.asarray(scale, np.float64)
    terminated, truncated = end_flags(uniform < p_leave, depth)
    return dataclasses.replace(out, p_leave=p_leave, terminated=terminated, truncated=truncated)


def end_flags(left: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(terminated, truncated)``: leaving is churn; reaching page 11 without leaving is the
    platform's cap."""
    terminated = left.astype(bool)
    return terminated, ~terminated & (depth >= MAX_PAGE_ID)


@njit(cache=True)
def _observe(depth, power, hour_sin, hour_cos, engagement, value, since):  # noqa: ANN001, ANN202
    """The ``(n, 7)`` float32 observation matrix (engagement capped at 100)."""
    obs = np.empty((depth.shape[0], 7), np.float32)
    for i in range(depth.shape[0]):
        obs[i, 0], obs[i, 1], obs[i, 2], obs[i, 3] = depth[i], power[i], hour_sin[i], hour_cos[i]
        obs[i, 4], obs[i, 5], obs[i, 6] = min(engagement[i], 100.0), value[i], since[i]
    return obs
