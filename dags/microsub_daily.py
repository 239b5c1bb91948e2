"""microsub's daily batch as an Airflow DAG (TaskFlow API, Airflow 3).

Each task is one call into the package (:mod:`microsub.pipeline.daily` says what each does);
the settings come from the worker's ``MICROSUB_*`` environment (lake, MLflow registry, seed),
as for the ``microsub`` command.

::

    ingest ──► score ──► check_drift ──► retrain_or_not ──► retrain      (monthly, or on drift)
                                                       └──► no_retrain

* ``ingest``: ``raw-data/daily/<ds>.txt`` -> ``processed-data/daily/<ds>``;
* ``score``: the champions score the day -> ``processed-data/scores/daily/<ds>``;
* ``check_drift``: the day against the pages the champions were trained on
  (``processed-data``) -> ``reports/drift.json``;
* ``retrain_or_not``: ``retrain`` on the first day of a month or when a column's PSI reached 0.2;
* ``retrain``: the benchmark on the day's pages; each chosen model is registered as
  ``challenger`` and promoted to ``champion`` only if it beats the champion on the same held-out
  sessions -> ``reports/retrain.json``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from microsub.config import get_settings
from microsub.lake import open_lake
from microsub.pipeline import daily
from microsub.pipeline.monitor import monitor
from microsub.pipeline.score import score_dataset

#: The reference of the drift check: the pages table the champions were trained on.
REFERENCE = "processed-data"


@dag(
    dag_id="microsub_daily",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["microsub"],
    doc_md=__doc__,
)
def microsub_daily() -> None:
    """Ingest, score and check one day; retrain monthly or on drift."""

    @task
    def ingest(ds: str | None = None) -> str:
        settings = get_settings()
        return daily.ingest_partition(settings, open_lake(settings), str(ds))

    @task
    def score(dataset: str) -> dict[str, Any]:
        settings = get_settings()
        manifest = score_dataset(settings, open_lake(settings), dataset)
        return {"scores": f"{manifest.bucket}/{manifest.prefix}", "rows": manifest.rows}

    @task
    def check_drift(dataset: str) -> dict[str, Any]:
        settings = get_settings()
        report = monitor(settings, open_lake(settings), REFERENCE, dataset)
        return {k: report[k] for k in ("status", "retrain", "act", "watch")}

    @task.branch
    def retrain_or_not(drift: dict[str, Any], ds: str | None = None) -> str:
        due, why = daily.retrain_due(str(ds), drift)
        print(f"retraining {'due' if due else 'not due'}: {why}")
        return "retrain" if due else "no_retrain"

    @task
    def retrain(dataset: str) -> dict[str, Any]:
        settings = get_settings()
        return daily.retrain(settings, open_lake(settings), dataset)["decisions"]

    @task
    def no_retrain() -> str:
        return "champions kept"

    dataset = ingest()
    scored = score(dataset)
    drift = check_drift(dataset)
    scored >> drift
    retrain_or_not(drift) >> [retrain(dataset), no_retrain()]


microsub_daily_dag = microsub_daily()
