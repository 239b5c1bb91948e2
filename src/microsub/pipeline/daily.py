"""The daily batch (what the Airflow DAG in ``dags/`` runs, one function per task).

A day ``ds`` (``YYYY-MM-DD``) flows through the lake:

1. :func:`ingest_partition`: the raw partition ``raw-data/daily/<ds>.txt`` (dropped there by
   the platform's log shipper; plain text, ``.gz`` or tar like any raw log) becomes the pages
   dataset ``processed-data/daily/<ds>`` (and its quarantine ``quarantine/daily/<ds>``);
2. batch scoring (:func:`microsub.pipeline.score.score_dataset`) publishes
   ``processed-data/scores/daily/<ds>``;
3. the drift check (:func:`microsub.pipeline.monitor.monitor`) compares the day with the
   reference, the pages table the champions were trained on (``processed-data``), and writes
   ``reports/drift.json``;
4. :func:`retrain_due`: on the first day of a month, or when the drift check says so,
   :func:`retrain` fits the benchmark on the day's pages, registers the chosen models as
   challengers (alias ``challenger``) and promotes each to ``champion`` only if it beats the
   champion on the same held-out sessions (:mod:`microsub.serve.promotion`); the decisions go to
   ``reports/retrain.json``.

Every step is idempotent: the same raw partition is not ingested twice, identical scores and
reports are not rewritten, and a challenger already registered (same fingerprint) is reused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from pathlib import Path
from typing import Any

from microsub import contract, models
from microsub.analysis import features, stats
from microsub.config import Settings
from microsub.data import ingest
from microsub.errors import ConfigError, DatasetNotFoundError, ObjectNotFoundError
from microsub.lake import Lake
from microsub.models import benchmark as bm
from microsub.models import tasks
from microsub.pipeline.cache import code_digest
from microsub.pipeline.context import Context
from microsub.pipeline.train import model_card
from microsub.serve import promotion, registry

#: Folder of the daily partitions in ``raw-data``, ``processed-data`` and ``quarantine``.
DAILY = "daily"


def _day(ds: str) -> dt.date:
    try:
        return dt.date.fromisoformat(ds)
    except ValueError:
        raise ConfigError(f"a day must be YYYY-MM-DD, got {ds!r}") from None


def partition(ds: str) -> str:
    """The dataset of day ``ds``: ``processed-data/daily/<ds>``."""
    return f"{contract.BUCKET_PROCESSED}/{DAILY}/{_day(ds).isoformat()}"


def raw_key(ds: str) -> str:
    """Key of the raw partition of day ``ds`` in ``raw-data``."""
    return f"{DAILY}/{_day(ds).isoformat()}.txt"


def ingest_partition(settings: Settings, lake: Lake, ds: str, *, force: bool = False) -> str:
    """Ingest the raw partition of day ``ds`` into ``processed-data/daily/<ds>``.

    Skipped when that dataset was built from the same raw bytes (sha256), unless ``force``.

    Returns:
        The dataset's name, ``processed-data/daily/<ds>`` (for the next tasks).

    Raises:
        ObjectNotFoundError: no raw partition for that day.
        QuarantineLimitError: too many malformed lines (nothing is published then).
    """
    key, name = raw_key(ds), partition(ds)
    prefix = name.partition("/")[2]
    if not lake.exists(contract.BUCKET_RAW, key):
        raise ObjectNotFoundError(
            f"no raw partition for {ds} at {lake.location}/{contract.BUCKET_RAW}/{key}; the log "
            "shipper drops each day's log there (Lake.put_file)"
        )
    with tempfile.TemporaryDirectory(prefix="microsub-day-") as tmp:
        raw = lake.get_file(contract.BUCKET_RAW, key, Path(tmp) / f"{ds}.txt")
        sha = hashlib.sha256(raw.read_bytes()).hexdigest()
        if not force and _ingested_from(lake, prefix) == sha:
            return name
        source = {"kind": "daily", "day": ds, "raw_key": key, "raw_sha256": sha}
        common = {"meta": {"source": source}}
        with (
            lake.writer(contract.BUCKET_PROCESSED, prefix, dataset="pages",
                        schema=contract.PAGES_SCHEMA, part_rows=65_536, **common) as pages,
            lake.writer(contract.BUCKET_QUARANTINE, prefix, dataset="quarantine",
                        schema=contract.QUARANTINE_SCHEMA, **common) as quarantine,
        ):  # fmt: skip
            writers = {"pages": pages, "quarantine": quarantine}
            report = ingest.ingest(
                raw,
                sink=lambda kind, table: writers[kind].write(table),
                batch_bytes=settings.ingest_batch_bytes,
                max_quarantine_share=settings.max_quarantine_share,
                with_items=False,
            )
            for w in writers.values():
                w.update_meta({"source": source, "ingest": report.to_dict()})
    return name


def _ingested_from(lake: Lake, prefix: str) -> str | None:
    try:
        manifest = lake.manifest(contract.BUCKET_PROCESSED, prefix)
    except DatasetNotFoundError:
        return None
    return manifest.meta.get("source", {}).get("raw_sha256")


def retrain_due(ds: str, drift_report: dict[str, Any]) -> tuple[bool, str]:
    """Whether day ``ds`` retrains, and why: monthly (the first day of a month) or because the
    drift check found a column at or past the act threshold."""
    if drift_report.get("retrain"):
        return True, f"drift: PSI >= 0.2 on {', '.join(drift_report.get('act', []))}"
    if _day(ds).day == 1:
        return True, "monthly retraining (first day of the month)"
    return False, "no drift needing action, not the first day of a month"


def _champion(settings: Settings, task: str) -> registry.LoadedModel | None:
    if registry.version(settings, task, registry.CHAMPION) is None:
        return None
    return registry.load(settings, task, registry.CHAMPION)


def _predict(task: str, estimator: Any, X: Any) -> Any:
    if task == "churn":
        return estimator.predict_proba(X)[:, list(estimator.classes_).index(1)]
    return estimator.predict(X)


def retrain(settings: Settings, lake: Lake, dataset: str) -> dict[str, Any]:
    """Fit the benchmark on ``dataset`` (``BUCKET[/PREFIX]``), register each task's chosen model
    as the challenger and promote it to champion only if it beats the champion on the held-out
    sessions (:func:`microsub.serve.promotion.decide`). Writes ``reports/retrain.json``.

    Returns:
        ``{"dataset": ..., "decisions": {task: Decision fields + "challenger_version",
        "champion_version" (after the decision)}}``.
    """
    bucket, _, prefix = dataset.partition("/")
    ctx = Context(settings, lake, lake.manifest(bucket, prefix))
    pages = lake.read_pandas(bucket, prefix)
    result = bm.run_benchmark(pages, random_state=settings.seed)
    frame = features.add_features(pages)
    rows = tasks.split_sessions(frame["session_id"].to_numpy(), result.config, settings.seed)
    code = code_digest(models, features, stats)
    decisions = {}
    for task, key in result.best.items():
        champion = _champion(settings, task)
        challenger = registry.register(
            settings, model_card(ctx, result, key, code), result.estimators[key],
            aliases=(registry.CHALLENGER,),
        )  # fmt: skip
        held_out = tasks.task_data(frame, rows, task)
        y, X = held_out.y["test"], held_out.X["test"]
        share = result.config.top_share
        decision = promotion.decide(
            task,
            promotion.held_out_metrics(task, y, result.predictions[key], share),
            None if champion is None
            else promotion.held_out_metrics(task, y, _predict(task, champion.estimator, X), share),
        )  # fmt: skip
        serving = champion.info.version if champion is not None else None
        if decision.promote:
            serving = registry.set_alias(
                settings, task, registry.CHAMPION, challenger.version
            ).version
        decisions[task] = {
            **decision.to_dict(),
            "challenger_version": challenger.version,
            "champion_version": serving,
        }
    report = {"dataset": dataset, "data_digest": ctx.data_digest, "decisions": decisions}
    lake.put_json(contract.BUCKET_REPORTS, "retrain.json", report)
    return report
