"""The S3 backend (MinIO, SeaweedFS, AWS) through the ``minio`` SDK, with retries.

S3 errors are mapped at this edge: refused credentials raise
:class:`~microsub.errors.LakeAuthError` at once (the message names the endpoint and the access
key id, never the secret); connection failures, 5xx answers and ``SlowDown`` are retried with
exponential backoff and jitter (tenacity, configured by :class:`RetryPolicy`) and then raise
:class:`~microsub.errors.LakeUnavailableError`.
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from microsub.errors import (
    ConfigError,
    LakeAuthError,
    LakeError,
    LakeUnavailableError,
    ObjectNotFoundError,
)
from microsub.lake.base import Lake
from microsub.lake.manifest import TMP_SUFFIX, check_bucket, check_key

_log = logging.getLogger(__name__)

#: Failures of an S3 call that :meth:`S3Lake._classify` understands.
_S3_FAILURES = (MinioException, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`S3Lake` retries transient failures (carried out by tenacity).

    The wait before retry ``k`` (1-based) is exponential with full jitter: a random number of
    seconds in ``[0, min(max_delay, base_delay * 2**(k-1))]`` plus up to ``base_delay`` (so
    that many clients retrying one overloaded server do not retry in step). No retry starts
    once ``total`` seconds have passed, and at most ``attempts`` calls are made in all.

    Attributes:
        attempts: most calls of one operation, the first included (>= 1).
        base_delay: seconds of the first wait (before jitter).
        max_delay: cap of one wait, seconds.
        total: budget of one operation over all its attempts, seconds.
    """

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0
    total: float = 60.0

    def retrying(self, retry_if: Callable[[BaseException], bool]) -> Retrying:
        """A tenacity ``Retrying`` that retries exceptions for which ``retry_if`` is true."""
        return Retrying(
            stop=stop_after_attempt(max(1, self.attempts)) | stop_after_delay(self.total),
            wait=wait_exponential_jitter(
                multiplier=self.base_delay, max=self.max_delay, jitter=self.base_delay
            ),
            retry=retry_if_exception(retry_if),
            reraise=True,
        )


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
        policy = RetryPolicy(attempts=1) if best_effort else self.retry
        started = time.monotonic()
        target = self._url(bucket, key) if bucket else self.location

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, _S3_FAILURES) and self._classify(exc)[0] == "transient"

        def log_retry(state: RetryCallState) -> None:
            _log.info(
                "retrying %s %s (attempt %d): %s",
                what,
                target,
                state.attempt_number + 1,
                self._classify(state.outcome.exception())[1],
            )

        retrying = policy.retrying(transient)
        retrying.before_sleep = log_retry
        try:
            return retrying(fn)
        except _S3_FAILURES as exc:
            kind, desc = self._classify(exc)
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
            attempts = retrying.statistics.get("attempt_number", 1)
            elapsed = time.monotonic() - started
            raise LakeUnavailableError(
                f"S3 server {self.location} could not be reached for {what} {target} "
                f"after {attempts} attempt(s) in {elapsed:.1f} s (last error: {desc}). "
                "Check that the server runs and that MICROSUB_LAKE points at it."
            ) from exc

    # --- primitives --------------------------------------------------------------------------
    def _make_bucket(self, bucket: str) -> None:
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

    def _put(self, bucket: str, key: str, data: bytes | memoryview, content_type: str) -> None:
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
        check_key(key)
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
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")

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
            self._call("downloading", download, bucket=check_bucket(bucket), key=check_key(key))
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
