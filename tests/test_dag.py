"""The daily Airflow DAG: `dag.test()` runs two days end to end, in a subprocess with its own
AIRFLOW_HOME (SQLite metadata database) so that Airflow's logging and settings stay out of this
process. A day from the generator's own parameters is ingested, scored and checked, and does
not retrain; a shifted day drifts, retrains, registers challengers and promotes each only if
it beats the champion on the same held-out sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from microsub import contract
from microsub.lake import open_lake
from microsub.pipeline import daily
from microsub.serve import registry

DAGS = Path(__file__).resolve().parents[1] / "dags"

SCRIPT = """
import json, sys
import pendulum
from microsub_daily import microsub_daily_dag as dag

out = {}
for ds in sys.argv[1:]:
    run = dag.test(logical_date=pendulum.parse(ds))
    out[ds] = {"state": str(run.state),
               "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()}}
print("RESULT " + json.dumps(out))
"""


def _airflow_env(settings, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICROSUB_", "AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONPATH=str(DAGS),
        MICROSUB_DATA_DIR=str(settings.data_dir),
        MICROSUB_LAKE=settings.lake,
        MICROSUB_MLFLOW_TRACKING_URI=settings.tracking_uri,
        MICROSUB_SEED=str(settings.seed),
    )
    return env


def test_retraining_is_due_monthly_or_on_drift() -> None:
    assert daily.retrain_due("2026-06-01", {"retrain": False}) == (
        True, "monthly retraining (first day of the month)")  # fmt: skip
    assert daily.retrain_due("2026-06-02", {"retrain": True, "act": ["hour_cos"]}) == (
        True, "drift: PSI >= 0.2 on hour_cos")  # fmt: skip
    assert daily.retrain_due("2026-06-02", {"retrain": False})[0] is False
    assert daily.partition("2026-06-02") == "processed-data/daily/2026-06-02"


@pytest.mark.slow
def test_dag_test_runs_two_days_green(trained_copy, days, tmp_path) -> None:
    settings = trained_copy
    lake = open_lake(settings)
    for ds, kind in (("2026-05-02", "same"), ("2026-05-03", "shifted")):
        lake.put_file(contract.BUCKET_RAW, daily.raw_key(ds), days[kind])
    champions = {t: registry.version(settings, t) for t in registry.MODEL_NAMES}

    env = _airflow_env(settings, tmp_path / "airflow")
    airflow = Path(sys.executable).parent / "airflow"
    migrate = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    run = subprocess.run([sys.executable, "-c", SCRIPT, "2026-05-02", "2026-05-03"], env=env,
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    log = run.stdout[-4000:] + run.stderr[-4000:]
    assert run.returncode == 0, log
    result = json.loads(run.stdout.split("RESULT ", 1)[1])

    calm, shifted = result["2026-05-02"], result["2026-05-03"]
    assert calm["state"] == shifted["state"] == "success", log
    common = {"ingest": "success", "score": "success", "check_drift": "success",
              "retrain_or_not": "success"}  # fmt: skip
    assert calm["tasks"] == {**common, "no_retrain": "success", "retrain": "skipped"}
    assert shifted["tasks"] == {**common, "retrain": "success", "no_retrain": "skipped"}

    # what the two runs left in the lake
    for ds in ("2026-05-02", "2026-05-03"):
        assert lake.manifest(contract.BUCKET_PROCESSED, f"daily/{ds}").rows == 12_000
        assert lake.manifest(contract.BUCKET_PROCESSED, f"scores/daily/{ds}").rows == 12_000
    drift = lake.get_json(contract.BUCKET_REPORTS, "drift.json")
    assert drift["current"]["prefix"] == "daily/2026-05-03" and drift["retrain"] is True
    retrain = lake.get_json(contract.BUCKET_REPORTS, "retrain.json")
    assert retrain["dataset"] == "processed-data/daily/2026-05-03"
    for task, decision in retrain["decisions"].items():
        challenger = registry.version(settings, task, registry.CHALLENGER)
        champion = registry.version(settings, task, registry.CHAMPION)
        assert challenger.version == decision["challenger_version"] != champions[task].version
        assert challenger.data_digest == retrain["data_digest"]
        # promoted exactly when it beat the champion on the same held-out sessions
        expected = decision["challenger_version"] if decision["promote"] else (
            champions[task].version)  # fmt: skip
        assert champion.version == decision["champion_version"] == expected
        if task == "churn":
            c, k = decision["challenger"], decision["champion"]
            beats = c["roc_auc"] > k["roc_auc"] and c["precision_at_20"] >= k["precision_at_20"]
        else:
            beats = decision["challenger"]["rmse"] < decision["champion"]["rmse"]
        assert decision["promote"] == beats
