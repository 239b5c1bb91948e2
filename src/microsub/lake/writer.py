"""Publishing a dataset part by part: stage, promote, write the manifest last, remove stale parts.

:class:`DatasetWriter` implements the commit protocol described in :mod:`microsub.lake` on top of
the object primitives of a :class:`~microsub.lake.base.Lake` backend.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from microsub import contract
from microsub.errors import (
    LakeError,
)
from microsub.lake.manifest import (
    MANIFEST_NAME,
    PARQUET_CONTENT_TYPE,
    STAGING_DIR,
    Manifest,
    PartInfo,
    check_bucket,
    join_key,
    norm_prefix,
    parent_folders,
    parquet_bytes,
    plain_json,
)
from microsub.progress import Progress

if TYPE_CHECKING:
    from microsub.lake.base import Lake


_log = logging.getLogger(__name__)


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
        dictionary: bool = True,
        statistics: bool = True,
        workers: int = 1,
    ) -> None:
        if part_rows is not None and part_rows < 1:
            raise ValueError(f"part_rows must be a positive row count or None, got {part_rows}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.lake = lake
        self.bucket = check_bucket(bucket)
        self.prefix = norm_prefix(prefix)
        self.dataset = dataset
        self.schema = schema
        # Checked now rather than at commit, after all the uploads.
        self.meta = plain_json(dict(meta or {}), what=f"meta of dataset {dataset!r}")
        self.part_rows = part_rows
        self.dictionary = dictionary
        self.statistics = statistics
        self.workers = workers
        self.progress = progress
        self.manifest: Manifest | None = None
        # A unique folder name for this publish, not a random draw: no seed applies.
        self._token = uuid.uuid4().hex[:16]
        self._staged: list[_StagedPart] = []
        # parts being serialised and uploaded in worker threads, in part order: (rows, future)
        self._pending: list[tuple[int, Future[_StagedPart]]] = []
        self._pool: ThreadPoolExecutor | None = None
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
        staged = sum(s.info.rows for s in self._staged) + sum(r for r, _ in self._pending)
        return staged + self._buffered_rows

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
            if not self._staged and not self._pending:
                self._stage(self.schema.empty_table())
            while self._pending:
                self._collect()
            self._close_pool()
            for part in self._staged:
                if part.staging_key is not None:
                    final = join_key(self.prefix, part.info.key)
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
            key = join_key(self.prefix, MANIFEST_NAME)
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
        for _, future in self._pending:  # let the uploads under way finish, then remove them
            if not future.cancel() and future.exception() is None:
                self._staged.append(future.result())
        self._pending = []
        self._close_pool()
        leftovers = self._promoted + [p.staging_key for p in self._staged if p.staging_key]
        try:
            for key in leftovers:
                self.lake._delete(self.bucket, key, best_effort=True)
            folder = join_key(self.prefix, f"{STAGING_DIR}/{self._token}/")
            self.lake._drop_folders(self.bucket, parent_folders(folder + "x"), best_effort=True)
        except LakeError as exc:
            _log.warning("publish aborted; could not remove all it staged: %s", exc)

    def _check_open(self) -> None:
        if self._state != "open":
            raise LakeError(
                f"the writer of {self.lake._url(self.bucket, self.prefix)} is {self._state}; "
                "open a new one with Lake.writer(...)"
            )

    def _stage(self, table: pa.Table) -> None:
        """Stage ``table`` as the next part: here, or in a worker thread when ``workers > 1``
        (at most ``workers`` parts under way; the manifest lists parts in the order staged)."""
        self.lake._ensure_bucket(self.bucket)
        index = len(self._staged) + len(self._pending)
        if self.workers == 1:
            self._record(self._stage_part(index, table))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="microsub-part")
        self._pending.append((table.num_rows, self._pool.submit(self._stage_part, index, table)))
        while len(self._pending) > self.workers:
            self._collect()

    def _collect(self) -> None:
        """Wait for the oldest part under way and record it (re-raises its failure)."""
        _, future = self._pending.pop(0)
        self._record(future.result())

    def _record(self, part: _StagedPart) -> None:
        self._staged.append(part)
        if self.progress is not None:
            self.progress(part.info.rows)

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _stage_part(self, index: int, table: pa.Table) -> _StagedPart:
        """Serialise one part, hash it, and upload it to the staging folder unless the same
        bytes are already at its final key."""
        data = parquet_bytes(table, dictionary=self.dictionary, statistics=self.statistics)
        sha = hashlib.sha256(data).hexdigest()
        name = f"part-{index:05d}-{sha[:8]}.parquet"
        final = join_key(self.prefix, name)
        staging_key: str | None = join_key(self.prefix, f"{STAGING_DIR}/{self._token}/{name}")
        if self.lake._size(self.bucket, final) == len(data) and (
            self.lake._get(self.bucket, final) == data
        ):
            staging_key = None
        else:
            self.lake._put(self.bucket, staging_key, data, PARQUET_CONTENT_TYPE)
        return _StagedPart(PartInfo(name, table.num_rows, len(data), sha), staging_key)
