"""`microsub monitor` on generated days: a second log from the generator's own parameters raises
no alarm (exit 0); a log with more night traffic and higher prices does (exit 3), naming the
shifted features; the report lands in reports/drift.json."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from microsub import cli, contract
from microsub.lake import open_lake
from microsub.pipeline import daily
from microsub.pipeline.monitor import monitored_columns


@pytest.fixture(scope="module")
def lake_with_days(trained, days):
    """The trained lake with the days ``same`` (2026-05-02) and ``shifted`` (2026-05-03)."""
    lake = open_lake(trained)
    for ds, kind in (("2026-05-02", "same"), ("2026-05-03", "shifted")):
        lake.put_file(contract.BUCKET_RAW, daily.raw_key(ds), days[kind])
        assert daily.ingest_partition(trained, lake, ds) == f"processed-data/daily/{ds}"
    return lake


@pytest.fixture
def env(trained, monkeypatch):
    monkeypatch.setenv("MICROSUB_DATA_DIR", str(trained.data_dir))
    monkeypatch.setenv("MICROSUB_LAKE", trained.lake)
    monkeypatch.setenv("MICROSUB_MLFLOW_TRACKING_URI", trained.tracking_uri)


def _monitor(current: str):
    args = ["monitor", "--reference", "processed-data", "--current", current]
    return CliRunner().invoke(cli.app, args, catch_exceptions=False, env={"COLUMNS": "160"})


def test_a_second_log_from_the_same_parameters_raises_no_alarm(lake_with_days, env) -> None:
    result = _monitor("processed-data/daily/2026-05-02")
    assert result.exit_code == 0, result.output
    report = lake_with_days.get_json(contract.BUCKET_REPORTS, "drift.json")
    assert report["status"] == "ok" and report["retrain"] is False
    assert report["act"] == [] and report["watch"] == []
    assert [c["column"] for c in report["columns"]] == monitored_columns()
    assert max(c["psi"] for c in report["columns"]) < 0.05
    assert report["n_reference"] == 20_000 and report["n_current"] == 12_000
    assert report["current"]["prefix"] == "daily/2026-05-02"
    assert report["models"] == {"churn": 1, "value": 1}


def test_more_night_traffic_and_higher_prices_call_for_retraining(lake_with_days, env) -> None:
    result = _monitor("processed-data/daily/2026-05-03")
    assert result.exit_code == cli.EXIT_RETRAIN == 3
    assert "retraining due: PSI >= 0.2 on hour_cos, mean_log_price" in result.output
    report = lake_with_days.get_json(contract.BUCKET_REPORTS, "drift.json")
    assert report["status"] == "act" and report["retrain"] is True
    # the two inputs that were shifted, and at most the scores computed from them (a value
    # model that prices pages moves with the prices); no other input
    assert report["act"][:2] == ["hour_cos", "mean_log_price"]
    assert set(report["act"][2:]) <= {"p_leave", "expected_value"}
    by_name = {c["column"]: c for c in report["columns"]}
    assert "hour_sin" in report["watch"]
    # prices 1.6x higher: ln price up by about ln 1.6 = 0.47
    shift = by_name["mean_log_price"]["current_mean"] - by_name["mean_log_price"]["reference_mean"]
    assert shift == pytest.approx(0.47, abs=0.05)
    assert by_name["mean_log_price"]["ks_pvalue"] < 1e-6
    # what the shift did not touch stays calm
    for column in ("state_purchase_power", "engagement", "n_favs", "purchased", "mean_ctr"):
        assert by_name[column]["status"] == "ok", column


def test_monitor_needs_both_datasets(env, lake_with_days) -> None:
    args = ["--reference", "processed-data", "--current", "processed-data/daily/1999-01-01"]
    result = CliRunner().invoke(cli.app, ["monitor", *args])
    assert result.exit_code == 1
    assert "no dataset at" in result.output
