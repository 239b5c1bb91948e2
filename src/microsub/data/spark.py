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
2. **Line numbers** without a global sort: Spark reads the text in splits (partitions); one job
   counts the lines of each partition, and line ``i`` of partition ``k`` gets number
   ``lines before partition k + i + 1`` (``monotonically_increasing_id`` holds ``i``).
3. **Parse**: every partition runs the single-machine parser
   (:func:`~microsub.data.parse.parse_frame`, Polars) on its lines (``mapInArrow``), so both
   engines sort lines into pages and quarantine by one definition. The result is persisted.
4. **Sessions** without moving pages between partitions: each partition is summarised (pages,
   first and last page, sessions it would hold alone; :func:`~microsub.data.sessions.summarize`),
   the driver turns the few summaries into the state before each partition and the page after it
   (:func:`~microsub.data.sessions.part_states`: a carry and an offset of session ids), and each
   partition is labelled on its own (:class:`~microsub.data.sessions.Sessionizer`).
5. **Commit**: Spark writes Parquet parts to a local staging folder; the driver reads them in
   partition order and hands them to the ``sink``, that is to the lake's own dataset writers, so
   the lake gets the same parts and the same ``_manifest.json`` as from the other engine.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
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
from microsub.data.parse import _LIST_TYPES, LIST_FIELDS, detect_layout, parse_frame
from microsub.data.sessions import (
    NEXT_STATE_SOURCES,
    PartSummary,
    Sessionizer,
    SessionState,
    Successor,
    part_states,
    summarize,
)
from microsub.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: What the parse of a partition gives: the pages before sessions (item lists null unless
#: asked for) and the quarantined lines (``reason`` and ``raw`` set, page columns null).
_SESSION_COLUMNS = {"session_id", "truncated", "page_jump", "has_next", *NEXT_STATE_SOURCES}
PARSED_SCHEMA = pa.schema(
    [
        *(f.with_nullable(True) for f in PAGES_SCHEMA if f.name not in _SESSION_COLUMNS),
        *(pa.field(name, pa.list_(_LIST_TYPES[name])) for name in LIST_FIELDS),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),
    ]
)

#: The labelled pages with their item lists (what Spark writes before the lake commit).
LABELLED_SCHEMA = pa.schema(
    [*PAGES_SCHEMA, *(f for f in ITEMS_SCHEMA if f.name not in PAGES_SCHEMA.names)]
)

_SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("pid", pa.int32()),
        pa.field("n_pages", pa.int64()),
        pa.field("sessions_alone", pa.int64()),
        pa.field("first_page_id", pa.int64()),
        pa.field("first_terminal", pa.int64()),
        *(pa.field(f"first_{s}", pa.float64()) for s, _ in NEXT_STATE_SOURCES.values()),
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
        workdir: where the staging folder goes (default: the system's temporary folder).

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
        lines = _numbered_lines(spark, uri, report)
        layout_name = report.layout
        parsed = lines.mapInArrow(_parse_udf(layout_name, with_items), _spark_schema(PARSED_SCHEMA))
        parsed = parsed.persist()
        try:
            _write_tables(parsed, staging, with_items)
        finally:
            parsed.unpersist()
        for table in _read_parts(staging / "quarantine", QUARANTINE_SCHEMA):
            emit("quarantine", table)
            count_quarantine(report, table)
        if tail is not None:  # the partial last line of a cut download
            report.lines_read += 1
            table = truncated_line(report.lines_read, tail)
            emit("quarantine", table)
            count_quarantine(report, table)
        for table in _read_parts(staging / "pages", LABELLED_SCHEMA):
            emit("pages", conform(table, PAGES_SCHEMA))
            if with_items:
                emit("items", conform(table, ITEMS_SCHEMA))
            count_pages(report, table)
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


def _numbered_lines(spark: SparkSession, uri: str, report: IngestReport) -> DataFrame:
    """``line_no`` (1-based, file order) and ``raw`` (bytes) of every line of ``uri``.

    One job counts the lines per partition; a line's number is the lines before its partition
    plus its rank in the partition. No sort, no shuffle of the lines.
    """
    from pyspark.sql import functions as F

    text = spark.read.option("lineSep", "\n").text(uri)
    pid = F.spark_partition_id()
    counts = dict(text.groupBy(pid.alias("pid")).count().collect())
    n_parts = text.rdd.getNumPartitions()
    before = [0] * n_parts
    for k in range(1, n_parts):
        before[k] = before[k - 1] + counts.get(k - 1, 0)
    n_lines = sum(counts.values())
    if report.text_bytes == 0 and n_lines:  # a URI: the text's size from Spark
        size = text.select(F.sum(F.octet_length("value") + 1)).first()[0]
        report.text_bytes = report.bytes_read = int(size)
    report.lines_read += n_lines
    offset = F.element_at(F.array(*(F.lit(b) for b in before)), pid + 1)
    rank = F.monotonically_increasing_id() - F.shiftleft(pid.cast("long"), 33)
    return text.select(
        (offset + rank + 1).alias("line_no"), F.col("value").cast("binary").alias("raw")
    )


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _parse_udf(layout_name: str, with_items: bool) -> Callable[..., Iterator[pa.RecordBatch]]:
    """The function each partition runs on its lines: :func:`parse_frame`, pages and
    quarantine in one table of :data:`PARSED_SCHEMA`."""

    def parse(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        layout = layout_named(layout_name)
        for batch in batches:
            raw = batch.column("raw")
            try:
                text = raw.cast(pa.large_string())
            except pa.ArrowInvalid:  # not UTF-8: \xNN escapes, as the other engine does
                text = pa.array(
                    [b.decode("utf-8", "backslashreplace") for b in raw.to_pylist()],
                    pa.large_string(),
                )
            lines = pl.DataFrame(
                {"line_no": pl.from_arrow(batch.column("line_no")), "raw": pl.from_arrow(text)}
            ).with_columns(pl.col("raw").str.strip_suffix("\r"))
            pages, quarantine = parse_frame(lines, layout, with_items=with_items)
            both = pa.concat_tables([pages, quarantine], promote_options="default")
            yield from _fit(both, PARSED_SCHEMA).to_batches()

    return parse


def _fit(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns (absent ones null), cast to its types."""
    n = table.num_rows
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _write_tables(parsed: DataFrame, staging: Path, with_items: bool) -> None:
    """Label the persisted parse with sessions, partition by partition, and write the labelled
    pages and the quarantine to ``staging`` as Parquet (one file per partition, in order)."""
    from pyspark.sql import functions as F

    pages = parsed.filter(F.col("reason").isNull()).drop("reason", "raw")
    pages = pages.withColumn("pid", F.spark_partition_id())
    sources = sorted({s for s, _ in NEXT_STATE_SOURCES.values()})
    rows = (
        pages.select("pid", "action_page_id", "done", *sources)
        .mapInArrow(_summary_udf, _spark_schema(_SUMMARY_SCHEMA))
        .collect()
    )
    summaries = {r["pid"]: _summary(r.asDict()) for r in rows}
    n_parts = parsed.rdd.getNumPartitions()
    states = part_states([summaries.get(k, PartSummary(0, 0, None)) for k in range(n_parts)])
    if not with_items:
        pages = pages.drop(*LIST_FIELDS)
    labelled = pages.mapInArrow(_label_udf(states, with_items), _spark_schema(LABELLED_SCHEMA))
    labelled.write.mode("overwrite").parquet((staging / "pages").as_uri())
    quarantine = parsed.filter(F.col("reason").isNotNull()).select("line_no", "reason", "raw")
    quarantine.write.mode("overwrite").parquet((staging / "quarantine").as_uri())


def _summary_udf(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """One row per non-empty partition: its :class:`PartSummary` (``_SUMMARY_SCHEMA``)."""
    tables = [pa.Table.from_batches([b]) for b in batches if b.num_rows]
    if not tables:
        return
    part = summarize(tables)
    assert part.first is not None
    row = {
        "pid": tables[0].column("pid")[0].as_py(),
        "n_pages": part.n_pages,
        "sessions_alone": part.sessions_alone,
        "first_page_id": part.first.page_id,
        "first_terminal": part.first.terminal,
        **{f"first_{s}": v for s, v in part.first.values.items()},
        "last_page_id": part.last_page_id,
        "last_terminal": part.last_terminal,
    }
    yield pa.RecordBatch.from_pylist([row], schema=_SUMMARY_SCHEMA)


def _summary(row: dict[str, Any]) -> PartSummary:
    sources = {s for s, _ in NEXT_STATE_SOURCES.values()}
    first = Successor(
        row["first_page_id"], row["first_terminal"], {s: row[f"first_{s}"] for s in sources}
    )
    return PartSummary(
        row["n_pages"], row["sessions_alone"], first, row["last_page_id"], row["last_terminal"]
    )


def _label_udf(
    states: list[tuple[SessionState, Successor | None]], with_items: bool
) -> Callable[..., Iterator[pa.RecordBatch]]:
    """The function each partition runs on its pages: sessions from the state before it and
    the page after it; rows of :data:`LABELLED_SCHEMA`."""

    def label(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        sessionizer, successor = None, None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch])
            if sessionizer is None:
                state, successor = states[table.column("pid")[0].as_py()]
                sessionizer = Sessionizer(state)
            yield from _fit(sessionizer.push(table.drop(["pid"])), LABELLED_SCHEMA).to_batches()
        if sessionizer is not None:
            rest = sessionizer.finish(successor)
            if rest is not None:
                yield from _fit(rest, LABELLED_SCHEMA).to_batches()

    return label


def _read_parts(folder: Path, schema: pa.Schema, rows: int = 65_536) -> Iterator[pa.Table]:
    """The Parquet files Spark wrote to ``folder``, in partition order, ``rows`` at a time."""
    for path in sorted(folder.glob("part-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            if batch.num_rows:
                yield conform(pa.Table.from_batches([batch]), schema)
