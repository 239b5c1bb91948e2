"""The true simulator: sessions played by the process that generated the synthetic log.

On synthetic data the generator (:mod:`microsub.sim.dynamics`) is the truth, so a policy can be
run in it as well as in the learned simulator, and the gap between what the learned simulator
promised and what the truth delivers can be measured. Same sessions, same observation, same
actions as :class:`~microsub.sim.learned.LearnedSimulator`:

* a shopper is drawn by :func:`~microsub.sim.dynamics.draw_users` (profile, hour, and the two
  propensities nobody observes);
* each page's pool is 100 candidate items from :func:`~microsub.sim.dynamics.draw_items`; the
  logged action shows the first 50 in random slots (the log's own order,
  :func:`~microsub.sim.dynamics.logged_slots`), a grid action the 50 best by its score in score
  order (slot = rank, so the position bias of the clicks applies);
* clicks, carts and purchases come from :func:`~microsub.sim.dynamics.page_behaviour` and the
  leave decision from :func:`~microsub.sim.dynamics.leave_logit`.
"""

from __future__ import annotations

import numpy as np

from microsub.contract import ITEMS_PER_PAGE
from microsub.sim.candidates import (
    ACTION_GRID,
    POOL_PAGES,
    action_mixes,
    choose,
    log_items,
    page_mix,
)
from microsub.sim.dynamics import (
    Items,
    Users,
    draw_items,
    draw_users,
    leave_logit,
    logged_slots,
    mean_log_ctr,
    page_behaviour,
    sigmoid,
)
from microsub.sim.params import DEFAULT_PARAMS, SynthParams
from microsub.sim.session import (
    Decide,
    Sessions,
    Step,
    advance,
    end_flags,
    new_sessions,
    page_context,
)

_ITEM_FIELDS = ("ctr_u", "cvr_u", "price_c", "appeal", "feature_u")
_USER_FIELDS = ("z", "theta")


class TrueSimulator:
    """Step ``n`` sessions with the generator's dynamics.

    Args:
        params: the generator's coefficients (the default ones made the default data).
    """

    kind = "truth"

    def __init__(self, params: SynthParams = DEFAULT_PARAMS) -> None:
        self.params = params
        self.pool_size = POOL_PAGES * ITEMS_PER_PAGE
        self._grid = np.array(ACTION_GRID)

    @property
    def n_actions(self) -> int:
        return 1 + len(self._grid)

    def start(self, rng: np.random.Generator, n: int) -> Sessions:
        """``n`` new sessions at page 0, with their first page's candidate items."""
        users = draw_users(rng, n, self.params)
        s = new_sessions(
            users.purchase_power, users.hour, users.age_level, users.gender, self.n_actions,
            {"z": users.z, "theta": users.theta, "last_buy": np.full(n, -1, np.int64)},
        )  # fmt: skip
        self._draw_pools(rng, s)
        return s

    def _users(self, s: Sessions) -> Users:
        return Users(
            s.age_level, s.gender, s.purchase_power.astype(np.int64), s.hour.astype(np.int64),
            s.latent["z"], s.latent["theta"],
        )  # fmt: skip

    def _draw_pools(self, rng: np.random.Generator, s: Sessions) -> None:
        items = draw_items(rng, s.purchase_power, self.params, self.pool_size)
        for name in _ITEM_FIELDS:
            s.latent[name] = getattr(items, name)
        logs = log_items(items.ctr, items.cvr, items.price)
        s.latent["logs"] = logs
        s.options = action_mixes(logs, np.ones(logs.shape[:2], dtype=bool))

    def _shown(
        self, rng: np.random.Generator, s: Sessions, action: np.ndarray, box: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 50)`` indices of the shown items in the pool and their on-page slots."""
        n = len(s)
        logs = s.latent["logs"]
        real = np.ones(logs.shape[:2], dtype=bool)
        if box:
            a, b = action[:, 0], action[:, 1]
        else:
            ab = np.vstack([[0.0, 0.0], self._grid])[action]
            a, b = ab[:, 0], ab[:, 1]
        shown = choose(logs, real, a, b)
        rank = np.broadcast_to(np.arange(ITEMS_PER_PAGE), (n, ITEMS_PER_PAGE))
        slot = rank.copy()
        logged = np.zeros(n, dtype=bool) if box else action == 0
        if logged.any():
            slots, _ = logged_slots(rng, int(logged.sum()), self.params)
            shown[logged] = rank[logged]
            slot[logged] = slots
        return shown, slot

    def step(
        self,
        rng: np.random.Generator,
        s: Sessions,
        action: np.ndarray,
        *,
        box: bool = False,
        decide: Decide | None = None,
    ) -> Step:
        """Show every session its page, draw what happens, and move on (as
        :meth:`LearnedSimulator.step <microsub.sim.learned.LearnedSimulator.step>`)."""
        shown, slot = self._shown(rng, s, action, box)
        pool = Items(*(s.latent[name] for name in _ITEM_FIELDS))
        items = pool.take(shown)
        users = self._users(s)
        act = page_behaviour(rng, self.params, items, slot, users, s.depth)
        last_buy = s.latent["last_buy"]
        bought = act.buy.any(axis=1)
        last_buy = np.where(bought, s.depth, last_buy)
        since = np.where(last_buy >= 0, s.depth - last_buy, s.depth)
        eta = leave_logit(self.params, users, s.depth, since, act.engagement, mean_log_ctr(items))
        p_leave = sigmoid(eta)
        uniform = rng.random(len(s))
        if decide is not None:
            mix = page_mix(logs_of(items), np.ones(shown.shape, bool),
                           np.broadcast_to(np.arange(ITEMS_PER_PAGE), shown.shape))  # fmt: skip
            context = page_context(s, mix, act.engagement.astype(float), bought, act.value,
                                   p_leave)  # fmt: skip
            p_leave = p_leave * decide(context)
        terminated, truncated = end_flags(uniform < p_leave, s.depth)
        value = act.value
        s.latent["last_buy"] = last_buy
        advance(s, act.engagement, value, bought)
        self._draw_pools(rng, s)
        return Step(value, act.engagement, bought, p_leave, terminated, truncated)


def logs_of(items: Items) -> np.ndarray:
    """``(n, k, 3)`` item logs (:func:`~microsub.sim.candidates.log_items`) of ``items``."""
    return log_items(items.ctr, items.cvr, items.price)
