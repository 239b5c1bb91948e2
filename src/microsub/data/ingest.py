"""The single-machine ingestion engine: raw bytes to pages, items and quarantine tables.

The raw log (``www.data``, about 6 GB; see ``data/real/README.md``) has one line per page of
50 items, ``;``-separated fields, comma-separated 50-item lists. :func:`ingest` reads it in
batches of about ``batch_bytes`` (cut at the last newline, the rest carried over), so memory
does not grow with the file; the next batches are read (unpacked, hashed) in a worker thread
(:func:`~microsub.data.background.prefetch`) while it parses each batch with Polars's
multithreaded kernels (:func:`~microsub.data.parse.parse_lines`), labels sessions
(:mod:`microsub.data.sessions`, which holds back at most 11 rows of an unfinished session),
and hands three tables to a ``sink``:

- ``"pages"``: :data:`~microsub.contract.PAGES_SCHEMA`, one row per valid line;
- ``"items"``: :data:`~microsub.contract.ITEMS_SCHEMA`, the 50-item lists of the same lines;
- ``"quarantine"``: :data:`~microsub.contract.QUARANTINE_SCHEMA`, every other line, whole, with
  its 1-based line number and a reason from :data:`REASONS`.

Nothing is lost: every line read is a page or a quarantined line, and every run checks
``lines_read == pages_written + lines_quarantined`` (:attr:`IngestReport.reconciles`).

Containers (:func:`open_raw`): plain text, gzip, and the public tar ``wwwdata.tar``, recognised
by content (gzip magic ``1f 8b``; ``ustar`` at byte 257 for a tar), not by the file name, so a
tar renamed to ``.txt`` is read through :mod:`tarfile` in stream mode. A text file whose first
line carries a tar header that :mod:`tarfile` cannot read (damaged header) has the header
stripped, and NUL bytes at the end of any input (tar padding) are dropped. A cut download (a
gzip or tar that ends before its own end) gives every whole line it holds; the partial last
line is quarantined as ``"truncated at end of input"`` and the report's ``notes`` say why.

A value is numeric when Polars's string-to-float cast parses it (so ``1e3``, ``nan`` and
``inf`` are numbers, and the range checks then decide; integer fields must be written as
integers, see :mod:`microsub.data.parse`); the fixed order of :data:`REASONS` decides which
fault names a line that has several. :func:`sniff` checks the format on the first lines alone,
before a caller stores anything; the Spark engine (:mod:`microsub.data.spark`) shares the
head, the tallies and the final checks (:func:`text_batches`, :func:`count_pages`,
:func:`count_quarantine`, :func:`finish`).

Blank lines (empty or only whitespace) are quarantined with reason ``"blank line"``: they count
as lines read, keep the line numbers of the raw text, and reconcile like any other line. A final
newline does not make a blank line. ``\r\n`` line ends are read as ``\n``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from microsub.contract import (
    ITEMS_SCHEMA,
    PAGES_SCHEMA,
    QUARANTINE_SCHEMA,
    RawLayout,
    conform,
    layout_named,
)
from microsub.data.background import prefetch
from microsub.data.containers import (
    Prefixed,
    RawSource,
    Readable,
    read_full,
    readinto,
    strip_tar_header,
)
from microsub.data.parse import detect_layout, parse_lines
from microsub.data.sessions import Sessionizer
from microsub.errors import ContractError, DataFormatError, QuarantineLimitError

Sink = Callable[[str, pa.Table], None]
"""Receives ``(dataset, table)`` with dataset ``"pages"``, ``"items"`` or ``"quarantine"``."""


_HEAD_BYTES = 64 * 2**10  # bytes read ahead to detect the container and the layout


_MAX_LINE_BYTES = 16 * 2**20  # a page line is a few KB; a "line" this long is not this log


@dataclass
class IngestReport:
    """What one ingestion read and wrote; JSON-safe through :meth:`to_dict`.

    Attributes:
        source: path of the raw file.
        container: ``"plain"``, ``"gzip"``, ``"tar"`` or ``"tar.gz"``.
        layout: name of the raw layout (``"official-15"`` or ``"example-14"``).
        bytes_read: bytes of the file as stored (compressed / tar), all of them.
        sha256: hex SHA-256 of those bytes (the file as received).
        text_bytes: bytes of log text parsed (after unpacking; without a stripped tar header
            or NUL padding; with a newline added to a last line that lacked one).
        lines_read: lines of log text (a final newline does not start a new line).
        pages_written: rows handed to the sink as ``"pages"``.
        lines_quarantined: rows handed to the sink as ``"quarantine"``.
        quarantine_reasons: count per reason of :data:`REASONS` (only reasons that occurred).
        sessions: sessions written; each ends either done or truncated.
        sessions_done: sessions ended by a terminal flag.
        sessions_truncated: sessions ended without one (page cap, page-id jump, end of file).
        page_jumps: sessions opened by a page-id jump (``page_jump`` = 1).
        n_clicks, n_purchases: totals over the pages written.
        total_value: Yuan spent over the pages written (sum of ``page_value``, to the cent).
        notes: what was tolerated on the way (tar header stripped, NUL padding, truncation).
    """

    source: str
    container: str = "plain"
    layout: str = ""
    bytes_read: int = 0
    sha256: str = ""
    text_bytes: int = 0
    lines_read: int = 0
    pages_written: int = 0
    lines_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    sessions_done: int = 0
    sessions_truncated: int = 0
    page_jumps: int = 0
    n_clicks: int = 0
    n_purchases: int = 0
    total_value: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        """``lines_read == pages_written + lines_quarantined``: every line is accounted for."""
        return self.lines_read == self.pages_written + self.lines_quarantined

    @property
    def quarantine_share(self) -> float:
        """Quarantined lines as a share of lines read (0 for an empty input)."""
        return self.lines_quarantined / self.lines_read if self.lines_read else 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain dict of JSON types (for manifests and the findings document)."""
        out = asdict(self)
        out["quarantine_reasons"] = dict(sorted(self.quarantine_reasons.items()))
        out["total_value"] = float(self.total_value)
        out["reconciles"] = self.reconciles
        return out


