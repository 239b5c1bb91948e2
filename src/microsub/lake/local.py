"""The local backend: a lake in a folder, ``<root>/<bucket>/<key>``, written atomically."""

from __future__ import annotations

import errno
import io
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from microsub.errors import (
    LakeError,
    ObjectNotFoundError,
)
from microsub.lake.base import Lake
from microsub.lake.manifest import TMP_SUFFIX, check_bucket, check_key, is_tmp, join_key


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename) to disk; not possible on every platform."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_COPY_CHUNK = 256 * 2**20  # bytes copied, then written back and dropped from the page cache


def _copy_into(source: io.BufferedReader, target: io.BufferedWriter, *, release: bool) -> None:
    """Copy the rest of ``source`` to ``target``, in the kernel where it can, 256 MiB at a time.

    ``os.copy_file_range`` moves the bytes between the two files without bringing them into
    this process (a tenth of the CPU time of a read/write loop, and no GIL held); where the
    kernel or the file systems refuse it before copying anything, a read/write loop does it.

    ``release``: each chunk is written back (``fdatasync``) and dropped from the page cache
    (``POSIX_FADV_DONTNEED``) once copied, for a copy that nothing reads soon (a raw log into
    ``raw-data``). Gigabytes of dirty pages made the kernel's copy itself 4-5 times as costly
    (4 GB: 8.6-11.8 CPU-s against 2.2-2.4 released, measured here); it also leaves the page
    cache to the data being ingested. The caller still fsyncs the whole file at the end.
    """
    target.flush()
    src, dst = source.fileno(), target.fileno()
    kernel = getattr(os, "copy_file_range", None)
    done = 0
    while True:
        n = 0
        if kernel is not None:
            try:
                n = kernel(src, dst, _COPY_CHUNK)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY or done or os.lseek(dst, 0, os.SEEK_CUR):
                    raise  # a real failure, or one after bytes were copied
                kernel = None
        if kernel is None:
            n = _copy_chunk(source, target, _COPY_CHUNK)
        if not n:
            return
        if release:
            _release(dst, done, n)
        done += n


# copy_file_range refused: not implemented, not between these file systems / file kinds
_NO_KERNEL_COPY = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


def _copy_chunk(source: io.BufferedReader, target: io.BufferedWriter, limit: int) -> int:
    """Copy up to ``limit`` bytes through a 1 MiB buffer; returns the bytes copied."""
    copied = 0
    while copied < limit:
        data = source.read(min(2**20, limit - copied))
        if not data:
            break
        target.write(data)
        copied += len(data)
    target.flush()
    return copied


def _release(fd: int, offset: int, length: int) -> None:
    """Write ``length`` bytes at ``offset`` of ``fd`` back to disk and drop them from the page
    cache."""
    getattr(os, "fdatasync", os.fsync)(fd)
    _drop_cache(fd, offset, length)


