"""Findings: built from what the pipeline computed, written to a local lake by the explore stage,
read back equal; display tables carry the same numbers."""

from __future__ import annotations

import dataclasses
import math
import re
import types
from pathlib import Path

import pandas as pd
import pytest

from microsub import fmt, pipeline, progress
from microsub.analysis import calibration, recovery
from microsub.analysis.features import FEATURE_SETS
from microsub.business import gates
from microsub.business.config import load_config
from microsub.config import Settings
from microsub.contract import BUCKET_ITEMS, BUCKET_PROCESSED, BUCKET_REPORTS
from microsub.data import ingest, synth
from microsub.errors import ObjectNotFoundError
from microsub.lake import open_lake
from microsub.report import findings, labels, tables
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


# --------------------------------------------------------------------------------------------
# Display tables of chapter 03 in words, and the estimates beside the generator's truth
# --------------------------------------------------------------------------------------------
_SNAKE = re.compile(r"(?<![\w`])(" + "|".join(map(re.escape, labels.SNAKE_CASE)) + r")(?![\w`])")


def _raw_names(table) -> list[str]:
    cells = [str(v) for v in table.to_numpy().ravel()] + [str(c) for c in table.columns]
    return [m.group(1) for cell in cells for m in _SNAKE.finditer(cell)]


def test_words_replace_snake_case_names_only():
    assert labels.words("age_level vs hour_cos; the hour; `hour_sin`") == (
        "age level vs hour (cosine); the hour; `hour_sin`"
    )
    assert labels.label("action_page_id") == labels.LABELS["action_page_id"]
    assert labels.label("unknown_column") == "unknown_column"
    assert all("_" in name for name in labels.SNAKE_CASE)


def test_chapter_tables_name_columns_in_words(explored):
    ctx, doc = explored
    ex = pipeline.exploration(ctx)
    sets = tables.feature_sets_display()
    assert list(sets["Features"]) == [len(fs.columns) for fs in FEATURE_SETS.values()]
    assert set(sets["Known at"]) == {"end of page t", "start of page t"}
    audit = tables.audit_display(ex.audit_table())
    assert list(audit["Status"]) == [c.status for c in ex.audit]
    for table in (sets, audit, tables.feature_findings_display(doc)):
        assert not _raw_names(table), _raw_names(table)


def test_feature_findings_display_says_why_each_feature_is_kept(explored):
    _, doc = explored
    shown = tables.feature_findings_display(doc)
    rows = doc["features"]["columns"]
    assert list(shown["Feature"]) == [labels.label(r["feature"]) for r in rows]
    names = {r["key"]: r["name"] for r in doc["hypotheses"]["results"]}
    for row, status, evidence in zip(rows, shown["Status"], shown["Evidence"], strict=True):
        assert status.startswith("confirmed") == row["confirmed"], (row["feature"], status)
        assert ("golden" in status) == row["golden"]
        if not row["tested"] and not row["golden"]:
            assert status == "kept without a test"
        for key, verdict in row["evidence"].items():
            assert f"{names[key]}: {verdict}" in evidence


def test_calibration_display_without_a_comparison_says_why():
    shown = tables.calibration_display(None, "this rendering ran on the real log")
    assert shown.iloc[0].tolist() == [
        "calibration of the generator",
        "not compared",
        "this rendering ran on the real log",
    ]
    assert "n/a" not in shown.to_numpy()


def test_generator_recovery_sets_the_true_values_beside_the_estimates(explored):
    ctx, doc = explored
    table = pipeline.generator_recovery(ctx)  # a 4,000-page control log is written once
    p = params.DEFAULT_PARAMS
    assert table is not None and len(table) == len(recovery.LEAVE_TERMS)
    truth = table.set_index("term")["truth"]
    assert truth["depth"] == p.leave_depth and truth["engagement"] == p.leave_engagement
    assert truth["night_depth"] == pytest.approx(p.leave_depth * p.leave_night_fatigue)
    for prefix in ("", "control_"):
        inside = (table[f"{prefix}ci_low"] <= table["truth"]) & (
            table["truth"] <= table[f"{prefix}ci_high"]
        )
        assert table[f"{prefix}covered"].tolist() == inside.tolist()
    assert pipeline.generator_recovery(ctx) is not None  # cached
    # no truth for real data or other parameters: the chapter leaves the table out
    real = types.SimpleNamespace(source={"kind": "real", "file": "www.data"})
    assert pipeline.generator_recovery(real) is None
    other = types.SimpleNamespace(source={"kind": "synthetic", "params_digest": "other"})
    assert pipeline.generator_recovery(other) is None


def test_recovery_display_shows_truth_estimate_and_coverage():
    p = params.DEFAULT_PARAMS
    table = pd.DataFrame(
        {
            "term": ["depth", "engagement"],
            "meaning": ["fatigue per page", "retention"],
            "parameters": ["leave_depth", "leave_engagement"],
            "truth": [p.leave_depth, p.leave_engagement],
            "estimate": [0.145, 1.49],
            "ci_low": [0.136, 1.40],
            "ci_high": [0.154, 1.58],
            "covered": [False, True],
            "relative": [0.145 / p.leave_depth, 1.49 / p.leave_engagement],
            "control_covered": [True, False],
            "control_relative": [0.99, 1.07],
        }
    )
    doc = {
        "hypotheses": {
            "results": [
                {"key": "fatigue", "name": "Fatigue"},
                {"key": "engagement", "name": "Engagement"},
                {"key": "purchase_reset", "name": "Purchase resets the clock"},
            ]
        }
    }
    shown = tables.recovery_display(table, doc)
    assert list(shown["True value"]) == [
        fmt.format_number(p.leave_depth),
        fmt.format_number(p.leave_engagement),
    ]
    assert list(shown["Estimate (95 % CI)"]) == ["0.145 (0.136 to 0.154)", "1.49 (1.40 to 1.58)"]
    assert list(shown["Truth in the interval"]) == ["no", "yes"]
    assert list(shown["Without the hidden propensity"]) == ["yes", "no"]
    assert list(shown["Tested by"]) == ["Fatigue", "Engagement"]
    summary = tables.recovery_summary(table)
    assert summary["covered"] == 1 and summary["terms"] == 2
    assert summary["covered_terms"] == ["retention"]
    assert summary["missed_terms"] == ["fatigue per page"]
    assert summary["control_covered"] == 1
    assert summary["control_missed_terms"] == ["retention"]
    assert (summary["control_relative_low"], summary["control_relative_high"]) == (0.99, 1.07)
    assert summary["relative_low"] == pytest.approx(0.145 / p.leave_depth)
    assert tables.recovery_summary(table.drop(columns="control_covered"))["control_covered"] is None
    assert "control_covered" not in tables.recovery_display(
        table.drop(columns="control_covered"), doc
    )
    # the generator coefficients outside the leave model are named in words
    outside = tables.generator_terms_outside({})
    assert outside and all("_" not in text for text in outside)
