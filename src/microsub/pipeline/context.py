"""What a stage, a chapter or the deck needs to work on one dataset: :class:`Context`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from microsub import contract
from microsub.config import Settings
from microsub.lake import Lake, Manifest


@dataclass
class Context:
    """Settings, the lake, and the manifest of the pages dataset the run produced."""

    settings: Settings
    lake: Lake
    manifest: Manifest

    @property
    def data_digest(self) -> str:
        """Digest of the pages dataset (changes whenever its content does)."""
        return manifest_digest(self.manifest)

    @property
    def source(self) -> dict[str, Any]:
        """Where the pages came from (``kind`` is ``"synthetic"`` or ``"real"``)."""
        return dict(self.manifest.meta.get("source", {}))

    @property
    def ingest_report(self) -> dict[str, Any]:
        """The ingestion's reconciliation (:meth:`IngestReport.to_dict`)."""
        return dict(self.manifest.meta.get("ingest", {}))


def manifest_digest(manifest: Manifest) -> str:
    """16 hex digits identifying a dataset's content (the sha256 of its parts' sha256s)."""
    parts = "".join(p.sha256 for p in manifest.parts)
    return hashlib.sha256(parts.encode()).hexdigest()[:16]


def read_pages(ctx: Context) -> pa.Table:
    """The pages table of the context, verified against its manifest."""
    return ctx.lake.read_table(contract.BUCKET_PROCESSED)
