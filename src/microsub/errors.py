"""One exception hierarchy for the package.

Lower-level errors (pyarrow, minio, OS) are caught at the edge where they happen and re-raised as
one of these, with context that says what was expected, what was found and how to fix it. The CLI
prints the message of any :class:`MicrosubError` without a traceback.
"""

from __future__ import annotations


class MicrosubError(Exception):
    """Base class of every error microsub raises on purpose."""


class ConfigError(MicrosubError):
    """A setting is missing or invalid (for example an S3 lake without credentials)."""


class DataFormatError(MicrosubError):
    """The input is not the Taobao page log at all (not merely a few bad lines)."""


class QuarantineLimitError(MicrosubError):
    """More lines were malformed than ``max_quarantine_share`` allows."""


class ContractError(MicrosubError):
    """A table does not match the data contract (missing column, wrong type, broken invariant)."""


class ModelError(MicrosubError, ValueError):
    """A model got a parameter or data it cannot fit (a ValueError, as scikit-learn expects)."""


class LakeError(MicrosubError):
    """Base class of data-lake errors."""


class LakeAuthError(LakeError):
    """The S3 server refused the credentials."""


class LakeUnavailableError(LakeError):
    """The lake could not be reached, after retries."""


class DatasetNotFoundError(LakeError):
    """No committed dataset (no manifest) at the requested place."""


class ObjectNotFoundError(LakeError):
    """No object (file) under the requested bucket and key."""


class IntegrityError(LakeError):
    """A dataset part does not match its manifest (size, hash or row count)."""


class ServingError(MicrosubError):
    """The model registry, scoring or the scoring service cannot do what was asked (no champion
    model registered, a model whose types are not allowed, a service without an API key)."""
