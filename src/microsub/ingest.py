"""Streaming ingestion of the Taobao page log: raw bytes to pages, items and quarantine tables.

The raw log (``www.data``, about 6 GB; see ``data/real/README.md``) has one line per page of
50 items, ``;``-separated fields, comma-separated 50-item lists. :func:`ingest` reads it in
batches of about ``batch_bytes`` (cut at the last newline, the rest carried over), so memory
does not grow with the file; it parses each batch vectorised (:func:`parse_lines`), labels
sessions (:mod:`microsub.sessions`, which holds back at most 11 rows of an unfinished session),
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

A value is numeric when Arrow's string-to-float64 cast parses it (so ``1e3``, ``nan`` and
``inf`` are numbers, and the range checks then decide); the fixed order of :data:`REASONS`
decides which fault names a line that has several.

Blank lines (empty or only whitespace) are quarantined with reason ``"blank line"``: they count
as lines read, keep the line numbers of the raw text, and reconcile like any other line. A final
newline does not make a blank line. ``\\r\\n`` line ends are read as ``\\n``.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microsub.contract import (
    EXAMPLE_SMALL,
    ITEMS_PER_PAGE,
    ITEMS_SCHEMA,
    LAYOUTS,
    MAX_PAGE_ID,
    OFFICIAL,
    PAGES_SCHEMA,
    QUARANTINE_SCHEMA,
    RawLayout,
    conform,
)
from microsub.errors import ContractError, DataFormatError, QuarantineLimitError
from microsub.sessions import Sessionizer

Sink = Callable[[str, pa.Table], None]
"""Receives ``(dataset, table)`` with dataset ``"pages"``, ``"items"`` or ``"quarantine"``."""

#: Why a line was quarantined. When a line has several faults, the first in this order wins.
REASONS: tuple[str, ...] = (
    "blank line",
    "wrong column count",
    "list not 50 long",
    "non-numeric value",
    "page id not in 0..11",
    "hour not in 0..23",
    "terminal flag not 0/1",
    "profile value not in -128..127",
    "position not in 0..599",
    "ctr or cvr not in 0..1",
    "price negative, NaN or infinite",
    "amount negative, NaN or infinite",
    "flag not 0/1",
    "no items: every slot is padding",
    "truncated at end of input",
)
_CODE = {reason: code for code, reason in enumerate(REASONS, start=1)}

#: List columns of a layout, in the order of :data:`~microsub.contract.ITEMS_SCHEMA`.
LIST_FIELDS = ("position", "ctr", "cvr", "price", "click", "cart", "fav", "amount", "feature")
_LIST_TYPES = {f.name: f.type.value_type for f in ITEMS_SCHEMA if f.name in LIST_FIELDS}
# numpy types of the item lists (DataType.to_pandas_dtype would need pandas for this)
_NUMPY_TYPES = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}

_HEAD_BYTES = 64 * 2**10  # bytes read ahead to detect the container and the layout
_DETECT_LINES = 50  # lines of the head used to detect the layout
_MAX_LINE_BYTES = 16 * 2**20  # a page line is a few KB; a "line" this long is not this log
_N_POSITIONS = (MAX_PAGE_ID + 1) * ITEMS_PER_PAGE  # positions 0..599
_STRICT_NUMBER = r"^-?[0-9]{1,15}(\.[0-9]{0,15})?$"  # surely parseable: no per-token check


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------
class _Readable(Protocol):
    """What the readers below need of a stream."""

    def read(self, n: int = -1, /) -> bytes: ...


class _CountingReader:
    """File wrapper that hashes and counts every byte read and reports progress."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self.raw = raw
        self.progress = progress
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data:
            self.sha256.update(data)
            self.bytes_read += len(data)
            if self.progress is not None:
                self.progress(len(data))
        return data

    def drain(self) -> None:
        """Read (and hash) what is left of the file, e.g. the tar padding."""
        while self.read(2**20):
            pass


class _Prefixed:
    """A read-only stream: ``head`` first, then ``stream``."""

    def __init__(self, head: bytes, stream: _Readable) -> None:
        self.head = head
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0 or n >= len(self.head):
                out, self.head = self.head, b""
                return out if n < 0 else out + _read_full(self.stream, n - len(out))
            out, self.head = self.head[:n], self.head[n:]
            return out
        return self.stream.read(n)


def _read_full(stream: _Readable, n: int) -> bytes:
    """Read ``n`` bytes, or fewer at the end of the stream (streams may return short reads)."""
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


