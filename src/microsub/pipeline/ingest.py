"""Stage ``ingest``: the raw log into the lake (raw copy, pages, items, quarantine, report).

The raw file is copied to ``raw-data`` and parsed (:mod:`microsub.data.ingest`) into the pages
table (top of ``processed-data``), the item lists (``items-data``) and the quarantine; the pages
manifest records where the data came from and the reconciliation.
"""

from __future__ import annotations

from contextlib import ExitStack

import pyarrow as pa

from microsub import contract
from microsub.config import Settings
from microsub.data import ingest
from microsub.errors import DatasetNotFoundError, QuarantineLimitError
from microsub.lake import Lake, Manifest
from microsub.pipeline.raw import RawInput
from microsub.progress import ProgressFactory, quiet

#: Parts of the pages and items datasets hold at most this many rows (bounded reader memory).
PART_ROWS = 65_536


def ingest_raw(
    settings: Settings,
    lake: Lake,
    raw: RawInput,
    *,
    force: bool = False,
    progress: ProgressFactory = quiet,
) -> Manifest:
    """Copy the raw log into ``raw-data`` and publish pages, items and quarantine datasets.

    Skipped (the current pages manifest is returned) when the pages dataset was built from the
    same file by the same code, unless ``force``. The pages manifest's ``meta`` holds
    ``source`` (what the data is) and ``ingest`` (the reconciliation,
    :meth:`microsub.data.ingest.IngestReport.to_dict`).

    When too many lines are malformed, the quarantine dataset is still published (so the bad
    lines can be inspected) but the pages and items are not, and the error is re-raised.
    """

    fingerprint = raw.fingerprint()
    if not force:
        try:
            current = lake.manifest(contract.BUCKET_PROCESSED)
        except DatasetNotFoundError:
            current = None
        if current is not None and current.meta.get("source", {}).get("fingerprint") == fingerprint:
            return current

    lake.ensure_buckets()
    size = raw.path.stat().st_size
    with progress(f"copying {raw.path.name} to {contract.BUCKET_RAW}", None) as advance:
        lake.put_file(contract.BUCKET_RAW, raw.path.name, raw.path)
        advance(size)

    source = {"kind": raw.kind, "fingerprint": fingerprint, **raw.details}
    common = {"meta": {"source": source}, "part_rows": PART_ROWS}
    with ExitStack() as stack:
        writers = {
            "pages": stack.enter_context(
                lake.writer(
                    contract.BUCKET_PROCESSED,
                    dataset="pages",
                    schema=contract.PAGES_SCHEMA,
                    **common,
                )
            ),
            "items": stack.enter_context(
                lake.writer(
                    contract.BUCKET_ITEMS,
                    dataset="items",
                    schema=contract.ITEMS_SCHEMA,
                    **common,
                )
            ),
        }
        quarantine = lake.writer(
            contract.BUCKET_QUARANTINE,
            dataset="quarantine",
            schema=contract.QUARANTINE_SCHEMA,
            meta={"source": source},
        )

        def sink(name: str, table: pa.Table) -> None:
            (quarantine if name == "quarantine" else writers[name]).write(table)

        with progress(f"ingesting {raw.path.name}", size) as advance:
            try:
                report = ingest.ingest(
                    raw.path,
                    sink=sink,
                    batch_bytes=settings.ingest_batch_bytes,
                    max_quarantine_share=settings.max_quarantine_share,
                    progress=advance,
                )
            except QuarantineLimitError:
                quarantine.commit()  # keep the evidence; pages/items abort with the error
                raise
            except BaseException:
                quarantine.abort()
                raise
        details = report.to_dict()
        source["sha256"] = report.sha256
        for w in (*writers.values(), quarantine):
            w.update_meta({"source": source, "ingest": details})
        quarantine.commit()
        lake.put_json(contract.BUCKET_REPORTS, "ingest.json", {"source": source, **details})
    return lake.manifest(contract.BUCKET_PROCESSED)
