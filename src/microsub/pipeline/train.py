"""Stage ``train``: the model benchmark, the model registry (``models`` bucket) and
``reports/benchmark.json``."""

from __future__ import annotations

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


def registry_names(result: BenchmarkResult) -> dict[str, str]:
    """Registry name -> benchmark key of the models the train stage saves: the chosen model of
    each task under the task's name (``churn``, ``value``), every scratch model under
    ``<task>-<key>`` (e.g. ``churn-logistic-gd``, ``value-boosted-trees``)."""
    names = {task: key for task, key in result.best.items()}
    scratch = result.metrics[result.metrics["implementation"] == "scratch"]
    for task, key in zip(scratch["task"], scratch["key"], strict=True):
        short = key.removesuffix("_clf").removesuffix("_reg").replace("_", "-")
        names[f"{task}-{short}"] = key
    return names


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


def train_stage(
    ctx: Context, progress: ProgressFactory = quiet, force: bool = False
) -> dict[str, Any]:
    """Stage ``train``: benchmark the models, register the chosen and the scratch ones in the
    ``models`` bucket with their cards, and write ``reports/benchmark.json``.

    Idempotent: the benchmark comes from the cache when the data and code are unchanged, and
    neither the models nor the report are rewritten when their content is the same.

    Returns:
        ``{"best": task -> key, "models": registry name -> sha256 of the model bytes}``.
    """
    with progress("training and benchmarking the churn and value models", None) as advance:
        result = benchmark(ctx, force=force)
        data = _training_data(ctx, result)
        saved = {}
        for name, key in registry_names(result).items():
            test, train = result.row(key), result.row(key, train=True)
            task = str(test["task"])
            set_name, target = TASKS[task]
            keep = [*CHURN_METRICS, "base_rate"] if task == "churn" else [*VALUE_METRICS]
            timing = ["fit_s", "predict_s", "validation"]
            card = registry.make_card(
                task=task,
                target=target,
                feature_set=set_name,
                features=list(features.FEATURE_SETS[set_name].columns),
                estimator=result.estimators[key],
                metrics={
                    "test": {k: float(test[k]) for k in [*keep, *timing]},
                    "train": {k: float(train[k]) for k in keep},
                },
                data=data,
                model=key,
                label=str(test["model"]),
                implementation=str(test["implementation"]),
                chosen=name == task,
                selection_rule=f"{SELECTION_RULES[task]}; {TIE_RULE}",
            )
            stored = registry.save_model(ctx.lake, name, result.estimators[key], card)
            saved[name] = stored["artifact"]["sha256"]
        report = {
            **benchmark_report(result),
            "data": {k: data[k] for k in ("digest", "rows", "source", "seed")},
            "models": saved,
        }
        ctx.lake.put_json(contract.BUCKET_REPORTS, "benchmark.json", report, if_changed=not force)
        advance(1)
    return {"best": dict(result.best), "models": saved}
