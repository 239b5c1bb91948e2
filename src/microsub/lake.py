"""The data lake: datasets of Parquet parts plus a manifest, in a local folder or on S3.

One interface, :class:`Lake`, two backends: :class:`LocalLake` (a folder, the embedded default
``data/lake``) and :class:`S3Lake` (any S3 server through the ``minio`` SDK: MinIO, SeaweedFS, AWS).
:func:`open_lake` picks one from :class:`microsub.config.Settings`.

Layout (the same in both backends; a bucket is a folder of a local lake)::

    <bucket>/<prefix>/part-00000-3f2a9c1e.parquet     Parquet parts, named by index and the first
    <bucket>/<prefix>/part-00001-b07d44aa.parquet     8 hex digits of their sha256
    <bucket>/<prefix>/_manifest.json                  the commit point, written last
    <bucket>/<prefix>/_staging/<token>/part-....      parts of a publish not yet committed

Commit protocol of a publish (:class:`DatasetWriter`):

1. every part is serialised to Parquet in memory (one part at a time), hashed, and uploaded under
   ``_staging/<token>/``, unless the same bytes already sit at the part's final key;
2. on a clean exit the staged parts are promoted to their final keys (``os.replace`` locally, a
   server-side copy on S3): new parts land beside the old ones, whose names differ by hash;
3. ``_manifest.json`` is replaced (tmp file + ``os.replace`` locally, one PUT on S3, both atomic):
   this is the commit. Identical content gives an identical manifest, which is then not rewritten,
   so re-publishing the same data changes nothing on the store;
4. stale parts (``part-*.parquet`` directly under the prefix that the new manifest does not list)
   and the whole ``_staging/`` folder of the dataset are deleted, best effort.

A manifest therefore always points at parts that exist, and a reader that goes through it never
sees half a dataset. Outside readers that list ``*.parquet`` at the top of ``processed-data`` (the
handbook's EDA loader) never see staged parts, because they sit one folder down. They can see an
extra part only if the store fails during step 2 (between the first promotion and the manifest),
or while step 4 runs; the next successful publish removes such parts. One dataset has one writer
at a time: a publish deletes the ``_staging/`` folder of its dataset when it commits.

Readers verify every part against the manifest: presence, byte size, sha256 and row count;
a mismatch raises :class:`~microsub.errors.IntegrityError` naming the key.

S3 errors are mapped at this edge: refused credentials raise
:class:`~microsub.errors.LakeAuthError` at once (the message names the endpoint and the access key
id, never the secret); connection failures, 5xx answers and ``SlowDown`` are retried with
exponential backoff (:class:`RetryPolicy`) and then raise
:class:`~microsub.errors.LakeUnavailableError`. Nothing is imported from ``minio`` until an
:class:`S3Lake` is built.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from microsub import contract
from microsub.config import Settings, get_settings
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

if TYPE_CHECKING:
    import pandas as pd

_log = logging.getLogger(__name__)

#: Name of the manifest of a dataset, the last object a publish writes.
MANIFEST_NAME = "_manifest.json"
#: Folder (under a dataset's prefix) that holds the parts of a publish not yet committed.
STAGING_DIR = "_staging"
#: Content type of Parquet parts on S3.
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"

_PART_NAME = re.compile(r"^part-\d{5,}-[0-9a-f]{8}\.parquet$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: Temporary files of a local lake: hidden, and never ending in ``.parquet``.
_TMP_SUFFIX = ".tmp"

Progress = Callable[[int], None]


# ---------------------------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartInfo:
    """One Parquet part of a dataset, as recorded in its manifest.

    Attributes:
        key: object name relative to the dataset's prefix (``part-00000-<sha8>.parquet``).
        rows: number of rows in the part.
        bytes: size of the Parquet file in bytes.
        sha256: hex sha256 of the Parquet file.
    """

    key: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    """The committed description of a dataset (``_manifest.json``).

    Attributes:
        schema_version: version of the data contract's schemas (``contract.SCHEMA_VERSION``).
        dataset: name of the dataset (``"pages"``, ``"items"``, ...).
        bucket: bucket the dataset was published to.
        prefix: prefix inside the bucket (``""`` for the top of the bucket), without slashes at
            either end.
        rows: total rows, the sum over ``parts``.
        parts: the Parquet parts in order.
        schema: the Arrow schema as text (for people; the parts carry the real schema).
        meta: free JSON metadata from the publisher (source, reconciliation, ...).
    """

    schema_version: int
    dataset: str
    bucket: str
    prefix: str
    rows: int
    parts: list[PartInfo]
    schema: str
    meta: dict[str, Any] = field(default_factory=dict)

    def key(self, part: PartInfo) -> str:
        """Full object key of ``part`` inside the bucket."""
        return _join(self.prefix, part.key)

    def to_json(self) -> str:
        """The manifest as JSON text: the same manifest always gives the same bytes.

        ``meta`` is written with sorted keys; numpy scalars and arrays, paths and dates in it are
        converted to JSON values.

        Raises:
            LakeError: ``meta`` holds a value JSON cannot represent (NaN, an arbitrary object).
        """
        doc = {
            "schema_version": self.schema_version,
            "dataset": self.dataset,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "rows": self.rows,
            "parts": [
                {"key": p.key, "rows": p.rows, "bytes": p.bytes, "sha256": p.sha256}
                for p in self.parts
            ],
            "schema": self.schema,
            "meta": plain_json(self.meta, what=f"meta of dataset {self.dataset!r}"),
        }
        return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "manifest") -> Manifest:
        """Parse and check a manifest.

        Args:
            text: the content of ``_manifest.json``.
            where: where it was read from, for error messages.

        Raises:
            IntegrityError: not JSON, a field missing or of the wrong type, a part key that is
                not a plain part name, or ``rows`` different from the sum over the parts.
        """
        try:
            doc = json.loads(text)
            parts = [
                PartInfo(
                    key=str(p["key"]),
                    rows=_nonneg_int(p["rows"]),
                    bytes=_nonneg_int(p["bytes"]),
                    sha256=str(p["sha256"]),
                )
                for p in doc["parts"]
            ]
            manifest = cls(
                schema_version=int(doc["schema_version"]),
                dataset=str(doc["dataset"]),
                bucket=str(doc["bucket"]),
                prefix=str(doc["prefix"]),
                rows=_nonneg_int(doc["rows"]),
                parts=parts,
                schema=str(doc["schema"]),
                meta=dict(doc.get("meta") or {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"{where} is not a valid manifest ({type(exc).__name__}: {exc}); expected JSON "
                "with schema_version, dataset, bucket, prefix, rows, parts, schema, meta. "
                "Re-publish the dataset."
            ) from exc
        bad = [p.key for p in parts if not _PART_NAME.match(p.key)]
        if bad:
            raise IntegrityError(
                f"{where} lists part keys {bad}; expected names like "
                "'part-00000-<8 hex>.parquet' directly under the dataset's prefix"
            )
        total = sum(p.rows for p in parts)
        if total != manifest.rows:
            raise IntegrityError(
                f"{where} says rows={manifest.rows} but its parts hold {total} rows"
            )
        return manifest


def _nonneg_int(value: object) -> int:
    """``value`` as a non-negative int (JSON numbers only); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _json_default(obj: object) -> object:
    """Convert the non-JSON values publishers commonly put in ``meta``."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()  # type: ignore[attr-defined]
    if hasattr(obj, "isoformat"):  # datetime, date, pandas Timestamp
        return obj.isoformat()  # type: ignore[attr-defined]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def plain_json(obj: object, *, what: str = "value") -> Any:
    """``obj`` turned into plain JSON values with every dict's keys sorted: what a reader gets
    back from :meth:`Lake.get_json` after :meth:`Lake.put_json` (numpy values as numbers,
    dates as ISO text, paths as text, sets as sorted lists).

    Raises:
        LakeError: ``obj`` holds something JSON cannot represent (naming ``what``).
    """
    try:
        text = json.dumps(obj, sort_keys=True, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise LakeError(
            f"{what} must be plain JSON (dicts, lists, strings, finite numbers); {exc}"
        ) from exc
    return json.loads(text)


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------
def _check_bucket(bucket: str) -> str:
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise LakeError(
            f"bucket name {bucket!r} is not valid: use 3-63 lowercase letters, digits, '-' or "
            "'.', as in contract.BUCKETS"
        )
    return bucket


def _check_key(key: str) -> str:
    """A key is a relative '/'-separated path without empty, '.' or '..' segments."""
    parts = key.split("/")
    if not key or "\\" in key or "\x00" in key or any(p in ("", ".", "..") for p in parts):
        raise LakeError(
            f"object key {key!r} is not valid: expected a relative path like 'raw/www.data' "
            "without empty, '.' or '..' segments"
        )
    return key


def _norm_prefix(prefix: str) -> str:
    """A dataset prefix without slashes at either end (``""`` for the top of a bucket)."""
    prefix = prefix.strip("/")
    if prefix:
        _check_key(prefix)
    return prefix


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _parquet_bytes(table: pa.Table) -> bytes:
    """Serialise ``table`` to Parquet; the same table always gives the same bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------------------
