"""The benchmark: a session-grouped split, metrics that are the evaluation functions' values,
the gates of the best churn model, the hurdle rows, scratch models that agree with scikit-learn.

Runs on the synthetic ``ci`` profile (20k pages, built once per module through the pipeline)
with 30 trees per boosted model and 40 bootstrap replicates, so the module takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import qmd_harness
from microsub import pipeline
from microsub.analysis import features
from microsub.business import gates
from microsub.business.config import load_config
from microsub.config import Settings
from microsub.errors import ContractError
from microsub.models import baselines, benchmark, diagnostics, evaluation, specs, tasks
from microsub.report import tables
from microsub.report.tables import models as tables_models

CONFIG = specs.BenchmarkConfig(max_iter=30, n_boot=40, repeats=1)
SEED = 7


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:

    base: Path = tmp_path_factory.mktemp("bench")
    settings = Settings(profile="ci", data_dir=base / "data", lake=str(base / "lake"))
    ctx = pipeline.run(settings, stages=())
    return pipeline.read_pages(ctx).to_pandas()


@pytest.fixture(scope="module")
def result(pages: pd.DataFrame) -> benchmark.BenchmarkResult:
    return benchmark.run_benchmark(pages, random_state=SEED, config=CONFIG)


@pytest.fixture(scope="module")
def data(pages: pd.DataFrame) -> dict[str, tasks.TaskData]:
    frame = features.add_features(pages)
    rows = tasks.split_sessions(frame["session_id"].to_numpy(), CONFIG, SEED)
    return {task: tasks.task_data(frame, rows, task) for task in specs.TASKS}


# --------------------------------------------------------------------------------------------
# Split and rows
# --------------------------------------------------------------------------------------------
def test_split_parts_cover_every_page_once_and_share_no_session(pages, result) -> None:
    frame = features.add_features(pages)
    rows = tasks.split_sessions(frame["session_id"].to_numpy(), CONFIG, SEED)
    together = np.concatenate(list(rows.values()))
    assert np.array_equal(np.sort(together), np.arange(len(frame)))
    parts = list(result.sessions.values())
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            assert not set(parts[i]) & set(parts[j])
    assert sum(len(p) for p in parts) == pages["session_id"].nunique()
    assert result.split["pages"].sum() == len(pages)
    # shares of sessions as configured (within one session of rounding)
    n = pages["session_id"].nunique()
    sessions = result.split.set_index("part")["sessions"]
    assert abs(sessions["test"] - CONFIG.test_size * n) <= 1
    train = n - sessions["test"]
    assert abs(sessions["validation"] - CONFIG.validation_size * train) <= 1


def test_split_is_seeded(pages) -> None:
    s = pages["session_id"].to_numpy()
    a = tasks.split_sessions(s, CONFIG, 1)
    b = tasks.split_sessions(s, CONFIG, 1)
    c = tasks.split_sessions(s, CONFIG, 2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def _pages(rows: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    """Pages of (session_id, action_page_id, done, truncated), other columns constant."""
    frame = pd.DataFrame(rows, columns=["session_id", "action_page_id", "done", "truncated"])
    n = len(frame)
    frame["line_no"] = np.arange(n)
    for col in ("hour", "state_purchase_power", "n_clicks", "n_carts", "n_favs", "n_purchases",
                "engagement"):  # fmt: skip
        frame[col] = 1
    for col in ("page_value", "reward", "mean_ctr", "mean_cvr", "mean_log_price"):
        frame[col] = 0.5
    return frame


def test_churn_drops_pages_truncated_below_the_cap_and_keeps_the_cap() -> None:
    pages = _pages(
        [(0, 0, 0, 0), (0, 1, 1, 0)]  # ends with done: both known
        + [(1, 0, 0, 0), (1, 1, 0, 1)]  # truncated below the cap: last page unknown
        + [(2, p, 0, int(p == 11)) for p in range(12)]  # truncated at the cap: known, stayed
    )
    frame = features.add_features(pages)
    known = features.known_outcome(frame)
    assert known.sum() == len(pages) - 1
    unknown = frame.loc[~known, ["session_id", "action_page_id"]].to_numpy().tolist()
    assert unknown == [[1, 1]]
    rows = {"fit": np.arange(len(frame))}
    churn = tasks.task_data(frame, rows, "churn")
    value = tasks.task_data(frame, rows, "value")
    assert len(churn.y["fit"]) == len(pages) - 1 and len(value.y["fit"]) == len(pages)
    assert churn.columns == list(features.FEATURE_SETS["churn"].columns)
    assert value.columns == list(features.FEATURE_SETS["value"].columns)


def test_a_part_without_both_classes_is_refused() -> None:
    pages = _pages([(s, p, 0, int(p == 11)) for s in range(40) for p in range(12)])
    with pytest.raises(ContractError, match="single class"):
        benchmark.run_benchmark(pages, random_state=0, config=CONFIG)


# --------------------------------------------------------------------------------------------
# The metrics table
# --------------------------------------------------------------------------------------------
def test_one_table_holds_every_model_of_both_tasks(result) -> None:
    m = result.metrics
    keys = [s.key for s in specs.model_specs(CONFIG, SEED)]
    assert m["key"].tolist() == keys
    assert set(m["implementation"]) == {"scratch", "scikit-learn", "baseline"}
    churn, value = m[m["task"] == "churn"], m[m["task"] == "value"]
    assert churn[list(specs.CHURN_METRICS)].notna().all().all()
    assert value[list(specs.VALUE_METRICS)].notna().all().all()
    assert churn[list(specs.VALUE_METRICS)].isna().all().all()
    assert (m["fit_s"] > 0).all() and (m["predict_s"] > 0).all()
    # the hurdle rows (P(buy) x E[amount | buy])
    hurdle = m[m["kind"] == "hurdle"]
    assert hurdle["key"].tolist() == ["hurdle_linear", "hurdle_trees"]
    assert np.isfinite(hurdle["rmse"]).all()
    assert (result.predictions["hurdle_trees"] >= 0).all()


def test_churn_metrics_are_the_evaluation_functions_on_the_test_sessions(result, data) -> None:
    churn = data["churn"]
    y = churn.y["test"]
    assert np.array_equal(result.y_test["churn"], y)
    for key in result.metrics.loc[result.metrics["task"] == "churn", "key"]:
        row = result.row(key)
        p = result.predictions[key]
        est = result.estimators[key]
        assert np.allclose(p, est.predict_proba(churn.X["test"])[:, 1], atol=1e-12)
        # the threshold is chosen on the validation sessions, not on the test sessions
        threshold = evaluation.best_f1_threshold(
            churn.y["validation"], est.predict_proba(churn.X["validation"])[:, 1]
        )
        assert row["threshold"] == pytest.approx(threshold, abs=1e-12)
        expected = evaluation.classification_metrics(y, p, threshold=threshold)
        for name in (*specs.CHURN_METRICS, "tn", "fp", "fn", "tp"):
            assert row[name] == pytest.approx(expected[name], abs=1e-12), (key, name)
        assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
        assert row["tn"] + row["fp"] + row["fn"] + row["tp"] == len(y)


def test_value_metrics_are_the_evaluation_functions_on_the_test_sessions(result, data) -> None:
    value = data["value"]
    for key in result.metrics.loc[result.metrics["task"] == "value", "key"]:
        row = result.row(key)
        expected = evaluation.regression_metrics(value.y["test"], result.predictions[key])
        for name in specs.VALUE_METRICS:
            assert row[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-12), (key, name)
    # the constant zero has the lowest MAE and no skill: why MAE cannot decide
    zero = result.row("zero")
    assert zero["mae"] == pytest.approx(np.mean(value.y["test"]), rel=1e-12)


def test_confusion_and_calibration_tables_match_the_metrics(result) -> None:
    conf = result.confusion.set_index("key")
    for key in conf.index:
        row = result.row(key)
        assert [conf.loc[key, c] for c in ("tn", "fp", "fn", "tp")] == [
            row[c] for c in ("tn", "fp", "fn", "tp")
        ]
    for key, table in result.calibration.groupby("key"):
        assert table["count"].sum() == len(result.y_test["churn"])
        # the mean prediction over all bins is the mean prediction
        mean = np.average(table["mean_predicted"], weights=table["count"])
        assert mean == pytest.approx(result.predictions[key].mean(), rel=1e-9)


def test_roc_and_pr_curves_span_their_axes(result) -> None:
    for key, roc in result.roc.groupby("key"):
        assert len(roc) <= CONFIG.curve_points
        assert roc["fpr"].iloc[0] == 0 and roc["fpr"].iloc[-1] == 1
        assert roc["tpr"].iloc[-1] == 1 and roc["fpr"].is_monotonic_increasing
        # the trapezoid area of the thinned curve is close to the exact AUC
        area = np.trapezoid(roc["tpr"], roc["fpr"])
        assert area == pytest.approx(result.row(key)["roc_auc"], abs=0.01)
    for _, pr in result.pr.groupby("key"):
        assert pr["recall"].is_monotonic_increasing
        assert pr["recall"].iloc[-1] == 1


# --------------------------------------------------------------------------------------------
# Best model, gates, uncertainty
# --------------------------------------------------------------------------------------------
def test_best_models_follow_the_validation_rule_with_ties(result, data) -> None:
    m = result.metrics
    sel = result.selection
    for task, higher in (("churn", True), ("value", False)):
        rows = sel[sel["task"] == task].set_index("key")
        scores = m.loc[m["task"] == task, "validation"]
        top = result.top(task)
        assert rows.loc[top, "validation"] == (scores.max() if higher else scores.min())
        assert rows["validation"].tolist() == scores.tolist()
        # each difference is the validation score minus the top one, inside its interval
        diff = rows["validation"] - rows.loc[top, "validation"]
        np.testing.assert_allclose(rows["difference"], diff, atol=1e-9)
        assert (rows["ci_low"] <= rows["ci_high"]).all()
        # a tie is an interval containing zero (or an equal score); the chosen model is tied
        # and no tied model is simpler, or as simple and faster
        contains = (rows["ci_low"] <= 0) & (rows["ci_high"] >= 0)
        assert (rows["tied"] == (contains | (rows["difference"].abs() <= 1e-6 * abs(
            rows.loc[top, "validation"])))).all()  # fmt: skip
        chosen = result.best[task]
        assert rows.loc[chosen, "tied"] and rows["chosen"].sum() == 1
        tied = rows[rows["tied"]]
        best = tied.sort_values(["complexity", "fit_s"], kind="stable").index[0]
        assert chosen == best
        assert result.tied(task) == tied.index.tolist()
        assert result.is_tie(task) == (len(tied) > 1)
        if not result.is_tie(task):
            assert chosen == top
    assert m.loc[m["best"], "key"].tolist() == [result.best["churn"], result.best["value"]]
    assert m["tied"].tolist() == sel["tied"].tolist()


def test_selection_text_says_tie_exactly_when_the_rule_found_one(result) -> None:
    for task in ("churn", "value"):
        text = tables.selection_text(result, task)
        assert text.startswith("a tie" if result.is_tie(task) else "a clear choice"), text
        assert tables.label(result, result.top(task)) in text


def test_value_tail_decomposes_the_chosen_model_rmse_by_part(result, data) -> None:
    value = data["value"]
    tail = result.value_tail.set_index("part")
    chosen = result.best["value"]
    est = result.estimators[chosen]
    assert tail.index.tolist() == ["fit", "validation", "test"]
    for part in tail.index:
        y = value.y[part]
        pred = est.predict(value.X[part])
        row = tail.loc[part]
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean((y - pred) ** 2)), rel=1e-9)
        assert row["largest"] == y.max() and row["pages"] == len(y)
        sq = np.sort((y - pred) ** 2)[::-1]
        for k in (1, 10):
            assert row[f"share_top{k}"] == pytest.approx(sq[:k].sum() / sq.sum(), rel=1e-9)
            # the k worst pages and the others make up the whole squared error
            rest = row[f"rmse_without_top{k}"] ** 2 * (len(y) - k)
            assert row[f"share_top{k}"] * sq.sum() + rest == pytest.approx(sq.sum(), rel=1e-9)
    # the validation score of the chosen model is this RMSE
    assert tail.loc["validation", "rmse"] == pytest.approx(result.row(chosen)["validation"])


def test_value_ranking_scores_each_part_of_the_best_hurdle(result, data) -> None:
    value = data["value"]
    y, sold = value.y["test"], value.y["test"] > 0
    rank = result.value_ranking.set_index("score")
    hurdle = result.estimators[rank.loc["p_buy", "key"]]
    assert rank.loc["p_buy", "key"] == result.value_verdict["hurdle_model"].iloc[0]
    p = hurdle.predict_positive_proba(value.X["test"])
    assert rank.loc["p_buy", "sale_auc"] == pytest.approx(skm.roc_auc_score(sold, p), abs=1e-12)
    k = int(np.ceil(CONFIG.top_share * len(y)))
    top = np.argsort(-result.predictions[result.best["value"]], kind="stable")[:k]
    assert rank.loc["chosen", "capture"] == pytest.approx(y[top].sum() / y.sum(), rel=1e-12)
    # the page values themselves rank perfectly
    assert rank.loc["actual", "sale_auc"] == 1 and rank.loc["actual", "amount_rank"] == 1
    assert rank.loc["actual", "capture"] == pytest.approx(
        np.sort(y)[::-1][:k].sum() / y.sum(), rel=1e-12
    )
    assert (rank["capture"] <= rank.loc["actual", "capture"] + 1e-12).all()
    curves = result.value_capture
    assert set(curves["score"]) == {"p_buy", "hurdle", "chosen", "actual"}
    for _, curve in curves.groupby("score"):
        assert curve["share_total"].iloc[0] == 0 and curve["share_total"].iloc[-1] == (
            pytest.approx(1.0))  # fmt: skip


def test_descent_variants_reach_the_same_optimum_at_different_speeds(result) -> None:
    d = result.descent
    steps = d.groupby("variant", sort=False)["iteration"].max()
    assert steps.index.tolist() == list(diagnostics.DESCENT_VARIANTS)
    converged = d.groupby("variant", sort=False)["converged"].all()
    assert converged.iloc[1:].all()  # plain descent may run out of iterations on small data
    final = d.groupby("variant", sort=False)["gap"].last()
    assert (final >= 0).all() and (final[converged] < 1e-6).all()
    first = d.groupby("variant", sort=False)["gap"].first()
    assert (final < first).all()
    # the default (whitened, accelerated) needs the fewest evaluations, plain descent the most
    assert steps.iloc[-1] == steps.min() and steps.iloc[0] == steps.max()
    default = d[d["variant"] == steps.index[-1]]
    assert len(default) == result.estimators["logistic_gd"][-1].n_iter_


def test_gate_rows_are_the_best_churn_model_held_against_the_targets(result) -> None:
    table = gates.benchmark_gates(result).set_index("key")
    assert table.index.tolist() == ["roc_auc", "precision_at_20"]
    best = result.row(result.best["churn"])
    for key in table.index:
        g = load_config().gate(key)
        assert table.loc[key, "value"] == pytest.approx(best[key], abs=1e-12)
        assert bool(table.loc[key, "passed"]) == (best[key] >= g.target)
        assert table.loc[key, "verdict"] == ("pass" if best[key] >= g.target else "fail")
        assert table.loc[key, "ci_low"] <= best[key] <= table.loc[key, "ci_high"]
        assert table.loc[key, "model"] == result.best["churn"]
    shown = tables.display_gates(result)
    assert set(shown["Verdict"]) <= {"PASS", "FAIL"} and len(shown) == 2


def test_uncertainty_intervals_resample_sessions(result) -> None:
    u = result.uncertainty.set_index("metric")
    assert (u["ci_low"] < u["value"]).all() and (u["value"] < u["ci_high"]).all()
    # narrower than the whole [0, 1] range and wider than nothing
    width = u["ci_high"] - u["ci_low"]
    assert ((width > 1e-3) & (width < 0.2)).all()


def test_value_verdict_compares_the_best_hurdle_with_the_best_plain_model(result) -> None:
    v = result.value_verdict.set_index("metric")
    assert v.index.tolist() == list(specs.VALUE_METRICS)
    assert v["hurdle_model"].iloc[0] in {"hurdle_linear", "hurdle_trees"}
    plain = result.row(v["plain_model"].iloc[0])
    assert plain["kind"] in {"linear", "trees"}
    assert v.loc["rmse", "plain"] == pytest.approx(plain["rmse"], rel=1e-12)
    assert (v["ci_low"] <= v["difference"]).all() and (v["difference"] <= v["ci_high"]).all()
    assert "RMSE" in result.verdict
    low, high = v.loc["rmse", "ci_low"], v.loc["rmse", "ci_high"]
    expected = "hurdle" if high < 0 else "plain" if low > 0 else "tie"
    assert result.value_winner() == expected


# --------------------------------------------------------------------------------------------
# Scratch against scikit-learn
# --------------------------------------------------------------------------------------------
def test_scratch_models_agree_with_their_scikit_learn_counterparts(result) -> None:
    a = result.agreement
    pairs = set(zip(a["scratch"], a["reference"], strict=True))
    assert pairs == {
        ("logistic_gd", "logistic_lbfgs"),
        ("boosted_trees_clf", "hist_gb_clf"),
        ("linear_gd", "ridge"),
        ("boosted_trees_reg", "hist_gb_reg"),
    }
    assert a["within"].all(), a[~a["within"]].to_string()
    # and the table's tolerances are the issue's
    auc = a[(a["scratch"] == "boosted_trees_clf") & (a["quantity"] == "test ROC AUC")]
    assert auc["tolerance"].iloc[0] == 0.01
    coef = a[a["quantity"].str.startswith("coefficients")]
    assert (coef["tolerance"] == 1e-3).all()
    # one kind of quantity per column: gaps are dimensionless, >= 0, and decide "within"
    assert (a["gap"] >= 0).all() and (a["within"] == (a["gap"] <= a["tolerance"])).all()
    assert coef["scratch_value"].isna().all()  # a vector has no single value
    m = result.metrics.set_index("key")
    row = auc.iloc[0]
    assert row["gap"] == pytest.approx(
        abs(m.loc["boosted_trees_clf", "roc_auc"] - m.loc["hist_gb_clf", "roc_auc"]), abs=1e-15
    )
    assert row["measure"] == "difference"
    # directly: the two logistic regressions predict the same probabilities
    p, q = result.predictions["logistic_gd"], result.predictions["logistic_lbfgs"]
    assert np.max(np.abs(p - q)) < 1e-3


def test_convergence_curves_descend_to_the_reference_objective(result) -> None:
    conv = result.convergence
    for key in ("logistic_gd", "linear_gd"):
        curve = conv[conv["key"] == key]
        loss = curve["loss"].to_numpy()
        assert len(loss) >= 2 and loss[-1] < loss[0]
        ref = curve["reference"].iloc[0]
        assert loss[-1] == pytest.approx(ref, rel=1e-6)
    for key in ("boosted_trees_clf", "boosted_trees_reg"):
        loss = conv.loc[conv["key"] == key, "loss"].to_numpy()
        assert len(loss) == CONFIG.max_iter and np.all(np.diff(loss) <= 1e-12)


def test_result_serialises_to_plain_json(result) -> None:
    doc = result.to_dict()
    text = json.dumps(doc, allow_nan=False)
    back = json.loads(text)
    assert back["best"] == result.best
    assert len(back["tables"]["metrics"]) == len(result.metrics)
    assert back["tables"]["metrics"][0]["rmse"] is None  # NaN -> null for churn rows
    assert set(back["tables"]) == set(benchmark.BenchmarkResult.TABLES)


def test_importance_lists_every_feature_of_each_task(result) -> None:
    for task, table in result.importance.groupby("task"):
        assert table["feature"].tolist() == result.features[task]
        assert table["trees_gain"].sum() == pytest.approx(1.0, abs=1e-9)
        assert (table["trees_gain"] >= 0).all()
    churn = result.importance[result.importance["task"] == "churn"]
    coef = result.estimators["logistic_gd"][-1].coef_[0]
    assert np.array_equal(churn["linear_coef"].to_numpy(), coef)
    shown = tables.display_importance(result, "churn", top=3)
    assert (
        len(shown) == 3
        and shown["Feature"].iloc[0] == churn.loc[churn["trees_gain"].idxmax(), "feature"]
    )


def test_depth_hazard_is_the_leave_rate_per_depth() -> None:
    X = np.array([[0.0], [0.0], [1.0], [1.0], [1.0], [1.0]])
    y = np.array([1, 0, 1, 1, 1, 0])
    model = baselines.DepthHazardClassifier(column=0).fit(X, y)
    p = model.predict_proba(np.array([[0.0], [1.0], [5.0]]))[:, 1]
    assert p.tolist() == pytest.approx([0.5, 0.75, 4 / 6])  # unseen depth: the base rate
    assert model.predict(np.array([[1.0]])).tolist() == [1]


def test_display_tables_label_models_and_mark_the_chosen(result) -> None:
    churn = tables.display_metrics(result, "churn")
    assert churn["Model"].str.endswith("(chosen)").sum() == 1
    assert churn["Model"].str.endswith("(tie)").sum() == len(result.tied("churn")) - 1
    assert "Test ROC AUC" in churn.columns and "Test RMSE (Yuan)" not in churn.columns
    value = tables.display_metrics(result, "value")
    assert {"Test RMSE (Yuan)", "Test MAE (Yuan)", "Test R²"} <= set(value.columns)
    agreement = tables.display_agreement(result)
    assert agreement.columns.tolist() == [
        "Scratch model",
        "scikit-learn model",
        "Compared",
        "Gap measured as",
        "Gap",
        "Tolerance",
        "Within",
    ]


def _display_tables(result) -> dict[str, pd.DataFrame]:
    return {
        "churn": tables.display_metrics(result, "churn"),
        "value": tables.display_metrics(result, "value"),
        "churn_details": tables.display_churn_details(result),
        "churn_selection": tables.display_selection(result, "churn"),
        "value_selection": tables.display_selection(result, "value"),
        "agreement": tables.display_agreement(result),
        "verdict": tables.display_value_verdict(result),
        "tail": tables.display_value_tail(result),
        "ranking": tables.display_value_ranking(result),
        "split": tables.display_split(result),
        "importance": tables.display_importance(result),
        "gates": tables.display_gates(result),
        "gates_compact": tables.display_gates(result, compact=True),
    }


def test_display_tables_fit_a_page_and_follow_the_rounding_rule(result) -> None:
    for name, table in _display_tables(result).items():
        assert table.shape[1] <= tables_models.MAX_COLUMNS, (name, table.columns.tolist())
        text = table.to_markdown(index=False, disable_numparse=True)
        assert not qmd_harness.SCIENTIFIC.findall(text), (name, text)
        for number in qmd_harness.DECIMAL.findall(text):
            digits = number.replace(",", "").replace(".", "").lstrip("0")
            assert len(digits) <= 3, (name, number)
        assert "nan" not in text.lower().split(), (name, text)
        # a Markdown cell must not hold the column separator
        rows = [line for line in text.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in rows}) == 1, (name, text)
