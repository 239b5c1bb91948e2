"""The microsub command line: commands work, user mistakes print one line and exit 1."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from microsub import cli
from microsub.data import synth

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith("MICROSUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MICROSUB_DATA_DIR", str(tmp_path / "data"))


def invoke(*args: str):
    return runner.invoke(cli.app, list(args), catch_exceptions=False)


def test_generate_ingest_and_list(tmp_path):
    out = tmp_path / "log.txt"
    result = invoke("generate", "--pages", "300", "--seed", "7", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 300
    assert out.read_bytes() == _reference_log(tmp_path, 300, 7)

    lake = str(tmp_path / "lake")
    result = invoke("ingest", str(out), "--lake", lake)
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert rows["lines_read"] == rows["pages_written"] == "300"
    assert rows["lines_quarantined"] == "0"
    assert rows["reconciles"] == "yes"
    # not a terminal: progress as whole lines, one at the start and one at the end of a task
    size = f"{out.stat().st_size:,}"
    assert "ingesting log.txt: started" in result.output
    assert re.search(rf"ingesting log\.txt: done, {size} in \d:\d\d:\d\d", result.output)

    result = invoke("lake", "ls", "--lake", lake)
    assert result.exit_code == 0, result.output
    for dataset in ("processed-data", "items-data", "quarantine"):
        assert dataset in result.output


def table_rows(output: str) -> dict[str, str]:
    """The two-column rows of a Rich table in ``output``: first cell -> second cell."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    return rows


def _reference_log(tmp_path, n_pages: int, seed: int) -> bytes:
    ref = tmp_path / "ref.txt"
    synth.generate(ref, n_pages=n_pages, seed=seed)
    return ref.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ingest", "/no/such/file.txt"), "no file at"),
        (("lake", "ls", "--lake", "s3://127.0.0.1:9"), "MICROSUB_S3_ACCESS_KEY"),
        (("lake", "ls", "--lake", "ftp://x"), "folder path or s3://HOST:PORT"),
        (("run", "--profile", "huge"), "profile"),
    ],
)
def test_user_mistakes_print_one_clear_line_without_traceback(args, message):
    result = invoke(*args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_file_that_is_not_the_log_is_refused_clearly(tmp_path):
    bad = tmp_path / "events.csv"
    bad.write_text("user_id,item_id,behavior,timestamp\n1,2,pv,1511544070\n")
    result = invoke("ingest", str(bad), "--lake", str(tmp_path / "lake"))
    assert result.exit_code == 1
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert error[0].startswith("error: expected 15 `;`-separated fields (official layout)")
    assert "Traceback" not in result.output
    # checked before anything is stored: the non-log is not copied into raw-data
    assert not list((tmp_path / "lake").rglob("events.csv"))


def test_empty_lake_listing_says_how_to_fill_it(tmp_path):
    result = invoke("lake", "ls", "--lake", str(tmp_path / "empty"))
    assert result.exit_code == 0
    assert "microsub run" in result.output


def test_run_builds_the_whole_pipeline_on_the_ci_profile(tmp_path):
    lake = str(tmp_path / "lake")
    result = runner.invoke(
        cli.app,
        ["run", "--profile", "ci", "--lake", lake],
        catch_exceptions=False,
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "synthetic data (profile ci, seed 20190513)" in result.output
    assert "findings: reports/findings.yaml" in result.output
    for name in ("microsub-churn", "microsub-value"):  # the champions in the MLflow registry
        assert f" models:/{name}@champion " in result.output
    assert (tmp_path / "lake" / "reports" / "findings.yaml").is_file()