def _drop_cache(fd: int, offset: int, length: int) -> None:
    """Drop clean pages of ``fd`` from the page cache (``length`` 0: to the end), where the
    platform can."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


#: Objects of at least this size are dropped from the page cache once written and fsync'ed:
#: a lake object is read back later if ever, and gigabytes of written-once pages in the cache
#: made writing itself costly here (items parts of a 4 GB ingestion: 12.9 CPU-s kept, 8.5
#: dropped). Manifests and small objects stay cached.
_RELEASE_BYTES = 8 * 2**20


class LocalLake(Lake):
    """A lake in a local folder: ``<root>/<bucket>/<key>``.

    Writes go to a hidden temporary file in the target folder, are fsync'ed and renamed into
    place (``os.replace``, atomic), so a reader sees the old or the new object, never a part.
    """

    def __init__(self, root: str | Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.location = str(root)

    def _url(self, bucket: str, key: str = "") -> str:
        return str(self.root / bucket / key) if key else str(self.root / bucket)

    def _path(self, bucket: str, key: str) -> Path:
        return self.root.joinpath(bucket, *key.split("/"))

    @contextmanager
    def _os_errors(self, what: str, path: Path) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise LakeError(
                f"{what} {path} failed: {exc.strerror or exc}; check that the lake folder "
                f"{self.root} is writable and has space"
            ) from exc

    def _tmp(self, path: Path) -> Path:
        return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")

    def _make_bucket(self, bucket: str) -> None:
        path = self.root / bucket
        with self._os_errors("creating", path):
            path.mkdir(parents=True, exist_ok=True)

    def _bucket_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def _write_atomic(
        self, path: Path, write: Callable[[io.BufferedWriter], None], *, release: bool = False
    ) -> None:
        """Write ``path`` through a temporary file, fsync'ed, then renamed into place.

        ``release``: drop the file's pages from the page cache once durable (see
        :data:`_RELEASE_BYTES`).
        """
        tmp = self._tmp(path)
        with self._os_errors("writing", path):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(tmp, "wb") as fh:
                    write(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                    if release:
                        _drop_cache(fh.fileno(), 0, 0)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(path.parent)

    def _put(self, bucket: str, key: str, data: bytes | memoryview, content_type: str) -> None:
        release = len(data) >= _RELEASE_BYTES
        self._write_atomic(self._path(bucket, key), lambda fh: fh.write(data), release=release)

    def _get(self, bucket: str, key: str) -> bytes | None:
        path = self._path(bucket, key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise LakeError(f"reading {path} failed: {exc.strerror or exc}") from exc

    def _size(self, bucket: str, key: str) -> int | None:
        path = self._path(bucket, key)
        try:
            return path.stat().st_size if path.is_file() else None
        except OSError:
            return None

    def _promote(self, bucket: str, src: str, dst: str) -> None:
        source, target = self._path(bucket, src), self._path(bucket, dst)
        with self._os_errors("moving a part to", target):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            _fsync_dir(target.parent)
        self._prune(bucket, source.parent)

    def _delete(self, bucket: str, key: str, *, best_effort: bool = False) -> None:
        path = self._path(bucket, key)
        with self._os_errors("deleting", path):
            path.unlink(missing_ok=True)
        self._prune(bucket, path.parent)

    def _drop_folders(self, bucket: str, folders: list[str], *, best_effort: bool = False) -> None:
        for folder in folders:
            with suppress(OSError):  # not empty, or already gone
                self._path(bucket, folder.rstrip("/")).rmdir()

    def _prune(self, bucket: str, folder: Path) -> None:
        """Remove ``folder`` and its parents while empty, up to the bucket: S3 has no empty
        folders, and listings must agree."""
        bucket_dir = self.root / bucket
        while folder != bucket_dir and bucket_dir in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent

    def _list(self, bucket: str, prefix: str, recursive: bool) -> list[str]:
        base = self.root / bucket
        head = prefix.rpartition("/")[0]
        start = base.joinpath(*head.split("/")) if head else base
        if not start.is_dir():
            return []
        keys = []
        if recursive:
            for dirpath, _dirnames, filenames in os.walk(start):
                rel = Path(dirpath).relative_to(base).as_posix()
                for name in filenames:
                    key = name if rel == "." else f"{rel}/{name}"
                    if not is_tmp(name) and key.startswith(prefix):
                        keys.append(key)
        else:
            for entry in os.scandir(start):
                if is_tmp(entry.name):
                    continue
                key = join_key(head, entry.name) + ("/" if entry.is_dir() else "")
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def put_file(
        self,
        bucket: str,
        key: str,
        path: str | Path,
        content_type: str = "application/octet-stream",
    ) -> None:
        source = Path(path)
        if not source.is_file():
            raise LakeError(f"cannot upload {source}: no such file")
        self._ensure_bucket(bucket)
        target = self._path(bucket, check_key(key))
        with self._os_errors("reading", source), open(source, "rb") as src:
            self._write_atomic(target, lambda fh: _copy_into(src, fh, release=True))

    def get_file(self, bucket: str, key: str, path: str | Path) -> Path:
        source = self._path(check_bucket(bucket), check_key(key))
        if not source.is_file():
            raise ObjectNotFoundError(f"no object at {source}")
        target = Path(path)
        with self._os_errors("reading", source), open(source, "rb") as src:
            self._write_atomic(target, lambda fh: _copy_into(src, fh, release=False))
        return target
