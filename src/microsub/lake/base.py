"""The lake interface: buckets of objects, and datasets (Parquet parts + manifest) on top.

:class:`Lake` defines the object primitives each backend implements and builds everything about
datasets on them (publish, read with verification, list), so both backends behave the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from microsub import contract
from microsub.errors import (
    ContractError,
    DatasetNotFoundError,
    IntegrityError,
    LakeError,
    ObjectNotFoundError,
)
from microsub.lake.manifest import (
    MANIFEST_NAME,
    PART_NAME,
    STAGING_DIR,
    Manifest,
    PartInfo,
    check_bucket,
    check_key,
    join_key,
    norm_prefix,
    parent_folders,
    plain_json,
)
from microsub.lake.writer import DatasetWriter
from microsub.progress import Progress

_log = logging.getLogger(__name__)


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
    def _put(self, bucket: str, key: str, data: bytes | memoryview, content_type: str) -> None:
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
            self._make_bucket(check_bucket(bucket))
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
        if if_changed and self._get(bucket, check_key(key)) == data:
            return False
        self._put(bucket, check_key(key), data, content_type)
        return True

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """The bytes of an object.

        Raises:
            ObjectNotFoundError: no such object.
        """
        data = self._get(check_bucket(bucket), check_key(key))
        if data is None:
            raise ObjectNotFoundError(
                f"no object at {self._url(bucket, key)}; list what is there with "
                f"Lake.list({bucket!r}, recursive=True)"
            )
        return data

    def put_json(self, bucket: str, key: str, obj: object, *, if_changed: bool = False) -> bool:
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
        return self._size(check_bucket(bucket), check_key(key)) is not None

    def list(self, bucket: str, prefix: str = "", recursive: bool = False) -> list[str]:
        """Sorted object keys of ``bucket`` that start with ``prefix``.

        Non-recursive listings stop at the next ``/`` after the prefix and show each sub-folder
        once as ``"name/"``, as S3 does. A missing bucket lists as empty.
        """
        if prefix.strip("/"):
            check_key(prefix.strip("/"))
        return self._list(check_bucket(bucket), prefix, recursive)

    def delete(self, bucket: str, key: str) -> None:
        """Remove an object; removing a missing object is not an error. Folders it leaves
        empty disappear from listings, as on S3."""
        self._delete(check_bucket(bucket), check_key(key))
        self._drop_folders(bucket, parent_folders(key))

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
        dictionary: bool = True,
        statistics: bool = True,
        workers: int = 1,
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
            dictionary: dictionary-encode the columns (:func:`parquet_bytes`).
            statistics: write min/max statistics of the columns (:func:`parquet_bytes`).
            workers: parts serialised and uploaded at once, in worker threads (Parquet encodes
                one part on one core); the manifest lists them in the order written.
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
            dictionary=dictionary,
            statistics=statistics,
            workers=workers,
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
        prefix = norm_prefix(prefix)
        key = join_key(prefix, MANIFEST_NAME)
        data = self._get(check_bucket(bucket), key)
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
                f"manifest at {self._url(bucket, join_key(manifest.prefix, MANIFEST_NAME))} lists "
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
                elif PART_NAME.match(name) and name not in keep:
                    self._delete(bucket, key)
            if staging:
                self._clear_folder(bucket, join_key(prefix, f"{STAGING_DIR}/"))
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
            folders.update(f for f in parent_folders(key) if f.startswith(folder))
        # empty sub-folders left by an interrupted publish (only some servers list them)
        folders.update(k for k in self._list(bucket, folder, recursive=False) if k.endswith("/"))
        self._drop_folders(bucket, sorted(folders, key=len, reverse=True))
