"""Batch scoring: a pages dataset scored by the champion models, published as ``scores``.

A dataset is named by ``PATH_OR_DATASET`` (:func:`read_dataset`): a local Parquet file or folder
of pages, or ``BUCKET[/PREFIX]`` of a committed dataset in the lake (``processed-data`` is the
pages table; ``processed-data/daily/2026-05-01`` a daily partition). The scores go to the
``processed-data`` bucket under ``scores/`` (``scores/<PREFIX>`` for a lake dataset with a
prefix), one folder down from the pages parts, so the handbook's loader, which lists the top of
the bucket, never sees them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from microsub import contract
from microsub.config import Settings
from microsub.errors import ConfigError
from microsub.lake import Lake, Manifest
from microsub.pipeline.context import manifest_digest
from microsub.serve import registry, scoring

#: Folder of ``processed-data`` that holds the scores datasets.
SCORES_PREFIX = "scores"


def parse_dataset(spec: str) -> tuple[str, str] | None:
    """``(bucket, prefix)`` of a ``BUCKET[/PREFIX]`` naming a bucket of the data contract, or
    ``None`` when ``spec`` does not start with such a bucket."""
    bucket, _, prefix = spec.strip("/").partition("/")
    return (bucket, prefix.strip("/")) if bucket in contract.BUCKETS else None


def read_dataset(lake: Lake, spec: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table named by ``spec`` and a description of where it came from.

    Args:
        lake: the lake for ``BUCKET[/PREFIX]`` names.
        spec: an existing local Parquet file or folder, or ``BUCKET[/PREFIX]``.

    Returns:
        ``(frame, source)``; ``source`` has ``kind`` (``"file"`` or ``"lake"``) and ``path`` or
        ``bucket``, ``prefix``, ``digest`` and ``rows`` (of the manifest).

    Raises:
        ConfigError: ``spec`` is neither a local path nor a dataset name.
        DatasetNotFoundError: no committed dataset at ``BUCKET[/PREFIX]``.
    """
    path = Path(spec)
    if path.exists():
        table = pq.read_table(path)
        return table.to_pandas(), {"kind": "file", "path": str(path.resolve())}
    named = parse_dataset(spec)
    if named is None:
        raise ConfigError(
            f"{spec!r} is neither a file or folder here nor a lake dataset: give a Parquet file "
            f"or folder of pages, or BUCKET or BUCKET/PREFIX with a bucket of the lake "
            f"({', '.join(contract.BUCKETS)}; the pages table is processed-data)"
        )
    bucket, prefix = named
    manifest = lake.manifest(bucket, prefix)
    frame = lake.read_pandas(bucket, prefix)
    return frame, {
        "kind": "lake",
        "bucket": bucket,
        "prefix": prefix,
        "dataset": manifest.dataset,
        "digest": manifest_digest(manifest),
        "rows": manifest.rows,
    }


def scores_prefix(source: dict[str, Any]) -> str:
    """Where the scores of ``source`` go in ``processed-data``: ``scores`` or
    ``scores/<prefix>`` for a lake dataset with a prefix."""
    prefix = source.get("prefix") or ""
    return f"{SCORES_PREFIX}/{prefix}" if prefix else SCORES_PREFIX


def score_dataset(settings: Settings, lake: Lake, spec: str, *, out: str | None = None) -> Manifest:
    """Score the pages named by ``spec`` with the champions and publish the ``scores`` dataset.

    Args:
        settings: registry and lake settings.
        lake: the lake to read ``BUCKET[/PREFIX]`` from and to publish to.
        spec: see :func:`read_dataset`.
        out: prefix in ``processed-data`` (default :func:`scores_prefix`).

    Returns:
        The manifest of the scores; its ``meta`` holds ``source`` (what was scored) and
        ``models`` (task -> name, version, uri). Re-scoring the same pages with the same models
        republishes identical content, which changes nothing in the lake.

    Raises:
        ServingError: no champion registered.
    """
    pages, source = read_dataset(lake, spec)
    models = registry.champions(settings)
    scores = scoring.score_pages(pages, scoring.Scorer.from_models(models))
    meta = {
        "source": source,
        "models": {
            t: {"name": m.info.name, "version": m.info.version, "uri": m.info.uri}
            for t, m in models.items()
        },
    }
    return lake.publish(
        contract.BUCKET_PROCESSED,
        out if out is not None else scores_prefix(source),
        pa.Table.from_pandas(scores, schema=scoring.SCORES_SCHEMA, preserve_index=False),
        dataset=scoring.SCORES_DATASET,
        schema=scoring.SCORES_SCHEMA,
        meta=meta,
    )
