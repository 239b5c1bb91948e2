"""The containers a raw log arrives in: plain text, gzip, tar (also a tar renamed to ``.txt``).

Containers are recognised by content (gzip magic ``1f 8b``; ``ustar`` at byte 257 for a tar), not
by the file name, so a tar renamed to ``.txt`` is read through :mod:`tarfile` in stream mode. A
text file whose first line carries a tar header that :mod:`tarfile` cannot read (damaged header)
has the header stripped (:func:`strip_tar_header`). A cut download (a gzip or tar that ends before
its own end) gives every whole byte it holds, and :meth:`RawSource.cut_reason` says why it ended.
Every byte of the file as stored is hashed and counted on the way (the lineage of an ingestion).
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from microsub.errors import DataFormatError


class Readable(Protocol):
    """What the readers below need of a stream."""

    def read(self, n: int = -1, /) -> bytes: ...


def readinto(stream: Readable, view: memoryview) -> int:
    """Fill ``view`` (bytes) from ``stream`` as far as it goes; returns the bytes read (fewer
    than ``len(view)`` only at the end of the stream).

    Streams with a ``readinto`` (a plain file) write straight into ``view``; the others (gzip,
    tar members) are read and copied.
    """
    into = getattr(stream, "readinto", None)
    got = 0
    while got < len(view):
        if into is not None:
            n = into(view[got:])
        else:
            data = stream.read(len(view) - got)
            n = len(data)
            view[got : got + n] = data
        if not n:
            break
        got += n
    return got


class _CountingReader:
    """File wrapper that hashes and counts every byte read and reports progress."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self.raw = raw
        self.progress = progress
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self._count(data)
        return data

    def readinto(self, view: memoryview) -> int:
        n = self.raw.readinto(view) or 0
        self._count(view[:n])
        return n

    def _count(self, data: bytes | memoryview) -> None:
        if len(data):
            self.sha256.update(data)
            self.bytes_read += len(data)
            if self.progress is not None:
                self.progress(len(data))

    def drain(self) -> None:
        """Read (and hash) what is left of the file, e.g. the tar padding."""
        while self.read(2**20):
            pass


class Prefixed:
    """A read-only stream: ``head`` first, then ``stream``."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self.head = head
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0 or n >= len(self.head):
                out, self.head = self.head, b""
                return out if n < 0 else out + read_full(self.stream, n - len(out))
            out, self.head = self.head[:n], self.head[n:]
            return out
        return self.stream.read(n)

    def readinto(self, view: memoryview) -> int:
        if self.head:
            n = min(len(view), len(self.head))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return readinto(self.stream, view)


def read_full(stream: Readable, n: int) -> bytes:
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

    def __init__(self, raw: Readable, chunk: int = 2**20) -> None:
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


class RawSource:
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
        inner: Readable = self._gunzip if self._gunzip is not None else self.counter
        self._tar: tarfile.TarFile | None = None
        self._member: _TarMember | None = None
        head = read_full(inner, 1024)
        if isinstance(inner, _Gunzip) and not head and inner.state == "cut":
            self.close()
            raise DataFormatError(
                f"{str(self.path)!r} starts like gzip but does not decompress ({inner.reason}); "
                "expected plain text, gzip or tar of the page log"
            )
        self.container = "gzip" if gzipped else "plain"
        self.stream: Readable = Prefixed(head, inner)
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
    source = RawSource(Path(path), None)
    return _SourceStream(source), source.container  # type: ignore[return-value]


class _SourceStream:
    def __init__(self, source: RawSource) -> None:
        self._source = source

    def read(self, n: int = -1) -> bytes:
        return self._source.stream.read(n)

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> _SourceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def strip_tar_header(head: bytes) -> tuple[bytes, bool]:
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