def _batches(
    stream: Readable,
    batch_bytes: int,
    cut_reason: Callable[[], str | None],
    notes: list[str],
) -> Iterator[tuple[bytearray, bool]]:
    """Yield ``(whole lines, truncated)`` batches of about ``batch_bytes``.

    Each batch is cut after its last newline and the rest carried into the next. NUL bytes at
    the very end (tar padding) are dropped; a last line without a newline gets one. If the
    container ends early (``cut_reason()`` says why at the end), the partial last line comes
    alone with ``truncated=True``.

    A batch is read straight into its own buffer behind the carried bytes (no copy of the
    batch; a fresh buffer each time, so a consumer may keep one).
    """
    carry = b""
    while True:
        batch = bytearray(len(carry) + batch_bytes)
        batch[: len(carry)] = carry
        n = readinto(stream, memoryview(batch)[len(carry) :])
        if not n:
            break
        end = len(carry) + n
        cut = batch.rfind(b"\n", len(carry), end)
        if cut < 0:
            carry = bytes(batch[:end])
            if len(carry) > _MAX_LINE_BYTES:
                if carry.strip(b"\x00"):
                    raise DataFormatError(
                        f"expected lines of a few KB; found {len(carry)} bytes without a "
                        "newline: the input is not the page log (or not line-based text)"
                    )
                carry = b""  # a long run of tar padding
            continue
        carry = bytes(batch[cut + 1 : end])
        del batch[cut + 1 :]  # shrinks in place
        yield batch, False
        del batch
    reason = cut_reason()
    if reason:
        notes.append(f"input ends early ({reason}); the partial last line is quarantined")
    tail = carry.rstrip(b"\x00")
    if len(tail) < len(carry):
        notes.append(f"{len(carry) - len(tail)} NUL bytes at the end dropped (tar padding)")
    if tail:
        yield bytearray(tail + b"\n"), bool(reason)


