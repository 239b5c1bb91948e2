"""The model registry: save, list and load models with their cards, in a local folder and on
S3 (SeaweedFS); altered bytes are refused before they are unpickled."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from microsub import contract, pipeline
from microsub.analysis import features
from microsub.errors import ContractError, IntegrityError, ObjectNotFoundError
from microsub.lake import Lake, LocalLake
from microsub.models import BoostedTreesClassifier, LogisticRegressionGD, tasks
from microsub.serve import registry


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 4)) * [1.0, 10.0, 0.1, 3.0]
    y = (X @ [1.0, 0.1, -5.0, 0.2] + rng.normal(size=400) > 0).astype(int)
    return X, y


@pytest.fixture(scope="module")
def model(xy):
    X, y = xy
    return make_pipeline(StandardScaler(), LogisticRegressionGD(alpha=1e-3)).fit(X, y)


def _card(estimator, **extra) -> dict:
    return registry.make_card(
        task="churn",
        target="done",
        feature_set="churn",
        features=["a", "b", "c", "d"],
        estimator=estimator,
        metrics={"test": {"roc_auc": 0.81}, "train": {"roc_auc": np.float64(0.83)}},
        data={"digest": "abc123", "rows": 400, "source": {"kind": "synthetic"}},
        **extra,
    )


def test_round_trip_keeps_predictions_and_card(lake: Lake, model, xy) -> None:
    X, _ = xy
    stored = registry.save_model(lake, "churn", model, _card(model, chosen=True))
    assert stored["name"] == "churn" and stored["chosen"] is True
    assert stored["metrics"] == {"test": {"roc_auc": 0.81}, "train": {"roc_auc": 0.83}}
    assert stored["data"]["digest"] == "abc123" and stored["data"]["rows"] == 400
    assert stored["estimator"] == "sklearn.pipeline.Pipeline"
    assert stored["hyperparameters"]["logisticregressiongd__alpha"] == 1e-3
    assert set(stored["versions"]) == {"microsub", "scikit-learn", "numpy", "joblib"}

    blob = lake.get_bytes(contract.BUCKET_MODELS, "churn/model.joblib")
    assert stored["artifact"] == {
        "key": "churn/model.joblib",
        "format": "joblib",
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    loaded = registry.load_model(lake, "churn")
    assert loaded.card == stored
    estimator, card = loaded  # a named tuple
    assert np.array_equal(estimator.predict_proba(X), model.predict_proba(X))
    assert card["features"] == ["a", "b", "c", "d"]


def test_list_models_returns_every_card_by_name(lake: Lake, model, xy) -> None:
    X, y = xy
    trees = BoostedTreesClassifier(max_iter=5, random_state=0).fit(X, y)
    registry.save_model(lake, "value-x", model, _card(model))
    registry.save_model(lake, "churn-trees", trees, _card(trees))
    lake.put_bytes(contract.BUCKET_MODELS, "stray/readme.txt", b"not a model")
    cards = registry.list_models(lake)
    assert [c["name"] for c in cards] == ["churn-trees", "value-x"]
    assert cards[0]["estimator"] == "microsub.models.trees.BoostedTreesClassifier"
    assert cards[0]["hyperparameters"]["max_iter"] == 5
    again = registry.load_model(lake, "churn-trees").estimator
    assert np.array_equal(again.predict_proba(X), trees.predict_proba(X))


def test_saving_the_same_model_again_writes_nothing(tmp_path: Path, model) -> None:
    lake = LocalLake(tmp_path / "lake")
    first = registry.save_model(lake, "churn", model, _card(model))
    files = sorted((tmp_path / "lake" / contract.BUCKET_MODELS / "churn").iterdir())
    stamps = [p.stat().st_mtime_ns for p in files]
    second = registry.save_model(lake, "churn", model, _card(model))
    assert second == first
    assert [p.stat().st_mtime_ns for p in files] == stamps
    # a different card is a new save
    third = registry.save_model(lake, "churn", model, _card(model, note="retrained"))
    assert third["note"] == "retrained"
    assert registry.read_card(lake, "churn")["note"] == "retrained"


def test_tampered_bytes_raise_integrity_error_before_unpickling(lake: Lake, model) -> None:
    stored = registry.save_model(lake, "churn", model, _card(model))
    key = stored["artifact"]["key"]
    blob = bytearray(lake.get_bytes(contract.BUCKET_MODELS, key))
    blob[len(blob) // 2] ^= 0xFF
    lake.put_bytes(contract.BUCKET_MODELS, key, bytes(blob))
    with pytest.raises(IntegrityError, match="does not match its card"):
        registry.load_model(lake, "churn")

    # a valid pickle of something else is refused too (the sha256 differs)
    other = io.BytesIO()
    joblib.dump({"not": "the model"}, other)
    lake.put_bytes(contract.BUCKET_MODELS, key, other.getvalue())
    with pytest.raises(IntegrityError, match="retrain"):
        registry.load_model(lake, "churn")


def test_unknown_model_names_the_registered_ones(lake: Lake, model) -> None:
    registry.save_model(lake, "churn", model, _card(model))
    with pytest.raises(ObjectNotFoundError, match=r"no model 'value'.*\['churn'\]"):
        registry.load_model(lake, "value")


def test_bad_names_and_incomplete_cards_are_refused(tmp_path: Path, model) -> None:
    lake = LocalLake(tmp_path / "lake")
    for name in ("", "Churn", "../x", "a/b", "-x"):
        with pytest.raises(ContractError, match="model name"):
            registry.save_model(lake, name, model, _card(model))
    card = _card(model)
    del card["data"]
    with pytest.raises(ContractError, match=r"lacks \['data'\]"):
        registry.save_model(lake, "churn", model, card)
    assert registry.list_models(lake) == []


def test_plain_params_are_json_values(model) -> None:
    params = registry.plain_params(model)
    assert params["logisticregressiongd__preconditioner"] == "full"
    assert isinstance(params["steps"], str)  # objects by repr
    assert registry.plain_params(object()) == {}


def test_train_stage_registers_the_chosen_and_scratch_models(tmp_path: Path) -> None:
    """`microsub run` trains: the train stage saves models whose cards name the data they were
    trained on, and writes reports/benchmark.json; a second run rewrites nothing."""
    from microsub.config import Settings

    settings = Settings(profile="ci", data_dir=tmp_path / "data", lake=str(tmp_path / "lake"))
    ctx = pipeline.run(settings, stages=("train",))
    result = pipeline.benchmark(ctx)
    cards = {c["name"]: c for c in registry.list_models(ctx.lake)}
    assert set(cards) == {
        "churn", "value", "churn-logistic-gd", "churn-boosted-trees", "value-linear-gd",
        "value-boosted-trees", "value-hurdle-linear", "value-hurdle-trees",
    }  # fmt: skip
    for name, card in cards.items():
        assert card["data"]["digest"] == ctx.data_digest
        assert card["data"]["rows"] == ctx.manifest.rows
        assert card["data"]["source"]["kind"] == "synthetic"
        assert card["chosen"] == (name in ("churn", "value"))
        row = result.row(card["model"])
        assert card["metrics"]["test"]["validation"] == pytest.approx(row["validation"])
    assert cards["churn"]["model"] == result.best["churn"]
    assert cards["churn"]["features"] == list(features.FEATURE_SETS["churn"].columns)
    assert "roc_auc" in cards["churn"]["metrics"]["train"]

    # the registered churn model predicts what the benchmark scored
    frame = features.add_features(pipeline.read_pages(ctx).to_pandas())
    rows = tasks.split_sessions(frame["session_id"].to_numpy(), result.config, settings.seed)
    X_test = tasks.task_data(frame, rows, "churn").X["test"]
    model = registry.load_model(ctx.lake, "churn").estimator
    np.testing.assert_allclose(
        model.predict_proba(X_test)[:, 1], result.predictions[result.best["churn"]], atol=1e-12
    )
    report = ctx.lake.get_json(contract.BUCKET_REPORTS, "benchmark.json")
    assert report["best"] == result.best and report["data"]["digest"] == ctx.data_digest
    assert report["models"] == {n: c["artifact"]["sha256"] for n, c in cards.items()}

    folder = tmp_path / "lake" / contract.BUCKET_MODELS
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    report_path = tmp_path / "lake" / contract.BUCKET_REPORTS / "benchmark.json"
    report_stamp = report_path.stat().st_mtime_ns
    pipeline.run(settings, stages=("train",))
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == stamps
    assert report_path.stat().st_mtime_ns == report_stamp


def test_serialised_bytes_do_not_depend_on_how_the_model_was_obtained(model) -> None:
    # a fitted pipeline and its unpickled copy pickle differently (shared objects); the
    # registry's bytes are the same for both
    copy = joblib.load(io.BytesIO(registry.serialise(model)))
    assert registry.serialise(copy) == registry.serialise(model)
