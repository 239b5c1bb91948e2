"""Findings: built from what the pipeline computed, written to a local lake by the explore stage,
read back equal; display tables carry the same numbers."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from microsub import fmt, pipeline, progress
from microsub.analysis import calibration
from microsub.business import gates
from microsub.business.config import load_config
from microsub.config import Settings
from microsub.contract import BUCKET_ITEMS, BUCKET_PROCESSED, BUCKET_REPORTS
from microsub.data import ingest, synth
from microsub.errors import ObjectNotFoundError
from microsub.lake import open_lake
from microsub.report import findings, tables
from microsub.sim import params


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory) -> tuple[pipeline.Context, dict]:
    """A 4,000-page synthetic log ingested into a local lake, explored by the explore stage."""
    base = tmp_path_factory.mktemp("findings")
    settings = Settings(data_dir=base / "data", lake=str(base / "lake"), seed=7)
    raw_path = base / "raw" / "synthetic.txt"
    summary = synth.generate(raw_path, n_pages=4000, seed=7)
    details = {
        "file": raw_path.name,
        "profile": "test",
        "seed": 7,
        "n_pages": 4000,
        "params_digest": summary.params_digest,
    }
    lake = open_lake(settings)
    raw = pipeline.RawInput(raw_path, "synthetic", details)
    ctx = pipeline.Context(settings, lake, pipeline.ingest_raw(settings, lake, raw))
    doc = pipeline.STAGES["explore"](ctx, progress.quiet, False)
    return ctx, doc


def test_explore_stage_is_registered_and_writes_the_document(explored):
    ctx, doc = explored
    assert pipeline.STAGES["explore"] is pipeline.explore.explore_stage
    assert ctx.lake.exists(BUCKET_REPORTS, findings.FINDINGS_KEY)
    assert findings.read_findings(ctx.lake) == doc


def test_findings_round_trip_through_yaml_and_the_lake(explored):
    ctx, doc = explored
    assert findings.from_yaml(findings.to_yaml(doc)) == doc
    # unchanged content is not rewritten; a forced write is
    assert findings.write_findings(ctx.lake, doc) is False
    assert findings.write_findings(ctx.lake, doc, force=True) is True
    assert findings.read_findings(ctx.lake) == doc


def test_findings_hold_the_values_the_analysis_computed(explored):
    ctx, doc = explored
    ex = pipeline.exploration(ctx)  # from the cache the stage filled
    results = doc["hypotheses"]["results"]
    assert [r["key"] for r in results] == [r.key for r in ex.hypotheses]
    for stored, computed in zip(results, ex.hypotheses, strict=True):
        for name in ("estimate", "ci_low", "ci_high", "p_value", "p_adjusted"):
            value = getattr(computed, name)
            if math.isfinite(value):
                assert stored[name] == pytest.approx(value, rel=1e-12), (computed.key, name)
            else:
                assert stored[name] is None
        assert stored["verdict"] == computed.verdict
        assert stored["summary"] == computed.summary
    assert doc["hypotheses"]["correction"] == "holm"
    assert doc["hypotheses"]["family_size"] == sum(
        1 for r in ex.hypotheses if math.isfinite(r.p_value)
    )
    # targets and descriptive numbers
    left = ex.class_balance.set_index("done").loc[1]
    assert doc["targets"]["classification"]["column"] == "done"
    assert doc["targets"]["classification"]["positive_pages"] == int(left["pages"])
    assert doc["targets"]["regression"]["column"] == "reward"
    assert doc["targets"]["regression"]["nonzero_share"] == pytest.approx(ex.rewards.share_nonzero)
    assert doc["descriptive"]["pages"] == ex.n_pages == 4000
    assert doc["descriptive"]["sessions"] == ex.n_sessions
    # the audit is the computed one
    assert doc["audit"] == [dataclasses.asdict(c) for c in ex.audit]


def test_findings_carry_source_quality_and_gates(explored):
    ctx, doc = explored
    assert doc["success_metrics"] == gates.gates_as_records()
    src = doc["data_source"]
    assert src["kind"] == "synthetic" and src["seed"] == 7
    assert src["data_digest"] == ctx.data_digest
    assert "synthetic data of the test profile (4,000 pages, seed 7" in src["description"]
    q = doc["data_quality"]
    report = ctx.ingest_report
    assert q["reconciles"] is True
    assert q["lines_read"] == report["lines_read"] == 4000
    assert q["pages_written"] + q["lines_quarantined"] == q["lines_read"]
    assert q["sessions"] == report["sessions"]
    assert q["sessions_done"] + q["sessions_truncated"] == q["sessions"]


def test_confirmed_features_are_the_golden_ones_plus_what_the_analysis_supports(explored):
    _, doc = explored
    verdicts = {r["key"]: r["verdict"] for r in doc["hypotheses"]["results"]}
    rows = {row["feature"]: row for row in doc["features"]["columns"]}
    for name in doc["features"]["golden"]:
        assert rows[name]["golden"] and rows[name]["confirmed"]
    for name, row in rows.items():
        evidence = findings.FEATURE_EVIDENCE.get(name, ())
        supported = any(verdicts[k] == "supported" for k in evidence)
        assert row["supported_by_analysis"] == supported, name
        assert row["confirmed"] == (row["golden"] or supported), name
        assert row["tested"] == bool(evidence), name
    assert not set(doc["features"]["protected_never_features"]) & set(rows)


def test_generator_terms_name_the_coefficients_behind_each_effect(explored):
    _, doc = explored
    terms = doc["hypotheses"]["generator_terms"]
    assert terms["default_parameters"] is True
    assert terms["terms"]["purchase_reset"] == {
        "leave_since_purchase": params.DEFAULT_PARAMS.leave_since_purchase
    }
    real = findings.build_findings(
        {"kind": "real", "file": "www.data"}, {}, pipeline.exploration(explored[0])
    )
    assert real["hypotheses"]["generator_terms"] is None
    assert tables.generator_display(real) is None
    table = tables.generator_display(doc)
    assert len(table) == len(findings.GENERATOR_TERMS)
    assert "`leave_mix` = 1.2" in set(table["Built in by"])


def test_strongest_correlate_names_the_column_or_none(explored):
    ex = pipeline.exploration(explored[0])
    name, rho = tables.strongest_correlate(ex.correlation, "done")
    others = ex.correlation["done"].drop("done")
    assert rho == pytest.approx(others[others.abs().idxmax()])
    assert name == others.abs().idxmax()
    assert tables.strongest_correlate(ex.correlation.drop(columns="done"), "done")[0] == "none"


def test_read_findings_says_how_to_make_them(tmp_path: Path):
    lake = open_lake(Settings(lake=str(tmp_path / "empty")))
    with pytest.raises(ObjectNotFoundError, match="microsub run"):
        findings.read_findings(lake)


def test_display_tables_show_the_computed_numbers(explored):
    ctx, doc = explored
    ex = pipeline.exploration(ctx)
    shown = tables.verdict_display(ex.hypotheses)
    fatigue = ex.result("fatigue")
    row = shown.iloc[0]
    assert row["Hypothesis"] == fatigue.name and row["Verdict"] == fatigue.verdict
    assert row["Estimate (95 % CI)"].startswith(fmt.format_number(fatigue.estimate))
    quality = tables.quality_table(ctx.ingest_report).set_index("Check")["Value"]
    assert quality["lines read"] == "4,000"
    assert quality["lines = pages + quarantined"] == "yes"
    shown_gates = tables.gates_table()
    assert list(shown_gates["Gate"]) == [g.name for g in load_config().gates]
    assert shown_gates.iloc[0]["Target"] == ">= 0.8"


def test_calibration_comparison_sets_a_raw_log_beside_ingested_tables(tmp_path: Path, explored):
    ctx, _ = explored
    pages = ctx.lake.read_table(BUCKET_PROCESSED)
    items = ctx.lake.read_table(BUCKET_ITEMS)
    # the lake's synthetic data compared with its own raw log: both columns equal
    log = tmp_path / "log.txt"
    synth.generate(log, n_pages=4000, seed=7)
    raw = calibration.sample_statistics(ingest.read_tables(log))
    table = calibration.calibration_comparison(raw, calibration.sample_statistics_of(pages, items))
    assert list(table["statistic"]) == list(calibration.CALIBRATION_ROWS)
    assert table["real"].tolist() == pytest.approx(table["synthetic"].tolist(), nan_ok=True)
