"""The model registry on MLflow: train, register, alias, load by alias (SQLite tracking store;
artifacts in a folder lake and on S3 through SeaweedFS); re-runs register nothing new; models
are rebuilt only from allowed types."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from microsub import contract, pipeline
from microsub.analysis import features
from microsub.config import Settings
from microsub.errors import ConfigError, ServingError
from microsub.models import BoostedTreesClassifier, LogisticRegressionGD, tasks
from microsub.serve import registry


def _held_out(ctx: pipeline.Context, result, task: str) -> tasks.TaskData:
    frame = features.add_features(pipeline.read_pages(ctx).to_pandas())
    rows = tasks.split_sessions(frame["session_id"].to_numpy(), result.config, ctx.settings.seed)
    return tasks.task_data(frame, rows, task)


def test_mlflow_round_trip_train_register_alias_load_by_alias(trained, monkeypatch) -> None:
    """`microsub run` trains; each chosen model is a logged run and a registered version with
    the alias champion; `models:/microsub-<task>@champion` loads the model the benchmark
    scored, through our loader and through MLflow's own."""
    ctx = pipeline.run(trained, stages=())
    result = pipeline.benchmark(ctx)
    champions = registry.champions(trained)
    for task, model in champions.items():
        info = model.info
        assert info.name == f"microsub-{task}" and info.aliases == ("champion",)
        assert info.uri == f"models:/microsub-{task}/1" and info.key == result.best[task]
        assert info.data_digest == ctx.data_digest and info.data_rows == ctx.manifest.rows == 20_000
        assert info.features == features.FEATURE_SETS[task].columns
        with registry.connect(trained) as client:
            run = client.get_run(info.run_id)
        params, metrics = run.data.params, run.data.metrics
        assert params["data_digest"] == ctx.data_digest and params["data_rows"] == "20000"
        assert params["model"] == result.best[task] and params["seed"] == str(trained.seed)
        row, train_row = result.row(result.best[task]), result.row(result.best[task], train=True)
        metric = "roc_auc" if task == "churn" else "rmse"
        assert metrics[f"test_{metric}"] == pytest.approx(row[metric], rel=1e-12)
        assert metrics[f"train_{metric}"] == pytest.approx(train_row[metric], rel=1e-12)

    churn, value = _held_out(ctx, result, "churn"), _held_out(ctx, result, "value")
    expected_churn = result.predictions[result.best["churn"]]
    expected_value = result.predictions[result.best["value"]]
    np.testing.assert_allclose(
        champions["churn"].estimator.predict_proba(churn.X["test"])[:, 1], expected_churn,
        atol=1e-12,
    )  # fmt: skip
    np.testing.assert_allclose(
        champions["value"].estimator.predict(value.X["test"]), expected_value, atol=1e-12
    )
    # MLflow's own loaders resolve the alias too (they ask for this flag before any unpickling)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    with registry.connect(trained):
        sk_churn = mlflow.sklearn.load_model("models:/microsub-churn@champion")
        py_value = mlflow.pyfunc.load_model("models:/microsub-value@champion")
    np.testing.assert_allclose(
        sk_churn.predict_proba(churn.X["test"])[:, 1], expected_churn, atol=1e-12
    )
    named = pd.DataFrame(value.X["test"], columns=list(features.FEATURE_SETS["value"].columns))
    np.testing.assert_allclose(np.ravel(py_value.predict(named)), expected_value, atol=1e-12)

    # artifacts sit in the lake's models bucket, as skops files (no pickle)
    folder = Path(trained.lake) / contract.BUCKET_MODELS / registry.ARTIFACT_FOLDER
    assert len(list(folder.rglob("MLmodel"))) == 2
    assert len(list(folder.rglob("model.skops"))) == 2 and not list(folder.rglob("*.pkl"))
    report = ctx.lake.get_json(contract.BUCKET_REPORTS, "benchmark.json")
    assert report["models"]["churn"]["uri"] == "models:/microsub-churn/1"
    assert report["models"]["value"]["run_id"] == champions["value"].info.run_id


def test_a_rerun_on_the_same_data_and_code_registers_nothing(trained) -> None:
    before = registry.versions(trained)
    with registry.connect(trained) as client:
        experiment = client.get_experiment_by_name(registry.EXPERIMENT).experiment_id
        runs = len(client.search_runs([experiment]))
    report = Path(trained.lake) / contract.BUCKET_REPORTS / "benchmark.json"
    stamp = report.stat().st_mtime_ns
    pipeline.run(trained, stages=("train",))
    assert registry.versions(trained) == before
    with registry.connect(trained) as client:
        assert len(client.search_runs([experiment])) == runs == 2
    assert report.stat().st_mtime_ns == stamp


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 4)) * [1.0, 10.0, 0.1, 3.0]
    y = (X @ [1.0, 0.1, -5.0, 0.2] + rng.normal(size=400) > 0).astype(int)
    return X, y


