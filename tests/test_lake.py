"""Tests of microsub.lake: the same behaviour from a local folder and from a real S3 server.

The S3 backend runs against SeaweedFS (`s3_server` in conftest.py); tests that apply to both
backends are parametrised over ``local`` and ``s3``.
"""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from microsub import contract
from microsub.config import Settings
from microsub.errors import (
    ConfigError,
    ContractError,
    DatasetNotFoundError,
    IntegrityError,
    LakeAuthError,
    LakeError,
    LakeUnavailableError,
    ObjectNotFoundError,
)
from microsub.lake import (
    MANIFEST_NAME,
    Lake,
    LocalLake,
    Manifest,
    RetryPolicy,
    S3Lake,
    open_lake,
)

PAGES = contract.BUCKET_PROCESSED
#: Short retries, so that outage tests fail over in about a second.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2, total=3.0)
PART_KEY = re.compile(r"^part-\d{5}-[0-9a-f]{8}\.parquet$")


# ---------------------------------------------------------------------------------------------
# helpers and fixtures
# ---------------------------------------------------------------------------------------------
def make_pages(n: int, seed: int) -> pa.Table:
    """A pages table of ``n`` rows with the contract's schema and seeded random values."""
    rng = np.random.default_rng(seed)
    columns = {}
    for f in contract.PAGES_SCHEMA:
        integer = pa.types.is_integer(f.type)
        values = rng.integers(0, 100, n) if integer else rng.random(n) * 50
        columns[f.name] = pa.array(values).cast(f.type)
    columns["session_id"] = pa.array(np.arange(n) // 7, pa.int64())
    columns["line_no"] = pa.array(np.arange(n), pa.int64())
    hour = rng.integers(0, 24, n).astype(float)
    hour[::11] = np.nan  # a nullable column with nulls
    columns["hour"] = pa.array(hour, pa.int8(), from_pandas=True)
    return pa.Table.from_pydict(columns, schema=contract.PAGES_SCHEMA)


def handbook_eda_load(client) -> pd.DataFrame | None:
    """Exactly what the project handbook's EDA loader does (minio SDK, non-recursive)."""
    objs = client.list_objects("processed-data")
    names = [o.object_name for o in objs if o.object_name.endswith(".parquet")]
    if not names:
        return None
    return pd.concat(
        [pd.read_parquet(BytesIO(client.get_object("processed-data", n).read())) for n in names]
    )


def publish_pages(lake: Lake, table: pa.Table, *, prefix: str = "", **kw) -> Manifest:
    kw.setdefault("part_rows", 1000)
    return lake.publish(PAGES, prefix, [table], dataset="pages", schema=contract.PAGES_SCHEMA, **kw)


def write_pages(lake: Lake, table: pa.Table, *, prefix: str = "", **kw) -> Manifest:
    """Publish ``table`` through a writer (its options in ``kw``), 700 rows a write."""
    kw.setdefault("part_rows", 1000)
    with lake.writer(PAGES, prefix, dataset="pages", schema=contract.PAGES_SCHEMA, **kw) as w:
        for start in range(0, table.num_rows, 700):
            w.write(table.slice(start, 700))
    assert w.manifest is not None
    return w.manifest


@contextmanager
def writes_to_store(lake: Lake) -> Iterator[list[str]]:
    """Collect what changes the store while the block runs.

    S3: the HTTP requests other than GET/HEAD (from the minio client's trace). Local: files
    whose size or modification time changed, appeared or disappeared.
    """
    changes: list[str] = []
    if isinstance(lake, S3Lake):
        trace = io.StringIO()
        lake._client.trace_on(trace)
        try:
            yield changes
        finally:
            lake._client.trace_off()
        assert "GET /" in trace.getvalue()  # the trace did see the requests
        for line in trace.getvalue().splitlines():
            method = line.split(" ", 1)[0]
            if line.endswith("HTTP/1.1") and method in {"PUT", "POST", "DELETE", "PATCH"}:
                changes.append(line)
    else:
        assert isinstance(lake, LocalLake)

        def state() -> dict[str, tuple[int, int]]:
            return {
                p.relative_to(lake.root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in lake.root.rglob("*")
                if p.is_file()
            }

        before = state()
        yield changes
        after = state()
        keys = sorted(before.keys() | after.keys())
        changes += [k for k in keys if before.get(k) != after.get(k)]


# ---------------------------------------------------------------------------------------------
# datasets, both backends
# ---------------------------------------------------------------------------------------------
def test_round_trip_of_a_multi_part_dataset(lake: Lake) -> None:
    table = make_pages(2500, seed=1)
    manifest = publish_pages(lake, table, meta={"source": {"rows": np.int64(2500)}})

    assert manifest.rows == 2500
    assert [p.rows for p in manifest.parts] == [1000, 1000, 500]
    assert all(PART_KEY.match(p.key) for p in manifest.parts)
    assert manifest.meta == {"source": {"rows": 2500}}
    assert lake.manifest(PAGES) == manifest
    assert Manifest.from_json(manifest.to_json()) == manifest

    back = lake.read_table(PAGES)
    assert back.schema.equals(contract.PAGES_SCHEMA)
    assert back.equals(table)
    assert [t.num_rows for t in lake.iter_tables(PAGES)] == [1000, 1000, 500]
    cols = ["session_id", "reward", "hour"]
    assert lake.read_table(PAGES, columns=cols).equals(table.select(cols))
    pd.testing.assert_frame_equal(lake.read_pandas(PAGES), table.to_pandas())
    # the pages parts sit at the top of the bucket, with the manifest and nothing else
    assert lake.list(PAGES) == sorted([p.key for p in manifest.parts] + [MANIFEST_NAME])


def test_writer_buffers_rows_into_parts_and_reports_progress(lake: Lake) -> None:
    table = make_pages(2100, seed=2)
    seen: list[int] = []
    with lake.writer(
        PAGES,
        "v1/pages",
        dataset="pages",
        schema=contract.PAGES_SCHEMA,
        part_rows=1000,
        progress=seen.append,
    ) as w:
        for start in range(0, 2100, 300):
            w.write(table.slice(start, 300))
    assert w.manifest is not None
    assert [p.rows for p in w.manifest.parts] == [1000, 1000, 100]
    assert seen == [1000, 1000, 100]
    assert w.manifest.prefix == "v1/pages"
    assert lake.read_table(PAGES, "/v1/pages/").equals(table)
    with pytest.raises(DatasetNotFoundError):  # nothing at the top of the bucket
        lake.manifest(PAGES)


def test_meta_known_only_at_the_end_goes_into_the_manifest(lake: Lake) -> None:
    table = make_pages(50, seed=5)
    with lake.writer(
        PAGES, "v2", dataset="pages", schema=contract.PAGES_SCHEMA, meta={"source": "a"}
    ) as w:
        w.write(table)
        w.update_meta({"reconciliation": {"lines_read": 50}})
    assert lake.manifest(PAGES, "v2").meta == {
        "source": "a",
        "reconciliation": {"lines_read": 50},
    }


def test_one_part_per_write_without_part_rows(lake: Lake) -> None:
    table = make_pages(900, seed=3)
    manifest = lake.publish(
        PAGES,
        "",
        [table.slice(0, 400), table.slice(400, 0), table.slice(400)],
        dataset="pages",
        schema=contract.PAGES_SCHEMA,
    )
    assert [p.rows for p in manifest.parts] == [400, 500]  # the empty table adds no part
    assert lake.read_table(PAGES).equals(table)


def test_empty_dataset_keeps_its_schema(lake: Lake) -> None:
    manifest = lake.publish(
        contract.BUCKET_QUARANTINE, "", [], dataset="quarantine", schema=contract.QUARANTINE_SCHEMA
    )
    assert manifest.rows == 0 and len(manifest.parts) == 1
    back = lake.read_table(contract.BUCKET_QUARANTINE)
    assert back.num_rows == 0
    assert back.schema.equals(contract.QUARANTINE_SCHEMA)


def test_identical_republish_changes_nothing_on_the_store(lake: Lake) -> None:
    table = make_pages(2500, seed=4)
    first = publish_pages(lake, table, meta={"profile": "ci"})
    manifest_bytes = lake.get_bytes(PAGES, MANIFEST_NAME)
    keys = lake.list(PAGES, recursive=True)

    with writes_to_store(lake) as changes:
        again = publish_pages(lake, table, meta={"profile": "ci"})

    assert changes == []
    assert again == first
    assert lake.get_bytes(PAGES, MANIFEST_NAME) == manifest_bytes
    assert lake.list(PAGES, recursive=True) == keys


def test_republish_with_new_content_replaces_it_and_leaves_no_stale_parts(lake: Lake) -> None:
    old = make_pages(2500, seed=5)
    new = make_pages(1500, seed=6)
    first = publish_pages(lake, old)
    second = publish_pages(lake, new)

    assert {p.key for p in first.parts}.isdisjoint({p.key for p in second.parts})
    assert lake.read_table(PAGES).equals(new)
    assert lake.list(PAGES, recursive=True) == sorted(
        [p.key for p in second.parts] + [MANIFEST_NAME]
    )


def _tamper(lake: Lake, manifest: Manifest, how: str) -> str:
    """Damage the dataset; return the key the error must name."""
    key = manifest.key(manifest.parts[1])
    if how == "missing":
        lake.delete(PAGES, key)
    elif how == "flipped_byte":
        data = bytearray(lake.get_bytes(PAGES, key))
        data[len(data) // 2] ^= 0xFF
        lake.put_bytes(PAGES, key, bytes(data))
    elif how == "truncated":
        lake.put_bytes(PAGES, key, lake.get_bytes(PAGES, key)[:-10])
    elif how == "sha256":  # size and rows still agree: only the hash can tell
        doc = lake.get_json(PAGES, MANIFEST_NAME)
        doc["parts"][1]["sha256"] = "0" * 64
        lake.put_json(PAGES, MANIFEST_NAME, doc)
    elif how == "rows":
        doc = lake.get_json(PAGES, MANIFEST_NAME)
        doc["parts"][1]["rows"] += 1
        doc["rows"] += 1
        lake.put_json(PAGES, MANIFEST_NAME, doc)
    elif how == "manifest":
        lake.put_bytes(PAGES, MANIFEST_NAME, b'{"schema_version": 1, "parts": [')
        return MANIFEST_NAME
    return key


@pytest.mark.parametrize(
    "how", ["missing", "flipped_byte", "truncated", "sha256", "rows", "manifest"]
)
def test_damaged_dataset_raises_integrity_error_naming_the_key(lake: Lake, how: str) -> None:
    manifest = publish_pages(lake, make_pages(2500, seed=7))
    key = _tamper(lake, manifest, how)
    with pytest.raises(IntegrityError, match=re.escape(key)):
        lake.read_table(PAGES)
    if how != "manifest":  # part by part: the first part is fine, the second is not
        parts = lake.iter_tables(PAGES)
        assert next(parts).num_rows == 1000
        with pytest.raises(IntegrityError, match=re.escape(key)):
            next(parts)


def test_writer_that_raises_commits_nothing(lake: Lake) -> None:
    table = make_pages(3000, seed=8)
    with (
        pytest.raises(RuntimeError, match="boom"),
        lake.writer(PAGES, dataset="pages", schema=contract.PAGES_SCHEMA) as w,
    ):
        w.write(table.slice(0, 1000))
        w.write(table.slice(1000, 1000))
        raise RuntimeError("boom")
    with pytest.raises(DatasetNotFoundError, match="_manifest.json is missing"):
        lake.read_table(PAGES)
    assert lake.list(PAGES, recursive=True) == []  # the staged parts were removed
    assert w.manifest is None

    # with an earlier version in place, that version stays whole
    earlier = make_pages(1200, seed=9)
    committed = publish_pages(lake, earlier)
    with (
        pytest.raises(RuntimeError, match="boom"),
        lake.writer(PAGES, dataset="pages", schema=contract.PAGES_SCHEMA) as w,
    ):
        w.write(table)
        raise RuntimeError("boom")
    assert lake.read_table(PAGES).equals(earlier)
    assert lake.list(PAGES, recursive=True) == sorted(
        [p.key for p in committed.parts] + [MANIFEST_NAME]
    )


def test_table_off_contract_is_refused_and_nothing_committed(lake: Lake) -> None:
    table = make_pages(100, seed=10).drop_columns(["reward"])
    with pytest.raises(ContractError, match="reward"):
        publish_pages(lake, table)
    with pytest.raises(DatasetNotFoundError):
        lake.manifest(PAGES)
    with pytest.raises(ContractError, match="nope"):
        publish_pages(lake, make_pages(10, seed=11))
        lake.read_table(PAGES, columns=["nope"])


def test_datasets_lists_committed_datasets(lake: Lake) -> None:
    publish_pages(lake, make_pages(1500, seed=12))
    lake.publish(
        contract.BUCKET_MODELS,
        "runs/1/scores",
        [make_pages(10, seed=13)],
        dataset="scores",
        schema=contract.PAGES_SCHEMA,
    )
    with (
        pytest.raises(RuntimeError),
        lake.writer(contract.BUCKET_ITEMS, dataset="items", schema=contract.PAGES_SCHEMA) as w,
    ):
        w.write(make_pages(10, seed=14))
        raise RuntimeError("not committed")
    found = [(m.bucket, m.prefix, m.dataset, m.rows) for m in lake.datasets()]
    assert found == [("models", "runs/1/scores", "scores", 10), (PAGES, "", "pages", 1500)]


# ---------------------------------------------------------------------------------------------
# objects, both backends
# ---------------------------------------------------------------------------------------------
def test_object_operations(lake: Lake) -> None:
    bucket = contract.BUCKET_REPORTS
    assert lake.list(bucket) == []  # a missing bucket lists as empty
    assert not lake.exists(bucket, "a.txt")
    lake.put_bytes(bucket, "a.txt", b"hello", content_type="text/plain")
    lake.put_json(bucket, "runs/1/findings.json", {"b": np.float64(0.5), "a": [np.int32(1)]})
    lake.put_bytes(bucket, "runs/2/x.bin", b"\x00\x01")

    assert lake.get_bytes(bucket, "a.txt") == b"hello"
    assert lake.exists(bucket, "a.txt")
    assert lake.get_json(bucket, "runs/1/findings.json") == {"a": [1], "b": 0.5}
    assert lake.list(bucket) == ["a.txt", "runs/"]
    assert lake.list(bucket, "runs/") == ["runs/1/", "runs/2/"]
    assert lake.list(bucket, "ru") == ["runs/"]
    assert lake.list(bucket, recursive=True) == [
        "a.txt",
        "runs/1/findings.json",
        "runs/2/x.bin",
    ]
    assert lake.list(bucket, "runs/2", recursive=True) == ["runs/2/x.bin"]

    lake.delete(bucket, "runs/2/x.bin")
    lake.delete(bucket, "runs/2/x.bin")  # deleting a missing object is fine
    assert lake.list(bucket, "runs/") == ["runs/1/"]
    with pytest.raises(ObjectNotFoundError, match="runs/2/x.bin"):
        lake.get_bytes(bucket, "runs/2/x.bin")
    with pytest.raises(LakeError, match="not valid"):
        lake.put_bytes(bucket, "../escape", b"")
    with pytest.raises(LakeError, match="not valid"):
        lake.put_bytes("Bad_Bucket", "k", b"")


def test_ensure_buckets_creates_the_contract_buckets(lake: Lake) -> None:
    lake.ensure_buckets()
    lake.ensure_buckets()  # idempotent
    for bucket in contract.BUCKETS:
        lake.put_bytes(bucket, "k", b"v")
        assert lake.list(bucket) == ["k"]


def test_put_file_and_get_file_stream_a_large_file(
    lake: Lake, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    part = 5 * 2**20  # the smallest multipart part S3 allows
    size = 4 * part + 123  # 5 parts
    src = tmp_path / "www.data"
    src.write_bytes(np.random.default_rng(15).bytes(size))
    if isinstance(lake, S3Lake):  # 5 MiB parts: a multipart upload
        server = request.getfixturevalue("s3_server")
        lake = S3Lake(
            server.endpoint,
            server.access_key,
            server.secret_key,
            retry=FAST_RETRY,
            upload_part_size=part,
        )

    tracemalloc.start()
    try:
        lake.put_file(contract.BUCKET_RAW, "www.data", src)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        dst = lake.get_file(contract.BUCKET_RAW, "www.data", tmp_path / "out" / "copy.data")
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in dst.parent.iterdir()) == ["copy.data"]  # no temp file left
    # streamed: Python never held the file (20 MiB) at once; at most a part (read, then hashed
    # for the signature: two copies) and 1 MiB buffers
    assert put_peak < 2.5 * part < size, put_peak
    assert get_peak < 0.5 * part, get_peak
    with pytest.raises(ObjectNotFoundError):
        lake.get_file(contract.BUCKET_RAW, "nothing", tmp_path / "nothing")
    if isinstance(lake, S3Lake):
        stat = lake._client.stat_object(contract.BUCKET_RAW, "www.data")
        assert stat.size == size
        assert stat.etag.endswith("-5")  # the multipart upload's 5 parts


# ---------------------------------------------------------------------------------------------
# local backend
# ---------------------------------------------------------------------------------------------
def test_local_lake_layout_and_no_temporary_files(tmp_path: Path) -> None:
    lake = open_lake(Settings(lake=str(tmp_path / "lake")))
    assert isinstance(lake, LocalLake)
    assert lake.location == str(tmp_path / "lake")
    manifest = publish_pages(lake, make_pages(2500, seed=16), prefix="a/b")
    files = sorted(p.relative_to(tmp_path / "lake").as_posix() for p in lake.root.rglob("*"))
    expected_parts = [f"processed-data/a/b/{p.key}" for p in manifest.parts]
    assert files == sorted(
        ["processed-data", "processed-data/a", "processed-data/a/b"]
        + expected_parts
        + ["processed-data/a/b/_manifest.json"]
    )


def test_default_settings_open_the_embedded_local_lake() -> None:
    lake = open_lake(Settings(lake="data/lake"))
    assert isinstance(lake, LocalLake)
    assert lake.location == "data/lake"


# ---------------------------------------------------------------------------------------------
# S3 backend
# ---------------------------------------------------------------------------------------------
def test_s3_lake_without_keys_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        open_lake(Settings(lake="s3://127.0.0.1:9000", s3_access_key=None, s3_secret_key=None))
    assert "MICROSUB_S3_ACCESS_KEY and MICROSUB_S3_SECRET_KEY" in str(err.value)
    with pytest.raises(ConfigError) as err:
        open_lake(Settings(lake="s3://127.0.0.1:9000", s3_access_key="AK", s3_secret_key=None))
    assert "MICROSUB_S3_SECRET_KEY" in str(err.value)
    assert "MICROSUB_S3_ACCESS_KEY" not in str(err.value)


@pytest.mark.s3
@pytest.mark.parametrize("wrong", ["secret", "access_key"])
def test_s3_refuses_wrong_credentials_at_once_without_leaking_the_secret(
    s3_server, wrong: str
) -> None:
    access_key = s3_server.access_key if wrong == "secret" else "NOSUCHKEY123"
    bad_secret = "wrong-" + s3_server.secret_key[:10]
    lake = S3Lake(s3_server.endpoint, access_key, bad_secret, retry=RetryPolicy(attempts=5))
    trace = io.StringIO()
    lake._client.trace_on(trace)
    with pytest.raises(LakeAuthError) as err:
        lake.manifest(PAGES)
    message = str(err.value)
    assert s3_server.endpoint in message
    assert access_key in message
    assert bad_secret not in message and s3_server.secret_key not in message
    assert bad_secret not in repr(lake)
    expected = "SignatureDoesNotMatch" if wrong == "secret" else "InvalidAccessKeyId"
    assert expected in message
    # refused at once: one request, no retries
    assert sum(line.endswith("HTTP/1.1") for line in trace.getvalue().splitlines()) == 1


@pytest.mark.s3
def test_unreachable_s3_server_raises_unavailable_after_bounded_retries() -> None:
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lake = S3Lake(f"127.0.0.1:{port}", "AK", "SK", retry=FAST_RETRY)
    with pytest.raises(LakeUnavailableError) as err:
        lake.put_bytes(PAGES, "k", b"v")
    assert f"s3://127.0.0.1:{port}" in str(err.value)
    assert "after 3 attempt(s)" in str(err.value)
    assert "connection refused" in str(err.value)


@pytest.mark.s3
def test_handbook_eda_loader_reads_exactly_the_pages_table(s3_lake: S3Lake, s3_server) -> None:
    table = make_pages(2500, seed=17)
    publish_pages(s3_lake, table)
    # other datasets and a failed publish in the same bucket must not disturb the loader
    publish_pages(s3_lake, make_pages(50, seed=18), prefix="archive/v0")
    with (
        pytest.raises(RuntimeError),
        s3_lake.writer(PAGES, dataset="pages", schema=contract.PAGES_SCHEMA) as w,
    ):
        w.write(make_pages(10, seed=19))
        raise RuntimeError("not committed")

    df = handbook_eda_load(s3_server.client())

    assert df is not None
    pd.testing.assert_frame_equal(df.reset_index(drop=True), table.to_pandas())
    for column in ("state_purchase_power", "action_page_id", "reward", "done"):
        assert column in df.columns


def _stop_server_after_first_part(server) -> Callable[[int], None]:
    def progress(rows: int) -> None:
        if server.running:
            server.stop()

    return progress


@pytest.mark.s3
@pytest.mark.slow
def test_outage_during_first_publish_leaves_no_dataset(s3_lake: S3Lake, s3_server) -> None:
    table = make_pages(3000, seed=20)
    try:
        with pytest.raises(LakeUnavailableError, match=re.escape(s3_server.endpoint)):
            publish_pages(s3_lake, table, progress=_stop_server_after_first_part(s3_server))
    finally:
        s3_server.start()

    with pytest.raises(DatasetNotFoundError):
        s3_lake.read_table(PAGES)
    assert handbook_eda_load(s3_server.client()) is None

    publish_pages(s3_lake, table)  # the re-run completes
    assert s3_lake.read_table(PAGES).equals(table)
    pd.testing.assert_frame_equal(
        handbook_eda_load(s3_server.client()).reset_index(drop=True), table.to_pandas()
    )
    assert not [k for k in s3_lake.list(PAGES, recursive=True) if "_staging" in k]


@pytest.mark.s3
@pytest.mark.slow
def test_outage_during_republish_keeps_the_earlier_version(s3_lake: S3Lake, s3_server) -> None:
    earlier = make_pages(1500, seed=21)
    newer = make_pages(3000, seed=22)
    publish_pages(s3_lake, earlier)
    try:
        with pytest.raises(LakeUnavailableError, match=re.escape(s3_server.endpoint)):
            publish_pages(s3_lake, newer, progress=_stop_server_after_first_part(s3_server))
    finally:
        s3_server.start()

    assert s3_lake.read_table(PAGES).equals(earlier)
    pd.testing.assert_frame_equal(
        handbook_eda_load(s3_server.client()).reset_index(drop=True), earlier.to_pandas()
    )

    publish_pages(s3_lake, newer)
    assert s3_lake.read_table(PAGES).equals(newer)
    pd.testing.assert_frame_equal(
        handbook_eda_load(s3_server.client()).reset_index(drop=True), newer.to_pandas()
    )
    manifest = s3_lake.manifest(PAGES)
    assert s3_lake.list(PAGES, recursive=True) == sorted(
        [p.key for p in manifest.parts] + [MANIFEST_NAME]
    )


# ---------------------------------------------------------------------------------------------
# docker-compose.yml: the MinIO service for users with Docker (no engine here: YAML checks)
# ---------------------------------------------------------------------------------------------
def test_docker_compose_runs_minio_with_credentials_from_the_shell_only() -> None:
    import yaml

    path = Path(__file__).resolve().parents[1] / "docker-compose.yml"
    text = path.read_text()
    doc = yaml.safe_load(text)
    minio = doc["services"]["minio"]
    assert "minio/minio:RELEASE." in minio["image"]
    assert minio["command"][:2] == ["server", "/data"]
    assert minio["ports"] == ["127.0.0.1:9000:9000", "127.0.0.1:9001:9001"]
    assert minio["volumes"] == ["minio-data:/data"] and "minio-data" in doc["volumes"]
    env = minio["environment"]
    # required variables (`:?`), never a default (`:-` or `-`)
    assert re.fullmatch(r"\$\{MICROSUB_S3_ACCESS_KEY:\?[^}]+\}", env["MINIO_ROOT_USER"])
    assert re.fullmatch(r"\$\{MICROSUB_S3_SECRET_KEY:\?[^}]+\}", env["MINIO_ROOT_PASSWORD"])
    assert ":-" not in text
    assert "MICROSUB_LAKE=s3://127.0.0.1:9000" in text


def test_put_if_changed_writes_only_new_content(lake: Lake) -> None:
    assert lake.put_json("reports", "r.json", {"b": np.int64(2), "a": [1.5]}, if_changed=True)
    with writes_to_store(lake) as changes:
        # the same document, keys in another order and numpy values: the same stored bytes
        wrote = lake.put_json("reports", "r.json", {"a": [1.5], "b": 2}, if_changed=True)
    assert wrote is False and changes == []
    assert lake.put_json("reports", "r.json", {"a": [1.5], "b": 3}, if_changed=True)
    assert lake.get_json("reports", "r.json") == {"a": [1.5], "b": 3}
    assert lake.put_bytes("reports", "x.bin", b"1", if_changed=True)
    assert not lake.put_bytes("reports", "x.bin", b"1", if_changed=True)
    assert lake.put_bytes("reports", "x.bin", b"1")  # without if_changed it always writes


def test_a_writer_without_dictionaries_writes_plain_parts_of_the_same_rows(tmp_path):
    """``dictionary=False`` (the items dataset): no dictionary pages, the same rows back."""
    import pyarrow.parquet as pq

    from microsub.lake import LocalLake

    lake = LocalLake(tmp_path / "lake")
    table = pa.table({"x": pa.array([0.5, 0.25, 0.5] * 100)})
    schema = table.schema
    for dictionary in (True, False):
        with lake.writer(
            "models", f"d{int(dictionary)}", dataset="d", schema=schema, dictionary=dictionary
        ) as writer:
            writer.write(table)
        manifest = writer.manifest
        path = tmp_path / "lake" / "models" / manifest.key(manifest.parts[0])
        encodings = pq.ParquetFile(path).metadata.row_group(0).column(0).encodings
        assert any("DICTIONARY" in e for e in encodings) is dictionary
        assert lake.read_table("models", f"d{int(dictionary)}").equals(table)


@pytest.mark.parametrize("refusal", ["none", "ENOSYS", "EXDEV"])
def test_put_file_copies_in_the_kernel_or_falls_back_to_a_read_write_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    """os.copy_file_range where the kernel takes it; the same bytes where it refuses."""
    import errno
    import os

    from microsub.lake import local

    src = tmp_path / "www.data"
    src.write_bytes(np.random.default_rng(21).bytes(3 * 2**20 + 17))
    calls: list[int] = []
    real = os.copy_file_range

    def copy_range(fd_in: int, fd_out: int, count: int, *args: object) -> int:
        calls.append(count)
        if refusal != "none":
            raise OSError(getattr(errno, refusal), refusal)
        return real(fd_in, fd_out, count, *args)

    monkeypatch.setattr(local.os, "copy_file_range", copy_range)
    lake = LocalLake(tmp_path / "lake")
    lake.put_file(contract.BUCKET_RAW, "www.data", src)
    stored = tmp_path / "lake" / contract.BUCKET_RAW / "www.data"
    assert stored.read_bytes() == src.read_bytes()
    assert calls  # the kernel copy was tried first
    back = lake.get_file(contract.BUCKET_RAW, "www.data", tmp_path / "back.data")
    assert back.read_bytes() == src.read_bytes()


def test_a_failing_kernel_copy_is_not_retried_over_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal after bytes were copied is an error (LakeError), not a second, appended copy."""
    import errno
    import os

    from microsub.lake import local

    src = tmp_path / "www.data"
    src.write_bytes(b"x" * 100_000)
    real = os.copy_file_range
    state = {"calls": 0}

    def copy_range(fd_in: int, fd_out: int, count: int, *args: object) -> int:
        state["calls"] += 1
        if state["calls"] == 1:
            return real(fd_in, fd_out, 1000, *args)
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(local.os, "copy_file_range", copy_range)
    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(LakeError, match="cross-device"):
        lake.put_file(contract.BUCKET_RAW, "www.data", src)
    assert not (tmp_path / "lake" / contract.BUCKET_RAW / "www.data").exists()


@pytest.mark.parametrize("workers", [2, 3])
def test_parts_staged_in_worker_threads_give_the_same_dataset(lake: Lake, workers: int) -> None:
    table = make_pages(5300, seed=22)
    one = publish_pages(lake, table, prefix="one")
    seen: list[int] = []
    many = write_pages(lake, table, prefix="many", workers=workers, progress=seen.append)
    assert [p.key for p in many.parts] == [p.key for p in one.parts]
    assert [(p.rows, p.bytes, p.sha256) for p in many.parts] == [
        (p.rows, p.bytes, p.sha256) for p in one.parts
    ]
    assert seen == [p.rows for p in one.parts]
    assert lake.read_table(PAGES, "many").equals(table)


def test_a_part_failing_in_a_worker_fails_the_publish_and_commits_nothing(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from microsub.lake import writer as writer_module

    real = writer_module.parquet_bytes
    count = {"n": 0}

    def flaky(table: pa.Table, **kw: object) -> memoryview:
        count["n"] += 1
        if count["n"] == 3:
            raise OSError("disk on fire")
        return real(table, **kw)

    monkeypatch.setattr(writer_module, "parquet_bytes", flaky)
    with pytest.raises(OSError, match="disk on fire"):
        write_pages(lake, make_pages(6000, seed=23), workers=2)
    with pytest.raises(DatasetNotFoundError):
        lake.manifest(PAGES)
    assert lake.list(PAGES, recursive=True) == []  # what the workers staged was removed


def test_a_writer_without_statistics_writes_none_and_the_same_rows(tmp_path: Path) -> None:
    """``statistics=False`` (the items dataset): no min/max in the footer, the same rows back."""
    import pyarrow.parquet as pq

    lake = LocalLake(tmp_path / "lake")
    table = make_pages(500, seed=24)
    with lake.writer(
        PAGES, "s", dataset="pages", schema=contract.PAGES_SCHEMA, statistics=False
    ) as writer:
        writer.write(table)
    manifest = writer.manifest
    metadata = pq.ParquetFile(tmp_path / "lake" / PAGES / manifest.key(manifest.parts[0])).metadata
    column = metadata.row_group(0).column(0)
    assert not column.is_stats_set
    assert lake.read_table(PAGES, "s").equals(table)


def test_large_objects_and_raw_copies_leave_the_page_cache_once_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts of 8 MiB and more and put_file copies are dropped from the page cache after their
    fsync; small objects (manifests) are not. The bytes are the same either way."""
    from microsub.lake import local

    dropped: list[int] = []
    real = local._drop_cache
    monkeypatch.setattr(local, "_drop_cache", lambda fd, *a: (dropped.append(fd), real(fd, *a)))
    lake = LocalLake(tmp_path / "lake")
    small, large = b"s" * 1000, np.random.default_rng(25).bytes(local._RELEASE_BYTES)
    lake.put_bytes("reports", "small.bin", small)
    assert dropped == []
    lake.put_bytes("reports", "large.bin", large)
    assert len(dropped) == 1
    src = tmp_path / "www.data"
    src.write_bytes(large)
    lake.put_file(contract.BUCKET_RAW, "www.data", src)
    assert len(dropped) == 2
    assert lake.get_bytes("reports", "large.bin") == large
    assert (tmp_path / "lake" / contract.BUCKET_RAW / "www.data").read_bytes() == large
