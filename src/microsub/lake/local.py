"""The local backend: a lake in a folder, ``<root>/<bucket>/<key>``, written atomically."""

from __future__ import annotations

import errno
import io
import os
import shutil
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


def _copy_into(source: io.BufferedReader, target: io.BufferedWriter) -> None:
    """Copy the rest of ``source`` to ``target``, in the kernel where it can.

    ``os.copy_file_range`` moves the bytes between the two files without bringing them into
    this process (a tenth of the CPU time of a read/write loop, and no GIL held); where the
    kernel or the file systems refuse it, a read/write loop does the copy.
    """
    target.flush()
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        src, dst = source.fileno(), target.fileno()
        try:
            while copy_range(src, dst, 2**30):
                pass
            return
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY or os.lseek(dst, 0, os.SEEK_CUR):
                raise  # a real failure, or one after bytes were copied
    shutil.copyfileobj(source, target, 2**20)


# copy_file_range refused: not implemented, not between these file systems / file kinds
_NO_KERNEL_COPY = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


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

    def _write_atomic(self, path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
        tmp = self._tmp(path)
        with self._os_errors("writing", path):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(tmp, "wb") as fh:
                    write(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(path.parent)

    def _put(
        self, bucket: str, key: str, data: bytes | memoryview, content_type: str
    ) -> None:
        self._write_atomic(self._path(bucket, key), lambda fh: fh.write(data))

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
            self._write_atomic(target, lambda fh: _copy_into(src, fh))

    def get_file(self, bucket: str, key: str, path: str | Path) -> Path:
        source = self._path(check_bucket(bucket), check_key(key))
        if not source.is_file():
            raise ObjectNotFoundError(f"no object at {source}")
        target = Path(path)
        with self._os_errors("reading", source), open(source, "rb") as src:
            self._write_atomic(target, lambda fh: _copy_into(src, fh))
        return target