class _Gunzip:
    """Streaming gunzip that hands over every byte it could decompress before failing.

    :class:`gzip.GzipFile` raises on a cut file and drops the data of that read; here a cut or
    corrupt file yields all it holds, then ends like a whole one, with ``state == "cut"`` and
    the ``reason``.
    Concatenated gzip members are read one after the other, like ``gzip -d``; NUL padding after
    the last member is ignored.
    """

    def __init__(self, raw: _Readable, chunk: int = 2**20) -> None:
        self.raw = raw
        self.chunk = chunk
        self.inflate = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
        self.feed = b""  # compressed bytes not yet given to the decompressor
        self.in_member = False
        self.pending: list[bytes] = []
        self.pending_len = 0
        self.state = "open"  # "open", "eof" (clean end) or "cut"
        self.reason = ""

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or self.pending_len < n) and self.state == "open":
            self._fill()
        data = b"".join(self.pending)
        out, rest = (data, b"") if n < 0 or len(data) <= n else (data[:n], data[n:])
        self.pending, self.pending_len = ([rest] if rest else []), len(rest)
        return out

    def _fill(self) -> None:
        if not self.feed:
            self.feed = self.raw.read(self.chunk)
            if not self.feed:
                self.state = "cut" if self.in_member else "eof"
                if self.in_member:
                    self.reason = "gzip stream ends before its end marker"
                return
        if not self.in_member and not self.feed.strip(b"\x00"):
            self.feed = b""  # padding after the last member
            return
        self.in_member = True
        try:
            out = self.inflate.decompress(self.feed, self.chunk)
        except zlib.error as exc:
            self.state, self.reason = "cut", f"corrupt gzip data ({exc})"
            return
        self.pending.append(out)
        self.pending_len += len(out)
        if self.inflate.eof:
            self.feed = self.inflate.unused_data
            self.inflate = zlib.decompressobj(wbits=31)
            self.in_member = False
        else:
            self.feed = self.inflate.unconsumed_tail


