"""Scratch models against scikit-learn on one split by session: churn and value, in one table.

Pure: a pages frame in, a :class:`BenchmarkResult` out (tables and fitted estimators); the
pipeline stores what it returns.

Protocol, fixed before any test score is looked at
==================================================

1. **Rows.** Every page of the pages table, with the features of :func:`features.add_features`.
   *Churn* uses the pages whose outcome is known: a page truncated below the page cap (end of the
   log, a page-id jump) is dropped, because the log stops before we learn whether the shopper
   asked for the next page; a page truncated *at* the cap counts as "did not leave" (the
   platform, not the shopper, ended the session). This is the convention of
   :mod:`microsub.hypotheses`. *Value* uses every page: a page's reward is known whether or not
   the session goes on.
2. **Split by session.** :func:`evaluation.grouped_split` holds out ``test_size`` of the
   sessions (seeded by ``random_state``); a second grouped split holds out ``validation_size``
   of the training sessions (seed ``random_state + 1``). Models are fitted on the remaining
   *fit* sessions; the *validation* sessions choose the F1 threshold and the best model; the
   *test* sessions are scored once. No session has pages in two parts.
3. **Models.** Churn (target ``done``, feature set ``"churn"``): logistic regression by
   gradient descent (scratch) and by lbfgs (scikit-learn, ``C = 1 / (n alpha)``, the same
   penalty, ``tol = 1e-6`` like the scratch descent), both after a ``StandardScaler``; boosted
   trees (scratch) and ``HistGradientBoostingClassifier`` with the same hyper-parameters; the
   depth hazard (the share of pages at each depth after which the shopper left) as a
   baseline. Value (target
   ``reward``, feature set ``"value"``): least squares by gradient descent (scratch), ``Ridge``
   (same penalty, ``alpha_sklearn = n alpha``), ``LinearRegression`` (no penalty),
   ``SGDRegressor`` (the same objective, stochastic), boosted trees (scratch) and
   ``HistGradientBoostingRegressor``, two hurdle models (linear and boosted parts), and two
   constants (the training mean; zero).
4. **Best model.** Churn: the highest *validation* ROC AUC. Value: the lowest *validation*
   RMSE. A validation score is an estimate, so the top score is not taken as a win when it is
   within the noise: for every model the difference of its validation score to the top one
   gets a paired session-bootstrap interval (:func:`evaluation.paired_difference`); a model
   whose interval contains zero (or whose score equals the top one to one part in a million)
   *ties* with the top model, and among tied models the simplest wins (``ModelSpec.rank``: a
   constant, one linear model, two, one tree ensemble, two), then the fastest to fit
   (:func:`evaluation.select_model`; the ``selection`` table keeps every number).
   The value target is zero on most pages, so the metrics disagree: the MAE is minimised by
   the conditional *median*, which is 0 on almost every page, so a model that always says
   "nothing" wins on MAE while being useless for ranking pages by value; the squared error is
   minimised by the conditional *mean*, the expected Yuan a decision needs, so RMSE (and R²,
   which orders models the same way on one test set) decides. The RMSE of a heavy-tailed
   target is carried by a handful of pages (``value_tail``), which is why the intervals, not
   the point scores, decide.
5. **Gates.** ``roc_auc`` and ``precision_at_20`` of the best churn model on the test sessions
   come with session-bootstrap intervals (``uncertainty``); :mod:`microsub.business.gates` holds
   them against the success gates.

Timing: wall-clock seconds of ``fit`` and of ``predict`` / ``predict_proba`` on the test rows,
the median of up to ``repeats`` runs (fewer once a model has used ``time_budget`` seconds, so
that fast models are timed several times and slow ones once), every model limited to
``threads`` threads (BLAS and OpenMP, through threadpoolctl) so that the comparison measures the
algorithms, not the number of cores, and a shared machine is not oversubscribed.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from microsub.analysis import features
from microsub.analysis.features import known_outcome
from microsub.errors import ContractError
from microsub.models import (
    diagnostics,
    evaluation,
)
from microsub.models.specs import (
    CHURN_METRICS,
    SELECTION_RULES,
    TASKS,
    TIE_RULE,
    VALUE_METRICS,
    BenchmarkConfig,
    ModelSpec,
    model_specs,
)
from microsub.models.tasks import TaskData, split_sessions, task_data
from microsub.plain import plain
from microsub.progress import Progress


@dataclass
class BenchmarkResult:
    """Everything the benchmark measured (tables) and fitted (estimators).

    Tables (pandas):
        split: one row per part: ``part``, ``sessions``, ``pages``, ``churn_pages`` (known
            outcome), ``churn_rate``, ``buying_share`` (pages with a reward > 0).
        metrics: one row per model, both tasks (NaN where a metric does not apply):
            ``task``, ``key``, ``model``, ``implementation``, ``kind``, ``validation``
            (validation AUC or RMSE, the selection score), ``roc_auc``, ``pr_auc``, ``f1``,
            ``threshold``, ``precision_at_20``, ``brier``, ``log_loss``, ``rmse``, ``mae``,
            ``r2`` (test sessions), ``fit_s``, ``predict_s``, ``best`` (the chosen model),
            ``tied`` (ties with the top validation score: see ``selection``).
        train_metrics: the same metrics on the fit rows (for the model cards).
        confusion: churn models at their threshold: ``key``, ``threshold``, ``tn``, ``fp``,
            ``fn``, ``tp``.
        calibration: ``key``, ``bin``, ``mean_predicted``, ``observed``, ``count``.
        roc: ``key``, ``fpr``, ``tpr``; pr: ``key``, ``recall``, ``precision`` (test rows,
            at most ``curve_points`` points per model).
        convergence: ``key``, ``part`` (the fitted part), ``kind`` (``"gradient descent"`` or
            ``"boosting"``), ``iteration``, ``loss`` (training objective), ``reference`` (the
            objective at scikit-learn's solution, NaN for boosting).
        agreement: scratch vs scikit-learn (:func:`diagnostics.agreement`): ``scratch``,
            ``reference``, ``quantity``, ``scratch_value``, ``reference_value``, ``measure``,
            ``gap``, ``tolerance``, ``within``.
        uncertainty: ``metric``, ``value``, ``ci_low``, ``ci_high`` of the best churn model.
        importance: per task and feature: ``trees_gain`` (share of the scratch boosted trees'
            split gain) and ``linear_coef`` (the scratch linear model's weight on the
            standardised feature: log-odds or Yuan per standard deviation).
        value_verdict: the best hurdle and the best plain regression on the test sessions:
            ``metric``, ``hurdle``, ``plain``, ``difference`` (hurdle - plain), ``ci_low``,
            ``ci_high`` (session bootstrap of the difference).
        selection: the selection rule per task and model (:func:`diagnostics.selection`):
            ``task``, ``key``, ``metric``, ``validation``, ``difference`` (score minus the top
            score), ``ci_low``, ``ci_high``, ``complexity``, ``fit_s``, ``top``, ``tied``,
            ``chosen``.
        value_tail: the chosen value model's squared error by part
            (:func:`diagnostics.value_tail`): ``part``, ``pages``, ``largest``, ``rmse``,
            ``share_top1``, ``rmse_without_top1``, ``share_top10``, ``rmse_without_top10``.
        value_ranking, value_capture: what the value models rank on the test pages, part by
            part of the best hurdle model (:func:`diagnostics.value_ranking`).
        descent: the churn logistic regression by four variants of gradient descent
            (:func:`diagnostics.descent_paths`): ``variant``, ``iteration``, ``loss``, ``gap``.

    Attributes:
        config, random_state: the settings of the run.
        best: task -> key of the chosen model (by the selection rule, ties included);
            verdict: one sentence on hurdle vs plain.
        features: task -> feature names; sessions: part -> session ids of that part.
        y_test: task -> test target; predictions: key -> test prediction (probability of
            leaving for churn, Yuan for value).
        estimators: key -> the fitted estimator.
    """

    config: BenchmarkConfig
    random_state: int
    split: pd.DataFrame
    metrics: pd.DataFrame
    train_metrics: pd.DataFrame
    confusion: pd.DataFrame
    calibration: pd.DataFrame
    roc: pd.DataFrame
    pr: pd.DataFrame
    convergence: pd.DataFrame
    agreement: pd.DataFrame
    uncertainty: pd.DataFrame
    importance: pd.DataFrame
    value_verdict: pd.DataFrame
    selection: pd.DataFrame
    value_tail: pd.DataFrame
    value_ranking: pd.DataFrame
    value_capture: pd.DataFrame
    descent: pd.DataFrame
    verdict: str
    best: dict[str, str]
    features: dict[str, list[str]]
    sessions: dict[str, np.ndarray] = field(repr=False)
    y_test: dict[str, np.ndarray] = field(repr=False)
    predictions: dict[str, np.ndarray] = field(repr=False)
    estimators: dict[str, Any] = field(repr=False)

    TABLES = (
        "split", "metrics", "train_metrics", "confusion", "calibration", "roc", "pr",
        "convergence", "agreement", "uncertainty", "importance", "value_verdict", "selection",
        "value_tail", "value_ranking", "value_capture", "descent",
    )  # fmt: skip

    def row(self, key: str, *, train: bool = False) -> dict[str, Any]:
        """The metrics row of model ``key`` (test, or the fit rows with ``train``) as a dict."""
        table = self.train_metrics if train else self.metrics
        rows = table[table["key"] == key]
        if rows.empty:
            raise KeyError(f"no model {key!r}; models: {table['key'].tolist()}")
        return rows.iloc[0].to_dict()

    def tied(self, task: str) -> list[str]:
        """Keys of the models of ``task`` that tie with the top validation score (the top model
        included), in listing order."""
        t = self.selection[self.selection["task"] == task]
        return t.loc[t["tied"], "key"].tolist()

    def is_tie(self, task: str) -> bool:
        """True when the choice of ``task``'s model was a tie: another model's validation score
        is within the uncertainty of the top one, so the tie-breaker chose."""
        return len(self.tied(task)) > 1

    def top(self, task: str) -> str:
        """Key of the model of ``task`` with the best validation score (before ties)."""
        t = self.selection[self.selection["task"] == task]
        return str(t.loc[t["top"], "key"].iloc[0])

    def value_winner(self) -> str:
        """``"hurdle"`` or ``"plain"`` when the session-bootstrap interval of the test RMSE
        difference (hurdle - plain) excludes zero on that model's side, else ``"tie"``."""
        rmse = self.value_verdict.set_index("metric").loc["rmse"]
        if rmse["ci_high"] < 0:
            return "hurdle"
        return "plain" if rmse["ci_low"] > 0 else "tie"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe content (every table as records, NaN as None; no estimators)."""
        return {
            "config": asdict(self.config),
            "random_state": self.random_state,
            "selection_rules": dict(SELECTION_RULES),
            "tie_rule": TIE_RULE,
            "best": dict(self.best),
            "ties": {task: self.tied(task) for task in self.best},
            "verdict": self.verdict,
            "features": {k: list(v) for k, v in self.features.items()},
            "tables": {name: plain(getattr(self, name)) for name in self.TABLES},
        }


def _timed(func: Callable[[], Any], repeats: int, budget: float) -> tuple[Any, float]:
    """``func()``'s last result and the median wall-clock seconds of up to ``repeats`` calls,
    stopping once the calls have used ``budget`` seconds (at least one call)."""
    times, out = [], None
    while len(times) < max(1, repeats) and (not times or sum(times) < budget):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def _score(estimator: Any, task: str, X: np.ndarray) -> np.ndarray:
    return estimator.predict_proba(X)[:, 1] if task == "churn" else estimator.predict(X)


@dataclass(frozen=True)
class _Fitted:
    """One model of the benchmark, fitted and scored."""

    estimator: Any
    prediction: np.ndarray  # on the test rows
    validation: np.ndarray  # on the validation rows
    fit: np.ndarray  # on the fit rows
    test_row: dict[str, Any]
    train_row: dict[str, Any]


def _fit_and_score(spec: ModelSpec, d: TaskData, config: BenchmarkConfig) -> _Fitted:
    """Fit ``spec``'s model on the fit rows (timed), choose the churn threshold on the
    validation rows, and score it on the test and fit rows."""
    est = spec.build(len(d.y["fit"]))
    est, fit_s = _timed(lambda: est.fit(d.X["fit"], d.y["fit"]), config.repeats, config.time_budget)
    p_test, predict_s = _timed(
        lambda: _score(est, spec.task, d.X["test"]), config.repeats, config.time_budget
    )
    p_val = _score(est, spec.task, d.X["validation"])
    p_fit = _score(est, spec.task, d.X["fit"])
    base = {"task": spec.task, "key": spec.key, "model": spec.label,
            "implementation": spec.implementation, "kind": spec.kind}  # fmt: skip
    if spec.task == "churn":
        threshold = evaluation.best_f1_threshold(d.y["validation"], p_val)
        selection = float(skm.roc_auc_score(d.y["validation"], p_val))
        test_m = evaluation.classification_metrics(
            d.y["test"], p_test, threshold=threshold, top_share=config.top_share
        )
        train_m = evaluation.classification_metrics(
            d.y["fit"], p_fit, threshold=threshold, top_share=config.top_share
        )
    else:
        selection = evaluation.regression_metrics(d.y["validation"], p_val)["rmse"]
        test_m = evaluation.regression_metrics(d.y["test"], p_test)
        train_m = evaluation.regression_metrics(d.y["fit"], p_fit)
    timing = {"fit_s": fit_s, "predict_s": predict_s}
    return _Fitted(
        estimator=est,
        prediction=p_test,
        validation=p_val,
        fit=p_fit,
        test_row={**base, "validation": selection, **test_m, **timing},
        train_row={**base, "validation": selection, **train_m, **timing},
    )


def _fit_all(
    specs: list[ModelSpec],
    data: dict[str, TaskData],
    config: BenchmarkConfig,
    progress: Progress | None,
) -> dict[str, _Fitted]:
    """Every spec fitted and scored, by key, in listing order (one BLAS thread each)."""
    out = {}
    with threadpool_limits(config.threads), warnings.catch_warnings():
        # reported through n_iter_ and the convergence curves, not as noise in the book
        warnings.simplefilter("ignore", ConvergenceWarning)
        for spec in specs:
            out[spec.key] = _fit_and_score(spec, data[spec.task], config)
            if progress is not None:
                progress(1)
    return out


def _mark_chosen(
    selection: pd.DataFrame, metrics: pd.DataFrame, train_metrics: pd.DataFrame
) -> dict[str, str]:
    """The chosen model of each task (task -> key); marks ``best`` and ``tied`` on both
    metrics tables, in place."""
    best = {task: str(selection.loc[(selection["task"] == task) & selection["chosen"], "key"]
                      .iloc[0]) for task in TASKS}  # fmt: skip
    tied = selection.set_index("key")["tied"]
    for table in (metrics, train_metrics):
        table["best"] = table["key"].isin(best.values())
        table["tied"] = table["key"].map(tied).astype(bool)
    return best


def run_benchmark(
    pages: pd.DataFrame,
    *,
    random_state: int = 0,
    config: BenchmarkConfig | None = None,
    progress: Progress | None = None,
) -> BenchmarkResult:
    """Fit and score every model of :func:`model_specs` on one split by session.

    Args:
        pages: the pages table (contract columns; :func:`features.add_features` is applied).
        random_state: seed of the split and of the models (``Settings.seed``).
        config: settings of the run (default :class:`BenchmarkConfig`).
        progress: called with 1 after every model is fitted and scored.

    Returns:
        A :class:`BenchmarkResult`.

    Raises:
        ContractError: a part of the split has a single churn class or too few pages.
    """

    config = config or BenchmarkConfig()
    frame = features.add_features(pages)
    rows = split_sessions(frame["session_id"].to_numpy(), config, random_state)
    data = {task: task_data(frame, rows, task) for task in TASKS}
    _check_data(data)
    specs = model_specs(config, random_state)

    fitted = _fit_all(specs, data, config, progress)
    estimators = {k: f.estimator for k, f in fitted.items()}
    predictions = {k: f.prediction for k, f in fitted.items()}
    validation = {k: f.validation for k, f in fitted.items()}
    fit = {k: f.fit for k, f in fitted.items()}
    metrics = _metrics_table([f.test_row for f in fitted.values()])
    train_metrics = _metrics_table([f.train_row for f in fitted.values()])
    selection = diagnostics.selection(metrics, data, validation, specs, config, random_state)
    best = _mark_chosen(selection, metrics, train_metrics)

    churn, value = data["churn"], data["value"]
    uncertainty = diagnostics.uncertainty(churn, predictions[best["churn"]], best["churn"], config,
                               random_state)  # fmt: skip
    value_verdict, verdict = diagnostics.value_verdict(
        metrics, value, predictions, config, random_state
    )
    chosen = best["value"]
    hurdle_key = str(value_verdict["hurdle_model"].iloc[0])
    value_ranking, value_capture = diagnostics.value_ranking(
        value, predictions, estimators[hurdle_key], hurdle_key, chosen, config
    )
    return BenchmarkResult(
        config=config,
        random_state=random_state,
        split=_split_table(frame, rows),
        metrics=metrics,
        train_metrics=train_metrics,
        confusion=diagnostics.confusion(metrics),
        calibration=diagnostics.calibration(churn, predictions, specs, config),
        roc=diagnostics.curves(churn, predictions, specs, config, "roc"),
        pr=diagnostics.curves(churn, predictions, specs, config, "pr"),
        convergence=diagnostics.convergence(estimators, data, config),
        agreement=diagnostics.agreement(metrics, estimators, data, specs, config),
        uncertainty=uncertainty,
        importance=diagnostics.importance(estimators, data),
        value_verdict=value_verdict,
        selection=selection,
        value_tail=diagnostics.value_tail(
            value,
            {"fit": fit[chosen], "validation": validation[chosen], "test": predictions[chosen]},
            chosen,
        ),
        value_ranking=value_ranking,
        value_capture=value_capture,
        descent=diagnostics.descent_paths(churn, estimators["logistic_lbfgs"], config),
        verdict=verdict,
        best=best,
        features={task: d.columns for task, d in data.items()},
        sessions={
            part: np.unique(frame["session_id"].to_numpy()[idx]) for part, idx in rows.items()
        },  # fmt: skip
        y_test={task: d.y["test"] for task, d in data.items()},
        predictions=predictions,
        estimators=estimators,
    )


def _check_data(data: dict[str, TaskData]) -> None:
    for part, y in data["churn"].y.items():
        if len(np.unique(y)) < 2:
            raise ContractError(
                f"the {part} part holds {len(y)} churn pages of a single class; the benchmark "
                "needs pages after which users left and pages after which they stayed in every "
                "part. Use more sessions (a larger profile)."
            )
    if (data["value"].y["fit"] > 0).sum() < 2:
        raise ContractError(
            "fewer than 2 fit pages with a purchase: the hurdle model cannot fit the amount. "
            "Use more sessions (a larger profile)."
        )


def _metrics_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["task", "key", "model", "implementation", "kind", "validation",
               *CHURN_METRICS, "base_rate", "tn", "fp", "fn", "tp", *VALUE_METRICS,
               "fit_s", "predict_s"]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=columns)


def _split_table(frame: pd.DataFrame, rows: dict[str, np.ndarray]) -> pd.DataFrame:
    known = known_outcome(frame)
    out = []
    for part, idx in rows.items():
        sub = frame.iloc[idx]
        k = known[idx]
        out.append({
            "part": part,
            "sessions": int(sub["session_id"].nunique()),
            "pages": len(idx),
            "churn_pages": int(k.sum()),
            "churn_rate": float(sub["done"].to_numpy()[k].mean()),
            "buying_share": float((sub["reward"].to_numpy() > 0).mean()),
        })  # fmt: skip
    return pd.DataFrame(out)
