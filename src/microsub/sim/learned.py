"""The learned simulator: sessions played by the fitted models (:mod:`microsub.models.chain`).

A session starts with a shopper drawn from the logged sessions' first pages (purchase power,
hour, age level, gender, :class:`Starts`). Each page draws a candidate pool of logged items at
its depth (:mod:`microsub.sim.candidates`); the action picks the items the page shows; the
chain draws engagement, purchase, amount and whether the shopper leaves. All of it from logged
data and fitted models, nothing made up; every draw from the generator passed in (the
environment's ``np_random``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from microsub.contract import MAX_PAGE_ID
from microsub.models.chain import SessionModels, draw_page, pre_design
from microsub.sim.candidates import Pools
from microsub.sim.session import (
    Decide,
    Sessions,
    Step,
    hour_circle,
    intervene,
    new_sessions,
    page_context,
)


@dataclass(frozen=True)
class Starts:
    """The shoppers sessions start with: one entry per logged session start, ``(m,)`` each."""

    purchase_power: np.ndarray
    hour: np.ndarray
    age_level: np.ndarray
    gender: np.ndarray

    @classmethod
    def from_pages(cls, pages: pd.DataFrame) -> Starts:
        """The profile and hour of every logged page at depth 0 (a session start).

        Raises:
            ValueError: the pages hold no session start.
        """
        first = pages[pages["action_page_id"] == 0]
        if first.empty:
            raise ValueError("no page at depth 0: the simulator needs logged session starts")
        return cls(
            first["state_purchase_power"].to_numpy(np.float64),
            first["hour"].to_numpy(dtype=np.float64, na_value=np.nan),
            first["age_level"].to_numpy(np.int64),
            first["gender"].to_numpy(np.int64),
        )

    def __len__(self) -> int:
        return len(self.purchase_power)


class LearnedSimulator:
    """Step ``n`` sessions with the fitted chain.

    Args:
        models: the fitted chain.
        pools: candidate pools of depths 0..11 (:func:`~microsub.sim.candidates.build_pools`).
        starts: logged session starts.
    """

    kind = "learned"

    def __init__(self, models: SessionModels, pools: list[Pools], starts: Starts) -> None:
        if len(pools) != MAX_PAGE_ID + 1:
            raise ValueError(f"expected pools for depths 0..{MAX_PAGE_ID}, got {len(pools)}")
        self.models = models
        self.pools = pools
        self.starts = starts
        self._sizes = np.array([len(p) for p in pools], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes)[:-1]]).astype(np.int64)
        self._options = np.concatenate([p.mix for p in pools])  # (pools, actions, 3)
        # The links' predictors split by what changes when (see _predictors): x_pre is never
        # built during a simulation, which is what makes a step cheap.
        w = models.pre_weights
        k = MAX_PAGE_ID
        self._depth_z = np.vstack([np.zeros(4), w[:k]])  # one-hot depth -> a row per depth
        self._w_static = w[[k, k + 2, k + 3, k + 4]]  # night, power, hour sin, hour cos
        self._w_night_depth = w[k + 1]
        self._w_history = w[k + 5 : k + 8]  # log prev engagement, log prev value, since
        self._w_mix = w[k + 8 :]
        self._mix_z = self._options @ self._w_mix  # (pools, actions, 4)
        self._intercepts = models.intercepts
        self._w_out = models.outcome_weights
        # what the step kernel reads, packed to keep its arguments few (each costs dispatch
        # time, which is most of a single environment's step)
        self._coef = np.vstack([self._depth_z, self._w_night_depth, self._w_history])  # (16, 4)
        self._pool_index = np.vstack([self._offsets, self._sizes])  # (2, 12)
        self._residuals = (models.engagement_residuals, models.amount_residuals)
        self._scales: dict[int, np.ndarray] = {}
        # what a session start contributes, per logged start (a start is a lookup)
        self._hour_circle = hour_circle(starts.hour)
        self._night = (np.isfinite(starts.hour) & (starts.hour <= 5)).astype(np.float64)
        static = np.column_stack(
            [self._night, starts.purchase_power, *self._hour_circle]
        )  # night, power, hour sin, hour cos
        self._static_z = static @ self._w_static + self._intercepts

    @property
    def n_actions(self) -> int:
        return self._options.shape[1]

    def start(self, rng: np.random.Generator, n: int) -> Sessions:
        """``n`` new sessions at page 0, with their first page's candidate pool."""
        k = rng.integers(0, len(self.starts), n)
        st = self.starts
        s = new_sessions(
            st.purchase_power[k], st.hour[k], st.age_level[k], st.gender[k], self.n_actions,
            {"night": self._night[k], "static_z": self._static_z[k]},
            (self._hour_circle[0][k], self._hour_circle[1][k]),
        )  # fmt: skip
        self._draw_pools(rng, s)
        return s

    def _draw_pools(self, rng: np.random.Generator, s: Sessions) -> None:
        depth = np.minimum(s.depth, MAX_PAGE_ID)
        s.pool = self._offsets[depth] + (rng.random(len(s)) * self._sizes[depth]).astype(np.int64)
        s.options = self._options[s.pool]

    def page_mix(self, s: Sessions, action: np.ndarray, box: bool) -> np.ndarray:
        """``(n, 3)`` mix the actions show: a discrete action's index, or ``(n, 2)`` ``(a, b)``."""
        if not box:
            return s.options[np.arange(len(s)), action]
        flat = self._flat_pools()
        return flat.box_mix(s.pool, action[:, 0], action[:, 1])

    def _flat_pools(self) -> Pools:
        if not hasattr(self, "_flat"):
            self._flat = Pools(
                np.concatenate([p.logs for p in self.pools]),
                np.concatenate([p.real for p in self.pools]),
                self._options,
            )
        return self._flat

    def step(
        self,
        rng: np.random.Generator,
        s: Sessions,
        action: np.ndarray,
        *,
        box: bool = False,
        decide: Decide | None = None,
    ) -> Step:
        """Show every session its page, draw what happens, and move on to the next page (the
        next page's pool is drawn for every session; ended ones are the caller's to drop).

        Five uniforms per session and page, ``rng.random((n, 5))``: four for the chain's draw
        (:func:`~microsub.models.chain.draw_page`), one for the next page's pool. With
        ``decide``, the shopper leaves when ``u3 < p_leave * decide(context)``: the same
        uniform, so a session's path changes only where an intervention changed its outcome.

        Args:
            rng: the generator of every draw.
            s: the sessions (changed in place).
            action: ``(n,)`` discrete actions, or ``(n, 2)`` ``(a, b)`` with ``box``.
            box: continuous actions.
            decide: an intervention's multiplier of P(leave) for the pages just played.
        """
        n = len(s.depth)
        mix = self.page_mix(s, action, box)
        rows = mix @ self._w_mix if box else np.empty((0, 4))
        before = s.take(np.arange(n)) if decide is not None else None
        scale = self._scales.get(n)
        if scale is None:
            scale = self._scales[n] = np.ones(n)
        u = rng.random((n, 5))
        out = Step(
            *_learned_step(
                s.depth, s.pool, np.asarray(action, np.int64) if not box else s.pool,
                s.latent["night"], s.latent["static_z"], s.last_engagement, s.session_value,
                s.since_purchase, self._mix_z, rows, u, self._coef,
                *self._residuals, self._w_out, scale, self._pool_index,
            )
        )  # fmt: skip
        s.options = self._options[s.pool]
        if before is not None and decide is not None:
            context = page_context(before, mix, out.engagement, out.bought, out.reward,
                                   out.p_leave)  # fmt: skip
            out = intervene(out, u[:, 3], decide(context), before.depth)
        return out

    def expected_values(self, s: Sessions) -> np.ndarray:
        """``(n, n_actions)`` expected Yuan of the page under each discrete action (the
        chain's :meth:`~microsub.models.chain.SessionModels.expected_value`)."""
        n, k = len(s), self.n_actions
        rep = np.repeat(np.arange(n), k)
        x = pre_design(
            s.depth[rep], s.purchase_power[rep], s.hour[rep], s.last_engagement[rep],
            s.session_value[rep], s.since_purchase[rep], s.options.reshape(n * k, 3),
        )  # fmt: skip
        return self.models.expected_value(x).reshape(n, k)