class _TarMember:
    """Bytes of one tar member read from the archive stream, ``size`` bytes at most.

    :meth:`tarfile.TarFile.extractfile` drops the data of a read that hits a cut archive; this
    reader hands over what is there, then ends with ``remaining > 0``.
    """

    def __init__(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.stream = archive.fileobj  # positioned at the member's data after next()
        self.remaining = member.size

    def read(self, n: int = -1) -> bytes:
        if self.remaining == 0:
            return b""
        n = self.remaining if n is None or n < 0 else min(n, self.remaining)
        data = self.stream.read(n)
        self.remaining -= len(data)
        return data


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


class _RawSource:
    """The log text of a raw file, whatever its container; closes everything it opened."""

    def __init__(self, path: Path, progress: Callable[[int], None] | None) -> None:
        self.path = path
        self.notes: list[str] = []
        self._progress = progress
        self._open(try_tar=True)

    def _open(self, *, try_tar: bool) -> None:
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise DataFormatError(
                f"cannot open the raw log {str(self.path)!r}: {exc.strerror or exc}; expected "
                "a readable file (check the path or MICROSUB_RAW_PATH)"
            ) from exc
        gzipped = self._file.read(2) == b"\x1f\x8b"
        self._file.seek(0)
        self.counter = _CountingReader(self._file, self._progress)
        self._gunzip = _Gunzip(self.counter) if gzipped else None
        inner: _Readable = self._gunzip if self._gunzip is not None else self.counter
        self._tar: tarfile.TarFile | None = None
        self._member: _TarMember | None = None
        head = _read_full(inner, 1024)
        if isinstance(inner, _Gunzip) and not head and inner.state == "cut":
            self.close()
            raise DataFormatError(
                f"{str(self.path)!r} starts like gzip but does not decompress ({inner.reason}); "
                "expected plain text, gzip or tar of the page log"
            )
        self.container = "gzip" if gzipped else "plain"
        self.stream: _Readable = _Prefixed(head, inner)
        if not (try_tar and _is_tar(head)):
            return
        try:
            # Stream mode ("r|"): reads forward only, never seeks, never loads the member whole.
            self._tar = tarfile.open(fileobj=self.stream, mode="r|")  # type: ignore  # noqa: SIM115
            member = next((m for m in self._tar if m.isfile()), None)
        except tarfile.TarError as exc:
            # A damaged header: read the bytes as text; the header line is stripped later.
            self.close()
            self._open(try_tar=False)
            self.notes.append(f"tar header not readable by tarfile ({exc}); read as text")
            return
        if member is None:
            self.close()
            raise DataFormatError(
                f"{str(self.path)!r} is a tar archive without a regular file; expected a tar "
                "holding the page log (www.data)"
            )
        self.stream = self._member = _TarMember(self._tar, member)
        self.container = "tar.gz" if gzipped else "tar"
        self.notes.append(f"tar member {member.name!r} ({member.size} bytes)")

    def cut_reason(self) -> str | None:
        """Why the container ended before its own end (a cut download), or ``None``."""
        reasons = []
        if self._member is not None and self._member.remaining > 0:
            reasons.append(f"tar member ends {self._member.remaining} bytes early")
        if self._gunzip is not None and self._gunzip.state == "cut":
            reasons.append(self._gunzip.reason)
        return "; ".join(reasons) or None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        self._file.close()


def open_raw(path: str | Path) -> tuple[BinaryIO, str]:
    """Open a raw log for reading its text, whatever the container.

    Args:
        path: plain text, gzip (``1f 8b``) or tar (``ustar`` at byte 257; the first regular
            file member is read), detected by content, so a tar renamed to ``.txt`` works.

    Returns:
        ``(stream, container)``: a binary stream of the log text (``read(n)`` and ``close()``;
        closing it closes the file) and ``"plain"``, ``"gzip"``, ``"tar"`` or ``"tar.gz"``.

    Raises:
        DataFormatError: the file cannot be opened, or is a tar without a regular file.
    """
    source = _RawSource(Path(path), None)
    return _SourceStream(source), source.container  # type: ignore[return-value]


class _SourceStream:
    def __init__(self, source: _RawSource) -> None:
        self._source = source

    def read(self, n: int = -1) -> bytes:
        return self._source.stream.read(n)

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> _SourceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _strip_tar_header(head: bytes) -> tuple[bytes, bool]:
    """Drop tar header blocks from the start of ``head`` (a tar read as text).

    Extension headers (GNU long names ``L``/``K``, pax ``x``/``g``) are skipped with their data
    blocks, then the file's own 512-byte header.
    """
    stripped = False
    while _is_tar(head):
        stripped = True
        typeflag = head[156:157]
        if typeflag in (b"L", b"K", b"x", b"g"):
            try:
                size = int(head[124:136].strip(b"\x00 ") or b"0", 8)
            except ValueError:
                size = 0
            head = head[512 + -(-size // 512) * 512 :]
            continue
        head = head[512:]
        break
    return head, stripped


# --------------------------------------------------------------------------------------------
# Layout detection
# --------------------------------------------------------------------------------------------
def _as_text(line: str | bytes) -> str:
    return line.decode("utf-8", "replace") if isinstance(line, bytes | bytearray) else line


def detect_layout(first_lines: Iterable[str | bytes]) -> RawLayout:
    """The raw layout of a log from its first lines (blank lines ignored).

    The layout is the one of :data:`~microsub.contract.LAYOUTS` whose field count (``;`` + 1)
    most of the first lines have, provided their page-id field is an integer; at least half of
    the (up to 50) lines looked at must agree.

    Raises:
        DataFormatError: no lines, or too few lines of either layout: the file is not the page
            log. The message quotes the first line that matches no layout.
    """
    lines = [_as_text(x).rstrip("\r\n") for x in first_lines]
    lines = [x for x in lines if x.strip()][:_DETECT_LINES]
    expected = (
        f"expected {OFFICIAL.n_fields} `;`-separated fields (official layout) or "
        f"{EXAMPLE_SMALL.n_fields} (example layout)"
    )
    if not lines:
        raise DataFormatError(f"{expected}; found no non-blank line: the input is empty")

    def fits(line: str, layout: RawLayout) -> bool:
        fields = line.split(";")
        return (
            len(fields) == layout.n_fields
            and re.fullmatch(r"[0-9]{1,2}", fields[layout.page_id].strip()) is not None
        )

    votes = {layout.name: sum(fits(x, layout) for x in lines) for layout in LAYOUTS.values()}
    best = max(LAYOUTS.values(), key=lambda layout: votes[layout.name])
    if 2 * votes[best.name] >= len(lines) and votes[best.name] > 0:
        return best
    unfit = (
        (i, x) for i, x in enumerate(lines, 1) if not any(fits(x, lay) for lay in LAYOUTS.values())
    )
    number, bad = next(unfit, (1, lines[0]))
    shown = bad if len(bad) <= 60 else bad[:57] + "..."
    raise DataFormatError(
        f"{expected}, with an integer page id; non-blank line {number} has "
        f"{bad.count(';') + 1}: {shown!r} ({votes[best.name]} of the first {len(lines)} lines "
        "fit a layout). Check that the path points to the Taobao page log (www.data or "
        "wwwdata.tar), or pass layout= explicitly"
    )


# --------------------------------------------------------------------------------------------
# Vectorised parsing of one batch of lines
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    """Token positions of one layout: a valid line has exactly ``n_tokens`` numeric tokens."""

    layout: RawLayout
    lengths: np.ndarray  # tokens per field: 50 for a list, 1 for a scalar
    offsets: np.ndarray  # index of each field's first token within the line
    n_tokens: int
    list_fields: np.ndarray  # field indices of the lists
    scalar_fields: np.ndarray

    @classmethod
    def of(cls, layout: RawLayout) -> _Plan:
        lists = sorted(
            getattr(layout, name) for name in LIST_FIELDS if getattr(layout, name) is not None
        )
        lengths = np.ones(layout.n_fields, np.int64)
        lengths[lists] = ITEMS_PER_PAGE
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        scalars = np.setdiff1d(np.arange(layout.n_fields), lists)
        return cls(layout, lengths, offsets, int(lengths.sum()), np.array(lists), scalars)

    def scalar(self, matrix: np.ndarray, field: int) -> np.ndarray:
        """Column of scalar ``field`` in the ``(n, n_tokens)`` value matrix, shape ``(n,)``."""
        return matrix[:, self.offsets[field]]

    def block(self, matrix: np.ndarray, field: int) -> np.ndarray:
        """Columns of list ``field`` in the value matrix (a view), shape ``(n, 50)``."""
        start = self.offsets[field]
        return matrix[:, start : start + ITEMS_PER_PAGE]


@dataclass(frozen=True)
class ParsedBatch:
    """Result of :func:`parse_lines`.

    Attributes:
        pages: one row per valid line, in file order: ``line_no``, the scalar and aggregate
            columns of the pages contract, ``done`` (the terminal flag, 0 where the layout has
            none), and the item lists of :data:`LIST_FIELDS` (null where the layout lacks
            them). Sessions are not assigned yet.
        quarantine: :data:`~microsub.contract.QUARANTINE_SCHEMA` rows of the invalid lines.
        n_lines: lines in the batch (valid + quarantined).
    """

    pages: pa.Table
    quarantine: pa.Table
    n_lines: int


def _cast_numbers(tokens: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse byte tokens as float64; a token is numeric iff Arrow's cast parses it.

    Fast path: one cast of the whole array. If any token fails, tokens that surely parse
    (plain decimals) are set aside by a regex and the rest are bisected with casts to find the
    failing ones, so the verdict per token is the cast's, whatever the batch holds.

    Returns:
        ``(values, valid)``: values (NaN where invalid) and a boolean mask, ``None`` if all valid.
    """
    try:
        return pc.cast(tokens, pa.float64()).to_numpy(), None
    except pa.ArrowInvalid:
        pass
    plain = pc.match_substring_regex(tokens, _STRICT_NUMBER).to_numpy(zero_copy_only=False)
    todo = [np.flatnonzero(~plain)]
    bad: list[int] = []
    while todo:  # bisection: O(k log n) casts for k bad tokens
        part = todo.pop()
        if len(part) == 0:
            continue
        try:
            pc.cast(tokens.take(part), pa.float64())
        except pa.ArrowInvalid:
            if len(part) == 1:
                bad.append(int(part[0]))
            else:
                todo += [part[: len(part) // 2], part[len(part) // 2 :]]
    valid = np.ones(len(tokens), bool)
    valid[bad] = False
    masked = pc.if_else(pa.array(valid), tokens, pa.scalar(None, tokens.type))
    values = pc.cast(masked, pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
    return values, valid


def _tokenize(buf: np.ndarray, piece: int = 2**20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split text at ``,``, ``;`` and newlines into tokens, by pieces of ``piece`` bytes.

    Every separator ends one token; the separators are dropped.

    Returns:
        ``(offsets, kinds, values)``: Arrow-style offsets of the tokens into ``values`` (int32,
        or int64 for 2 GiB and more), the separator byte that ends each token, and the token
        bytes without separators. Token ``k`` ends at byte ``offsets[k + 1] + k`` of ``buf``.
    """
    index_type = np.int32 if len(buf) < 2**31 - 1 else np.int64

    def separators(part: np.ndarray) -> np.ndarray:
        is_sep = part == ord(",")
        is_sep |= part == ord(";")
        is_sep |= part == ord("\n")
        return is_sep

    # Two passes (count, then fill) keep every temporary piece-sized (cache-friendly, and no
    # int64 index of the whole batch, no concatenation).
    starts = range(0, len(buf), piece)
    n_seps = sum(int(np.count_nonzero(separators(buf[s : s + piece]))) for s in starts)
    offsets = np.empty(n_seps + 1, index_type)
    offsets[0] = 0
    kinds = np.empty(n_seps, np.uint8)
    values = np.empty(len(buf) - n_seps, np.uint8)
    ramp = np.arange(min(piece, len(buf)), dtype=np.int64)
    k = v = 0
    for s in starts:
        part = buf[s : s + piece]
        is_sep = separators(part)
        hits = np.flatnonzero(is_sep)
        n = len(hits)
        kinds[k : k + n] = part[hits]
        hits -= ramp[:n]  # separator k sits at byte offsets[k + 1] + k
        hits += s - k
        offsets[k + 1 : k + 1 + n] = hits
        np.logical_not(is_sep, out=is_sep)
        text = part[is_sep]
        values[v : v + len(text)] = text
        k += n
        v += len(text)
    return offsets, kinds, values


def _int_in(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """True where ``x`` is a whole number in ``lo..hi`` (False for NaN)."""
    with np.errstate(invalid="ignore"):
        return (x >= lo) & (x <= hi) & (x == np.floor(x))


def _list_array(block: np.ndarray, dtype: pa.DataType) -> pa.Array:
    """Rows of a ``(n, 50)`` matrix as an Arrow list array of ``dtype``."""
    n = block.shape[0]
    offsets = pa.array(np.arange(0, n * ITEMS_PER_PAGE + 1, ITEMS_PER_PAGE, dtype=np.int32))
    values = block.astype(_NUMPY_TYPES[dtype]).reshape(-1)  # one copy, in the final type
    return pa.ListArray.from_arrays(offsets, pa.array(values, dtype))


def parse_lines(
    data: bytes,
    layout: RawLayout,
    *,
    first_line_no: int = 1,
    with_items: bool = True,
) -> ParsedBatch:
    """Parse complete lines of the raw log, vectorised (no Python loop over valid lines).

    The batch is tokenised at byte level with numpy: every ``,``, ``;`` and newline ends a
    token; the separators are removed and the tokens become one Arrow binary array, cast to
    float64 in one call (:func:`_cast_numbers`). A line is structurally valid when it has the
    layout's field count and each list field has 50 tokens and each scalar field one; its tokens
    then sit at fixed positions, and the values of the valid lines form an ``(n, T)`` matrix
    whose column blocks are the fields. Checks run in the order of :data:`REASONS`.

    Aggregates per page (over the 50 items; cart/fav lists count 0 where the layout lacks
    them)::

        n_clicks = sum(click)          n_carts = sum(cart)        n_favs = sum(fav)
        n_purchases = #(amount > 0)    page_value = reward = sum(amount)     (Yuan)
        engagement = n_clicks + n_carts
        n_items = #(real items)   where a slot is padding when price = ctr = cvr = 0
        mean_ctr = mean(ctr)           mean_cvr = mean(cvr)
        mean_log_price = mean(ln(max(price, 0.01)))
                                       (the three means over real items only)

    Padding: the real sample fills short pages with slots whose every value is 0; averaging
    them in would drag the item mix towards zero (``mean_log_price`` down to -3.3 instead of
    3.3 on the sample). A page with no real item at all is quarantined.

    Args:
        data: whole lines, each ending in ``\\n`` (the last one included).
        layout: the raw layout of the lines.
        first_line_no: 1-based line number of the first line in the raw text.
        with_items: build the item-list columns (skip them when only pages are needed).

    Returns:
        A :class:`ParsedBatch`.
    """
    if data and not data.endswith(b"\n"):
        raise ValueError("parse_lines needs whole lines: data must end with a newline")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    plan = _Plan.of(layout)
    if not data:
        empty = _pages_table(
            np.zeros((0, plan.n_tokens)), plan, np.zeros(0, np.int64), with_items=with_items
        )
        return ParsedBatch(empty, QUARANTINE_SCHEMA.empty_table(), 0)
    buf = np.frombuffer(data, np.uint8)
    token_offsets, kinds, token_bytes = _tokenize(buf)
    binary_type = pa.binary() if token_offsets.dtype == np.int32 else pa.large_binary()
    tokens = pa.Array.from_buffers(
        binary_type,
        len(kinds),
        [None, pa.py_buffer(token_offsets), pa.py_buffer(token_bytes)],
    )

    # Lines and fields, in token space.
    line_last_tok = np.flatnonzero(kinds == ord("\n"))
    n_lines = len(line_last_tok)
    # token k ends at separator byte offsets[k + 1] + k (k separators removed before it)
    line_end_byte = token_offsets[line_last_tok + 1].astype(np.int64) + line_last_tok
    line_start_byte = np.concatenate([[0], line_end_byte[:-1] + 1]).astype(np.int64)
    line_first_tok = np.concatenate([[0], line_last_tok[:-1] + 1]).astype(np.int64)
    n_tok = line_last_tok + 1 - line_first_tok
    field_last_tok = np.flatnonzero(kinds != ord(","))
    field_len = np.diff(field_last_tok, prepend=-1)
    line_fields_end = np.searchsorted(field_last_tok, line_last_tok, side="right")
    line_first_field = np.concatenate([[0], line_fields_end[:-1]]).astype(np.int64)
    n_fields = line_fields_end - line_first_field
    del kinds, field_last_tok

    code = np.zeros(n_lines, np.int8)

    def flag(rows: np.ndarray, mask: np.ndarray, reason: str) -> None:
        hit = rows[mask]
        hit = hit[code[hit] == 0]
        code[hit] = _CODE[reason]

    all_rows = np.arange(n_lines)
    single = np.flatnonzero(n_tok == 1)  # only a line without separators can be blank
    blank = np.array([not data[line_start_byte[i] : line_end_byte[i]].strip() for i in single])
    if len(single):
        flag(single, blank, "blank line")
    flag(all_rows, n_fields != layout.n_fields, "wrong column count")

    shaped = np.flatnonzero(code == 0)
    lengths = field_len[line_first_field[shaped][:, None] + np.arange(layout.n_fields)]
    flag(shaped, (lengths[:, plan.list_fields] != ITEMS_PER_PAGE).any(axis=1), "list not 50 long")
    flag(shaped, (lengths[:, plan.scalar_fields] != 1).any(axis=1), "non-numeric value")
    del lengths, field_len

    # Tokens of the structurally valid lines form an (n, T) matrix.
    rows = np.flatnonzero(code == 0)
    if len(rows) == n_lines:
        line_tokens = tokens
    else:
        keep = np.zeros(n_lines, bool)
        keep[rows] = True
        line_tokens = tokens.filter(pa.array(np.repeat(keep, n_tok)))
    del tokens, token_bytes, token_offsets
    values, valid = _cast_numbers(line_tokens)
    del line_tokens
    matrix = values.reshape(len(rows), plan.n_tokens)
    if valid is not None:
        flag(rows, ~valid.reshape(len(rows), plan.n_tokens).all(axis=1), "non-numeric value")

    def scalar(field: int) -> np.ndarray:
        return plan.scalar(matrix, field)

    def block(field: int) -> np.ndarray:
        return plan.block(matrix, field)

    with np.errstate(invalid="ignore"):
        flag(rows, ~_int_in(scalar(layout.page_id), 0, MAX_PAGE_ID), "page id not in 0..11")
        if layout.hour is not None:
            flag(rows, ~_int_in(scalar(layout.hour), 0, 23), "hour not in 0..23")
        if layout.terminal is not None:
            flag(rows, ~_int_in(scalar(layout.terminal), 0, 1), "terminal flag not 0/1")
        for index in (layout.age_level, layout.gender, layout.purchase_power):
            flag(rows, ~_int_in(scalar(index), -128, 127), "profile value not in -128..127")
        pos_ok = _int_in(block(layout.position), 0, _N_POSITIONS - 1).all(axis=1)
        flag(rows, ~pos_ok, "position not in 0..599")
        for index in (layout.ctr, layout.cvr):
            ok = ((block(index) >= 0) & (block(index) <= 1)).all(axis=1)
            flag(rows, ~ok, "ctr or cvr not in 0..1")
        for index, reason in (
            (layout.price, "price negative, NaN or infinite"),
            (layout.amount, "amount negative, NaN or infinite"),
        ):
            ok = (np.isfinite(block(index)) & (block(index) >= 0)).all(axis=1)
            flag(rows, ~ok, reason)
        for index in (layout.click, layout.cart, layout.fav):
            if index is not None:
                flag(rows, ~_int_in(block(index), 0, 1).all(axis=1), "flag not 0/1")
        flag(rows, ~_real_items(matrix, plan).any(axis=1), "no items: every slot is padding")

    good_in_rows = code[rows] == 0
    if not good_in_rows.all():
        matrix = matrix[good_in_rows]
    good = rows[good_in_rows]
    pages = _pages_table(matrix, plan, first_line_no + good, with_items=with_items)

    bad = np.flatnonzero(code)
    quarantine = pa.table(
        {
            "line_no": pa.array(first_line_no + bad, pa.int64()),
            "reason": pa.array([REASONS[c - 1] for c in code[bad]], pa.string()),
            "raw": pa.array(
                [
                    data[line_start_byte[i] : line_end_byte[i]].decode("utf-8", "backslashreplace")
                    for i in bad
                ],
                pa.large_string(),
            ),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return ParsedBatch(pages=pages, quarantine=quarantine, n_lines=n_lines)


def _real_items(matrix: np.ndarray, plan: _Plan) -> np.ndarray:
    """``(n, 50)`` bool: the slot holds an item, not padding (price = ctr = cvr = 0)."""
    layout = plan.layout
    return ~(
        (plan.block(matrix, layout.price) == 0)
        & (plan.block(matrix, layout.ctr) == 0)
        & (plan.block(matrix, layout.cvr) == 0)
    )


def _pages_table(
    matrix: np.ndarray, plan: _Plan, line_no: np.ndarray, *, with_items: bool
) -> pa.Table:
    """Pages (before sessions) from the ``(n, T)`` value matrix of valid lines."""
    layout = plan.layout
    n = matrix.shape[0]

    def scalar(field: int) -> np.ndarray:
        return plan.scalar(matrix, field)

    def block(field: int) -> np.ndarray:
        return plan.block(matrix, field)

    def count(index: int | None) -> np.ndarray:
        if index is None:
            return np.zeros(n, np.int16)
        return block(index).sum(axis=1).astype(np.int16)

    def int8(index: int | None) -> pa.Array:
        if index is None:
            return pa.nulls(n, pa.int8())
        return pa.array(scalar(index).astype(np.int8))

    amount = block(layout.amount)
    n_clicks, n_carts = count(layout.click), count(layout.cart)
    page_value = amount.sum(axis=1)
    real = _real_items(matrix, plan)
    n_items = real.sum(axis=1)

    def item_mean(values: np.ndarray) -> pa.Array:
        return pa.array((np.where(real, values, 0.0).sum(axis=1) / n_items).astype(np.float32))

    columns: dict[str, pa.Array] = {
        "line_no": pa.array(line_no.astype(np.int64)),
        "action_page_id": int8(layout.page_id),
        "hour": int8(layout.hour),
        "state_purchase_power": int8(layout.purchase_power),
        "age_level": int8(layout.age_level),
        "gender": int8(layout.gender),
        "n_clicks": pa.array(n_clicks),
        "n_carts": pa.array(n_carts),
        "n_favs": pa.array(count(layout.fav)),
        "n_purchases": pa.array((amount > 0).sum(axis=1).astype(np.int16)),
        "engagement": pa.array((n_clicks + n_carts).astype(np.int16)),
        "page_value": pa.array(page_value),
        "reward": pa.array(page_value),
        "mean_ctr": item_mean(block(layout.ctr)),
        "mean_cvr": item_mean(block(layout.cvr)),
        "mean_log_price": item_mean(np.log(np.maximum(block(layout.price), 0.01))),
        "n_items": pa.array(n_items.astype(np.int8)),
        "done": (
            pa.array(np.zeros(n, np.int8))
            if layout.terminal is None
            else pa.array(scalar(layout.terminal).astype(np.int8))
        ),
    }
    if with_items:
        for name in LIST_FIELDS:
            index = getattr(layout, name)
            dtype = _LIST_TYPES[name]
            columns[name] = (
                pa.nulls(n, pa.list_(dtype)) if index is None else _list_array(block(index), dtype)
            )
    return pa.table(columns)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
def _batches(
    stream: _Readable,
    batch_bytes: int,
    cut_reason: Callable[[], str | None],
    notes: list[str],
) -> Iterator[tuple[bytes, bool]]:
    """Yield ``(whole lines, truncated)`` batches of about ``batch_bytes``.

    Each batch is cut after its last newline and the rest carried into the next. NUL bytes at
    the very end (tar padding) are dropped; a last line without a newline gets one. If the
    container ends early (``cut_reason()`` says why at the end), the partial last line comes
    alone with ``truncated=True``.
    """
    carry = b""
    while chunk := stream.read(batch_bytes):
        cut = chunk.rfind(b"\n")
        if cut < 0:
            carry += chunk
            if len(carry) > _MAX_LINE_BYTES:
                if carry.strip(b"\x00"):
                    raise DataFormatError(
                        f"expected lines of a few KB; found {len(carry)} bytes without a "
                        "newline: the input is not the page log (or not line-based text)"
                    )
                carry = b""  # a long run of tar padding
            continue
        # One copy at most per batch; the chunk is released before the batch is parsed.
        if cut == len(chunk) - 1:
            batch = carry + chunk if carry else chunk
            carry = b""
        else:
            batch = b"".join((carry, memoryview(chunk)[: cut + 1]))
            carry = chunk[cut + 1 :]
        del chunk
        yield batch, False
        del batch
    reason = cut_reason()
    if reason:
        notes.append(f"input ends early ({reason}); the partial last line is quarantined")
    tail = carry.rstrip(b"\x00")
    if len(tail) < len(carry):
        notes.append(f"{len(carry) - len(tail)} NUL bytes at the end dropped (tar padding)")
    if tail:
        yield tail + b"\n", bool(reason)


def ingest(
    path: str | Path,
    *,
    sink: Sink | None = None,
    layout: RawLayout | None = None,
    batch_bytes: int = 64 * 2**20,
    max_quarantine_share: float = 0.01,
    with_items: bool = True,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Stream a raw log into pages, items and quarantine tables; return the reconciliation.

    Memory is bounded by ``batch_bytes``, not by the file size: nothing but counters and at
    most 11 held-back pages survives a batch. Measured (``benchmarks/ingest.py``, 42 and 209 MB
    files): peak RSS about 230 MB with 16 MiB batches and 450 MB with 64 MiB, of which about
    110 MB is the interpreter with numpy, pyarrow and pandas; the same for both file sizes.
    Throughput is about the same for both batch sizes (100-130 MB/s on a loaded 2-core machine).

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
    path = Path(path)
    report = IngestReport(source=str(path))
    emit: Sink = sink if sink is not None else (lambda name, table: None)
    source = _RawSource(path, progress)
    try:
        report.container = source.container
        report.notes.extend(source.notes)
        head = _read_full(source.stream, _HEAD_BYTES)  # a cut container is reported later
        if source.container in ("plain", "gzip"):
            head, stripped = _strip_tar_header(head)
            if stripped:
                report.notes.append("tar header at the start of line 1 stripped")
        if layout is None:
            lines = head.split(b"\n")
            layout = detect_layout(lines[:-1] if len(lines) > 1 else lines)
        report.layout = layout.name
        sessionizer = Sessionizer()

        def publish(pages: pa.Table | None) -> None:
            if pages is None or pages.num_rows == 0:
                return
            emit("pages", conform(pages, PAGES_SCHEMA))
            if with_items:
                emit("items", conform(pages, ITEMS_SCHEMA))
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

        def quarantine(table: pa.Table) -> None:
            if table.num_rows == 0:
                return
            emit("quarantine", conform(table, QUARANTINE_SCHEMA))
            report.lines_quarantined += table.num_rows
            for row in pc.value_counts(table.column("reason")).to_pylist():
                reason, n = row["values"], row["counts"]
                report.quarantine_reasons[reason] = report.quarantine_reasons.get(reason, 0) + n

        stream = _Prefixed(head, source.stream)
        for data, cut_short in _batches(stream, batch_bytes, source.cut_reason, report.notes):
            report.text_bytes += len(data)
            if cut_short:
                report.lines_read += 1
                quarantine(
                    pa.table(
                        {
                            "line_no": [report.lines_read],
                            "reason": ["truncated at end of input"],
                            "raw": [data[:-1].decode("utf-8", "backslashreplace")],
                        },
                        schema=QUARANTINE_SCHEMA,
                    )
                )
                continue
            parsed = parse_lines(
                data, layout, first_line_no=report.lines_read + 1, with_items=with_items
            )
            report.lines_read += parsed.n_lines
            quarantine(parsed.quarantine)
            publish(sessionizer.push(parsed.pages))
            del data, parsed  # not alive while the next batch is read
        publish(sessionizer.finish())
        source.counter.drain()
    finally:
        source.close()
    report.bytes_read = source.counter.bytes_read
    # Yuan to the cent: amounts are logged in cents, and rounding makes the float total
    # independent of how the pages were cut into batches.
    report.total_value = round(report.total_value, 2)
    report.sha256 = source.counter.sha256.hexdigest()
    if not report.reconciles:
        raise ContractError(
            f"reconciliation failed: {report.lines_read} lines read but "
            f"{report.pages_written} pages + {report.lines_quarantined} quarantined; "
            "this is a bug in microsub.ingest, please report it with the input"
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


def read_pages(path: str | Path, **kw: object) -> pa.Table:
    """Ingest ``path`` into memory and return the pages table (:data:`PAGES_SCHEMA`).

    Keyword arguments go to :func:`ingest` (``sink`` is set here; items are not built).
    """
    parts: list[pa.Table] = []

    def keep(name: str, table: pa.Table) -> None:
        if name == "pages":
            parts.append(table)

    kw.setdefault("with_items", False)
    ingest(path, sink=keep, **kw)  # type: ignore[arg-type]
    return pa.concat_tables(parts) if parts else PAGES_SCHEMA.empty_table()
