"""Stage ``explore``: hypotheses, survival and audit of the pages, written to
``reports/findings.yaml``; and the generator's calibration against the real sample."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from microsub import analysis, contract, fmt, plain
from microsub.analysis import calibration as calib
from microsub.analysis import explore as analysis_explore
from microsub.analysis import recovery
from microsub.analysis.explore import Exploration
from microsub.data import ingest, synth
from microsub.data.ingest import read_tables
from microsub.pipeline.cache import cached, cached_on_pages, code_digest
from microsub.pipeline.context import Context, manifest_digest, read_pages
from microsub.pipeline.raw import RawInput
from microsub.progress import ProgressFactory, quiet
from microsub.report import findings
from microsub.sim import dynamics
from microsub.sim import params as sim_params
from microsub.sim.params import DEFAULT_PARAMS, params_digest


def _explore(pages: pd.DataFrame, random_state: int, data_digest: str, digest: str) -> Exploration:
    """:func:`microsub.analysis.explore.run_all` (the digests are part of the cache key only)."""
    return analysis_explore.run_all(pages, random_state=random_state)


def exploration(ctx: Context, *, force: bool = False) -> Exploration:
    """The exploration of the context's pages, cached by the pages' digest, the seed and the
    analysis code (``force``: recompute)."""
    return cached_on_pages(ctx, _explore, code_digest(analysis, fmt, plain), force)


def _recover(
    pages: pd.DataFrame, n_pages: int, seed: int, data_digest: str, digest: str
) -> pd.DataFrame:
    """The leave-model recovery of the run's pages beside that of a control log of the same
    size and seed written without the unobserved propensity (the digests key the cache)."""
    run = recovery.recover_leave_model(pages, DEFAULT_PARAMS)
    control_params = recovery.without_propensity(DEFAULT_PARAMS)
    with tempfile.TemporaryDirectory(prefix="microsub-control-") as tmp:
        log = Path(tmp) / "control.txt"
        synth.generate(log, n_pages=n_pages, seed=seed, params=control_params)
        control_pages = ingest.read_pages(log).to_pandas()
    control = recovery.recover_leave_model(control_pages, control_params)
    return recovery.with_control(run, control)


def generator_recovery(ctx: Context) -> pd.DataFrame | None:
    """The generator's leave coefficients beside their estimates on the context's pages and on
    a control log without the unobserved propensity (:mod:`microsub.analysis.recovery`:
    ``recover_leave_model``, ``without_propensity``, ``with_control``), cached by the pages'
    digest and the code of the analysis, the generator and the ingestion; None when no truth
    is known: real data, or synthetic data written with other than the default parameters.

    The control log has the run's size and seed and is written to a temporary folder, read into
    memory and deleted (on the first call only: the result is cached)."""
    source = ctx.source
    if source.get("kind") != "synthetic":
        return None
    if source.get("params_digest") != params_digest(DEFAULT_PARAMS):
        return None
    n_pages = int(source.get("n_pages") or ctx.ingest_report.get("pages_written") or 0)
    seed = int(source.get("seed", ctx.settings.seed))
    key = (
        n_pages,
        seed,
        ctx.data_digest,
        code_digest(analysis, dynamics, sim_params, synth, ingest),
    )
    return cached(
        ctx,
        _recover,
        key,
        data=("pages",),
        load=lambda: (read_pages(ctx).to_pandas(),),
    )


def calibration(ctx: Context) -> pd.DataFrame | None:
    """The generator's calibration table (:func:`calib.calibration_comparison`): the real
    sample beside every page of this context's synthetic data, read from the lake's pages and
    items datasets; None for real data or when the real sample is not at hand.

    Cached (joblib) by the pages' and items' digests, the real sample's path and fingerprint
    and the code of the calibration and the ingestion; a cache hit reads neither dataset.
    """
    if ctx.source.get("kind") != "synthetic":
        return None
    real = Path(ctx.settings.real_sample_path)
    if not real.is_file():
        return None
    key = (
        str(real),
        ctx.data_digest,
        manifest_digest(ctx.lake.manifest(contract.BUCKET_ITEMS)),
        RawInput(real, "real").fingerprint(),
        code_digest(calib, ingest),
    )

    def load() -> tuple[pa.Table, pa.Table]:
        lake = ctx.lake
        return (
            lake.read_table(contract.BUCKET_PROCESSED, columns=list(calib.STATISTICS_PAGE_COLUMNS)),
            lake.read_table(contract.BUCKET_ITEMS, columns=list(calib.STATISTICS_ITEM_COLUMNS)),
        )

    return cached(ctx, _calibrate, key, data=("pages", "items"), load=load)


def _calibrate(pages: pa.Table, items: pa.Table, real_path: str, *digests: str) -> pd.DataFrame:
    """The real sample's statistics beside the synthetic tables' (the digests key the cache)."""
    real = calib.sample_statistics(read_tables(real_path))
    return calib.calibration_comparison(real, calib.sample_statistics_of(pages, items))


def explore_stage(
    ctx: Context, progress: ProgressFactory = quiet, force: bool = False
) -> dict[str, Any]:
    """Stage ``explore``: compute the exploration and write ``reports/findings.yaml``.

    Idempotent: the exploration comes from the cache when the data and code are unchanged,
    and the document is rewritten only when its text changes (or with ``force``).

    Returns:
        The findings document (:func:`microsub.report.findings.build_findings`).
    """
    with progress("exploring the pages: hypotheses, survival, audit", None) as advance:
        result = exploration(ctx, force=force)
        doc = findings.build_findings(
            ctx.source, ctx.ingest_report, result, data_digest=ctx.data_digest
        )
        findings.write_findings(ctx.lake, doc, force=force)
        advance(1)
    return doc