@njit(cache=True)
def _learned_step(
    depth,
    pool,
    action,
    night,
    static_z,
    last_eng,
    value,
    since,
    mix_z,
    mix_rows,
    u,
    coef,
    e_res,
    a_res,
    w_out,
    leave_scale,
    pool_index,
):  # noqa: ANN001, ANN202 - a numba kernel: arrays in, state changed in place
    """One page for ``n`` sessions: the links' predictors from their parts (``coef`` stacks
    ``depth_z`` (12 rows), ``w_night_depth`` and ``w_history`` (3 rows); ``pool_index`` the
    pools' offsets and sizes by depth),

    ``z = static_z + depth_z[d] + night d w_night_depth + [ln(1 + e'), ln(1 + v'), s'] w_history
    + m`` (``e'``, ``v'``, ``s'`` the history before the page; ``m = mix_z[pool, action]``, or
    ``mix_rows[i]`` when given; equal to ``pre_design(...) @ pre_weights + intercepts``), the
    chain's draw (:func:`~microsub.models.chain.draw_page`), the end flags, the history update
    and the next page's pool (``offsets[d + 1] + floor(u4 * sizes[d + 1])``).

    Returns:
        ``(reward, engagement, bought, p_leave, terminated, truncated)``, ``(n,)`` each.
    """
    n = depth.shape[0]
    depth_z, w_night_depth, w_history = coef[:12], coef[12], coef[13:16]
    offsets, sizes = pool_index[0], pool_index[1]
    max_depth = depth_z.shape[0] - 1
    reward, engagement, p_leave = np.empty(n), np.empty(n), np.empty(n)
    bought, terminated = np.empty(n, np.bool_), np.empty(n, np.bool_)
    truncated = np.empty(n, np.bool_)
    z = np.empty(4)
    for i in range(n):
        d = depth[i]
        lpe, lpv, sp = np.log1p(last_eng[i]), np.log1p(value[i]), since[i]
        for j in range(4):
            m = mix_rows[i, j] if mix_rows.shape[0] else mix_z[pool[i], action[i], j]
            z[j] = (
                static_z[i, j] + depth_z[min(d, max_depth), j] + night[i] * d * w_night_depth[j]
                + lpe * w_history[0, j] + lpv * w_history[1, j] + sp * w_history[2, j] + m
            )  # fmt: skip
        e, b, v, p, left = draw_page(z, u[i, :4], e_res, a_res, w_out, leave_scale[i])
        reward[i], engagement[i], bought[i], p_leave[i] = v, e, b, p
        terminated[i] = left
        truncated[i] = (not left) and d >= max_depth
        last_eng[i] = e
        value[i] += v
        since[i] = 0.0 if b else since[i] + 1.0
        depth[i] = d + 1
        nd = min(d + 1, max_depth)
        pool[i] = offsets[nd] + int(u[i, 4] * sizes[nd])
    return reward, engagement, bought, p_leave, terminated, truncated
