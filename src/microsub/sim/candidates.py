"""What a policy chooses: which candidate items fill a page, ranked by ``ctr * cvr^a * price^b``.

The action of the simulator
===========================

In the system behind the data, the platform ranks a page's candidate items by
``score = ctr * cvr^a * price^b`` (Pei et al., WWW 2019); the agent's action is ``(a, b)``: how
much weight conversion and price get against clicks. Re-ordering a page's 50 items alone would
change nothing a page-level model sees (the page's mean CTR, CVR and price do not depend on the
order), and the log's position bias is mild (clicks by slot, :func:`slot_click_curve`). So the
action chooses *which* items fill the page as well as their order: each page draws a **pool of
two logged pages' items** (100 candidates) at the page's depth, and the page shows the 50 with
the highest score, in score order. The pool's first page is the page as the platform logged it,
so action 0, **"logged"**, shows it unchanged: the behaviour policy of the log.

Every item shown was shown by the platform at that depth, and the pools come from the lake's
items table; :func:`support_share` measures how much of the pages an action builds stays
within the range of logged pages.

The discrete grid (:data:`ACTION_GRID`) crosses ``a`` in {0, 1, 2} with ``b`` in {-1, 0, 1}:
``a = 0, b = 0`` ranks by predicted clicks only, ``a = 1, b = 1`` by expected Yuan per
impression (``ctr * cvr * price``), ``b = -1`` favours cheap items. The continuous variant
takes any ``(a, b)`` in ``[0, 2] x [-1, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from microsub.contract import ITEMS_PER_PAGE

#: ``(a, b)`` of the discrete actions 1..9; action 0 is the logged page.
ACTION_GRID: tuple[tuple[float, float], ...] = tuple(
    (a, b) for a in (0.0, 1.0, 2.0) for b in (-1.0, 0.0, 1.0)
)
#: Number of discrete actions (the logged page and the grid).
N_ACTIONS = 1 + len(ACTION_GRID)
#: Bounds of ``(a, b)`` of the continuous variant.
A_RANGE = (0.0, 2.0)
B_RANGE = (-1.0, 1.0)
#: Items a page shows.
PAGE_SIZE = ITEMS_PER_PAGE
#: Logged pages per candidate pool.
POOL_PAGES = 2
#: Price floor of the log price (the ingestion's: one cent).
PRICE_FLOOR = 0.01


def action_names() -> list[str]:
    """Readable names of the discrete actions: ``logged``, ``a=0 b=-1``, ..."""
    return ["logged"] + [f"a={a:g} b={b:g}" for a, b in ACTION_GRID]


def log_items(ctr: np.ndarray, cvr: np.ndarray, price: np.ndarray) -> np.ndarray:
    """``(..., k, 3)`` logs of the item columns: ``ln ctr``, ``ln cvr``, ``ln max(price, 0.01)``
    (rates floored at 1e-6), the scale the score and the mix are computed on."""
    return np.stack(
        [
            np.log(np.maximum(ctr, 1e-6)),
            np.log(np.maximum(cvr, 1e-6)),
            np.log(np.maximum(price, PRICE_FLOOR)),
        ],
        axis=-1,
    )


def _scores(logs: np.ndarray, real: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, k)`` log scores ``ln ctr + a ln cvr + b ln price`` (``-inf`` for padding)."""
    score = logs[..., 0] + a[:, None] * logs[..., 1] + b[:, None] * logs[..., 2]
    return np.where(real, score, -np.inf)


