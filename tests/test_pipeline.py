"""The pipeline end to end on small data: local and S3 lakes, idempotency, quarantine limits."""

from __future__ import annotations

import dataclasses
from io import BytesIO
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from microsub import contract, pipeline
from microsub.config import Settings
from microsub.data import synth
from microsub.errors import ConfigError, DatasetNotFoundError, QuarantineLimitError
from microsub.lake import open_lake


def _settings(tmp_path: Path, **kw) -> Settings:
    return Settings(profile="ci", data_dir=tmp_path / "data", lake=str(tmp_path / "lake"), **kw)


def _corrupt(path: Path, every: int) -> list[int]:
    """Break every ``every``-th line (1-based numbers returned) by cutting a list short."""
    lines = path.read_text().splitlines()
    broken = []
    for i in range(every - 1, len(lines), every):
        fields = lines[i].split(";")
        fields[6] = ",".join(fields[6].split(",")[:49])  # a CTR list of 49 values
        lines[i] = ";".join(fields)
        broken.append(i + 1)
    path.write_text("\n".join(lines) + "\n")
    return broken


def test_synthetic_run_publishes_the_profile_and_is_idempotent(tmp_path):
    settings = _settings(tmp_path)
    ctx = pipeline.run(settings, stages=())
    n_pages = settings.data_profile.n_pages
    assert ctx.manifest.rows == n_pages
    assert ctx.source["kind"] == "synthetic" and ctx.source["profile"] == "ci"
    report = ctx.ingest_report
    assert report["reconciles"] and report["lines_read"] == n_pages == report["pages_written"]
    # the raw log sits unchanged in raw-data
    raw = settings.synthetic_raw_path
    assert ctx.lake.get_bytes(contract.BUCKET_RAW, raw.name) == raw.read_bytes()
    # the same totals as the generator's own summary
    pages = pipeline.read_pages(ctx).to_pandas()
    assert pages["session_id"].nunique() == report["sessions"]
    assert pages["page_value"].sum() == pytest.approx(report["total_value"], abs=0.01)

    # a second run regenerates nothing and keeps the same manifest
    mtime = raw.stat().st_mtime_ns
    again = pipeline.run(settings, stages=())
    assert raw.stat().st_mtime_ns == mtime
    assert again.manifest.to_json() == ctx.manifest.to_json()
    # forcing a re-ingestion of the same file republishes identical content
    forced = pipeline.run(settings, stages=(), force=True)
    assert [p.sha256 for p in forced.manifest.parts] == [p.sha256 for p in ctx.manifest.parts]


def test_real_file_with_bad_lines_is_ingested_with_its_quarantine(tmp_path):
    raw = tmp_path / "www.data"
    synth.generate(raw, n_pages=400, seed=3)
    broken = _corrupt(raw, every=100)
    settings = _settings(tmp_path, raw_path=raw)
    ctx = pipeline.run(settings, stages=())
    assert ctx.source["kind"] == "real"
    quarantine = ctx.lake.read_pandas(contract.BUCKET_QUARANTINE)
    assert sorted(quarantine["line_no"]) == broken
    assert set(quarantine["reason"]) == {"list not 50 long"}
    assert ctx.manifest.rows + len(quarantine) == 400
    assert not set(pipeline.read_pages(ctx).column("line_no").to_pylist()) & set(broken)


def test_too_many_bad_lines_publish_the_quarantine_but_no_pages(tmp_path):
    raw = tmp_path / "www.data"
    synth.generate(raw, n_pages=200, seed=4)
    broken = _corrupt(raw, every=10)  # 10 % bad, the limit is 1 %
    settings = _settings(tmp_path, raw_path=raw)
    expected = r"quarantined 20 of 200 lines \(10.00%\); at most 1.00%"
    with pytest.raises(QuarantineLimitError, match=expected):
        pipeline.run(settings, stages=())
    lake = open_lake(settings)
    with pytest.raises(DatasetNotFoundError):
        lake.manifest(contract.BUCKET_PROCESSED)
    assert sorted(lake.read_pandas(contract.BUCKET_QUARANTINE)["line_no"]) == broken


def test_missing_real_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        pipeline.run(_settings(tmp_path, raw_path=tmp_path / "nope.txt"), stages=())


