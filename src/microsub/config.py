"""Typed settings for every part of microsub, read from the environment.

One object, :class:`Settings`, holds everything that changes between runs: which data profile to
generate, where the lake lives, the seed, ingestion limits. Values come from keyword arguments,
then ``MICROSUB_*`` environment variables, then the defaults below. Nothing is read or created
at import time: call :func:`get_settings` (or build ``Settings(...)``) when you need them.

Secrets (the S3 keys) come only from the environment or explicit arguments, are held as
:class:`pydantic.SecretStr` so they never print, and have no default.

==========================  =================================================================
variable                    meaning
==========================  =================================================================
``MICROSUB_PROFILE``        synthetic data size: ``ci`` (~20k pages), ``default`` (~300k),
                            ``full`` (~1.5M, the real log's size)
``MICROSUB_SEED``           seed of the synthetic generator and of every random split
``MICROSUB_DATA_DIR``       working folder for raw files and caches (default ``data``)
``MICROSUB_LAKE``           lake location: a folder path (default ``data/lake``) or
                            ``s3://HOST:PORT``
``MICROSUB_RAW_PATH``       a real log to ingest instead of the synthetic one
``MICROSUB_REAL_SAMPLE_PATH``  the 100-page real sample the generator is calibrated against
                            (default ``data/real/rec_rl_data_small``, shipped with the project)
``MICROSUB_S3_ACCESS_KEY``  S3 access key (required for an ``s3://`` lake)
``MICROSUB_S3_SECRET_KEY``  S3 secret key (required for an ``s3://`` lake)
``MICROSUB_S3_SECURE``      ``1`` to talk TLS to the S3 server
``MICROSUB_MAX_QUARANTINE_SHARE``  largest share of malformed lines an ingest accepts
``MICROSUB_SIM_SESSIONS``   simulated sessions per policy and simulator (default 10,000)
``MICROSUB_BUSINESS_CONFIG``  a business.yaml of your own (default: the packaged one)
``MICROSUB_MLFLOW_TRACKING_URI``  MLflow tracking store and model registry (also read from
                            ``MLFLOW_TRACKING_URI``); default ``sqlite:///<data_dir>/mlflow.db``
``MICROSUB_API_KEY``        the key clients of ``microsub serve`` send in ``X-API-Key``
                            (required to serve; no default)
``MICROSUB_INGEST_ENGINE``  ``polars`` (this machine, default) or ``spark``
``MICROSUB_SPARK_MASTER``   Spark master of ``--engine spark`` (default ``local[*]``; a cluster's
                            URL, e.g. ``spark://host:7077``, ``yarn``)
``MICROSUB_LATENCY_CHECK_SECONDS``  seconds of load at 200 requests/s with which the
                            pipeline's ``serve`` stage measures the scoring service (default
                            10; ``0`` skips it, and the latency gate stays unmeasured)
==========================  =================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ProfileName = Literal["ci", "default", "full"]


@dataclass(frozen=True)
class Profile:
    """A synthetic data size.

    Attributes:
        name: profile name as used on the command line.
        n_pages: number of pages (lines) the generator writes.
        description: one line for help texts and the book.
    """

    name: str
    n_pages: int
    description: str


PROFILES: dict[str, Profile] = {
    "ci": Profile("ci", 20_000, "small, for tests and CI (about 20k pages)"),
    "default": Profile("default", 300_000, "embedded default of `make report` (about 300k pages)"),
    "full": Profile("full", 1_500_000, "the real log's size (about 1.5M pages)"),
}


@dataclass(frozen=True)
class LakeLocation:
    """Where the lake lives, parsed from ``MICROSUB_LAKE`` / ``--lake``.

    Attributes:
        kind: ``"local"`` for a folder, ``"s3"`` for an S3 endpoint.
        path: the folder (local lakes only).
        endpoint: ``HOST:PORT`` (S3 lakes only).
    """

    kind: Literal["local", "s3"]
    path: Path | None = None
    endpoint: str | None = None

    def __str__(self) -> str:
        return f"s3://{self.endpoint}" if self.kind == "s3" else str(self.path)


def parse_lake(value: str | Path) -> LakeLocation:
    """Parse a lake location: a folder path, or ``s3://HOST:PORT``.

    Raises:
        ValueError: for an ``s3://`` URL without a host, or with a path or credentials in it
            (credentials belong in ``MICROSUB_S3_ACCESS_KEY`` / ``MICROSUB_S3_SECRET_KEY``).
    """
    text = str(value).strip()
    if not text.lower().startswith("s3://"):
        if "://" in text:
            raise ValueError(f"lake must be a folder path or s3://HOST:PORT, got {text!r}")
        return LakeLocation("local", path=Path(text).expanduser())
    url = urlparse(text)
    if url.username or url.password:
        raise ValueError(
            "put S3 credentials in MICROSUB_S3_ACCESS_KEY and MICROSUB_S3_SECRET_KEY, "
            "not in the lake URL"
        )
    if not url.hostname:
        raise ValueError(f"S3 lake needs a host, as in s3://127.0.0.1:9000; got {text!r}")
    if url.path not in ("", "/"):
        raise ValueError(f"S3 lake is a server, s3://HOST:PORT, without a path; got {text!r}")
    endpoint = url.hostname if url.port is None else f"{url.hostname}:{url.port}"
    return LakeLocation("s3", endpoint=endpoint)


class Settings(BaseSettings):
    """Everything that varies between runs (see the module docstring for the variables)."""

    model_config = SettingsConfigDict(
        env_prefix="MICROSUB_", extra="forbid", frozen=True, populate_by_name=True
    )

    profile: ProfileName = "default"
    seed: int = Field(default=20190513, ge=0, description="seed of the generator and the splits")
    data_dir: Path = Path("data")
    lake: str = "data/lake"
    raw_path: Path | None = None
    real_sample_path: Path = Path("data/real/rec_rl_data_small")
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_secure: bool = False
    max_quarantine_share: float = Field(default=0.01, ge=0.0, le=1.0)
    # 16 MiB: the same throughput as 64 MiB at half the peak memory (benchmarks/ingest.py)
    ingest_batch_bytes: int = Field(default=16 * 2**20, ge=2**16)
    business_config: Path | None = None
    sim_sessions: int = Field(
        default=10_000, ge=100, description="simulated sessions per policy and simulator"
    )
    # MLflow's own variable is honoured too, so a shell set up for an MLflow server just works
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MICROSUB_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    )
    api_key: SecretStr | None = None
    # which engine ingests the raw log: Polars on this machine, or Spark (the `spark` extra)
    ingest_engine: Literal["polars", "spark"] = "polars"
    spark_master: str = Field(default="local[*]", min_length=1)
    latency_check_seconds: float = Field(
        default=10.0, ge=0.0, description="seconds of the pipeline's latency check (0: none)"
    )

    @field_validator("lake")
    @classmethod
    def _valid_lake(cls, value: str) -> str:
        parse_lake(value)
        return value

    @property
    def lake_location(self) -> LakeLocation:
        """The parsed lake location."""
        return parse_lake(self.lake)

    @property
    def data_profile(self) -> Profile:
        """The :class:`Profile` named by :attr:`profile`."""
        return PROFILES[self.profile]

    @property
    def cache_dir(self) -> Path:
        """Folder of the joblib cache shared by the book and the deck within one render."""
        return self.data_dir / "cache"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking (and registry) URI: :attr:`mlflow_tracking_uri` when set, else a
        SQLite file ``<data_dir>/mlflow.db`` (MLflow 3 refuses a plain file store)."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve().as_posix()}"

    @property
    def synthetic_raw_path(self) -> Path:
        """Where the synthetic log of this profile and seed is written."""
        return self.data_dir / "raw" / f"synthetic-{self.profile}-seed{self.seed}.txt"

    def environment(self) -> dict[str, str]:
        """These settings as ``MICROSUB_*`` environment variables (unset fields left out), for
        a child process that must see the same settings (``microsub serve`` under the
        pipeline's latency check). Holds the secrets in clear: pass it to the child's
        environment only, never print or store it."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = int(value)
            out[f"MICROSUB_{name.upper()}"] = str(value)
        return out

    @property
    def raw_input(self) -> Path:
        """The raw log the pipeline ingests: the real one when set, else the synthetic one."""
        return self.raw_path if self.raw_path is not None else self.synthetic_raw_path


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit ``overrides`` (``None`` values ignored)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
