"""Stage ``business``: the retention programmes, uplift, sensitivity and fairness computed in
the simulator, and every success gate measured; written to ``reports/business.json``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from microsub import business, contract, fmt
from microsub import plain as plain_module
from microsub.business.config import BusinessConfig, load_config
from microsub.business.gates import benchmark_measurements, evaluate_gates
from microsub.business.study import BusinessResult, run_business
from microsub.business.value import StakeTable
from microsub.errors import ServingError
from microsub.lake import Lake
from microsub.models import chain
from microsub.pipeline.cache import cached, code_digest
from microsub.pipeline.context import Context, read_pages
from microsub.pipeline.simulate import simulation, truth_of
from microsub.pipeline.train import benchmark
from microsub.plain import plain
from microsub.progress import ProgressFactory, quiet
from microsub.serve import latency
from microsub.sim.learned import LearnedSimulator
from microsub.sim.truth import TrueSimulator


def business_config(ctx: Context) -> BusinessConfig:
    """The business configuration of the context's settings (``MICROSUB_BUSINESS_CONFIG``)."""
    return load_config(ctx.settings.business_config)


def _study(
    pages: pd.DataFrame,
    learned: LearnedSimulator,
    config_json: str,
    with_truth: bool,
    n_sessions: int,
    seed: int,
    *digests: str,
) -> BusinessResult:
    """:func:`~microsub.business.study.run_business` (the digests key the cache only)."""
    config = BusinessConfig.model_validate_json(config_json)
    return run_business(
        learned, StakeTable.from_pages(pages), config,
        truth=TrueSimulator() if with_truth else None, n_sessions=n_sessions, seed=seed,
    )  # fmt: skip


def business_case(ctx: Context, *, force: bool = False) -> BusinessResult:
    """The business study of the context's data, cached by the data, the simulator's code, the
    configuration and the code of the business stage (``force``: recompute)."""
    truth, _ = truth_of(ctx.source)
    config = business_config(ctx)
    key = (
        config.model_dump_json(),
        truth is not None,
        ctx.settings.sim_sessions,
        ctx.settings.seed,
        ctx.data_digest,
        code_digest(business, chain, fmt, plain_module),
    )

    def load() -> tuple[pd.DataFrame, LearnedSimulator]:
        return read_pages(ctx).to_pandas(), simulation(ctx).simulators["all"]

    return cached(ctx, _study, key, data=("pages", "learned"), load=load, force=force)


def measured_latency(lake: Lake) -> float | None:
    """The scoring service's p99 latency in ms at the reference rate, as its load benchmark
    published it (:func:`microsub.serve.latency.scoring_p99_ms`; ``inf`` when that run had
    errors), or None when it has not been measured on this lake."""
    try:
        return latency.scoring_p99_ms(lake)
    except ServingError:
        return None


def gate_results(ctx: Context, result: BusinessResult) -> pd.DataFrame:
    """Every success gate with its measurement: the benchmark's AUC and precision at the top
    20 %, the recommended programme's churn reduction and parity, the service's latency
    (:func:`~microsub.business.gates.evaluate_gates`; an unmeasured gate fails)."""
    measurements: dict[str, float | None] = {
        **benchmark_measurements(benchmark(ctx)),
        **result.measurements,
        "scoring_p99_ms": measured_latency(ctx.lake),
    }
    return evaluate_gates(measurements, business_config(ctx).gates)


def business_stage(
    ctx: Context, progress: ProgressFactory = quiet, force: bool = False
) -> dict[str, Any]:
    """Stage ``business``: compute (or load from the cache) the study and write
    ``reports/business.json`` with the gate table.

    Returns:
        The report.
    """
    with progress("business case: programmes, uplift, fairness, gates", None) as advance:
        result = business_case(ctx, force=force)
        gates = gate_results(ctx, result)
        report = {
            **result.to_dict(),
            "config": business_config(ctx).model_dump(),
            "gates": plain(gates),
            "data": {"digest": ctx.data_digest, "source": ctx.source},
        }
        ctx.lake.put_json(contract.BUCKET_REPORTS, "business.json", report, if_changed=not force)
        advance(1)
    return report
