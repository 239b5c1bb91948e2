"""The ingestion on Spark: the same pages, items and quarantine tables as the single-machine
engine (:func:`microsub.data.ingest.ingest`), computed by a Spark cluster or ``local[*]``.

pyspark is an optional extra (``pip install 'microsub[spark]'``): it is imported inside the
functions here, so ``microsub`` works without it. Steps of :func:`ingest`:

1. **Text.** A local file is read once on the driver through the same container handling as the
   single-machine engine (:func:`~microsub.data.ingest.text_batches`: plain, gzip, tar, a tar
   renamed ``.txt``, cut downloads), which hashes and counts it; a plain file is handed to Spark
   as it is, any other container as its text, unpacked to a staging file. A URI
   (``s3a://…``, ``abfss://…``, ``dbfs:/…``, ``file://…``) is read by Spark directly (plain
   text or ``.gz``) and not hashed.
2. **First pass, summaries**: Spark reads the text in splits (partitions) and every partition
   runs the single-machine parser (:func:`~microsub.data.parse.parse_frame`, Polars) on its
   lines (``mapInArrow``), pages only, and returns one row: its line count, its first and last
   page and the sessions it would hold alone (:func:`~microsub.data.sessions.summarize`).
3. **The driver** turns these few rows into the lines before each partition (line numbers
   without a global sort) and the state before and the page after each partition
   (:func:`~microsub.data.sessions.part_states`: a carry and an offset of session ids).
4. **Second pass**: every partition parses its lines again, with items, and labels its pages
   with sessions on its own (:class:`~microsub.data.sessions.Sessionizer`); its worker writes
   pages, items and quarantined lines to one Parquet file of a staging folder (the item lists
   never cross into the JVM). No page moves between partitions; nothing is persisted.
5. **Commit**: the driver reads the staged Parquet in partition order and hands it to the
   ``sink``, that is to the lake's own dataset writers, so the lake gets the same parts and the
   same ``_manifest.json`` as from the other engine.

Both passes run the parser of the single-machine engine, so the two engines sort lines into
pages and quarantine by one definition; Spark distributes the work (and on a cluster reads
the log from object storage).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from microsub.contract import (
    ITEMS_SCHEMA,
    PAGES_SCHEMA,
    QUARANTINE_SCHEMA,
    RawLayout,
    conform,
    layout_named,
)
from microsub.data.ingest import (
    IngestReport,
    Sink,
    count_pages,
    count_quarantine,
    finish,
    text_batches,
    truncated_line,
)
from microsub.data.parse import detect_layout, parse_frame
from microsub.data.sessions import (
    NEXT_STATE_SOURCES,
    PartSummary,
    Sessionizer,
    SessionState,
    Successor,
    part_states,
    summarize,
)
from microsub.errors import ConfigError, ContractError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: What the second pass writes: labelled pages with their item lists, and quarantined lines
#: (``reason`` and ``raw`` set, every page column null).
OUT_SCHEMA = pa.schema(
    [
        *(f.with_nullable(True) for f in PAGES_SCHEMA),
        *(f for f in ITEMS_SCHEMA if f.name not in PAGES_SCHEMA.names),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),
    ]
)

_WRITTEN_SCHEMA = pa.schema([pa.field("pid", pa.int32()), pa.field("rows", pa.int64())])

_SOURCES = sorted({source for source, _ in NEXT_STATE_SOURCES.values()})

_SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("pid", pa.int32()),
        pa.field("n_lines", pa.int64()),
        pa.field("text_bytes", pa.int64()),
        pa.field("n_pages", pa.int64()),
        pa.field("sessions_alone", pa.int64()),
        pa.field("first_page_id", pa.int64()),
        pa.field("first_terminal", pa.int64()),
        *(pa.field(f"first_{s}", pa.float64()) for s in _SOURCES),
        pa.field("last_page_id", pa.int64()),
        pa.field("last_terminal", pa.int64()),
    ]
)


def session(master: str = "local[*]") -> SparkSession:
    """The active Spark session, or a new one on ``master``.

    A local master binds to 127.0.0.1 and runs its Python workers with this interpreter; a
    cluster's own settings (``spark-submit``, Databricks) are left as they are.

    Raises:
        ConfigError: pyspark is not installed.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "--engine spark needs pyspark, which is not installed; install the extra with "
            "`pip install 'microsub[spark]'` (and Java 17+), or use --engine polars"
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.master(master).appName("microsub-ingest")
    if master.startswith("local"):
        # the workers of a local master are this interpreter, with microsub importable
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
        }.items():
            builder = builder.config(key, value)
    return builder.getOrCreate()


