"""The pipeline's ``latency`` stage: a real ``microsub serve`` child process with this run's
champions under open-loop load, its report in the lake, and the latency gate that reads it."""

from __future__ import annotations

import pytest

from microsub import pipeline
from microsub.pipeline.latency import IN_PROCESS, latency_stage
from microsub.serve import latency, registry


@pytest.fixture(scope="module")
def measured(trained):
    """``trained`` with the stage run for 2 s (a copy of the settings: nothing else moves)."""
    settings = trained.model_copy(update={"latency_check_seconds": 2.0})
    ctx = pipeline.run(settings, stages=())
    return ctx, latency_stage(ctx, force=True)


def test_the_stage_measures_the_champions_over_http(measured) -> None:
    ctx, report = measured
    run = report["rates"][0]
    assert [r["rate"] for r in report["rates"]] == [latency.REFERENCE_RATE]
    assert run["sent"] == 2 * latency.REFERENCE_RATE  # 2 s at 200 requests per second
    assert run["ok"] + run["errors"] == run["sent"]
    assert run["statuses"].get("401", 0) == 0  # the child got the key the client sends
    assert run["ok"] > 0 and 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
    assert report["in_process_ms"]["n"] == IN_PROCESS
    champions = {t: registry.version(ctx.settings, t) for t in registry.MODEL_NAMES}
    assert report["models"] == {
        t: {"name": v.name, "version": v.version} for t, v in champions.items()
    }
    assert latency.read(ctx.lake) == report


def test_the_gate_reads_what_the_stage_measured(measured) -> None:
    ctx, report = measured
    run = report["rates"][0]
    expected = float("inf") if run["errors"] else run["p99_ms"]
    assert latency.scoring_p99_ms(ctx.lake) == expected


def test_a_report_of_the_same_champions_is_kept(measured) -> None:
    ctx, report = measured
    again = latency_stage(ctx)  # not forced: the report measured these champions
    assert again["measured_at"] == report["measured_at"]
    assert latency.read(ctx.lake)["measured_at"] == report["measured_at"]


def test_zero_seconds_skips_the_stage(trained) -> None:
    ctx = pipeline.run(trained.model_copy(update={"latency_check_seconds": 0.0}), stages=())
    assert latency_stage(ctx, force=True) is None