def sniff(path: str | Path, layout: RawLayout | None = None) -> IngestReport:
    """Check that ``path`` is the page log, reading only its head; store and parse nothing.

    Returns:
        A report with ``container``, ``layout`` and ``notes`` filled in (nothing counted yet).

    Raises:
        DataFormatError: the file cannot be opened, is not a container we read, or its first
            lines fit no layout (:func:`detect_layout`).
    """
    report = IngestReport(source=str(path))
    source = RawSource(Path(path), None)
    try:
        _read_head(source, report, layout)
    finally:
        source.close()
    return report


def _read_head(source: RawSource, report: IngestReport, layout: RawLayout | None) -> bytes:
    """The first text bytes of ``source`` (a tar header stripped), with the container and the
    layout recorded in ``report``; the layout is detected unless given."""
    report.container = source.container
    report.notes.extend(source.notes)
    head = read_full(source.stream, _HEAD_BYTES)  # a cut container is reported later
    if source.container in ("plain", "gzip"):
        head, stripped = strip_tar_header(head)
        if stripped:
            report.notes.append("tar header at the start of line 1 stripped")
    if layout is None:
        lines = head.split(b"\n")
        layout = detect_layout(lines[:-1] if len(lines) > 1 else lines)
    report.layout = layout.name
    return head


def text_batches(
    path: str | Path,
    report: IngestReport,
    *,
    layout: RawLayout | None = None,
    batch_bytes: int = 64 * 2**20,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[bytearray, bool]]:
    """The log text of ``path`` as ``(whole lines, truncated)`` batches (see :func:`_batches`).

    Fills ``report``'s ``container``, ``layout``, ``notes``, ``text_bytes``, and, once the
    iterator is exhausted, ``bytes_read`` and ``sha256`` of every byte of the file as stored.

    Raises:
        DataFormatError: as :func:`sniff`, before the first batch.
    """
    source = RawSource(Path(path), progress)
    try:
        head = _read_head(source, report, layout)
        stream = Prefixed(head, source.stream)
        for data, cut_short in _batches(stream, batch_bytes, source.cut_reason, report.notes):
            report.text_bytes += len(data)
            yield data, cut_short
        source.counter.drain()
    finally:
        source.close()
    report.bytes_read = source.counter.bytes_read
    report.sha256 = source.counter.sha256.hexdigest()


def count_pages(report: IngestReport, pages: pa.Table) -> None:
    """Add a table of labelled pages (:data:`PAGES_SCHEMA` columns) to the report's totals."""
    report.pages_written += pages.num_rows
    done = pc.sum(pages.column("done")).as_py() or 0
    truncated = pc.sum(pages.column("truncated")).as_py() or 0
    report.sessions_done += done
    report.sessions_truncated += truncated
    report.sessions += done + truncated
    report.page_jumps += pc.sum(pages.column("page_jump")).as_py() or 0
    report.n_clicks += pc.sum(pages.column("n_clicks")).as_py() or 0
    report.n_purchases += pc.sum(pages.column("n_purchases")).as_py() or 0
    report.total_value += pc.sum(pages.column("page_value")).as_py() or 0.0


def count_quarantine(report: IngestReport, table: pa.Table) -> None:
    """Add quarantined lines (:data:`QUARANTINE_SCHEMA`) to the report's counts per reason."""
    report.lines_quarantined += table.num_rows
    for row in pc.value_counts(table.column("reason")).to_pylist():
        reason, n = row["values"], row["counts"]
        report.quarantine_reasons[reason] = report.quarantine_reasons.get(reason, 0) + n


