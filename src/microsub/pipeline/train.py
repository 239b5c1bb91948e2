"""Stage ``train``: the model benchmark, the MLflow registry and ``reports/benchmark.json``."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from microsub import contract, models
from microsub.analysis import features, stats
from microsub.business.gates import benchmark_gates
from microsub.models import benchmark as bm
from microsub.models.benchmark import BenchmarkResult
from microsub.models.specs import CHURN_METRICS, SELECTION_RULES, TASKS, TIE_RULE, VALUE_METRICS
from microsub.pipeline.cache import cached_on_pages, code_digest
from microsub.pipeline.context import Context
from microsub.plain import plain
from microsub.progress import ProgressFactory, quiet
from microsub.serve import registry


def _benchmark(
    pages: pd.DataFrame, random_state: int, data_digest: str, digest: str
) -> BenchmarkResult:
    """:func:`microsub.models.benchmark.run_benchmark` (the digests key the cache only)."""
    return bm.run_benchmark(pages, random_state=random_state)


def benchmark(ctx: Context, *, force: bool = False) -> BenchmarkResult:
    """The benchmark of the context's pages, cached by the pages' digest, the seed and the
    code of the models and the features (``force``: recompute)."""
    return cached_on_pages(ctx, _benchmark, code_digest(models, features, stats), force)


def model_card(ctx: Context, result: BenchmarkResult, key: str, code: str) -> registry.ModelCard:
    """The registry's card of benchmark model ``key``: what it is, its test and train metrics,
    the data it was trained on, and its fingerprint (data digest, seed, ``code``, key)."""
    test, train = result.row(key), result.row(key, train=True)
    task = str(test["task"])
    set_name, target = TASKS[task]
    keep = [*CHURN_METRICS, "base_rate"] if task == "churn" else [*VALUE_METRICS]
    timing = ["fit_s", "predict_s", "validation"]
    fingerprint = hashlib.sha256(
        f"{ctx.data_digest}|{ctx.settings.seed}|{code}|{key}".encode()
    ).hexdigest()[:16]
    return registry.ModelCard(
        task=task,
        key=key,
        label=str(test["model"]),
        implementation=str(test["implementation"]),
        feature_set=set_name,
        features=tuple(features.FEATURE_SETS[set_name].columns),
        target=target,
        metrics={
            "test": {k: float(test[k]) for k in [*keep, *timing]},
            "train": {k: float(train[k]) for k in keep},
        },
        data=_training_data(ctx, result),
        fingerprint=fingerprint,
        hyperparameters=registry.plain_params(result.estimators[key]),
        selection_rule=f"{SELECTION_RULES[task]}; {TIE_RULE}",
    )


def _training_data(ctx: Context, result: BenchmarkResult) -> dict[str, Any]:
    """What a model card says about the data a model was trained on."""
    return {
        "digest": ctx.data_digest,
        "rows": ctx.manifest.rows,
        "source": ctx.source,
        "manifest": {
            "bucket": ctx.manifest.bucket,
            "dataset": ctx.manifest.dataset,
            "schema_version": ctx.manifest.schema_version,
            "parts": [p.sha256 for p in ctx.manifest.parts],
        },
        "seed": ctx.settings.seed,
        "split": plain(result.split),
    }


def benchmark_report(result: BenchmarkResult) -> dict[str, Any]:
    """The benchmark as plain JSON: :meth:`BenchmarkResult.to_dict` with the gate table."""
    report = result.to_dict()
    report["tables"]["gates"] = plain(benchmark_gates(result))
    return report


def register_chosen(
    ctx: Context, result: BenchmarkResult, aliases: tuple[str, ...] = (registry.CHAMPION,)
) -> dict[str, registry.VersionInfo]:
    """Register the chosen model of each task in MLflow with ``aliases``; task -> version.

    A model whose fingerprint (data, seed, code, key) is already registered is not logged again,
    and its aliases are then left where they are (a champion promoted since stays champion).
    """
    code = code_digest(models, features, stats)
    return {
        task: registry.register(
            ctx.settings, model_card(ctx, result, key, code), result.estimators[key],
            aliases=aliases, only_if_new=True,
        )
        for task, key in result.best.items()
    }  # fmt: skip


def train_stage(
    ctx: Context, progress: ProgressFactory = quiet, force: bool = False
) -> dict[str, Any]:
    """Stage ``train``: benchmark the models, register the chosen model of each task in the
    MLflow registry (``microsub-churn``, ``microsub-value``) with the alias ``champion``, and
    write ``reports/benchmark.json``.

    Idempotent: the benchmark comes from the cache when the data and code are unchanged; a model
    whose fingerprint is registered already is not logged again (:mod:`microsub.serve.registry`),
    and the report is not rewritten when its content is the same.

    Returns:
        ``{"best": task -> key, "models": task -> registered version}`` (a version as
        :meth:`~microsub.serve.registry.VersionInfo.to_dict`).
    """
    with progress("training and benchmarking the churn and value models", None) as advance:
        result = benchmark(ctx, force=force)
        data = _training_data(ctx, result)
        registered = {t: v.to_dict() for t, v in register_chosen(ctx, result).items()}
        models_ = {
            t: {k: v[k] for k in ("name", "version", "uri", "run_id", "fingerprint")}
            for t, v in registered.items()
        }
        report = {
            **benchmark_report(result),
            "data": {k: data[k] for k in ("digest", "rows", "source", "seed")},
            "models": models_,
        }
        ctx.lake.put_json(contract.BUCKET_REPORTS, "benchmark.json", report, if_changed=not force)
        advance(1)
    return {"best": dict(result.best), "models": registered}
