"""Tests of microsub.data.spark: the Spark engine gives the tables of the single-machine engine.

Spark runs ``local[2]`` with 32 KiB partitions (fixture ``spark`` in conftest), so every test
file spans several partitions and sessions cross partition boundaries.
"""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from microsub import cli, contract, pipeline
from microsub.config import Settings
from microsub.contract import ITEMS_SCHEMA, PAGES_SCHEMA, QUARANTINE_SCHEMA
from microsub.data import ingest as polars_engine
from microsub.data import spark as spark_engine
from microsub.data import synth
from microsub.data.parse import LIST_FIELDS, REASONS
from microsub.lake import open_lake
from test_ingest import CORRUPTIONS, make_tar, official_line, session_lines, write

SCHEMAS = {"pages": PAGES_SCHEMA, "items": ITEMS_SCHEMA, "quarantine": QUARANTINE_SCHEMA}


def run(engine, path, **kw) -> tuple[dict[str, pa.Table], dict]:
    """Ingest into memory with ``engine``: the three tables, sorted by line number, and the
    report as a dict."""
    parts: dict[str, list[pa.Table]] = {name: [] for name in SCHEMAS}
    report = engine(path, sink=lambda name, table: parts[name].append(table), **kw)
    tables = {
        name: (pa.concat_tables(p) if p else SCHEMAS[name].empty_table()).sort_by("line_no")
        for name, p in parts.items()
    }
    return tables, report.to_dict()