def truncated_line(line_no: int, data: bytes) -> pa.Table:
    """The quarantine row of the partial last line of a cut download (``data`` ends in a
    newline that the file did not have)."""
    return pa.table(
        {
            "line_no": [line_no],
            "reason": ["truncated at end of input"],
            "raw": [data[:-1].decode("utf-8", "backslashreplace")],
        },
        schema=QUARANTINE_SCHEMA,
    )


def finish(report: IngestReport, max_quarantine_share: float) -> IngestReport:
    """Close the books: round the total to the cent, check the reconciliation and the share of
    quarantined lines.

    Raises:
        ContractError: the counts do not reconcile (a bug).
        QuarantineLimitError: more than ``max_quarantine_share`` of the lines were quarantined;
            the report is attached as ``report``.
    """
    # Yuan to the cent: amounts are logged in cents, and rounding makes the float total
    # independent of how the pages were cut into batches (or partitions).
    report.total_value = round(report.total_value, 2)
    if not report.reconciles:
        raise ContractError(
            f"reconciliation failed: {report.lines_read} lines read but "
            f"{report.pages_written} pages + {report.lines_quarantined} quarantined; "
            "this is a bug in microsub.data.ingest, please report it with the input"
        )
    if report.lines_quarantined > max_quarantine_share * report.lines_read:
        top = sorted(report.quarantine_reasons.items(), key=lambda kv: -kv[1])[:3]
        error = QuarantineLimitError(
            f"quarantined {report.lines_quarantined} of {report.lines_read} lines "
            f"({report.quarantine_share:.2%}); at most {max_quarantine_share:.2%} allowed "
            f"(max_quarantine_share / MICROSUB_MAX_QUARANTINE_SHARE). Main reasons: "
            f"{', '.join(f'{r}: {n}' for r, n in top)}. The sink has already received the "
            f"{report.pages_written} good pages and the quarantine: do not commit them; fix "
            "the input or raise the limit"
        )
        error.report = report  # type: ignore[attr-defined]
        raise error
    return report


