"""The model registry: trained estimators and their cards in the lake's ``models`` bucket.

Layout (one folder per model name; a re-save replaces the model of that name)::

    models/<name>/model.joblib    the fitted estimator, serialised by joblib (compressed pickle)
    models/<name>/card.json       what the model is: task, target, features, hyper-parameters,
                                  metrics (test and train), the data it was trained on (the
                                  pages manifest's digest, rows and source), the sha256 and
                                  size of model.joblib, and the package versions

The card is written after the model bytes, so it is the commit point: a reader goes through the
card, and :func:`load_model` checks the bytes against the card's sha256 before unpickling them.

Security: loading a model **executes pickled code** (that is how pickle rebuilds objects). The
sha256 check catches corruption and accidental edits, not an attacker who can rewrite both files:
only load models from a lake you trust.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import joblib
import numpy
import sklearn

from microsub import __version__, contract
from microsub.errors import ContractError, IntegrityError, ObjectNotFoundError
from microsub.lake import Lake, plain_json

#: Version of the card's layout.
CARD_VERSION = 1
#: Keys every card handed to :func:`save_model` must hold.
REQUIRED_CARD_KEYS = ("task", "target", "feature_set", "features", "metrics", "data")
#: A model name: lower-case letters, digits, ``.``, ``_`` and ``-``, starting with a letter or
#: digit (it is a folder of the bucket).
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
MODEL_FILE = "model.joblib"
CARD_FILE = "card.json"


class RegisteredModel(NamedTuple):
    """A model loaded from the registry: the fitted estimator and its card."""

    estimator: Any
    card: dict[str, Any]


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ContractError(
            f"model name must match {NAME.pattern} (lower-case letters, digits, '.', '_', '-'); "
            f"got {name!r}"
        )
    return name


def _versions() -> dict[str, str]:
    """Versions of the packages a pickled model depends on."""

    return {
        "microsub": __version__,
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
    }


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


def serialise(estimator: Any) -> bytes:
    """The joblib bytes of ``estimator`` (zlib level 3), in a canonical form.

    Pickle records which objects are shared, so an estimator just fitted and the same estimator
    read back from a cache can give different bytes (scikit-learn's ``Pipeline`` does). The
    bytes are therefore taken after one round trip, a fixed point: the same model always gives
    the same bytes, and saving it again is recognised as no change.
    """

    def dump(obj: Any) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(obj, buffer, compress=3)
        return buffer.getvalue()

    return dump(joblib.load(io.BytesIO(dump(estimator))))


def make_card(
    *,
    task: str,
    target: str,
    feature_set: str,
    features: list[str],
    estimator: Any,
    metrics: Mapping[str, Mapping[str, float]],
    data: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A model card for :func:`save_model`.

    Args:
        task: ``"churn"`` or ``"value"``.
        target: the target column (``done``, ``reward``).
        feature_set: name in :data:`microsub.features.FEATURE_SETS`.
        features: feature names in the order of the columns ``predict`` expects.
        estimator: the fitted estimator (its class and hyper-parameters are recorded).
        metrics: ``{"test": {...}, "train": {...}}`` metric name -> value.
        data: the training data: ``digest`` (:attr:`microsub.pipeline.Context.data_digest`),
            ``rows`` (rows of the pages manifest), ``source``, and what else identifies it.
        extra: further JSON keys (e.g. ``model``, ``selection``).
    """
    cls = type(estimator)
    return {
        "task": task,
        "target": target,
        "feature_set": feature_set,
        "features": list(features),
        "estimator": f"{cls.__module__}.{cls.__qualname__}",
        "hyperparameters": plain_params(estimator),
        "metrics": {part: dict(values) for part, values in metrics.items()},
        "data": dict(data),
        **extra,
    }


def save_model(lake: Lake, name: str, estimator: Any, card: Mapping[str, Any]) -> dict[str, Any]:
    """Store ``estimator`` and its ``card`` under ``models/<name>/``.

    The stored card is ``card`` plus ``name``, ``card_version``, ``artifact`` (key, format,
    bytes, sha256 of the joblib bytes) and ``versions`` (packages). Saving the same model with
    the same card again writes nothing.

    Args:
        lake: the lake (local or S3).
        name: the model's name (:data:`NAME`).
        estimator: a fitted estimator.
        card: JSON-safe description holding at least :data:`REQUIRED_CARD_KEYS`
            (see :func:`make_card`).

    Returns:
        The stored card.

    Raises:
        ContractError: a bad name, or a card without the required keys.
    """
    _check_name(name)
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise ContractError(
            f"model card for {name!r} lacks {missing}; it has {sorted(card)}. "
            "Build it with microsub.registry.make_card."
        )
    blob = serialise(estimator)
    model_key = f"{name}/{MODEL_FILE}"
    stored = {
        **dict(card),
        "name": name,
        "card_version": CARD_VERSION,
        "artifact": {
            "key": model_key,
            "format": "joblib",
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
        },
        "versions": _versions(),
    }
    card_key = f"{name}/{CARD_FILE}"
    # round trip through the lake's JSON so that the comparison sees what a reader would
    lake.ensure_buckets([contract.BUCKET_MODELS])
    try:
        current = lake.get_json(contract.BUCKET_MODELS, card_key)
    except ObjectNotFoundError:
        current = None
    if current is not None and current == plain_json(stored) and lake.exists(
        contract.BUCKET_MODELS, model_key
    ):
        return current
    lake.put_bytes(contract.BUCKET_MODELS, model_key, blob)
    lake.put_json(contract.BUCKET_MODELS, card_key, stored)
    return lake.get_json(contract.BUCKET_MODELS, card_key)


def read_card(lake: Lake, name: str) -> dict[str, Any]:
    """The card of model ``name``.

    Raises:
        ObjectNotFoundError: no such model (the message lists the registered names).
    """
    _check_name(name)
    try:
        return lake.get_json(contract.BUCKET_MODELS, f"{name}/{CARD_FILE}")
    except ObjectNotFoundError:
        names = [c["name"] for c in list_models(lake)]
        raise ObjectNotFoundError(
            f"no model {name!r} in the {contract.BUCKET_MODELS!r} bucket of {lake.location}; "
            f"registered models: {names or 'none'} (`microsub run` trains them)"
        ) from None


def load_model(lake: Lake, name: str) -> RegisteredModel:
    """The estimator and card of model ``name``, its bytes verified against the card.

    Unpickling executes code: only load from a lake you trust (module docstring).

    Raises:
        ObjectNotFoundError: no such model, or its bytes are missing.
        IntegrityError: the bytes do not match the card's size or sha256.
    """

    card = read_card(lake, name)
    artifact = card["artifact"]
    blob = lake.get_bytes(contract.BUCKET_MODELS, artifact["key"])
    digest = hashlib.sha256(blob).hexdigest()
    if len(blob) != artifact["bytes"] or digest != artifact["sha256"]:
        raise IntegrityError(
            f"model {name!r} at {contract.BUCKET_MODELS}/{artifact['key']} does not match its "
            f"card: expected {artifact['bytes']} bytes with sha256 {artifact['sha256'][:16]}…, "
            f"found {len(blob)} bytes with sha256 {digest[:16]}…. The file was altered or "
            "damaged; retrain it with `microsub run --force`."
        )
    return RegisteredModel(joblib.load(io.BytesIO(blob)), card)


def list_models(lake: Lake) -> list[dict[str, Any]]:
    """The cards of every registered model, sorted by name (folders without a card skipped)."""
    cards = []
    for entry in lake.list(contract.BUCKET_MODELS):
        name = entry.rstrip("/")
        if entry.endswith("/") and NAME.match(name):
            try:
                cards.append(lake.get_json(contract.BUCKET_MODELS, f"{name}/{CARD_FILE}"))
            except ObjectNotFoundError:
                continue
    return sorted(cards, key=lambda c: c["name"])


__all__ = [
    "RegisteredModel",
    "list_models",
    "load_model",
    "make_card",
    "plain_params",
    "read_card",
    "save_model",
    "serialise",
]
