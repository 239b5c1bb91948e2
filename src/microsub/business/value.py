"""What keeping a shopper is worth: the value at stake when a shopper is about to leave.

If an intervention keeps a shopper who would have left after page ``d``, the business gains
what they go on to spend. The log says how much that is on average: over the pages after
which the shopper did continue, the Yuan spent on the rest of the session,

    stake(d, pp) = mean over logged pages at depth d, purchase power pp, with a next page, of
                   (session total - value of pages 0..d)

estimated per depth and purchase-power level (cells with fewer than :data:`MIN_PAGES` pages
fall back to the depth's average), then turned into dollars of value:
``stake_usd = stake_yuan * value_margin / yuan_per_usd``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from microsub.analysis.features import add_features
from microsub.contract import MAX_PAGE_ID

#: Pages a (depth, purchase power) cell needs before its own mean is used.
MIN_PAGES = 30
#: Purchase-power levels tabulated (the logged levels are small integers).
MAX_POWER = 7


@dataclass(frozen=True)
class StakeTable:
    """Mean Yuan a continuing shopper goes on to spend, by depth and purchase power.

    Attributes:
        yuan: ``(12, MAX_POWER + 1)`` Yuan at stake after page ``d`` for power level ``pp``.
        pages: ``(12, MAX_POWER + 1)`` logged pages behind each cell.
    """

    yuan: np.ndarray
    pages: np.ndarray

    @classmethod
    def from_pages(cls, pages: pd.DataFrame) -> StakeTable:
        """From a pages table (contract columns, whole sessions)."""
        f = add_features(pages)
        total = f.groupby("session_id")["page_value"].transform("sum")
        future = (total - f["cum_value"]).to_numpy(float)
        cont = f["has_next"].to_numpy() == 1
        depth = f["action_page_id"].to_numpy().astype(int)[cont]
        power = np.clip(f["state_purchase_power"].to_numpy().astype(int), 0, MAX_POWER)[cont]
        fut = future[cont]
        shape = (MAX_PAGE_ID + 1, MAX_POWER + 1)
        sums, counts = np.zeros(shape), np.zeros(shape)
        np.add.at(sums, (depth, power), fut)
        np.add.at(counts, (depth, power), 1)
        by_depth = np.bincount(depth, weights=fut, minlength=shape[0]) / np.maximum(
            np.bincount(depth, minlength=shape[0]), 1
        )
        yuan = np.where(counts >= MIN_PAGES, sums / np.maximum(counts, 1), by_depth[:, None])
        return cls(yuan=yuan, pages=counts.astype(int))

    def lookup(self, depth: np.ndarray, purchase_power: np.ndarray) -> np.ndarray:
        """Yuan at stake for pages at ``depth`` of shoppers of ``purchase_power``, ``(n,)``."""
        d = np.clip(np.asarray(depth, int), 0, MAX_PAGE_ID)
        pp = np.clip(np.asarray(purchase_power, int), 0, MAX_POWER)
        return self.yuan[d, pp]