def _card(fingerprint: str, key: str = "logistic_gd") -> registry.ModelCard:
    return registry.ModelCard(
        task="churn", key=key, label="Logistic regression (GD)", implementation="scratch",
        feature_set="churn", features=("a", "b", "c", "d"), target="done",
        metrics={"test": {"roc_auc": 0.81, "brier": float("nan")}, "train": {"roc_auc": 0.83}},
        data={"digest": fingerprint, "rows": 400, "seed": 1}, fingerprint=fingerprint,
    )  # fmt: skip


def _settings(root: Path, **kw) -> Settings:
    return Settings(
        data_dir=root / "data", lake=str(root / "lake"),
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}", **kw,
    )  # fmt: skip


def test_new_data_registers_a_new_version_and_moves_the_alias(tmp_path, xy) -> None:
    X, y = xy
    settings = _settings(tmp_path)
    first = make_pipeline(StandardScaler(), LogisticRegressionGD(alpha=1e-3)).fit(X, y)
    v1 = registry.register(settings, _card("aaaa"), first)
    assert (v1.version, v1.aliases) == ("1", ("champion",))
    assert v1.metrics == {"test_roc_auc": 0.81, "train_roc_auc": 0.83}  # NaN is not logged
    assert registry.register(settings, _card("aaaa"), first).version == "1"  # same fingerprint

    second = BoostedTreesClassifier(max_iter=5, random_state=0).fit(X, y)
    v2 = registry.register(settings, _card("bbbb", "boosted_trees_clf"), second,
                           aliases=("challenger",))  # fmt: skip
    assert (v2.version, v2.aliases) == ("2", ("challenger",))
    assert registry.version(settings, "churn").version == "1"  # champion untouched
    # a re-registration leaves aliases alone when asked to (the train stage's re-runs)
    registry.register(settings, _card("aaaa"), first, aliases=("challenger",), only_if_new=True)
    assert registry.version(settings, "churn", "challenger").version == "2"
    registry.set_alias(settings, "churn", "champion", "2")
    assert registry.register(settings, _card("aaaa"), first, only_if_new=True).version == "1"
    loaded = registry.load(settings, "churn")
    assert loaded.info.version == "2" and loaded.info.aliases == ("challenger", "champion")
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), second.predict_proba(X))
    assert [v.version for v in registry.versions(settings)] == ["1", "2"]


def test_without_a_champion_loading_says_how_to_get_one(trained) -> None:
    assert registry.version(trained, "value", alias="retired") is None
    with pytest.raises(
        ServingError, match=r"no version of 'microsub-value' has the alias 'retired'.*microsub run"
    ):
        registry.load(trained, "value", alias="retired")


def _twice(x):
    return 2 * x


def test_types_outside_the_allow_list_are_refused(tmp_path, xy) -> None:
    X, y = xy
    model = make_pipeline(FunctionTransformer(_twice), LogisticRegression()).fit(X, y)
    with pytest.raises(ServingError, match=r"test_registry._twice.*outside the allow-list"):
        registry.register(_settings(tmp_path), _card("cccc"), model)


def test_one_tracking_store_serves_one_lake(tmp_path, xy) -> None:
    X, y = xy
    model = LogisticRegressionGD().fit(X, y)
    registry.register(_settings(tmp_path), _card("dddd"), model)
    other = _settings(tmp_path).model_copy(update={"lake": str(tmp_path / "other-lake")})
    with pytest.raises(ConfigError, match="one tracking store per lake"):
        registry.register(other, _card("eeee"), model)


def test_a_registry_call_leaves_no_tracking_store_behind_for_the_next_lake(
    tmp_path, xy, monkeypatch
) -> None:
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; Settings honours that variable, so
    # a store chosen for one lake must not become the default of the next one
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MICROSUB_MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    X, y = xy
    registry.register(_settings(tmp_path), _card("ffff"), LogisticRegressionGD().fit(X, y))
    assert "MLFLOW_TRACKING_URI" not in os.environ
    fresh = Settings(data_dir=tmp_path / "elsewhere", lake=str(tmp_path / "elsewhere-lake"))
    assert fresh.tracking_uri == f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"


@pytest.mark.s3
def test_artifacts_on_an_s3_lake_round_trip(tmp_path, s3_lake, s3_settings, s3_server, xy):
    X, y = xy
    settings = s3_settings.model_copy(
        update={"data_dir": tmp_path, "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'm.db'}"}
    )
    assert registry.artifact_root(settings) == "s3://models/mlflow"
    model = BoostedTreesClassifier(max_iter=5, random_state=0).fit(X, y)
    registry.register(settings, _card("ffff", "boosted_trees_clf"), model)
    loaded = registry.load(settings, "churn")
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), model.predict_proba(X))
    keys = [o.object_name for o in s3_server.client().list_objects("models", recursive=True)]
    assert any(k.startswith("mlflow/models/") and k.endswith("/model.skops") for k in keys)
    assert any(k.endswith("/card.json") for k in keys)
