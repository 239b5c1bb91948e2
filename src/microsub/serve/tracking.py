"""The MLflow tracking store and registry of the settings, and where their artifacts go.

* tracking store and registry: ``Settings.tracking_uri``: ``MICROSUB_MLFLOW_TRACKING_URI`` or
  ``MLFLOW_TRACKING_URI`` (an MLflow server, ``http://host:5000``), else the SQLite file
  ``<data_dir>/mlflow.db`` (MLflow 3 refuses a plain file store);
* artifacts (:func:`artifact_root`): the lake's ``models`` bucket under ``mlflow/``
  (``file://<lake>/models/mlflow`` for a folder lake, ``s3://models/mlflow`` on an S3 lake,
  reached through boto3 with the lake's ``MICROSUB_S3_*`` credentials). With a tracking
  *server*, the server's artifact root decides.

One tracking store serves one lake: :func:`experiment_id` refuses an experiment whose artifacts
live elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from microsub import contract
from microsub.config import Settings
from microsub.errors import ConfigError

#: The MLflow experiment of the training runs.
EXPERIMENT = "microsub"
#: Folder of the ``models`` bucket that holds MLflow's artifacts.
ARTIFACT_FOLDER = "mlflow"


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def artifact_root(settings: Settings) -> str | None:
    """Where new runs store artifacts: ``models/mlflow`` of the lake; ``None`` with a tracking
    server (its own artifact root decides)."""
    if _is_server(settings.tracking_uri):
        return None
    location = settings.lake_location
    if location.kind == "s3":
        return f"s3://{contract.BUCKET_MODELS}/{ARTIFACT_FOLDER}"
    assert location.path is not None
    return (location.path / contract.BUCKET_MODELS / ARTIFACT_FOLDER).resolve().as_uri()


def _artifact_env(settings: Settings) -> dict[str, str]:
    """Environment boto3 needs to reach an S3 lake's ``models`` bucket (empty otherwise)."""
    location = settings.lake_location
    if location.kind != "s3":
        return {}
    if settings.s3_access_key is None or settings.s3_secret_key is None:
        raise ConfigError(
            f"the lake s3://{location.endpoint} needs MICROSUB_S3_ACCESS_KEY and "
            "MICROSUB_S3_SECRET_KEY for MLflow's artifacts too; set both"
        )
    scheme = "https" if settings.s3_secure else "http"
    return {
        "MLFLOW_S3_ENDPOINT_URL": f"{scheme}://{location.endpoint}",
        "AWS_ACCESS_KEY_ID": settings.s3_access_key.get_secret_value(),
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key.get_secret_value(),
        "AWS_DEFAULT_REGION": "us-east-1",
    }


#: Variables MLflow's fluent API sets when a store is chosen.
_MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def connect(settings: Settings) -> Iterator[MlflowClient]:
    """An MLflow client on the settings' tracking store, for the block.

    MLflow's fluent API (runs, ``log_model``) is pointed at the same store, and the S3
    credentials of an S3 lake are put where boto3 reads them (the environment) for the block
    only, then restored.

    Raises:
        ConfigError: an S3 lake without credentials.
    """
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    env = _artifact_env(settings)
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI (for subprocesses); restored
    # after the block, or Settings (which honours that variable) would read this store for
    # every later lake of the process
    saved = {k: os.environ.get(k) for k in (*env, *_MLFLOW_URI_VARIABLES)}
    os.environ.update(env)
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def experiment_id(client: MlflowClient, settings: Settings) -> str:
    """The id of :data:`EXPERIMENT`, created with the lake's artifact root if absent.

    Raises:
        ConfigError: the experiment stores its artifacts somewhere else than this lake.
    """
    root = artifact_root(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return client.create_experiment(EXPERIMENT, artifact_location=root)
    if root is not None and experiment.artifact_location.rstrip("/") != root.rstrip("/"):
        raise ConfigError(
            f"the MLflow experiment {EXPERIMENT!r} in {settings.tracking_uri} keeps its artifacts "
            f"at {experiment.artifact_location}, not in this lake ({root}). Use one tracking "
            "store per lake: set MICROSUB_DATA_DIR or MICROSUB_MLFLOW_TRACKING_URI for this lake."
        )
    return experiment.experiment_id


__all__ = ["ARTIFACT_FOLDER", "EXPERIMENT", "artifact_root", "connect", "experiment_id"]