def ingest(
    path: str | Path,
    *,
    sink: Sink | None = None,
    master: str = "local[*]",
    spark: SparkSession | None = None,
    layout: RawLayout | None = None,
    max_quarantine_share: float = 0.01,
    with_items: bool = True,
    progress: Callable[[int], None] | None = None,
    workdir: str | Path | None = None,
) -> IngestReport:
    """Ingest a raw log with Spark; the contract of :func:`microsub.data.ingest.ingest`.

    Args:
        path: a local raw log (any container), or a URI Spark reads (plain text or ``.gz``).
        sink: receives ``("quarantine" | "pages" | "items", table)``, tables conformed to the
            contract, in line order; ``None`` discards them.
        master: Spark master when no session is active (``local[*]``, ``spark://…``, ``yarn``).
        spark: the session to use (default: :func:`session` of ``master``).
        layout: the raw layout; ``None`` detects it from the first lines.
        max_quarantine_share: largest accepted share of quarantined lines.
        with_items: also hand over the items table.
        progress: called with the file bytes read by the driver (local files).
        workdir: where the staging folder goes (default: the system's temporary folder); on a
            cluster, a folder the driver and the workers share (such as /dbfs/tmp).

    Returns:
        The reconciled :class:`~microsub.data.ingest.IngestReport`; for a URI, ``sha256`` is
        empty and ``bytes_read`` is the text's size.

    Raises:
        DataFormatError: the input is not the page log.
        QuarantineLimitError: too many quarantined lines (the sink has had everything).
    """
    spark = spark or session(master)
    emit: Sink = sink if sink is not None else (lambda name, table: None)
    report = IngestReport(source=str(path))
    staging = Path(tempfile.mkdtemp(prefix="microsub-spark-", dir=workdir))
    try:
        uri, tail = _text(spark, path, report, layout, staging, progress)
        _write_tables(spark, uri, report, staging / "out", with_items)
        for quarantine, pages in _read_parts(staging / "out"):
            if quarantine.num_rows:
                emit("quarantine", quarantine)
                count_quarantine(report, quarantine)
            if pages.num_rows:
                emit("pages", conform(pages, PAGES_SCHEMA))
                if with_items:
                    emit("items", conform(pages, ITEMS_SCHEMA))
                count_pages(report, pages)
        if tail is not None:  # the partial last line of a cut download
            report.lines_read += 1
            table = truncated_line(report.lines_read, tail)
            emit("quarantine", table)
            count_quarantine(report, table)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return finish(report, max_quarantine_share)


def _is_uri(path: str | Path) -> bool:
    return isinstance(path, str) and ("://" in path or path.startswith("dbfs:/"))


def _text(
    spark: SparkSession,
    path: str | Path,
    report: IngestReport,
    layout: RawLayout | None,
    staging: Path,
    progress: Callable[[int], None] | None,
) -> tuple[str, bytes | None]:
    """The plain text Spark reads (a URI) and the partial last line of a cut download.

    A local file is read once on the driver (container, layout, hash, notes, text bytes); its
    text is copied to ``staging`` unless the file is that text already.
    """
    if _is_uri(path):
        head = [r.value for r in spark.read.option("lineSep", "\n").text(str(path)).take(50)]
        report.layout = (layout or detect_layout(head)).name
        report.notes.append(f"read by Spark from {path}; not hashed on the driver")
        return str(path), None
    copy = staging / "text.txt"
    tail: bytes | None = None
    with open(copy, "wb") as out:
        for data, cut_short in text_batches(path, report, layout=layout, progress=progress):
            if cut_short:
                tail = data
            else:
                out.write(data)
    if report.container == "plain" and not report.notes:
        copy.unlink()  # the file is its own text: Spark reads it where it is
        return Path(path).resolve().as_uri(), tail
    return copy.resolve().as_uri(), tail


