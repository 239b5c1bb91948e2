"""Stage ``ingest``: the raw log into the lake (raw copy, pages, items, quarantine, report).

The raw file's format is checked first (its head must be the page log: nothing is stored
otherwise); then it is copied to ``raw-data`` and parsed by the engine of
``settings.ingest_engine`` (``polars``: :mod:`microsub.data.ingest` on this machine; ``spark``:
:mod:`microsub.data.spark` on ``settings.spark_master``) into the pages table (top of
``processed-data``), the item lists (``items-data``) and the quarantine. Both engines hand the
same tables to the same lake writers, so the datasets and their manifests do not depend on the
engine; the pages manifest records where the data came from and the reconciliation.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from typing import Any

import pyarrow as pa

from microsub import contract
from microsub.config import Settings
from microsub.data import background, ingest, spark
from microsub.data.ingest import IngestReport
from microsub.errors import ConfigError, DatasetNotFoundError, QuarantineLimitError
from microsub.lake import DatasetWriter, Lake, Manifest
from microsub.pipeline.raw import RawInput
from microsub.progress import ProgressFactory, quiet

#: Parts of the pages and items datasets hold at most this many rows (bounded reader memory).
PART_ROWS = 65_536

#: Items parts encoded at once: Parquet encodes a part on one core, and the items (100 MB a
#: part in memory) are the largest cost of an ingestion after parsing.
ITEMS_WORKERS = 2


def ingest_raw(
    settings: Settings,
    lake: Lake,
    raw: RawInput,
    *,
    force: bool = False,
    progress: ProgressFactory = quiet,
) -> Manifest:
    """Check the raw log's format, copy it into ``raw-data`` and publish pages, items and
    quarantine datasets.

    Skipped (the current pages manifest is returned) when the pages dataset was built from the
    same file by the same code, unless ``force``. The pages manifest's ``meta`` holds
    ``source`` (what the data is) and ``ingest`` (the reconciliation,
    :meth:`microsub.data.ingest.IngestReport.to_dict`).

    When too many lines are malformed, the quarantine dataset is still published (so the bad
    lines can be inspected) but the pages and items are not, and the error is re-raised.

    Raises:
        DataFormatError: the file is not the page log; raised before anything is stored.
    """
    fingerprint = raw.fingerprint()
    if not force:
        current = _current(lake, fingerprint)
        if current is not None:
            return current
    ingest.sniff(raw.path)  # before anything is stored: a non-log never reaches the lake
    lake.ensure_buckets()
    size = raw.path.stat().st_size
    source = {"kind": raw.kind, "fingerprint": fingerprint, **raw.details}
    # The raw copy runs beside the ingestion (it is I/O; the parse is CPU) and is complete
    # before the datasets commit.
    with (
        progress(f"copying {raw.path.name} to {contract.BUCKET_RAW}", None) as copied,
        ThreadPoolExecutor(1, thread_name_prefix="microsub-raw-copy") as pool,
    ):
        copy = pool.submit(lake.put_file, contract.BUCKET_RAW, raw.path.name, raw.path)
        copy.add_done_callback(lambda _: copied(size))
        with progress(f"ingesting {raw.path.name}", size) as advance:
            run = partial(engine(settings), raw.path, progress=advance)
            report = _publish(lake, source, run, ready=copy.result)
    lake.put_json(contract.BUCKET_REPORTS, "ingest.json", {"source": source, **report.to_dict()})
    return lake.manifest(contract.BUCKET_PROCESSED)


def ingest_uri(
    settings: Settings, lake: Lake, uri: str, *, progress: ProgressFactory = quiet
) -> Manifest:
    """Publish pages, items and quarantine of a raw log that Spark reads from ``uri`` (object
    storage on a cluster: ``s3a://…``, ``abfss://…``, ``dbfs:/…``; ``file://…`` locally).

    The log stays where it is (no copy into ``raw-data``; the manifests' ``source`` names the
    URI); the format is checked on its first lines before anything is stored.

    Raises:
        ConfigError: the engine is not ``spark`` (only Spark reads a URI).
        DataFormatError: the file is not the page log.
    """
    if settings.ingest_engine != "spark":
        raise ConfigError(
            f"{uri!r} is a URI, which only the Spark engine reads; pass --engine spark "
            "(MICROSUB_INGEST_ENGINE=spark), or give a local path"
        )
    lake.ensure_buckets()
    source = {"kind": "real", "uri": uri, "file": uri.rstrip("/").rsplit("/", 1)[-1]}
    with progress(f"ingesting {uri}", None) as advance:
        report = _publish(lake, source, partial(engine(settings), uri, progress=advance))
    lake.put_json(contract.BUCKET_REPORTS, "ingest.json", {"source": source, **report.to_dict()})
    return lake.manifest(contract.BUCKET_PROCESSED)


def engine(settings: Settings) -> Callable[..., IngestReport]:
    """The ingestion function of ``settings.ingest_engine``, with its settings bound.

    It is called as ``f(path, sink=..., progress=...)`` and returns the reconciled report.
    """
    common: dict[str, Any] = {"max_quarantine_share": settings.max_quarantine_share}
    if settings.ingest_engine == "spark":
        return partial(spark.ingest, master=settings.spark_master, **common)
    return partial(ingest.ingest, batch_bytes=settings.ingest_batch_bytes, **common)


def _current(lake: Lake, fingerprint: str) -> Manifest | None:
    """The pages manifest if it was built from the file of ``fingerprint``, else ``None``."""
    try:
        current = lake.manifest(contract.BUCKET_PROCESSED)
    except DatasetNotFoundError:
        return None
    if current.meta.get("source", {}).get("fingerprint") == fingerprint:
        return current
    return None


def _publish(
    lake: Lake,
    source: dict[str, Any],
    run: Callable[..., IngestReport],
    ready: Callable[[], object] = lambda: None,
) -> IngestReport:
    """Run the engine (``run(sink=...)``) into the three dataset writers and commit them.

    The pages and items commit only when the engine returns (and ``ready()``, the raw copy, has
    returned); the quarantine also commits when the engine raises
    :class:`QuarantineLimitError` (the evidence is kept).
    """
    common = {"meta": {"source": source}, "part_rows": PART_ROWS}
    with ExitStack() as stack:
        writers: dict[str, DatasetWriter] = {
            "pages": stack.enter_context(
                lake.writer(
                    contract.BUCKET_PROCESSED,
                    dataset="pages",
                    schema=contract.PAGES_SCHEMA,
                    **common,
                )
            ),
            "items": stack.enter_context(
                lake.writer(  # item lists: many distinct floats, where dictionaries cost most
                    contract.BUCKET_ITEMS,
                    dataset="items",
                    schema=contract.ITEMS_SCHEMA,
                    dictionary=False,
                    statistics=False,  # min/max of 23 million values a GB that nothing reads
                    workers=ITEMS_WORKERS,
                    **common,
                )
            ),
        }
        quarantine = lake.writer(  # parts of PART_ROWS whatever the engine's batches
            contract.BUCKET_QUARANTINE,
            dataset="quarantine",
            schema=contract.QUARANTINE_SCHEMA,
            **common,
        )

        def sink(name: str, table: pa.Table) -> None:
            (quarantine if name == "quarantine" else writers[name]).write(table)

        try:
            with background.threaded(sink) as store:  # parts are written while parsing goes on
                report = run(sink=store)
            ready()
        except QuarantineLimitError:
            quarantine.commit()  # keep the evidence; pages/items abort with the error
            raise
        except BaseException:
            quarantine.abort()
            raise
        source["sha256"] = report.sha256
        for w in (*writers.values(), quarantine):
            w.update_meta({"source": source, "ingest": report.to_dict()})
        quarantine.commit()
    return report
