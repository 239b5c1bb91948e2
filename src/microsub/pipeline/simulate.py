"""Stage ``simulate``: the session simulator built, validated and used to compare policies;
simulators stored in ``models/simulator/``, the study in ``reports/simulation.json``."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from microsub import contract, fmt, plain, sim
from microsub.models import chain
from microsub.pipeline.cache import cached, code_digest
from microsub.pipeline.context import Context, manifest_digest, read_pages
from microsub.progress import ProgressFactory, quiet
from microsub.sim.params import DEFAULT_PARAMS, SynthParams, params_digest
from microsub.sim.store import save_simulator
from microsub.sim.study import SimulationResult, run_study

#: Columns of the items table the study reads.
ITEM_COLUMNS = ["line_no", "ctr", "cvr", "price", "position", "click"]


def truth_of(source: dict[str, Any]) -> tuple[SynthParams | None, str]:
    """The generator that made the data (the true environment), or None and why not."""
    if source.get("kind") != "synthetic":
        return None, "the data is a real log: no generator is known to have made it"
    if source.get("params_digest") != params_digest(DEFAULT_PARAMS):
        return None, "the synthetic data was made with other generator parameters"
    return DEFAULT_PARAMS, ""


def _study(
    pages: pd.DataFrame,
    items: pa.Table,
    seed: int,
    n_sessions: int,
    no_truth_because: str,
    *digests: str,
) -> SimulationResult:
    """:func:`~microsub.sim.study.run_study` (the digests key the cache only); the true
    generator runs unless ``no_truth_because`` says why not."""
    return run_study(
        pages, items, truth_params=None if no_truth_because else DEFAULT_PARAMS,
        truth_reason=no_truth_because, seed=seed, n_sessions=n_sessions,
    )  # fmt: skip


def simulation(ctx: Context, *, force: bool = False) -> SimulationResult:
    """The simulator study of the context's data, cached by the pages' and items' digests, the
    seed and the code of the simulator and its models (``force``: recompute)."""
    _, no_truth_because = truth_of(ctx.source)
    key = (
        ctx.settings.seed,
        ctx.settings.sim_sessions,
        no_truth_because,
        ctx.data_digest,
        manifest_digest(ctx.lake.manifest(contract.BUCKET_ITEMS)),
        code_digest(sim, chain, fmt, plain),
    )

    def load() -> tuple[pd.DataFrame, pa.Table]:
        pages = read_pages(ctx).to_pandas()
        items = ctx.lake.read_table(contract.BUCKET_ITEMS, columns=ITEM_COLUMNS)
        return pages, items

    return cached(ctx, _study, key, data=("pages", "items"), load=load, force=force)


def simulate_stage(
    ctx: Context, progress: ProgressFactory = quiet, force: bool = False
) -> dict[str, Any]:
    """Stage ``simulate``: run (or load from the cache) the study, store the three simulators
    in the ``models`` bucket and write ``reports/simulation.json``.

    Returns:
        The report (:meth:`SimulationResult.to_dict`).
    """
    with progress("simulating sessions: simulators, validation, policies", None) as advance:
        result = simulation(ctx, force=force)
        meta = {"data_digest": ctx.data_digest, "source": ctx.source}
        for name, simulator in result.simulators.items():
            save_simulator(ctx.lake, name, simulator, meta)
        report = {**result.to_dict(), "data": {"digest": ctx.data_digest, "source": ctx.source}}
        ctx.lake.put_json(contract.BUCKET_REPORTS, "simulation.json", report, if_changed=not force)
        advance(1)
    return report