def _lines(spark: SparkSession, uri: str) -> DataFrame:
    """``pid`` (partition), ``rank`` (0-based line in the partition) and ``raw`` (bytes) of every
    line of ``uri``; the same partitions each time it is read."""
    from pyspark.sql import functions as F

    pid = F.spark_partition_id()
    return (
        spark.read.option("lineSep", "\n")
        .text(uri)
        .select(
            pid.alias("pid"),
            (F.monotonically_increasing_id() - F.shiftleft(pid.cast("long"), 33)).alias("rank"),
            F.col("value").cast("binary").alias("raw"),
        )
    )


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _lines_frame(batch: pa.RecordBatch, line_no: pa.Array) -> pl.DataFrame:
    """The lines of a batch as :func:`parse_frame` wants them (``\\r`` of CRLF dropped, bytes
    that are not UTF-8 as ``\\xNN`` escapes, as the other engine does)."""
    raw = batch.column("raw")
    try:
        text = raw.cast(pa.large_string())
    except pa.ArrowInvalid:
        text = pa.array(
            [b.decode("utf-8", "backslashreplace") for b in raw.to_pylist()], pa.large_string()
        )
    frame = pl.DataFrame({"line_no": pl.from_arrow(line_no), "raw": pl.from_arrow(text)})
    return frame.with_columns(pl.col("raw").str.strip_suffix("\r"))


