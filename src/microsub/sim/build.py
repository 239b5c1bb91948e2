"""Building a learned simulator from logged pages and items (pure: tables in, simulator out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from microsub.contract import MAX_PAGE_ID, item_matrix
from microsub.errors import ContractError
from microsub.models.chain import SessionModels
from microsub.sim.candidates import build_pools
from microsub.sim.learned import LearnedSimulator, Starts

#: Candidate pools per depth of a built simulator.
N_POOLS = 1024


def build_simulator(
    pages: pd.DataFrame,
    items: pa.Table,
    *,
    random_state: int = 0,
    n_pools: int = N_POOLS,
    alpha: float = 1e-4,
) -> LearnedSimulator:
    """Fit the chain on ``pages``, draw candidate pools from ``items``, take the session starts.

    Args:
        pages: the pages table (contract columns) of the sessions the simulator learns from.
        items: the items table's ``line_no``, ``ctr``, ``cvr``, ``price`` of the same pages, in
            the same order.
        random_state: seed of the pool draws.
        n_pools: pools per depth.
        alpha: ridge penalty of the chain's models.

    Raises:
        ContractError: ``items`` does not hold the same pages in the same order.
    """
    lines = items.column("line_no").to_numpy()
    if not np.array_equal(lines, pages["line_no"].to_numpy()):
        raise ContractError(
            f"items ({len(lines)} rows) and pages ({len(pages)} rows) are not the same pages "
            "in the same order; select both by the same line numbers"
        )
    models = SessionModels.fit(pages, alpha=alpha)
    pools = build_pools(
        item_matrix(items, "ctr").astype(np.float64),
        item_matrix(items, "cvr").astype(np.float64),
        item_matrix(items, "price").astype(np.float64),
        pages["action_page_id"].to_numpy(),
        np.random.default_rng(random_state),
        n_pools,
        MAX_PAGE_ID,
    )
    return LearnedSimulator(models, pools, Starts.from_pages(pages))
