"""The pipeline: raw log → lake → exploration → models, and the cached results the book reads.

Stages, each idempotent (it does nothing when its output in the lake is already up to date):

1. ``raw`` (:mod:`.raw`): the input log, real or synthetic (generated once and reused);
2. ``ingest`` (:mod:`.ingest`): the raw log into the lake (pages, items, quarantine);
3. ``explore`` (:mod:`.explore`): hypotheses, survival, audit -> ``reports/findings.yaml``;
4. ``train`` (:mod:`.train`): models, the MLflow registry, ``reports/benchmark.json``;
5. ``simulate`` (:mod:`.simulate`): the session simulator, policies, ``reports/simulation.json``;
6. ``latency`` (:mod:`.latency`): the scoring service under load with the champions,
   ``reports/serving.json``;
7. ``business`` (:mod:`.business`): retention programmes, fairness, every gate measured,
   ``reports/business.json``.

:mod:`.run` chains them (:data:`STAGES`); :mod:`.context` and :mod:`.cache` hold what they
share.

The book and the deck call :func:`context`, which runs whatever is missing and hands back the
lake and the pages manifest; expensive analyses go through :func:`cached`, a joblib cache keyed
by the digest of the data they read, so the chapters and the deck share work within a render and
a new dataset invalidates it.
"""

from __future__ import annotations

from microsub.pipeline.business import business_case, gate_results
from microsub.pipeline.cache import cached, code_digest
from microsub.pipeline.context import Context, read_pages
from microsub.pipeline.explore import calibration, exploration, generator_recovery
from microsub.pipeline.ingest import ingest_raw, ingest_uri
from microsub.pipeline.raw import RawInput, generate_synthetic, prepare_raw
from microsub.pipeline.run import STAGES, context, run
from microsub.pipeline.simulate import simulation
from microsub.pipeline.train import benchmark, benchmark_report, model_card, register_chosen

__all__ = [
    "STAGES",
    "Context",
    "RawInput",
    "benchmark",
    "benchmark_report",
    "business_case",
    "cached",
    "calibration",
    "code_digest",
    "context",
    "exploration",
    "gate_results",
    "generate_synthetic",
    "generator_recovery",
    "ingest_raw",
    "ingest_uri",
    "prepare_raw",
    "read_pages",
    "model_card",
    "register_chosen",
    "run",
    "simulation",
]
