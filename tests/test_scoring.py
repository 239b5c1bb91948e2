"""Scoring: the online path computes the batch path's features and scores on every page of a
held-out sample; `microsub score` publishes the scores dataset through the lake's manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from microsub import cli, contract, pipeline
from microsub.analysis import features
from microsub.models import tasks
from microsub.models.specs import BenchmarkConfig
from microsub.serve import registry, scoring

#: Every feature either model reads.
FEATURES = sorted(set(features.FEATURE_SETS["churn"].columns)
                  | set(features.FEATURE_SETS["value"].columns))  # fmt: skip


@pytest.fixture(scope="module")
def scorer(trained) -> scoring.Scorer:
    return scoring.Scorer.from_models(registry.champions(trained))


@pytest.fixture(scope="module")
def held_out(trained) -> pd.DataFrame:
    """The pages of 150 sessions of the benchmark's test part (never seen in training)."""
    pages = pipeline.read_pages(pipeline.run(trained, stages=())).to_pandas()
    rows = tasks.split_sessions(pages["session_id"].to_numpy(), BenchmarkConfig(), trained.seed)
    test_sessions = np.unique(pages["session_id"].to_numpy()[rows["test"]])
    chosen = np.random.default_rng(0).choice(test_sessions, 150, replace=False)
    return pages[pages["session_id"].isin(chosen)]


def _prefixes(pages: pd.DataFrame):
    """Each page with the records of its session up to it (what a client sends online)."""
    for _, session in pages.sort_values(["session_id", "line_no"]).groupby("session_id"):
        records = session[list(scoring.PAGE_FIELDS)].to_dict("records")
        for t in range(len(records)):
            yield session.iloc[t], records[: t + 1]


def test_batch_and_online_features_are_equal_on_every_page_of_a_held_out_sample(
    held_out, scorer
) -> None:
    batch = features.add_features(held_out).set_index(["session_id", "line_no"])
    online, keys = [], []
    for page, prefix in _prefixes(held_out):
        online.append(scoring.online_features(prefix))
        keys.append((page["session_id"], page["line_no"]))
    assert len(keys) == len(held_out) > 400
    online_frame = pd.concat(online, ignore_index=True)
    expected = batch.loc[keys, FEATURES].reset_index(drop=True)
    # equal, not close: the same code on the same numbers
    pd.testing.assert_frame_equal(
        online_frame[FEATURES].astype("float64"), expected.astype("float64"), check_exact=True
    )
    # and so the scores: the online rows scored together equal the batch scores
    batch_scores = scoring.score_pages(held_out, scorer).set_index(["session_id", "line_no"])
    p_leave, value = scorer.predict(online_frame)
    np.testing.assert_array_equal(p_leave, batch_scores.loc[keys, "p_leave"].to_numpy())
    np.testing.assert_array_equal(value, batch_scores.loc[keys, "expected_value"].to_numpy())


def test_the_online_path_scores_a_session_as_the_batch_does(held_out, scorer) -> None:
    batch = scoring.score_pages(held_out, scorer).set_index(["session_id", "line_no"])
    for n, (page, prefix) in enumerate(_prefixes(held_out)):
        if n >= 60:
            break
        p_leave, value = scoring.score_session(prefix, scorer)
        row = batch.loc[(page["session_id"], page["line_no"])]
        assert p_leave == pytest.approx(row["p_leave"], abs=1e-12)
        assert value == pytest.approx(row["expected_value"], abs=1e-12)
        assert 0.0 <= p_leave <= 1.0


def test_batch_scores_cover_every_page_with_the_model_versions(held_out, scorer) -> None:
    scores = scoring.score_pages(held_out.sample(frac=1.0, random_state=1), scorer)
    assert list(scores.columns) == scoring.SCORES_SCHEMA.names
    assert len(scores) == len(held_out)
    assert scores[["session_id", "line_no"]].equals(
        held_out.sort_values(["session_id", "line_no"])[["session_id", "line_no"]].reset_index(
            drop=True
        )
    )
    assert scores["p_leave"].between(0, 1).all() and (scores["expected_value"] >= -1e-9).all()
    assert set(scores["churn_model_version"]) == {1} == set(scores["value_model_version"])


@pytest.fixture
def env(trained, monkeypatch):
    for name, value in {
        "MICROSUB_DATA_DIR": str(trained.data_dir),
        "MICROSUB_LAKE": trained.lake,
        "MICROSUB_MLFLOW_TRACKING_URI": trained.tracking_uri,
    }.items():
        monkeypatch.setenv(name, value)
    return trained


def test_score_command_publishes_the_scores_dataset(env, scorer, tmp_path) -> None:
    ctx = pipeline.run(env, stages=())
    runner = CliRunner()
    result = runner.invoke(cli.app, ["score", "processed-data"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "scored 20,000 pages with microsub-churn v1, microsub-value v1" in result.output
    manifest = ctx.lake.manifest(contract.BUCKET_PROCESSED, "scores")
    assert manifest.dataset == "scores" and manifest.rows == 20_000
    assert manifest.meta["source"]["digest"] == ctx.data_digest
    assert manifest.meta["models"]["churn"]["uri"] == "models:/microsub-churn/1"
    published = ctx.lake.read_pandas(contract.BUCKET_PROCESSED, "scores")
    expected = scoring.score_pages(pipeline.read_pages(ctx).to_pandas(), scorer)
    pd.testing.assert_frame_equal(published, expected, check_exact=True)
    # scoring again publishes identical content: the manifest is not rewritten
    before = ctx.lake.get_bytes(contract.BUCKET_PROCESSED, "scores/_manifest.json")
    assert runner.invoke(cli.app, ["score", "processed-data"]).exit_code == 0
    assert ctx.lake.get_bytes(contract.BUCKET_PROCESSED, "scores/_manifest.json") == before

    # a Parquet file of pages is scored too, to the prefix --out names
    path = tmp_path / "pages.parquet"
    pq.write_table(pipeline.read_pages(ctx).slice(0, 500), path)
    result = runner.invoke(cli.app, ["score", str(path), "--out", "scores/adhoc"])
    assert result.exit_code == 0, result.output
    assert ctx.lake.manifest(contract.BUCKET_PROCESSED, "scores/adhoc").rows == 500


def test_score_command_says_what_a_dataset_name_must_be(env) -> None:
    result = CliRunner().invoke(cli.app, ["score", "no-such-thing"])
    assert result.exit_code == 1
    assert "neither a file or folder here nor a lake dataset" in result.output
