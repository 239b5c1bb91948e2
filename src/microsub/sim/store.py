"""Learned simulators in the lake: ``models/simulator/<fit>/`` (I/O edge).

Layout, for each fit (``all``, ``A``, ``B``)::

    models/simulator/<fit>/chain.json          the chain's coefficients and residuals
    models/simulator/<fit>/pools/              candidate pools (dataset: depth, item logs, mask)
    models/simulator/<fit>/starts/             logged session starts (dataset)

Plain numbers and Parquet, no pickles: a simulator loads whatever the Python version.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from microsub.contract import BUCKET_MODELS, MAX_PAGE_ID
from microsub.errors import DatasetNotFoundError, ModelError, ObjectNotFoundError
from microsub.lake import Lake
from microsub.models.chain import SessionModels
from microsub.sim.candidates import Pools
from microsub.sim.learned import LearnedSimulator, Starts

PREFIX = "simulator"
POOLS_SCHEMA = pa.schema(
    [
        pa.field("depth", pa.int8(), nullable=False),
        pa.field("logs", pa.list_(pa.float32()), nullable=False),
        pa.field("real", pa.list_(pa.bool_()), nullable=False),
    ]
)
STARTS_SCHEMA = pa.schema(
    [
        pa.field("purchase_power", pa.float64(), nullable=False),
        pa.field("hour", pa.float64(), nullable=False),  # NaN when the log has no hour
        pa.field("age_level", pa.int8(), nullable=False),
        pa.field("gender", pa.int8(), nullable=False),
    ]
)


def _prefix(fit: str) -> str:
    return f"{PREFIX}/{fit}"


def save_simulator(
    lake: Lake, fit: str, simulator: LearnedSimulator, meta: dict[str, Any] | None = None
) -> None:
    """Store ``simulator`` as ``fit`` (an existing one is replaced; identical content changes
    nothing)."""
    prefix = _prefix(fit)
    lake.put_json(
        BUCKET_MODELS, f"{prefix}/chain.json", simulator.models.to_dict(), if_changed=True
    )
    depth, logs, real = [], [], []
    for d, pools in enumerate(simulator.pools):
        depth.append(np.full(len(pools), d, np.int8))
        logs.append(pools.logs.reshape(len(pools), -1))
        real.append(pools.real)
    logs_all, real_all = np.concatenate(logs), np.concatenate(real)
    table = pa.table(
        {
            "depth": np.concatenate(depth),
            "logs": pa.array(list(logs_all), pa.list_(pa.float32())),
            "real": pa.array(list(real_all), pa.list_(pa.bool_())),
        }
    )
    meta = dict(meta or {})
    lake.publish(BUCKET_MODELS, f"{prefix}/pools", table, dataset="simulator-pools",
                 schema=POOLS_SCHEMA, meta=meta)  # fmt: skip
    st = simulator.starts
    starts = pa.table(
        {
            "purchase_power": st.purchase_power,
            "hour": st.hour,
            "age_level": st.age_level.astype(np.int8),
            "gender": st.gender.astype(np.int8),
        }
    )
    lake.publish(BUCKET_MODELS, f"{prefix}/starts", starts, dataset="simulator-starts",
                 schema=STARTS_SCHEMA, meta=meta)  # fmt: skip


def load_simulator(lake: Lake, fit: str = "all") -> LearnedSimulator:
    """The simulator stored as ``fit``.

    Raises:
        DatasetNotFoundError: none stored (run ``microsub run``: its simulate stage builds it).
    """
    prefix = _prefix(fit)
    try:
        chain = SessionModels.from_dict(lake.get_json(BUCKET_MODELS, f"{prefix}/chain.json"))
        pools_table = lake.read_table(BUCKET_MODELS, f"{prefix}/pools")
        starts_table = lake.read_table(BUCKET_MODELS, f"{prefix}/starts")
    except (ObjectNotFoundError, DatasetNotFoundError) as exc:
        raise DatasetNotFoundError(
            f"no simulator {fit!r} in the lake {lake.location} ({BUCKET_MODELS}/{prefix}); "
            "run `microsub run` first (its simulate stage builds the simulator)"
        ) from exc
    depth = pools_table.column("depth").to_numpy()
    logs = np.stack(pools_table.column("logs").to_numpy(zero_copy_only=False))
    real = np.stack(pools_table.column("real").to_numpy(zero_copy_only=False))
    pools = []
    for d in range(MAX_PAGE_ID + 1):
        rows = depth == d
        if not rows.any():
            raise ModelError(f"stored simulator {fit!r} has no candidate pool at depth {d}")
        pools.append(Pools.build(logs[rows].reshape(int(rows.sum()), -1, 3), real[rows]))
    s = starts_table.to_pandas()
    starts = Starts(
        s["purchase_power"].to_numpy(np.float64),
        s["hour"].to_numpy(np.float64),
        s["age_level"].to_numpy(np.int64),
        s["gender"].to_numpy(np.int64),
    )
    return LearnedSimulator(chain, pools, starts)
