"""The model registry on MLflow: every training run, its models, and which version serves.

One registry (this replaces the project's earlier folder of pickles). Each call of
:func:`register` is one MLflow *run* in the experiment :data:`EXPERIMENT` that logs

* parameters: the benchmark key, label, implementation, feature set, target, seed, the training
  data's manifest digest (``data_digest``) and row count (``data_rows``), and the estimator's
  hyper-parameters (``hp.<name>``);
* metrics: ``test_<metric>`` (held-out sessions) and ``train_<metric>`` (fit rows);
* the model, in MLflow's ``sklearn`` flavour serialised with **skops** (no pickle: the file holds
  the estimator's state as JSON and arrays, rebuilt only from an allow-list of types), with a
  signature naming its feature columns, and ``card.json`` (everything above as one document);

and registers the model as a new version of :data:`MODEL_NAMES` ``[task]`` (``microsub-churn``,
``microsub-value``). The version that serves carries the alias :data:`CHAMPION`; a candidate under
evaluation carries :data:`CHALLENGER` (aliases, not the deprecated stages).

Idempotence: a version is identified by its *fingerprint* (the training data's digest, the seed,
the digest of the model and feature code, the benchmark key; see :class:`ModelCard`), stored as
the version tag ``fingerprint``. Registering a model whose fingerprint already has a version
logs nothing and reuses that version, so re-running ``microsub run`` (or ``--force``) on the same
data and code never piles up versions; new data or new code registers a new one. The train stage
moves ``champion`` only to a version it has just registered (or when there is none), so a
re-run does not undo a promotion made since by the daily DAG.

Where the registry and the artifacts are: :mod:`microsub.serve.tracking` (by default a SQLite
file under the data folder, artifacts in the lake's ``models`` bucket under ``mlflow/``).

Loading (:func:`load`): ``models:/microsub-churn@champion`` is resolved by the registry, the
artifacts are downloaded, and the skops file is loaded after checking that every type it needs
comes from :data:`TRUSTED_MODULES` (the allow-list is ours, not the file's). MLflow's own
``mlflow.sklearn.load_model("models:/microsub-churn@champion")`` loads the same model once
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true`` is set; either way the ``microsub`` package must be
importable, since the chosen models may be its from-scratch estimators.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy
import scipy
import sklearn
import skops
import skops.io
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema

from microsub import __version__
from microsub.config import Settings
from microsub.errors import ServingError
from microsub.serve.tracking import (
    ARTIFACT_FOLDER,
    EXPERIMENT,
    artifact_root,
    connect,
    experiment_id,
)

#: Registered model of each task.
MODEL_NAMES = {"churn": "microsub-churn", "value": "microsub-value"}
#: Alias of the version that serves, and of a candidate under evaluation.
CHAMPION = "champion"
CHALLENGER = "challenger"
#: A model may be rebuilt only from types of these modules (the skops allow-list).
TRUSTED_MODULES = ("microsub.", "sklearn.", "numpy.", "scipy.")
#: Longest parameter value logged (MLflow limits them; reprs of pipelines are long).
PARAM_CHARS = 500


@dataclass(frozen=True)
class ModelCard:
    """What a training run knows about one model.

    Attributes:
        task: ``"churn"`` or ``"value"``.
        key: benchmark key (``boosted_trees_clf``, ``hurdle_trees``, ...); label: its name in
            tables; implementation: ``scratch``, ``scikit-learn`` or ``baseline``.
        feature_set: name in :data:`microsub.analysis.features.FEATURE_SETS`; features: its
            columns, in the order ``predict`` expects; target: ``done`` or ``reward``.
        metrics: ``{"test": {...}, "train": {...}}``, metric name -> value.
        data: the training data: ``digest`` (manifest digest), ``rows`` (manifest rows),
            ``source``, ``seed``, and what else identifies it.
        fingerprint: identity of (data, seed, code, key); equal fingerprints mean the same model.
        hyperparameters: the estimator's parameters as JSON values.
        selection_rule: how the benchmark chose the model of its task, ties included.
    """

    task: str
    key: str
    label: str
    implementation: str
    feature_set: str
    features: tuple[str, ...]
    target: str
    metrics: Mapping[str, Mapping[str, float]]
    data: Mapping[str, Any]
    fingerprint: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    selection_rule: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON values (``card.json`` of the run)."""
        out = asdict(self)
        out["features"] = list(self.features)
        return json.loads(json.dumps(out, default=str))


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version.

    Attributes:
        name: registered model (``microsub-churn``); version: its number, as MLflow's string.
        task, key, label: what it is; fingerprint: see :class:`ModelCard`.
        run_id: the training run; uri: ``models:/<name>/<version>``.
        aliases: aliases pointing at it; metrics: the run's metrics (``test_roc_auc``, ...);
        data_digest, data_rows: the training data; features: feature columns.
    """

    name: str
    version: str
    task: str
    key: str
    label: str
    fingerprint: str
    run_id: str
    uri: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    data_digest: str
    data_rows: int
    features: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON values (for reports)."""
        out = asdict(self)
        out["aliases"], out["features"] = list(self.aliases), list(self.features)
        return out


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded from the registry: the fitted estimator and its version."""

    estimator: Any
    info: VersionInfo


def plain_params(estimator: Any) -> dict[str, Any]:
    """The estimator's ``get_params(deep=True)`` as JSON values (other objects by ``repr``)."""
    params = estimator.get_params(deep=True) if hasattr(estimator, "get_params") else {}
    out: dict[str, Any] = {}
    for key, value in sorted(params.items()):
        if value is None or isinstance(value, bool | int | float | str):
            out[key] = value
        else:
            out[key] = repr(value)
    return out