def ingest(
    path: str | Path,
    *,
    sink: Sink | None = None,
    layout: RawLayout | None = None,
    batch_bytes: int = 16 * 2**20,
    max_quarantine_share: float = 0.01,
    with_items: bool = True,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Stream a raw log into pages, items and quarantine tables; return the reconciliation.

    The single-machine engine: batches of about ``batch_bytes`` of text are parsed by
    :func:`~microsub.data.parse.parse_lines` (Polars kernels, all cores) and labelled with
    sessions (:class:`~microsub.data.sessions.Sessionizer`). Memory is bounded by
    ``batch_bytes``, not by the file size: nothing but counters and at most 11 held-back pages
    survives a batch (``benchmarks/ingest.py`` measures it).

    Args:
        path: the raw log: plain text, gzip, or tar (also a tar renamed to ``.txt``).
        sink: called with ``("quarantine", table)``, ``("pages", table)`` and, if
            ``with_items``, ``("items", table)`` for each batch, tables conformed to the
            contract's schemas; ``None`` discards them (a dry run that only reports).
        layout: the raw layout; ``None`` detects it from the first lines (:func:`detect_layout`).
        batch_bytes: text bytes parsed at a time; results do not depend on it.
        max_quarantine_share: largest accepted share of quarantined lines among lines read.
        with_items: also build and hand over the items table.
        progress: called with the number of file bytes read, as they are read.

    Returns:
        The :class:`IngestReport` (reconciled).

    Raises:
        DataFormatError: the file is not the page log at all (detected on the first lines), or
            cannot be opened.
        QuarantineLimitError: more than ``max_quarantine_share`` of the lines were quarantined.
            This is checked at the end: **the sink has received all good pages and the
            quarantine by then**; the caller must not commit them. The report is attached to
            the exception as ``report``.
    """
    if batch_bytes < 1:
        raise ValueError(f"batch_bytes must be positive, got {batch_bytes}")
    report = IngestReport(source=str(path))
    emit: Sink = sink if sink is not None else (lambda name, table: None)
    sessionizer = Sessionizer()

    def publish(pages: pa.Table | None) -> None:
        if pages is None or pages.num_rows == 0:
            return
        emit("pages", conform(pages, PAGES_SCHEMA))
        if with_items:
            emit("items", conform(pages, ITEMS_SCHEMA))
        count_pages(report, pages)

    def quarantine(table: pa.Table) -> None:
        if table.num_rows:
            emit("quarantine", conform(table, QUARANTINE_SCHEMA))
            count_quarantine(report, table)

    # the next batches are read (and unpacked, and hashed) while this one is parsed
    batches = prefetch(
        text_batches(path, report, layout=layout, batch_bytes=batch_bytes, progress=progress)
    )
    with _gc_frozen():
        for data, cut_short in batches:
            if cut_short:
                report.lines_read += 1
                quarantine(truncated_line(report.lines_read, data))
                continue
            parsed = parse_lines(
                data,
                layout_named(report.layout),
                first_line_no=report.lines_read + 1,
                with_items=with_items,
            )
            report.lines_read += parsed.n_lines
            quarantine(parsed.quarantine)
            publish(sessionizer.push(parsed.pages))
            del data, parsed  # not alive while the next batch is read
    publish(sessionizer.finish())
    return finish(report, max_quarantine_share)


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """Leave the objects alive now out of the garbage collector's passes for the block.

    A process that ingests has imported the pipeline: a few hundred thousand objects, which
    every full pass of the cyclic collector walks (about half a second each; the allocations
    of an ingestion set off one every GB or so). They are moved to the permanent generation
    (:func:`gc.freeze`) and back at the end (:func:`gc.unfreeze`); what the block allocates is
    collected as usual.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass(frozen=True)
class Tables:
    """A raw log ingested into memory (:func:`read_tables`).

    Attributes:
        pages: :data:`~microsub.contract.PAGES_SCHEMA` rows, in line order.
        items: :data:`~microsub.contract.ITEMS_SCHEMA` rows of the same pages (empty when
            items were not built).
        quarantine: :data:`~microsub.contract.QUARANTINE_SCHEMA` rows.
        report: the ingestion's reconciliation.
    """

    pages: pa.Table
    items: pa.Table
    quarantine: pa.Table
    report: IngestReport

    @property
    def terminal_flags(self) -> bool:
        """Whether the source layout has a terminal flag (``done`` means something)."""
        return layout_named(self.report.layout).terminal is not None


def read_tables(path: str | Path, **kw: object) -> Tables:
    """Ingest ``path`` into memory: pages, items (unless ``with_items=False``) and quarantine.

    For small files (the real sample, tests); the lake is the place for whole logs. Keyword
    arguments go to :func:`ingest` (``sink`` is set here).
    """
    parts: dict[str, list[pa.Table]] = {"pages": [], "items": [], "quarantine": []}

    def keep(name: str, table: pa.Table) -> None:
        parts[name].append(table)

    report = ingest(path, sink=keep, **kw)  # type: ignore[arg-type]
    schemas = {"pages": PAGES_SCHEMA, "items": ITEMS_SCHEMA, "quarantine": QUARANTINE_SCHEMA}
    tables = {
        name: pa.concat_tables(parts[name]) if parts[name] else schemas[name].empty_table()
        for name in parts
    }
    return Tables(report=report, **tables)


def read_pages(path: str | Path, **kw: object) -> pa.Table:
    """Ingest ``path`` into memory and return the pages table (:data:`PAGES_SCHEMA`).

    Keyword arguments go to :func:`ingest` (``sink`` is set here; items are not built).
    """
    kw.setdefault("with_items", False)
    return read_tables(path, **kw).pages
