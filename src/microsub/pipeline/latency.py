"""Stage ``latency``: the scoring service measured with this run's champions.

Starts a real ``microsub serve`` (the settings of this run, a fresh random API key) and sends
it requests at the reference rate of :mod:`microsub.serve.latency` (200 per second) for
``Settings.latency_check_seconds``, each request a real session of the pages table so far
(:mod:`microsub.serve.measure`); publishes ``reports/serving.json``, where the business stage
reads the latency gate. It is a short check, not the benchmark: ``benchmarks/serving.py``
measures 60 s per rate, at 1,000 requests per second too, with repeats, and publishes to the
same key; a report measured on the current champions is kept (the stage does nothing), so a
longer benchmark run is not overwritten by a shorter check.

``latency_check_seconds = 0`` skips the stage: the gate stays unmeasured and fails, as the
book says.
"""

from __future__ import annotations

import os
from typing import Any

from microsub.errors import ServingError
from microsub.pipeline.context import Context, read_pages
from microsub.progress import ProgressFactory, quiet
from microsub.serve import latency, measure, registry

#: Sessions whose every prefix is a request body.
SESSIONS = 200
#: Pages scored inside the process beside the HTTP measurement.
IN_PROCESS = 500


def _champion_names(ctx: Context) -> dict[str, Any]:
    """How a serving report names the champions (registry metadata only, no model loaded)."""
    out: dict[str, Any] = {}
    for task in registry.MODEL_NAMES:
        info = registry.version(ctx.settings, task)
        out[task] = None if info is None else {"name": info.name, "version": info.version}
    return out


def _current_report(ctx: Context, names: dict[str, Any]) -> dict[str, Any] | None:
    """The published report when it measured these champions, else None."""
    try:
        report = latency.read(ctx.lake)
    except ServingError:
        return None
    return report if report.get("models") == names else None


def latency_stage(
    ctx: Context, progress: ProgressFactory = quiet, force: bool = False
) -> dict[str, Any] | None:
    """Stage ``latency`` (module docstring).

    Returns:
        The published (or kept) ``reports/serving.json``; None when the settings skip it.

    Raises:
        ServingError: the service did not start (the message has the tail of its log, which is
            written to ``<data_dir>/serving-check.log``).
    """
    seconds = ctx.settings.latency_check_seconds
    if seconds <= 0:
        return None
    kept = None if force else _current_report(ctx, _champion_names(ctx))
    if kept is not None:
        return kept
    models = registry.champions(ctx.settings)  # raises, saying how to register them, if none
    what = f"scoring service: {seconds:g} s at {latency.REFERENCE_RATE} requests/s"
    with progress(what, 1) as advance:
        bodies = measure.session_bodies(read_pages(ctx).to_pandas(), SESSIONS, ctx.settings.seed)
        plan = measure.LoadPlan(duration=seconds, warmup=2.0, in_process=IN_PROCESS)
        log = ctx.settings.data_dir / "serving-check.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **ctx.settings.environment()}
        report = latency.combine([measure.measure_service(bodies, models, plan, log, env)])
        latency.publish(ctx.lake, report)
        advance(1)
    return report


__all__ = ["latency_stage"]