# --------------------------------------------------------------------------------------------
# Registering
# --------------------------------------------------------------------------------------------
def trusted_types(estimator: Any) -> list[str]:
    """Types skops must be told to trust to rebuild ``estimator`` (our allow-list only).

    Raises:
        ServingError: the estimator holds a type outside :data:`TRUSTED_MODULES`.
    """
    needed = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    return _check_types(needed, what=type(estimator).__name__)


def _check_types(needed: list[str], *, what: str) -> list[str]:
    outside = [t for t in needed if not t.startswith(TRUSTED_MODULES)]
    if outside:
        raise ServingError(
            f"model {what} needs types {outside} outside the allow-list {TRUSTED_MODULES}; "
            "only estimators built from microsub, scikit-learn, NumPy and SciPy are registered"
        )
    return sorted(needed)


def _signature(card: ModelCard) -> ModelSignature:
    """Inputs: one double column per feature; output: P(leave) or expected Yuan."""
    output = "p_leave" if card.task == "churn" else "expected_value"
    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in card.features]),
        outputs=Schema([ColSpec("double", output)]),
    )


def _requirements() -> list[str]:
    """Packages the model needs (stated, not inferred: inference loads the model in a
    subprocess). ``microsub`` holds the from-scratch estimators."""
    return [
        f"microsub=={__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={numpy.__version__}",
        f"scipy=={scipy.__version__}",
        f"skops=={skops.__version__}",
    ]


def _params(card: ModelCard) -> dict[str, str]:
    params = {
        "task": card.task,
        "model": card.key,
        "label": card.label,
        "implementation": card.implementation,
        "feature_set": card.feature_set,
        "target": card.target,
        "seed": card.data.get("seed"),
        "data_digest": card.data.get("digest"),
        "data_rows": card.data.get("rows"),
        **{f"hp.{k}": v for k, v in card.hyperparameters.items()},
    }
    return {k: str(v)[:PARAM_CHARS] for k, v in params.items()}


def _metrics(card: ModelCard) -> dict[str, float]:
    out = {}
    for part, values in card.metrics.items():
        for name, value in values.items():
            if value is not None and math.isfinite(float(value)):
                out[f"{part}_{name}"] = float(value)
    return out


def _version_tags(card: ModelCard) -> dict[str, str]:
    return {
        "task": card.task,
        "model": card.key,
        "label": card.label,
        "fingerprint": card.fingerprint,
        "data_digest": str(card.data.get("digest")),
        "data_rows": str(card.data.get("rows")),
        "features": ",".join(card.features),
    }


def _log_version(client: MlflowClient, settings: Settings, card: ModelCard, estimator: Any) -> str:
    """Log one training run with its model and register it; returns the new version."""
    experiment = experiment_id(client, settings)
    trusted = trusted_types(estimator)
    with mlflow.start_run(experiment_id=experiment, run_name=f"{card.task}-{card.key}") as run:
        mlflow.log_params(_params(card))
        mlflow.log_metrics(_metrics(card))
        mlflow.set_tags(_version_tags(card))
        mlflow.log_dict(card.to_dict(), "card.json")
        logged = mlflow.sklearn.log_model(
            estimator,
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=trusted,
            signature=_signature(card),
            pip_requirements=_requirements(),
            pyfunc_predict_fn="predict_proba" if card.task == "churn" else "predict",
            metadata={"task": card.task, "features": list(card.features)},
        )
    name = MODEL_NAMES[card.task]
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description=f"microsub {card.task} model (target {card.target})"
        )
    version = client.create_model_version(
        name, logged.model_uri, run_id=run.info.run_id, tags=_version_tags(card),
        model_id=logged.model_id,
    )  # fmt: skip
    return str(version.version)


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _find_version(client: MlflowClient, name: str, fingerprint: str) -> str | None:
    """The newest version of ``name`` tagged with ``fingerprint``, if any."""
    versions = client.search_model_versions(f"name = '{name}'")
    found = [int(v.version) for v in versions if v.tags.get("fingerprint") == fingerprint]
    return str(max(found)) if found else None