def _fit(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns (absent ones null), cast to its types."""
    n = table.num_rows
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _write_tables(
    spark: SparkSession, uri: str, report: IngestReport, out: Path, with_items: bool
) -> None:
    """Both passes: summaries of the partitions, then every partition parsed, labelled and
    written to ``out`` as Parquet (one file per partition, in order). Counts the lines (and,
    for a URI, the text bytes) into ``report``."""
    from pyspark.sql import functions as F

    lines = _lines(spark, uri)
    layout_name = report.layout
    rows = lines.mapInArrow(_summary_udf(layout_name), _spark_schema(_SUMMARY_SCHEMA)).collect()
    summaries = {r["pid"]: r.asDict() for r in rows}
    n_parts = lines.rdd.getNumPartitions()
    parts = [summaries.get(k) for k in range(n_parts)]
    before = [0] * n_parts  # lines before each partition
    for k in range(1, n_parts):
        before[k] = before[k - 1] + (parts[k - 1] or {}).get("n_lines", 0)
    report.lines_read += sum(p["n_lines"] for p in parts if p)
    if report.text_bytes == 0:  # a URI: the text's size as Spark read it
        report.text_bytes = report.bytes_read = sum(p["text_bytes"] for p in parts if p)
    states = part_states([_summary(p) for p in parts])
    offset = F.element_at(F.array(*(F.lit(b) for b in before)), F.col("pid") + 1)
    numbered = lines.withColumn("line_no", offset + F.col("rank") + 1)
    out.mkdir(parents=True, exist_ok=True)
    udf = _ingest_udf(layout_name, with_items, states, str(out))
    written = numbered.mapInArrow(udf, _spark_schema(_WRITTEN_SCHEMA)).collect()
    if sum(r["rows"] for r in written) != report.lines_read:
        raise ContractError(
            f"the second pass wrote {sum(r['rows'] for r in written)} rows for "
            f"{report.lines_read} lines; this is a bug in microsub.data.spark"
        )


def _summary_udf(layout_name: str) -> Callable[..., Iterator[pa.RecordBatch]]:
    """The first pass of a partition: one row of ``_SUMMARY_SCHEMA`` (none if it is empty)."""

    def summary(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        layout = layout_named(layout_name)
        pid, n_lines, text_bytes, tables = None, 0, 0, []
        for batch in batches:
            if batch.num_rows == 0:
                continue
            pid = batch.column("pid")[0].as_py()
            n_lines += batch.num_rows
            # each line's bytes and its newline
            text_bytes += (pc.sum(pc.binary_length(batch.column("raw"))).as_py() or 0) + len(batch)
            frame = _lines_frame(batch, batch.column("rank"))
            pages, _ = parse_frame(frame, layout, with_items=False)
            tables.append(pages.select(["action_page_id", "done", *_SOURCES]))
        if pid is None:
            return
        part = summarize(tables)
        first = part.first or Successor(0, 0, dict.fromkeys(_SOURCES, 0.0))
        row = {
            "pid": pid,
            "n_lines": n_lines,
            "text_bytes": text_bytes,
            "n_pages": part.n_pages,
            "sessions_alone": part.sessions_alone,
            "first_page_id": first.page_id,
            "first_terminal": first.terminal,
            **{f"first_{s}": v for s, v in first.values.items()},
            "last_page_id": part.last_page_id,
            "last_terminal": part.last_terminal,
        }
        yield pa.RecordBatch.from_pylist([row], schema=_SUMMARY_SCHEMA)

    return summary


def _summary(row: dict[str, Any] | None) -> PartSummary:
    if row is None or row["n_pages"] == 0:
        return PartSummary(0, 0, None)
    first = Successor(
        row["first_page_id"], row["first_terminal"], {s: row[f"first_{s}"] for s in _SOURCES}
    )
    return PartSummary(
        row["n_pages"], row["sessions_alone"], first, row["last_page_id"], row["last_terminal"]
    )


def _ingest_udf(
    layout_name: str,
    with_items: bool,
    states: list[tuple[SessionState, Successor | None]],
    out: str,
) -> Callable[..., Iterator[pa.RecordBatch]]:
    """The second pass of a partition: its lines parsed and its pages labelled from the state
    before it and the page after it, written to ``out/part-<pid>.parquet`` (rows of
    :data:`OUT_SCHEMA`); yields one row of ``_WRITTEN_SCHEMA``.

    The worker writes the Parquet itself (pyarrow): the item lists never cross into the JVM,
    which doubled the time of the whole ingestion. ``out`` must therefore be a folder the
    workers and the driver share (any folder with a local master; a shared mount such as
    ``/dbfs/...`` on a cluster).
    """

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        layout = layout_named(layout_name)
        sessionizer, successor, writer, pid, rows = None, None, None, None, 0
        tmp = Path(out) / f".part-{uuid.uuid4().hex}.tmp"
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                if sessionizer is None:
                    pid = batch.column("pid")[0].as_py()
                    state, successor = states[pid]
                    sessionizer = Sessionizer(state)
                    writer = pq.ParquetWriter(tmp, OUT_SCHEMA)
                frame = _lines_frame(batch, batch.column("line_no"))
                pages, quarantine = parse_frame(frame, layout, with_items=with_items)
                for table in (quarantine, sessionizer.push(pages)):
                    writer.write_table(_fit(table, OUT_SCHEMA))
                    rows += table.num_rows
            if sessionizer is not None:
                rest = sessionizer.finish(successor)
                if rest is not None:
                    writer.write_table(_fit(rest, OUT_SCHEMA))
                    rows += rest.num_rows
        finally:
            if writer is not None:
                writer.close()
        if pid is None:
            return
        os.replace(tmp, Path(out) / f"part-{pid:05d}.parquet")  # a retried task rewrites it
        yield pa.RecordBatch.from_pylist([{"pid": pid, "rows": rows}], schema=_WRITTEN_SCHEMA)

    return run


def _read_parts(folder: Path, rows: int = 65_536) -> Iterator[tuple[pa.Table, pa.Table]]:
    """``(quarantine, pages)`` tables of the Parquet files Spark wrote to ``folder``, in
    partition order, ``rows`` at a time; the pages keep their item lists."""
    for path in sorted(folder.glob("part-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            table = pa.Table.from_batches([batch])
            bad = table.column("reason").is_valid()
            quarantine = conform(table.filter(bad), QUARANTINE_SCHEMA)
            pages = table.filter(pc.invert(bad)).drop_columns(["reason", "raw"])
            yield quarantine, pages