class Lake(ABC):
    """A store of buckets of objects, with datasets (Parquet parts + manifest) on top.

    Subclasses implement the object primitives (``_put``, ``_get``, ...); everything about
    datasets is here, so both backends behave the same.

    Attributes:
        location: where the lake is, as the user wrote it: ``"data/lake"`` or
            ``"s3://host:port"``.
    """

    location: str

    def __init__(self) -> None:
        self._known_buckets: set[str] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # --- primitives, per backend -------------------------------------------------------------
    @abstractmethod
    def _make_bucket(self, bucket: str) -> None:
        """Create ``bucket`` if it does not exist."""

    @abstractmethod
    def _bucket_names(self) -> list[str]:
        """Names of the buckets present."""

    @abstractmethod
    def _put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` at ``key``, atomically (readers see the old or the new object)."""

    @abstractmethod
    def _get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object (or bucket)."""

    @abstractmethod
    def _size(self, bucket: str, key: str) -> int | None:
        """The object's size in bytes, or None when it does not exist."""

    @abstractmethod
    def _promote(self, bucket: str, src: str, dst: str) -> None:
        """Make the object at ``src`` appear whole at ``dst`` (``src`` may remain)."""

    @abstractmethod
    def _delete(self, bucket: str, key: str, *, best_effort: bool = False) -> None:
        """Remove an object (no error if absent). ``best_effort``: one try, no retries."""

    @abstractmethod
    def _drop_folders(self, bucket: str, folders: list[str], *, best_effort: bool = False) -> None:
        """Remove the given folders (keys ending in '/', deepest first) where they are empty.

        S3 has no folders, but some servers (SeaweedFS) keep an emptied folder and list it;
        removing a folder that still holds objects does nothing.
        """

    @abstractmethod
    def _list(self, bucket: str, prefix: str, recursive: bool) -> list[str]:
        """Sorted keys starting with ``prefix``; non-recursive listings end at the next '/'
        and show sub-folders as ``"name/"`` (S3 delimiter semantics)."""

    @abstractmethod
    def put_file(
        self,
        bucket: str,
        key: str,
        path: str | Path,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Upload the local file ``path`` to ``key``, streaming (never whole in memory)."""

    @abstractmethod
    def get_file(self, bucket: str, key: str, path: str | Path) -> Path:
        """Download ``key`` to the local file ``path`` (written to a temporary file, then
        renamed), streaming; returns ``path``.

        Raises:
            ObjectNotFoundError: no such object.
        """

    def _url(self, bucket: str, key: str = "") -> str:
        """Where an object is, for messages."""
        return f"{self.location.rstrip('/')}/{bucket}/{key}"

    # --- buckets -----------------------------------------------------------------------------
    def ensure_buckets(self, buckets: Iterable[str] = contract.BUCKETS) -> None:
        """Create the lake's buckets (default: every bucket of the data contract) if absent."""
        for bucket in buckets:
            self._ensure_bucket(bucket)

    def _ensure_bucket(self, bucket: str) -> None:
        if bucket not in self._known_buckets:
            self._make_bucket(_check_bucket(bucket))
            self._known_buckets.add(bucket)

    # --- objects -----------------------------------------------------------------------------
    def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        if_changed: bool = False,
    ) -> bool:
        """Store ``data`` at ``(bucket, key)``, creating the bucket if needed.

        With ``if_changed``, an object that already holds exactly these bytes is left alone (a
        re-run of an unchanged stage then writes nothing). Returns whether it wrote.
        """
        self._ensure_bucket(bucket)
        data = bytes(data)
        if if_changed and self._get(bucket, _check_key(key)) == data:
            return False
        self._put(bucket, _check_key(key), data, content_type)
        return True

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """The bytes of an object.

        Raises:
            ObjectNotFoundError: no such object.
        """
        data = self._get(_check_bucket(bucket), _check_key(key))
        if data is None:
            raise ObjectNotFoundError(
                f"no object at {self._url(bucket, key)}; list what is there with "
                f"Lake.list({bucket!r}, recursive=True)"
            )
        return data

    def put_json(
        self, bucket: str, key: str, obj: object, *, if_changed: bool = False
    ) -> bool:
        """Store ``obj`` as indented JSON with sorted keys (numpy values converted; see
        :func:`plain_json`). ``if_changed`` as in :meth:`put_bytes`; returns whether it wrote."""
        doc = plain_json(obj, what=f"JSON for {self._url(bucket, key)}")
        text = json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        return self.put_bytes(
            bucket, key, text.encode("utf-8"), "application/json", if_changed=if_changed
        )

    def get_json(self, bucket: str, key: str) -> Any:
        """The parsed JSON content of an object.

        Raises:
            ObjectNotFoundError: no such object.
            IntegrityError: the object is not JSON.
        """
        data = self.get_bytes(bucket, key)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise IntegrityError(f"{self._url(bucket, key)} is not JSON: {exc}") from exc

    def exists(self, bucket: str, key: str) -> bool:
        """True if an object exists at ``(bucket, key)``."""
        return self._size(_check_bucket(bucket), _check_key(key)) is not None

    def list(self, bucket: str, prefix: str = "", recursive: bool = False) -> list[str]:
        """Sorted object keys of ``bucket`` that start with ``prefix``.

        Non-recursive listings stop at the next ``/`` after the prefix and show each sub-folder
        once as ``"name/"``, as S3 does. A missing bucket lists as empty.
        """
        if prefix.strip("/"):
            _check_key(prefix.strip("/"))
        return self._list(_check_bucket(bucket), prefix, recursive)

    def delete(self, bucket: str, key: str) -> None:
        """Remove an object; removing a missing object is not an error. Folders it leaves
        empty disappear from listings, as on S3."""
        self._delete(_check_bucket(bucket), _check_key(key))
        self._drop_folders(bucket, _parent_folders(key))

    # --- datasets ----------------------------------------------------------------------------
    def writer(
        self,
        bucket: str,
        prefix: str = "",
        *,
        dataset: str,
        schema: pa.Schema,
        meta: dict[str, Any] | None = None,
        part_rows: int | None = None,
        progress: Progress | None = None,
    ) -> DatasetWriter:
        """A :class:`DatasetWriter` that publishes a dataset at ``(bucket, prefix)``.

        Use it as a context manager: each ``write(table)`` stages one part (or buffers rows into
        parts of ``part_rows`` rows); a clean exit commits, an exception commits nothing.

        Args:
            bucket: target bucket (created if absent).
            prefix: folder inside the bucket; ``""`` puts the parts at the top of the bucket.
            dataset: name recorded in the manifest.
            schema: every table is conformed to it (``contract.conform``: exact columns, order,
                types, non-null).
            meta: JSON metadata stored in the manifest (the only place for timestamps).
            part_rows: rows per part; ``None`` makes one part per ``write`` call.
            progress: called with the rows of each part once that part is staged.
        """
        return DatasetWriter(
            self,
            bucket,
            prefix,
            dataset=dataset,
            schema=schema,
            meta=meta,
            part_rows=part_rows,
            progress=progress,
        )

    def publish(
        self,
        bucket: str,
        prefix: str,
        tables: Iterable[pa.Table] | pa.Table,
        *,
        dataset: str,
        schema: pa.Schema,
        meta: dict[str, Any] | None = None,
        part_rows: int | None = None,
        progress: Progress | None = None,
    ) -> Manifest:
        """Publish ``tables`` as one dataset (see :meth:`writer`) and return its manifest."""
        if isinstance(tables, pa.Table):
            tables = [tables]
        with self.writer(
            bucket,
            prefix,
            dataset=dataset,
            schema=schema,
            meta=meta,
            part_rows=part_rows,
            progress=progress,
        ) as w:
            for table in tables:
                w.write(table)
        if w.manifest is None:  # a clean exit commits; this would be a bug of the writer
            raise LakeError(f"publish of {self._url(bucket, prefix)} ended without a commit")
        return w.manifest

    def manifest(self, bucket: str, prefix: str = "") -> Manifest:
        """The committed manifest of the dataset at ``(bucket, prefix)``.

        Raises:
            DatasetNotFoundError: no ``_manifest.json`` there (never published, or a publish
                that did not complete).
            IntegrityError: the manifest is not valid.
        """
        prefix = _norm_prefix(prefix)
        key = _join(prefix, MANIFEST_NAME)
        data = self._get(_check_bucket(bucket), key)
        if data is None:
            raise DatasetNotFoundError(
                f"no dataset at {self._url(bucket, prefix)}: {MANIFEST_NAME} is missing there "
                f"(lake {self.location}). Publish it first (the pages table: `microsub run`), "
                "or point MICROSUB_LAKE at the lake that holds it."
            )
        return Manifest.from_json(data, where=self._url(bucket, key))

    def iter_tables(
        self, bucket: str, prefix: str = "", columns: list[str] | None = None
    ) -> Iterator[pa.Table]:
        """Yield the dataset part by part (one verified Arrow table per part), in order.

        Raises:
            DatasetNotFoundError: no committed dataset there.
            IntegrityError: a part is missing or differs from the manifest (size, sha256, rows).
            ContractError: a requested column is not in the dataset.
        """
        manifest = self.manifest(bucket, prefix)
        if not manifest.parts:
            raise IntegrityError(
                f"manifest at {self._url(bucket, _join(manifest.prefix, MANIFEST_NAME))} lists "
                "no parts; every publish writes at least one. Re-publish the dataset."
            )
        for part in manifest.parts:
            yield self._read_part(bucket, manifest, part, columns)

    def read_table(
        self, bucket: str, prefix: str = "", columns: list[str] | None = None
    ) -> pa.Table:
        """The whole dataset as one Arrow table, verified against its manifest."""
        return pa.concat_tables(list(self.iter_tables(bucket, prefix, columns)))

    def read_pandas(
        self, bucket: str, prefix: str = "", columns: list[str] | None = None
    ) -> pd.DataFrame:
        """The whole dataset as a pandas DataFrame, verified against its manifest."""
        return self.read_table(bucket, prefix, columns).to_pandas()

    def datasets(self) -> list[Manifest]:
        """Manifests of every committed dataset in the lake, sorted by bucket and prefix."""
        found = []
        for bucket in sorted(self._bucket_names()):
            for key in self._list(bucket, "", recursive=True):
                name = key.rsplit("/", 1)[-1]
                if name != MANIFEST_NAME or f"{STAGING_DIR}/" in key:
                    continue
                prefix = key[: -len(MANIFEST_NAME)].rstrip("/")
                found.append(self.manifest(bucket, prefix))
        return found

    def _read_part(
        self, bucket: str, manifest: Manifest, part: PartInfo, columns: list[str] | None
    ) -> pa.Table:
        key = manifest.key(part)
        where = self._url(bucket, key)
        data = self._get(bucket, key)
        if data is None:
            raise IntegrityError(
                f"part {key} listed in the manifest is missing at {where}; re-publish the dataset"
            )
        if len(data) != part.bytes:
            raise IntegrityError(
                f"part {key} has {len(data)} bytes, the manifest says {part.bytes} ({where})"
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest != part.sha256:
            raise IntegrityError(
                f"part {key} has sha256 {digest}, the manifest says {part.sha256} ({where})"
            )
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            if columns is not None:
                missing = [c for c in columns if c not in parquet.schema_arrow.names]
                if missing:
                    raise ContractError(
                        f"columns {missing} are not in dataset {manifest.dataset!r}; it has "
                        f"{parquet.schema_arrow.names}"
                    )
            table = parquet.read(columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise IntegrityError(f"part {key} is not readable Parquet ({where}): {exc}") from exc
        if table.num_rows != part.rows:
            raise IntegrityError(
                f"part {key} holds {table.num_rows} rows, the manifest says {part.rows} ({where})"
            )
        return table

    def _remove_stale(self, bucket: str, prefix: str, keep: set[str]) -> None:
        """Delete parts under ``prefix`` that ``keep`` does not name, and the staging folder.

        Runs after the commit, so failures only leave garbage behind: they are logged, and the
        next publish of the dataset removes what is left. Reads only when nothing is stale.
        """
        try:
            listing_prefix = f"{prefix}/" if prefix else ""
            staging = False
            for key in self._list(bucket, listing_prefix, recursive=False):
                name = key[len(listing_prefix) :]
                if name == f"{STAGING_DIR}/":
                    staging = True
                elif _PART_NAME.match(name) and name not in keep:
                    self._delete(bucket, key)
            if staging:
                self._clear_folder(bucket, _join(prefix, f"{STAGING_DIR}/"))
        except LakeError as exc:
            _log.warning(
                "committed %s, but could not remove stale parts: %s",
                self._url(bucket, prefix),
                exc,
            )

    def _clear_folder(self, bucket: str, folder: str) -> None:
        """Delete every object under ``folder`` (a key ending in '/'), then the folders."""
        folders = {folder}
        for key in self._list(bucket, folder, recursive=True):
            self._delete(bucket, key)
            folders.update(f for f in _parent_folders(key) if f.startswith(folder))
        # empty sub-folders left by an interrupted publish (only some servers list them)
        folders.update(k for k in self._list(bucket, folder, recursive=False) if k.endswith("/"))
        self._drop_folders(bucket, sorted(folders, key=len, reverse=True))


def _parent_folders(key: str) -> list[str]:
    """The folders that hold ``key``, deepest first: 'a/b/c' -> ['a/b/', 'a/']."""
    parts = key.rstrip("/").split("/")[:-1]
    return [f"{'/'.join(parts[:i])}/" for i in range(len(parts), 0, -1)]


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _StagedPart:
    info: PartInfo
    staging_key: str | None  # None: the same bytes already sit at the final key


class DatasetWriter:
    """Publishes one dataset, part by part; the manifest is written last, on :meth:`commit`.

    Build it with :meth:`Lake.writer`. As a context manager it commits on a clean exit and
    aborts (removes what it staged, where the store allows) when the block raises. After a
    commit, :attr:`manifest` holds the committed :class:`Manifest`.
    """

    def __init__(
        self,
        lake: Lake,
        bucket: str,
        prefix: str = "",
        *,
        dataset: str,
        schema: pa.Schema,
        meta: dict[str, Any] | None = None,
        part_rows: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        if part_rows is not None and part_rows < 1:
            raise ValueError(f"part_rows must be a positive row count or None, got {part_rows}")
        self.lake = lake
        self.bucket = _check_bucket(bucket)
        self.prefix = _norm_prefix(prefix)
        self.dataset = dataset
        self.schema = schema
        # Checked now rather than at commit, after all the uploads.
        self.meta = plain_json(dict(meta or {}), what=f"meta of dataset {dataset!r}")
        self.part_rows = part_rows
        self.progress = progress
        self.manifest: Manifest | None = None
        # A unique folder name for this publish, not a random draw: no seed applies.
        self._token = uuid.uuid4().hex[:16]
        self._staged: list[_StagedPart] = []
        self._buffer: list[pa.Table] = []
        self._buffered_rows = 0
        self._promoted: list[str] = []  # final keys this writer created, until it commits
        self._state = "open"

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._state != "open":  # committed or aborted explicitly inside the block
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def update_meta(self, meta: dict[str, Any]) -> None:
        """Merge ``meta`` into the manifest's metadata before the commit (for facts known only
        once every part is written, such as an ingestion's reconciliation)."""
        self._check_open()
        merged = {**self.meta, **meta}
        self.meta = plain_json(merged, what=f"meta of dataset {self.dataset!r}")

    @property
    def rows(self) -> int:
        """Rows written so far (staged or buffered)."""
        return sum(s.info.rows for s in self._staged) + self._buffered_rows

    def write(self, table: pa.Table) -> None:
        """Add rows: conform ``table`` to the schema and stage it (or buffer it into parts).

        Raises:
            ContractError: the table does not fit the schema.
            LakeError: the store refused or could not be reached.
        """
        self._check_open()
        table = contract.conform(table, self.schema)
        if self.part_rows is None:
            if table.num_rows:
                self._stage(table)
            return
        self._buffer.append(table)
        self._buffered_rows += table.num_rows
        if self._buffered_rows >= self.part_rows:
            merged = pa.concat_tables(self._buffer)
            start = 0
            while merged.num_rows - start >= self.part_rows:
                self._stage(merged.slice(start, self.part_rows))
                start += self.part_rows
            rest = merged.slice(start)
            self._buffer = [rest] if rest.num_rows else []
            self._buffered_rows = rest.num_rows

    def commit(self) -> Manifest:
        """Promote the staged parts, write the manifest (the commit), remove stale parts.

        A dataset without rows still gets one empty part, so that readers get its schema.
        """
        self._check_open()
        try:
            if self._buffered_rows:
                self._stage(pa.concat_tables(self._buffer))
                self._buffer, self._buffered_rows = [], 0
            if not self._staged:
                self._stage(self.schema.empty_table())
            for part in self._staged:
                if part.staging_key is not None:
                    final = _join(self.prefix, part.info.key)
                    self.lake._promote(self.bucket, part.staging_key, final)
                    self._promoted.append(final)
            parts = [p.info for p in self._staged]
            manifest = Manifest(
                schema_version=contract.SCHEMA_VERSION,
                dataset=self.dataset,
                bucket=self.bucket,
                prefix=self.prefix,
                rows=sum(p.rows for p in parts),
                parts=parts,
                schema=self.schema.to_string(show_field_metadata=False, show_schema_metadata=False),
                meta=self.meta,
            )
            text = manifest.to_json().encode("utf-8")
            key = _join(self.prefix, MANIFEST_NAME)
            if self.lake._get(self.bucket, key) != text:
                # From here on a failure may still have committed (the server can store the
                # manifest and lose the answer): the promoted parts must then stay.
                self._promoted = []
                self.lake._put(self.bucket, key, text, "application/json")
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        self.manifest = manifest
        self.lake._remove_stale(self.bucket, self.prefix, {p.key for p in parts})
        return manifest

    def abort(self) -> None:
        """Commit nothing; remove the staged parts, and the parts already promoted when the
        commit failed before writing the manifest. Stops at the first failure (the store is
        probably unreachable); the next publish of the dataset removes what is left."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._buffer, self._buffered_rows = [], 0
        leftovers = self._promoted + [p.staging_key for p in self._staged if p.staging_key]
        try:
            for key in leftovers:
                self.lake._delete(self.bucket, key, best_effort=True)
            folder = _join(self.prefix, f"{STAGING_DIR}/{self._token}/")
            self.lake._drop_folders(self.bucket, _parent_folders(folder + "x"), best_effort=True)
        except LakeError as exc:
            _log.warning("publish aborted; could not remove all it staged: %s", exc)

    def _check_open(self) -> None:
        if self._state != "open":
            raise LakeError(
                f"the writer of {self.lake._url(self.bucket, self.prefix)} is {self._state}; "
                "open a new one with Lake.writer(...)"
            )

    def _stage(self, table: pa.Table) -> None:
        """Serialise one part, hash it, and upload it to the staging folder unless the same
        bytes are already at its final key."""
        self.lake._ensure_bucket(self.bucket)
        data = _parquet_bytes(table)
        sha = hashlib.sha256(data).hexdigest()
        name = f"part-{len(self._staged):05d}-{sha[:8]}.parquet"
        final = _join(self.prefix, name)
        staging_key: str | None = _join(self.prefix, f"{STAGING_DIR}/{self._token}/{name}")
        if self.lake._size(self.bucket, final) == len(data) and (
            self.lake._get(self.bucket, final) == data
        ):
            staging_key = None
        else:
            self.lake._put(self.bucket, staging_key, data, PARQUET_CONTENT_TYPE)
        self._staged.append(
            _StagedPart(PartInfo(name, table.num_rows, len(data), sha), staging_key)
        )
        if self.progress is not None:
            self.progress(table.num_rows)


# ---------------------------------------------------------------------------------------------
# Local backend
# ---------------------------------------------------------------------------------------------
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
        return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}")

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

    def _put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
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
                    if not _is_tmp(name) and key.startswith(prefix):
                        keys.append(key)
        else:
            for entry in os.scandir(start):
                if _is_tmp(entry.name):
                    continue
                key = _join(head, entry.name) + ("/" if entry.is_dir() else "")
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
        target = self._path(bucket, _check_key(key))
        with self._os_errors("reading", source), open(source, "rb") as src:
            self._write_atomic(target, lambda fh: shutil.copyfileobj(src, fh, 2**20))

    def get_file(self, bucket: str, key: str, path: str | Path) -> Path:
        source = self._path(_check_bucket(bucket), _check_key(key))
        if not source.is_file():
            raise ObjectNotFoundError(f"no object at {source}")
        target = Path(path)
        with self._os_errors("reading", source), open(source, "rb") as src:
            self._write_atomic(target, lambda fh: shutil.copyfileobj(src, fh, 2**20))
        return target


def _is_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


# ---------------------------------------------------------------------------------------------
# S3 backend
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`S3Lake` retries transient failures.

    The delay before retry ``k`` (1-based) is ``min(max_delay, base_delay * 2**(k-1))`` seconds.
    No retry starts once ``total`` seconds would be exceeded, and at most ``attempts`` calls are
    made in all.

    Attributes:
        attempts: most calls of one operation, the first included (>= 1).
        base_delay: seconds before the first retry.
        max_delay: cap of one delay, seconds.
        total: budget of one operation over all its attempts, seconds.
    """

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0
    total: float = 60.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return min(self.max_delay, self.base_delay * 2 ** (retry - 1))


#: S3 error codes that mean "these credentials may not do this": never retried.
AUTH_ERROR_CODES = {
    "InvalidAccessKeyId": "the server does not know this access key id",
    "SignatureDoesNotMatch": "the secret key does not belong to this access key id",
    "AccessDenied": "this identity may not do that, or the secret key is wrong",
    "InvalidToken": "the session token is not valid",
    "ExpiredToken": "the session token has expired",
}
#: S3 error codes worth retrying.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "OperationAborted",
        "XMinioServerNotInitialized",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})


class S3Lake(Lake):
    """A lake on an S3 server (MinIO, SeaweedFS, AWS), through the ``minio`` SDK.

    Args:
        endpoint: ``HOST:PORT`` of the server.
        access_key: access key id (may appear in messages).
        secret_key: secret key (kept only inside the minio client; never in a message).
        secure: talk TLS (``MICROSUB_S3_SECURE=1``).
        retry: how transient failures are retried (:class:`RetryPolicy`).
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for data on an open connection.
        upload_part_size: bytes per part of a multipart upload (>= 5 MiB, the S3 minimum); the
            memory :meth:`put_file` needs.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        secure: bool = False,
        *,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        upload_part_size: int = 64 * 2**20,
    ) -> None:
        super().__init__()
        missing = [
            var
            for var, value in (
                ("MICROSUB_S3_ACCESS_KEY", access_key),
                ("MICROSUB_S3_SECRET_KEY", secret_key),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"the S3 lake s3://{endpoint} needs credentials: set {' and '.join(missing)} "
                "(there are no default credentials)"
            )
        if upload_part_size < 5 * 2**20:
            raise ValueError(f"upload_part_size must be at least 5 MiB, got {upload_part_size}")
        import urllib3
        from minio import Minio

        self.endpoint = endpoint
        self.access_key = access_key
        self.secure = secure
        self.retry = retry or RetryPolicy()
        self.upload_part_size = upload_part_size
        self.location = f"s3://{endpoint}"
        # Retries are ours (RetryPolicy), so urllib3 must not retry underneath.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=urllib3.Retry(total=0, redirect=0, raise_on_status=False),
            maxsize=4,
        )
        try:
            self._client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                http_client=http,
            )
        except ValueError as exc:
            raise ConfigError(
                f"S3 endpoint {endpoint!r} is not valid ({exc}); MICROSUB_LAKE must look like "
                "s3://127.0.0.1:9000"
            ) from exc

    def __repr__(self) -> str:
        return f"S3Lake({self.location!r}, access_key={self.access_key!r})"

    # --- error mapping -----------------------------------------------------------------------
    def _classify(self, exc: BaseException) -> tuple[str, str]:
        """(kind, description) of a failure; kind is auth, missing, transient or fatal."""
        import urllib3
        from minio.error import InvalidResponseError, S3Error, ServerError

        if isinstance(exc, S3Error):
            code = exc.code or ""
            status = getattr(exc.response, "status", 0) or 0
            if code in AUTH_ERROR_CODES:
                return "auth", code
            if code in _NOT_FOUND_CODES:
                return "missing", code
            if code in TRANSIENT_ERROR_CODES or status >= 500 or status == 429:
                return "transient", f"{code} (HTTP {status})"
            return "fatal", f"{code}: {exc.message}"
        if isinstance(exc, ServerError):
            kind = "transient" if exc.status_code >= 500 or exc.status_code == 429 else "fatal"
            return kind, f"HTTP {exc.status_code}"
        if isinstance(exc, InvalidResponseError):
            status = getattr(exc, "_code", 0) or 0
            kind = "transient" if status >= 500 or status == 429 else "fatal"
            return kind, f"non-S3 answer, HTTP {status}"
        reason = getattr(exc, "reason", None)  # MaxRetryError wraps the real cause
        if isinstance(exc, urllib3.exceptions.SSLError) or isinstance(
            reason, urllib3.exceptions.SSLError
        ):
            hint = "off" if self.secure else "on"
            return "fatal", f"TLS failed ({reason or exc}); try MICROSUB_S3_SECURE {hint}"
        if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
            return "transient", _short_reason(reason or exc)
        return "fatal", f"{type(exc).__name__}: {exc}"

    def _call(
        self,
        what: str,
        fn: Callable[[], Any],
        *,
        bucket: str = "",
        key: str = "",
        best_effort: bool = False,
    ) -> Any:
        """Run one S3 operation with retries and map every failure to microsub.errors.

        Raises:
            LakeAuthError: credentials refused (not retried).
            ObjectNotFoundError: no such object or bucket.
            LakeUnavailableError: still failing after the retry policy's attempts or time.
            LakeError: any other refusal by the server.
        """
        import urllib3
        from minio.error import MinioException

        policy = RetryPolicy(attempts=1) if best_effort else self.retry
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
                kind, desc = self._classify(exc)
                target = self._url(bucket, key) if bucket else self.location
                if kind == "auth":
                    raise LakeAuthError(
                        f"S3 server {self.location} refused access key id {self.access_key!r} "
                        f"({desc}: {AUTH_ERROR_CODES[desc]}) while {what} {target}. Check "
                        "MICROSUB_S3_ACCESS_KEY and MICROSUB_S3_SECRET_KEY for this server."
                    ) from None
                if kind == "missing":
                    raise ObjectNotFoundError(f"no object at {target} ({desc})") from None
                if kind == "fatal":
                    raise LakeError(
                        f"S3 server {self.location} failed {what} {target}: {desc}"
                    ) from exc
                elapsed = time.monotonic() - started
                delay = policy.delay(attempt)
                if attempt >= policy.attempts or elapsed + delay > policy.total:
                    raise LakeUnavailableError(
                        f"S3 server {self.location} could not be reached for {what} {target} "
                        f"after {attempt} attempt(s) in {elapsed:.1f} s (last error: {desc}). "
                        "Check that the server runs and that MICROSUB_LAKE points at it."
                    ) from exc
                _log.info("retrying %s %s in %.2f s: %s", what, target, delay, desc)
                time.sleep(delay)

    # --- primitives --------------------------------------------------------------------------
    def _make_bucket(self, bucket: str) -> None:
        from minio.error import S3Error

        def make() -> None:
            if self._client.bucket_exists(bucket):
                return
            try:
                self._client.make_bucket(bucket)
            except S3Error as exc:  # created by someone else in between
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

        self._call("creating bucket", make, bucket=bucket)

    def _bucket_names(self) -> list[str]:
        return [b.name for b in self._call("listing buckets", self._client.list_buckets)]

    def _put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self._call(
            "writing",
            lambda: self._client.put_object(
                bucket, key, io.BytesIO(data), len(data), content_type=content_type
            ),
            bucket=bucket,
            key=key,
        )

    def _get(self, bucket: str, key: str) -> bytes | None:
        def get() -> bytes:
            response = self._client.get_object(bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        try:
            return self._call("reading", get, bucket=bucket, key=key)
        except ObjectNotFoundError:
            return None

    def _size(self, bucket: str, key: str) -> int | None:
        try:
            stat = self._call(
                "checking", lambda: self._client.stat_object(bucket, key), bucket=bucket, key=key
            )
        except ObjectNotFoundError:
            return None
        return stat.size

    def _promote(self, bucket: str, src: str, dst: str) -> None:
        from minio.commonconfig import CopySource

        self._call(
            "copying a part to",
            lambda: self._client.copy_object(bucket, dst, CopySource(bucket, src)),
            bucket=bucket,
            key=dst,
        )

    def _delete(self, bucket: str, key: str, *, best_effort: bool = False) -> None:
        with suppress(ObjectNotFoundError):  # the bucket is gone: so is the object
            self._call(
                "deleting",
                lambda: self._client.remove_object(bucket, key),
                bucket=bucket,
                key=key,
                best_effort=best_effort,
            )

    def _drop_folders(self, bucket: str, folders: list[str], *, best_effort: bool = False) -> None:
        # A DELETE of "a/b/" removes an empty folder on SeaweedFS, does nothing to a folder
        # that holds objects, and is a no-op where folders are not stored (MinIO, AWS).
        for folder in folders:
            self._delete(bucket, folder, best_effort=best_effort)

    def _list(self, bucket: str, prefix: str, recursive: bool) -> list[str]:
        def names() -> list[str]:
            objects = self._client.list_objects(bucket, prefix=prefix or None, recursive=recursive)
            return sorted(o.object_name for o in objects)

        try:
            return self._call("listing", names, bucket=bucket, key=prefix)
        except ObjectNotFoundError:
            return []

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
        _check_key(key)
        self._ensure_bucket(bucket)
        # fput_object streams the file in parts of upload_part_size (multipart above that size)
        # and aborts the multipart upload when a part fails, so a retry starts clean.
        self._call(
            "uploading to",
            lambda: self._client.fput_object(
                bucket,
                key,
                str(source),
                content_type=content_type,
                part_size=self.upload_part_size,
                num_parallel_uploads=1,
            ),
            bucket=bucket,
            key=key,
        )

    def get_file(self, bucket: str, key: str, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}")

        def download() -> None:
            response = self._client.get_object(bucket, key)
            try:
                with open(tmp, "wb") as fh:
                    for chunk in response.stream(2**20):
                        fh.write(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
            finally:
                response.close()
                response.release_conn()

        try:
            self._call("downloading", download, bucket=_check_bucket(bucket), key=_check_key(key))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target


def _short_reason(exc: BaseException) -> str:
    """A one-line cause of a connection failure (urllib3 messages repeat the whole URL)."""
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "timed out", "Name or service"):
        if marker in text:
            return marker.lower()
    return f"{type(exc).__name__}: {text[:200]}"


# ---------------------------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------------------------
def open_lake(settings: Settings | None = None, *, retry: RetryPolicy | None = None) -> Lake:
    """The lake named by ``settings.lake`` (``MICROSUB_LAKE``): a folder or ``s3://HOST:PORT``.

    Nothing is contacted or created here: buckets appear on the first write, or with
    :meth:`Lake.ensure_buckets`.

    Args:
        settings: defaults to :func:`microsub.config.get_settings`.
        retry: retry policy of an S3 lake (default :class:`RetryPolicy`).

    Raises:
        ConfigError: an S3 lake without ``MICROSUB_S3_ACCESS_KEY`` / ``MICROSUB_S3_SECRET_KEY``.
    """
    settings = settings if settings is not None else get_settings()
    location = settings.lake_location
    if location.kind == "local":
        assert location.path is not None
        return LocalLake(location.path)
    assert location.endpoint is not None
    access = settings.s3_access_key.get_secret_value() if settings.s3_access_key else ""
    secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else ""
    return S3Lake(location.endpoint, access, secret, settings.s3_secure, retry=retry)