def register(
    settings: Settings,
    card: ModelCard,
    estimator: Any,
    *,
    aliases: tuple[str, ...] = (CHAMPION,),
    only_if_new: bool = False,
) -> VersionInfo:
    """Log and register ``estimator`` (unless its fingerprint already has a version) and point
    ``aliases`` at that version.

    Args:
        settings: where the registry and the lake are.
        card: what the model is (:class:`ModelCard`).
        estimator: the fitted estimator (scikit-learn API).
        aliases: aliases to set on the version (default: :data:`CHAMPION`).
        only_if_new: set an alias only when this call registered the version, or when the
            alias points nowhere yet (a re-run then leaves a promotion made since in place).

    Returns:
        The version (:class:`VersionInfo`), new or reused.

    Raises:
        ServingError: the estimator holds types outside the allow-list.
        ConfigError: the tracking store keeps this experiment's artifacts in another lake.
    """
    name = MODEL_NAMES[card.task]
    with connect(settings) as client:
        version = _find_version(client, name, card.fingerprint)
        new = version is None
        if version is None:
            version = _log_version(client, settings, card, estimator)
        for alias in aliases:
            if new or not only_if_new or _alias_version(client, name, alias) is None:
                client.set_registered_model_alias(name, alias, version)
        return _version_info(client, name, version)


def set_alias(settings: Settings, task: str, alias: str, version: str) -> VersionInfo:
    """Point ``alias`` of the task's registered model at ``version``; returns that version."""
    name = MODEL_NAMES[task]
    with connect(settings) as client:
        client.set_registered_model_alias(name, alias, str(version))
        return _version_info(client, name, str(version))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def _version_info(client: MlflowClient, name: str, version: str) -> VersionInfo:
    mv = client.get_model_version(name, version)
    tags = dict(mv.tags)
    metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
    return VersionInfo(
        name=name,
        version=str(mv.version),
        task=tags.get("task", ""),
        key=tags.get("model", ""),
        label=tags.get("label", ""),
        fingerprint=tags.get("fingerprint", ""),
        run_id=mv.run_id or "",
        uri=f"models:/{name}/{mv.version}",
        aliases=tuple(sorted(mv.aliases)),
        metrics=metrics,
        data_digest=tags.get("data_digest", ""),
        data_rows=int(tags.get("data_rows") or 0),
        features=tuple(f for f in tags.get("features", "").split(",") if f),
    )


def version(settings: Settings, task: str, alias: str = CHAMPION) -> VersionInfo | None:
    """The version of the task's model that carries ``alias``, or ``None``."""
    name = MODEL_NAMES[task]
    with connect(settings) as client:
        try:
            mv = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None
        return _version_info(client, name, str(mv.version))


def versions(settings: Settings) -> list[VersionInfo]:
    """Every registered version of both models, by name and version number."""
    out = []
    with connect(settings) as client:
        for name in MODEL_NAMES.values():
            found = client.search_model_versions(f"name = '{name}'")
            for v in sorted(found, key=lambda v: int(v.version)):
                out.append(_version_info(client, name, str(v.version)))
    return out


def load_skops_model(local: Path) -> Any:
    """The estimator of a downloaded MLflow ``sklearn`` model folder (skops format), rebuilt
    only from types of :data:`TRUSTED_MODULES`.

    Raises:
        ServingError: not a skops model, or it needs a type outside the allow-list.
    """
    conf = Model.load(str(local)).flavors.get("sklearn", {})
    if conf.get("serialization_format") != mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS:
        raise ServingError(
            f"the model at {local} is not stored with skops (format "
            f"{conf.get('serialization_format')!r}); microsub loads skops models only. "
            "Register it again with `microsub run --force`."
        )
    path = local / conf["pickled_model"]
    needed = skops.io.get_untrusted_types(file=path)
    return skops.io.load(path, trusted=_check_types(needed, what=str(path)))


def load(settings: Settings, task: str, alias: str = CHAMPION) -> LoadedModel:
    """The estimator of ``models:/<MODEL_NAMES[task]>@<alias>`` and its version.

    Raises:
        ServingError: no version carries the alias (the message says how to train one), or the
            model is not a skops model of allowed types.
    """
    name = MODEL_NAMES[task]
    with connect(settings) as client:
        try:
            mv = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            raise ServingError(
                f"no version of {name!r} has the alias {alias!r} in {settings.tracking_uri}; "
                "train and register one with `microsub run` (same MICROSUB_DATA_DIR / "
                "MICROSUB_MLFLOW_TRACKING_URI)"
            ) from None
        info = _version_info(client, name, str(mv.version))
        with tempfile.TemporaryDirectory(prefix="microsub-model-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}@{alias}", dst_path=tmp
            )
            estimator = load_skops_model(Path(local))
    return LoadedModel(estimator, info)


def champions(settings: Settings) -> dict[str, LoadedModel]:
    """The champion of each task: ``{"churn": LoadedModel, "value": LoadedModel}``."""
    return {task: load(settings, task, CHAMPION) for task in MODEL_NAMES}


__all__ = [
    "ARTIFACT_FOLDER",
    "CHALLENGER",
    "CHAMPION",
    "EXPERIMENT",
    "MODEL_NAMES",
    "TRUSTED_MODULES",
    "LoadedModel",
    "ModelCard",
    "VersionInfo",
    "artifact_root",
    "champions",
    "connect",
    "load",
    "load_skops_model",
    "plain_params",
    "register",
    "set_alias",
    "trusted_types",
    "version",
    "versions",
]