def assert_same(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> None:
    for name in SCHEMAS:
        assert a[name].schema == b[name].schema, name
        pd.testing.assert_frame_equal(a[name].to_pandas(), b[name].to_pandas(), obj=name)


def every_fault(tmp_path: Path) -> Path:
    """Sessions with every kind of malformed line between them, a blank line, a CRLF line and
    a line of invalid UTF-8; sessions run across the 32 KiB partitions."""
    lines = session_lines(12)
    for i, kind in enumerate(sorted(CORRUPTIONS)):
        lines.insert(5 + 3 * i, CORRUPTIONS[kind])
    lines.insert(7, official_line(3, **{name: [0] * 50 for name in LIST_FIELDS}))  # no item
    lines.insert(9, "")
    lines.insert(11, "   ")
    body = "".join(f"{x}\n" for x in lines).encode()
    crlf = (official_line(0) + "\r\n").encode()
    bad_utf8 = (
        official_line(1).replace(";0.01,", ";\udcff0.01,", 1).encode("utf-8", "surrogateescape")
    )
    return write(tmp_path, body + crlf + bad_utf8 + b"\n", "faults.txt")


def test_both_engines_give_identical_tables_and_reconciliation(tmp_path, spark):
    path = every_fault(tmp_path)
    polars_tables, polars_report = run(polars_engine.ingest, path, max_quarantine_share=1.0)
    spark_tables, spark_report = run(
        spark_engine.ingest, path, spark=spark, max_quarantine_share=1.0
    )
    # the file spans several partitions, and every reason of the parser occurs in it
    assert spark.read.text(str(path)).rdd.getNumPartitions() >= 4
    reasons = set(polars_report["quarantine_reasons"])
    assert reasons == set(REASONS) - {"truncated at end of input"}  # that one: next test
    assert polars_report["lines_quarantined"] == len(CORRUPTIONS) + 4
    assert_same(polars_tables, spark_tables)
    assert spark_report == polars_report and spark_report["reconciles"]


def test_spark_reads_every_container_like_the_other_engine(tmp_path, spark):
    text = ("\n".join(session_lines(10)) + "\n").encode()
    gz = tmp_path / "log.txt.gz"
    gz.write_bytes(gzip.compress(text))
    renamed = tmp_path / "wwwdata.txt"  # a tar renamed to .txt
    renamed.write_bytes(make_tar(text, tmp_path / "w.tar").read_bytes())
    cut = tmp_path / "cut.tar.gz"  # a cut download: the partial last line is quarantined
    packed = make_tar(text, tmp_path / "w.tar.gz", mode="w:gz").read_bytes()
    cut.write_bytes(packed[: int(len(packed) * 0.6)])
    for path in (gz, renamed, cut):
        expected = run(polars_engine.ingest, path, max_quarantine_share=1.0)
        got = run(spark_engine.ingest, path, spark=spark, max_quarantine_share=1.0)
        assert_same(expected[0], got[0])
        assert got[1] == expected[1], path.name
    assert expected[1]["quarantine_reasons"] == {"truncated at end of input": 1}
    assert tarfile.is_tarfile(renamed)


def test_spark_reads_a_uri_itself(tmp_path, spark):
    """A URI (object storage on a cluster; file:// here) is read by Spark, not by the driver."""
    path = write(tmp_path, session_lines(9))
    expected, report = run(polars_engine.ingest, path)
    got, spark_report = run(spark_engine.ingest, path.as_uri(), spark=spark)
    assert_same(expected, got)
    assert spark_report["sha256"] == "" and "read by Spark" in spark_report["notes"][0]
    for key in ("lines_read", "pages_written", "sessions", "text_bytes", "total_value"):
        assert spark_report[key] == report[key], key


@pytest.mark.s3
def test_cli_ingest_with_spark_into_a_seaweedfs_lake(
    tmp_path, spark, s3_lake, s3_server, monkeypatch
):
    """`microsub ingest --engine spark` into an S3 lake publishes the datasets the Polars
    engine publishes: the same parts, byte for byte, and the same reconciliation."""
    raw = tmp_path / "www.data"
    synth.generate(raw, n_pages=600, seed=11)
    lines = raw.read_text().splitlines()
    lines[100] = lines[100].replace(";", ",", 1)  # one malformed line
    raw.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MICROSUB_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("MICROSUB_S3_SECRET_KEY", s3_server.secret_key)
    monkeypatch.setenv("MICROSUB_DATA_DIR", str(tmp_path / "data"))
    jobs = spark.sparkContext.statusTracker().getJobIdsForGroup()
    result = CliRunner().invoke(
        cli.app,
        ["ingest", str(raw), "--engine", "spark", "--lake", f"s3://{s3_server.endpoint}"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "reconciles" in result.output and "yes" in result.output
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup()) > len(jobs)  # Spark ran

    local = open_lake(Settings(lake=str(tmp_path / "lake")))
    settings = Settings(lake=str(tmp_path / "lake"), raw_path=raw)
    pipeline.ingest_raw(settings, local, pipeline.RawInput(raw, "real", {"file": raw.name}))
    for bucket in (contract.BUCKET_PROCESSED, contract.BUCKET_ITEMS, contract.BUCKET_QUARANTINE):
        on_s3, here = s3_lake.manifest(bucket), local.manifest(bucket)
        assert [p.sha256 for p in on_s3.parts] == [p.sha256 for p in here.parts], bucket
        assert on_s3.meta["ingest"] == here.meta["ingest"]
        assert on_s3.rows == here.rows
    assert s3_lake.manifest(contract.BUCKET_QUARANTINE).rows == 1
    assert s3_lake.get_bytes(contract.BUCKET_RAW, raw.name) == raw.read_bytes()


def test_cli_ingests_a_uri_with_spark_and_refuses_it_without(tmp_path, spark, monkeypatch):
    """On a cluster the log stays in object storage: the CLI hands the URI to Spark (file://
    here), copies nothing into raw-data, and names the URI in the manifest."""
    raw = write(tmp_path, session_lines(9), "www.data")
    monkeypatch.setenv("MICROSUB_DATA_DIR", str(tmp_path / "data"))
    lake = str(tmp_path / "lake")
    runner = CliRunner()
    refused = runner.invoke(cli.app, ["ingest", raw.as_uri(), "--lake", lake])
    assert refused.exit_code == 1 and "--engine spark" in refused.output
    result = runner.invoke(
        cli.app,
        ["ingest", raw.as_uri(), "--engine", "spark", "--lake", lake],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    store = open_lake(Settings(lake=lake))
    manifest = store.manifest(contract.BUCKET_PROCESSED)
    assert manifest.meta["source"]["uri"] == raw.as_uri()
    assert store.list(contract.BUCKET_RAW) == []
    expected, _ = run(polars_engine.ingest, raw)
    assert_same(
        {
            "pages": store.read_table(contract.BUCKET_PROCESSED).sort_by("line_no"),
            "items": store.read_table(contract.BUCKET_ITEMS).sort_by("line_no"),
            "quarantine": store.read_table(contract.BUCKET_QUARANTINE),
        },
        expected,
    )