def choose(logs: np.ndarray, real: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of the items a page shows, best score first, shape ``(n, PAGE_SIZE)``.

    Args:
        logs: ``(n, k, 3)`` item logs of the pools (:func:`log_items`).
        real: ``(n, k)`` mask of real items (padding never shows).
        a, b: ``(n,)`` exponents of CVR and price; log score = ln ctr + a ln cvr + b ln price.
    """
    score = _scores(logs, real, a, b)
    top = np.argpartition(-score, PAGE_SIZE - 1, axis=1)[:, :PAGE_SIZE]
    order = np.argsort(-np.take_along_axis(score, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def top_mask(logs: np.ndarray, real: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, k)`` mask of the items :func:`choose` shows (the set, without its order)."""
    score = _scores(logs, real, a, b)
    top = np.argpartition(-score, PAGE_SIZE - 1, axis=1)[:, :PAGE_SIZE]
    mask = np.zeros(score.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=1)
    return mask & real


def item_values(logs: np.ndarray) -> np.ndarray:
    """``(n, k, 3)`` what a page mix averages: CTR, CVR (rates) and ln price, from item logs."""
    values = logs.astype(np.float64)
    values[..., :2] = np.exp(values[..., :2])
    return values


def mask_mix(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(n, 3)`` page mix of the masked items: ln(mean CTR), ln(mean CVR), mean ln(price).

    Args:
        values: ``(n, k, 3)`` :func:`item_values` of the pools.
        mask: ``(n, k)`` the items the page shows (real ones only).
    """
    count = np.maximum(mask.sum(axis=1), 1)[:, None]
    mean = np.einsum("nkc,nk->nc", values, mask.astype(np.float64)) / count
    mean[:, :2] = np.log(np.maximum(mean[:, :2], 1e-6))
    return mean


def page_mix(logs: np.ndarray, real: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """``(n, 3)`` mix of the shown items (indices into each pool; padding among them ignored)."""
    mask = np.zeros(real.shape, dtype=bool)
    np.put_along_axis(mask, shown, True, axis=1)
    return mask_mix(item_values(logs), mask & real)


def action_mixes(logs: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``(n, N_ACTIONS, 3)`` the mix each discrete action shows from each pool: the first 50
    items (the logged page) for action 0, the top 50 by score for the grid."""
    n, k = real.shape
    values = item_values(logs)
    out = np.empty((n, N_ACTIONS, 3))
    first = np.zeros((n, k), dtype=bool)
    first[:, :PAGE_SIZE] = True
    out[:, 0] = mask_mix(values, first & real)
    for j, (a, b) in enumerate(ACTION_GRID, start=1):
        out[:, j] = mask_mix(values, top_mask(logs, real, np.full(n, a), np.full(n, b)))
    return out


@dataclass(frozen=True)
class Pools:
    """Candidate pools of one depth: ``n`` pools of ``k = POOL_PAGES * 50`` items.

    Attributes:
        logs: ``(n, k, 3)`` float32 item logs (:func:`log_items`); the first 50 are the logged
            page of the pool, in logged order.
        real: ``(n, k)`` mask of real items.
        mix: ``(n, N_ACTIONS, 3)`` float64 page mix each discrete action shows.
    """

    logs: np.ndarray
    real: np.ndarray
    mix: np.ndarray

    @classmethod
    def build(cls, logs: np.ndarray, real: np.ndarray) -> Pools:
        """Pools from item logs and masks, with the mix of every discrete action."""
        logs32 = logs.astype(np.float32)
        return cls(logs32, real, action_mixes(logs32.astype(np.float64), real))

    def __len__(self) -> int:
        return len(self.logs)

    def box_mix(self, index: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``(n, 3)`` mix of pools ``index`` under continuous actions ``(a, b)``."""
        logs = self.logs[index].astype(np.float64)
        real = self.real[index]
        return mask_mix(item_values(logs), top_mask(logs, real, a, b))


def build_pools(
    ctr: np.ndarray,
    cvr: np.ndarray,
    price: np.ndarray,
    depth: np.ndarray,
    rng: np.random.Generator,
    n_pools: int,
    max_depth: int,
) -> list[Pools]:
    """Pools per depth 0..``max_depth`` from logged pages.

    Pool ``j`` of depth ``d`` concatenates two logged pages of depth ``d`` drawn at random (the
    first kept in its logged order). A depth without two logged pages borrows the nearest
    shallower depth's pages.

    Args:
        ctr, cvr, price: ``(n_pages, 50)`` item lists of the logged pages (the items table).
        depth: ``(n_pages,)`` page depth of each row.
        rng: the generator of the draws.
        n_pools: pools per depth.
        max_depth: the largest depth (11).
    """
    logs = log_items(ctr, cvr, price).astype(np.float32)
    real = ~((price == 0) & (ctr == 0) & (cvr == 0))
    out: list[Pools] = []
    rows = np.flatnonzero(depth == 0)
    for d in range(max_depth + 1):
        here = np.flatnonzero(depth == d)
        rows = here if len(here) >= POOL_PAGES else rows
        pick = rows[rng.integers(0, len(rows), size=(n_pools, POOL_PAGES))]
        out.append(
            Pools.build(
                logs[pick].reshape(n_pools, -1, 3),
                real[pick].reshape(n_pools, -1),
            )
        )
    return out


def slot_click_curve(
    position: np.ndarray, click: np.ndarray, price: np.ndarray, depth: np.ndarray
) -> pd.DataFrame:
    """Clicks by on-page slot in the log: the position bias the platform's ranking meets.

    The slot of an item is its ``position`` minus 50 times the page depth (page ``k`` holds
    positions ``50k .. 50k + 49``); padding slots (price 0) do not count.

    Args:
        position, click, price: ``(n_pages, 50)`` item lists of logged pages.
        depth: ``(n_pages,)`` their depth.

    Returns:
        One row per slot 0..49: ``slot``, ``items`` (real items shown there), ``click_rate``,
        ``relative`` (the click rate divided by the mean over slots).
    """
    slot = position.astype(np.int64) - PAGE_SIZE * np.asarray(depth, np.int64)[:, None]
    click = click.astype(np.float64)
    ok = (price > 0) & (slot >= 0) & (slot < PAGE_SIZE)
    shown = np.bincount(slot[ok], minlength=PAGE_SIZE)
    clicks = np.bincount(slot[ok], weights=click[ok], minlength=PAGE_SIZE)
    rate = clicks / np.maximum(shown, 1)
    return pd.DataFrame(
        {
            "slot": np.arange(PAGE_SIZE),
            "items": shown,
            "click_rate": rate,
            "relative": rate / rate[shown > 0].mean(),
        }
    )


def support_share(mix: np.ndarray, logged: np.ndarray, level: float = 0.99) -> float:
    """Share of pages whose mix lies inside the logged pages' central ``level`` range in every
    mix column (a box of the per-column quantiles ``(1 - level)/2`` to ``(1 + level)/2``).

    Args:
        mix: ``(n, 3)`` mixes a policy built.
        logged: ``(m, 3)`` mixes of logged pages.
    """
    lo, hi = np.quantile(logged, [(1 - level) / 2, (1 + level) / 2], axis=0)
    inside = ((mix >= lo) & (mix <= hi)).all(axis=1)
    return float(inside.mean())
