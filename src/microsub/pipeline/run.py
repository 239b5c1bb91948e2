"""Running the pipeline: raw log, ingestion, then the later stages in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from microsub.config import Settings, get_settings
from microsub.lake import open_lake
from microsub.pipeline.business import business_stage
from microsub.pipeline.context import Context
from microsub.pipeline.explore import explore_stage
from microsub.pipeline.ingest import ingest_raw
from microsub.pipeline.latency import latency_stage
from microsub.pipeline.raw import prepare_raw
from microsub.pipeline.simulate import simulate_stage
from microsub.pipeline.train import train_stage
from microsub.progress import ProgressFactory, quiet

Stage = Callable[[Context, ProgressFactory, bool], Any]

#: Stages after ingestion, in order: name -> function(context, progress, force).
STAGES: dict[str, Stage] = {
    "explore": explore_stage,
    "train": train_stage,
    "simulate": simulate_stage,
    "latency": latency_stage,
    "business": business_stage,
}


def run(
    settings: Settings | None = None,
    *,
    force: bool = False,
    stages: tuple[str, ...] | None = None,
    progress: ProgressFactory = quiet,
) -> Context:
    """Run the pipeline: raw log, ingestion, then the later ``stages`` (all by default).

    Every stage is idempotent: it does nothing when its output in the lake is up to date for
    the same data and code; ``force`` redoes it.

    Returns:
        The :class:`Context` of the data the run produced.
    """
    settings = settings or get_settings()
    lake = open_lake(settings)
    raw = prepare_raw(settings, progress=progress)
    manifest = ingest_raw(settings, lake, raw, force=force, progress=progress)
    ctx = Context(settings, lake, manifest)
    for name, stage in STAGES.items():
        if stages is None or name in stages:
            stage(ctx, progress, force)
    return ctx


def context(settings: Settings | None = None) -> Context:
    """The pipeline's context for the book: runs what is missing (quietly) and returns it."""
    return run(settings, stages=())
