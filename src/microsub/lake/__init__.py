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

1. every part is serialised to Parquet in memory (one part at a time, or ``workers`` at once in
   threads), hashed, and uploaded under ``_staging/<token>/``, unless the same bytes already sit
   at the part's final key; parts are numbered in the order they were written;
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
exponential backoff and jitter (:class:`RetryPolicy`, carried out by tenacity) and then raise
:class:`~microsub.errors.LakeUnavailableError`.

Modules: :mod:`.manifest` (the manifest and naming rules), :mod:`.base` (the :class:`Lake`
interface and its dataset operations), :mod:`.writer` (:class:`DatasetWriter`, the commit
protocol), :mod:`.local` and :mod:`.s3` (the backends).
"""

from __future__ import annotations

from microsub.config import Settings, get_settings
from microsub.lake.base import Lake
from microsub.lake.local import LocalLake
from microsub.lake.manifest import (
    MANIFEST_NAME,
    STAGING_DIR,
    Manifest,
    PartInfo,
    plain_json,
)
from microsub.lake.s3 import RetryPolicy, S3Lake
from microsub.lake.writer import DatasetWriter


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


__all__ = [
    "MANIFEST_NAME",
    "STAGING_DIR",
    "DatasetWriter",
    "Lake",
    "LocalLake",
    "Manifest",
    "PartInfo",
    "RetryPolicy",
    "S3Lake",
    "open_lake",
    "plain_json",
]
