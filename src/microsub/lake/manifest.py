"""A dataset's manifest (``_manifest.json``) and the naming rules of buckets, keys and parts.

A dataset is a set of Parquet parts plus its manifest, the commit point written last; see
:mod:`microsub.lake` for the commit protocol. This module holds what every backend and every
reader must agree on: the manifest's JSON form, the names of parts, the checks of bucket names
and object keys, and the canonical Parquet bytes of a table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from microsub.errors import (
    ContractError,
    IntegrityError,
    LakeError,
)
from microsub.plain import plain

#: Name of the manifest of a dataset, the last object a publish writes.
MANIFEST_NAME = "_manifest.json"


#: Folder (under a dataset's prefix) that holds the parts of a publish not yet committed.
STAGING_DIR = "_staging"


#: Content type of Parquet parts on S3.
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


PART_NAME = re.compile(r"^part-\d{5,}-[0-9a-f]{8}\.parquet$")


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


#: Temporary files of a local lake: hidden, and never ending in ``.parquet``.
TMP_SUFFIX = ".tmp"


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
        return join_key(self.prefix, part.key)

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
        bad = [p.key for p in parts if not PART_NAME.match(p.key)]
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


def check_bucket(bucket: str) -> str:
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise LakeError(
            f"bucket name {bucket!r} is not valid: use 3-63 lowercase letters, digits, '-' or "
            "'.', as in contract.BUCKETS"
        )
    return bucket


def check_key(key: str) -> str:
    """A key is a relative '/'-separated path without empty, '.' or '..' segments."""
    parts = key.split("/")
    if not key or "\\" in key or "\x00" in key or any(p in ("", ".", "..") for p in parts):
        raise LakeError(
            f"object key {key!r} is not valid: expected a relative path like 'raw/www.data' "
            "without empty, '.' or '..' segments"
        )
    return key


def norm_prefix(prefix: str) -> str:
    """A dataset prefix without slashes at either end (``""`` for the top of a bucket)."""
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
    return prefix


def join_key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def parquet_bytes(
    table: pa.Table, *, dictionary: bool = True, statistics: bool = True
) -> memoryview:
    """Serialise ``table`` to Parquet; the same table always gives the same bytes.

    ``dictionary=False`` skips dictionary encoding: for columns of many distinct floats (the
    item lists) it makes parts about twice as large but encodes them 2-4 times faster.
    ``statistics=False`` writes no min/max per column chunk (nothing here reads them).

    Returns:
        The file's bytes as a read-only view of Arrow's buffer (not copied into a ``bytes``:
        a part is tens of MB).
    """
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="snappy",
        use_dictionary=dictionary,
        write_statistics=statistics,
    )
    return memoryview(sink.getvalue()).cast("B")


def parent_folders(key: str) -> list[str]:
    """The folders that hold ``key``, deepest first: 'a/b/c' -> ['a/b/', 'a/']."""
    parts = key.rstrip("/").split("/")[:-1]
    return [f"{'/'.join(parts[:i])}/" for i in range(len(parts), 0, -1)]


def is_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


def plain_json(obj: object, *, what: str = "value") -> Any:
    """``obj`` as the plain JSON values a reader gets back from :meth:`Lake.get_json` after
    :meth:`Lake.put_json` (:func:`microsub.plain.plain`, with NaN and infinities refused).

    Raises:
        LakeError: ``obj`` holds something JSON cannot represent (naming ``what``).
    """
    try:
        return plain(obj, nonfinite="error", sort_keys=True, what=what)
    except ContractError as exc:
        raise LakeError(str(exc)) from exc