@pytest.mark.s3
def test_s3_run_serves_the_handbook_eda_loader_exactly_the_pages_table(
    tmp_path, s3_settings, s3_server
):
    raw = tmp_path / "www.data"
    synth.generate(raw, n_pages=300, seed=5)
    settings = s3_settings.model_copy(
        update={"data_dir": tmp_path / "data", "raw_path": raw, "profile": "ci"}
    )
    ctx = pipeline.run(settings, stages=(), force=True)
    client = s3_server.client()
    # exactly what the project handbook's EDA loader does
    objs = client.list_objects("processed-data")
    names = [o.object_name for o in objs if o.object_name.endswith(".parquet")]
    df = pd.concat(
        [pd.read_parquet(BytesIO(client.get_object("processed-data", n).read())) for n in names]
    )
    expected = pipeline.read_pages(ctx).to_pandas()
    pd.testing.assert_frame_equal(df.reset_index(drop=True), expected)
    for column in ("state_purchase_power", "action_page_id", "reward", "done"):
        assert column in df.columns
    assert len(df) == 300
    # every part there is a valid Parquet file of the contract
    first = pq.read_table(BytesIO(client.get_object("processed-data", names[0]).read()))
    assert first.schema.names == contract.PAGES_SCHEMA.names


def test_progress_tasks_count_up_to_their_totals(tmp_path):
    from contextlib import contextmanager

    seen: dict[str, list[int | None]] = {}

    @contextmanager
    def progress(description: str, total: int | None):
        seen[description] = [total, 0]

        def advance(n: int) -> None:
            seen[description][1] += n

        yield advance

    settings = _settings(tmp_path)
    pipeline.run(settings, stages=(), progress=progress)
    generating = next(v for k, v in seen.items() if k.startswith("generating"))
    assert generating == [settings.data_profile.n_pages] * 2
    ingesting = next(v for k, v in seen.items() if k.startswith("ingesting"))
    assert ingesting == [settings.synthetic_raw_path.stat().st_size] * 2


def test_cached_exploration_is_keyed_by_the_data_digest_and_skips_reading_pages(
    tmp_path, monkeypatch
):
    ctx = pipeline.run(_settings(tmp_path), stages=())
    first = pipeline.exploration(ctx)

    def no_read(ctx):
        raise AssertionError("a cache hit must not read the pages table")

    monkeypatch.setattr(pipeline.cache, "read_pages", no_read)
    again = pipeline.exploration(ctx)
    assert again.verdict_table().equals(first.verdict_table())
    # other data (another digest) misses the cache and does read the pages
    other = pipeline.Context(ctx.settings, ctx.lake, ctx.manifest)
    monkeypatch.setattr(pipeline.Context, "data_digest", property(lambda self: "another"))
    with pytest.raises(AssertionError, match="must not read"):
        pipeline.exploration(other)


def test_calibration_compares_every_synthetic_page_and_caches_without_reading(
    tmp_path, monkeypatch
):
    ctx = pipeline.run(_settings(tmp_path), stages=())
    table = pipeline.calibration(ctx).set_index("statistic")
    assert table.loc["pages", "real"] == 100
    assert table.loc["pages", "synthetic"] == ctx.manifest.rows

    def no_read(*args, **kwargs):
        raise AssertionError("a cache hit must not read the lake's datasets")

    monkeypatch.setattr(type(ctx.lake), "read_table", no_read)
    assert pipeline.calibration(ctx).equals(table.reset_index())
    # without the real sample there is nothing to compare with
    absent = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"real_sample_path": tmp_path / "absent"})
    )
    assert pipeline.calibration(absent) is None


def test_simulate_stage_stores_simulators_and_the_report(tmp_path, monkeypatch):
    import gymnasium as gym

    import microsub.sim

    settings = _settings(tmp_path, sim_sessions=1000)
    ctx = pipeline.run(settings, stages=("simulate",))
    report = ctx.lake.get_json(contract.BUCKET_REPORTS, "simulation.json")
    policies = pd.DataFrame(report["tables"]["policies"])
    assert (policies["sessions"] == 1000).all()
    assert set(policies["simulator"]) == {"A", "B", "truth"}  # synthetic default data
    assert report["truth"] == {"available": True, "reason": ""}
    assert report["data"]["digest"] == ctx.data_digest
    for fit in ("all", "A", "B"):
        assert ctx.lake.exists(contract.BUCKET_MODELS, f"simulator/{fit}/chain.json")
    # the registered environment loads the stored simulator of these settings
    monkeypatch.setenv("MICROSUB_LAKE", settings.lake)
    env = gym.make(microsub.sim.ENV_ID)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (7,)
    # a second run reads the study from the cache, not the datasets

    def no_read(*args, **kwargs):
        raise AssertionError("a cache hit must not read the lake's datasets")

    monkeypatch.setattr(type(ctx.lake), "read_table", no_read)
    again = pipeline.simulation(ctx)
    assert again.policies.equals(pipeline.simulation(ctx).policies)
