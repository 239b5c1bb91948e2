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
   RMSE. Scores equal to six significant digits are ties, won by the model listed first
   (scratch before scikit-learn: a scratch model that matches its reference is preferred).
   The value target is zero on most pages, so the metrics disagree: the MAE is minimised by
   the conditional *median*, which is 0 on almost every page, so a model that always says
   "nothing" wins on MAE while being useless for ranking pages by value; the squared error is
   minimised by the conditional *mean*, the expected Yuan a decision needs, so RMSE (and R²,
   which orders models the same way on one test set) decides.
5. **Gates.** ``roc_auc`` and ``precision_at_20`` of the best churn model on the test sessions
   are held against :data:`microsub.business.GATES`, with session-bootstrap intervals.

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
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from microsub import business, evaluation, features
from microsub.contract import MAX_PAGE_ID
from microsub.errors import ContractError
from microsub.features import known_outcome
from microsub.models import (
    BoostedTreesClassifier,
    BoostedTreesRegressor,
    HurdleRegressor,
    LinearRegressionGD,
    LogisticRegressionGD,
)
from microsub.models.losses import log_loss_grad, squared_loss_grad

Progress = Callable[[int], None]

#: The two tasks: feature set and target column.
TASKS = {"churn": ("churn", "done"), "value": ("value", "reward")}
#: Metric columns of the two tasks in :attr:`BenchmarkResult.metrics`.
CHURN_METRICS = ("roc_auc", "pr_auc", "f1", "threshold", "precision_at_20", "brier", "log_loss")
VALUE_METRICS = ("rmse", "mae", "r2")
#: How the best model of each task is chosen (stated before any test score is seen).
SELECTION_RULES = {
    "churn": "highest ROC AUC on the validation sessions",
    "value": "lowest RMSE on the validation sessions",
}
#: Gates this benchmark measures (keys of :data:`microsub.business.GATES`).
GATE_KEYS = ("roc_auc", "precision_at_20")
#: lbfgs tolerance: the same number as the scratch descent's default ``tol``. At scikit-learn's
#: default (1e-4) lbfgs stops about 1e-3 (relative) away from the optimum's coefficients on
#: the churn features, so it could not serve as the reference of the agreement table.
LBFGS_TOL = 1e-6
#: Tolerances of the agreement between a scratch model and its scikit-learn counterpart
#: (issue #5: coefficients within 1e-3 relative; trees within 0.01 AUC and 5 % RMSE).
TOLERANCES = {
    "coef_rel": 1e-3,
    "objective_rel": 1e-6,
    "auc_trees": 0.01,
    "auc_linear": 1e-3,
    "rmse_rel_trees": 0.05,
    "rmse_rel_linear": 1e-3,
}


@dataclass(frozen=True)
class BenchmarkConfig:
    """Settings of a benchmark run (every model of a family gets the same ones).

    Attributes:
        test_size: share of sessions held out for the test.
        validation_size: share of the training sessions held out for the threshold and the
            choice of the best model.
        top_share: share of pages targeted by ``precision_at_20``.
        alpha: ridge penalty of the linear models on the mean-loss scale (scikit-learn:
            ``C = 1 / (n alpha)``, ``Ridge(alpha = n alpha)``, ``SGDRegressor(alpha=alpha)``).
        learning_rate, max_iter, max_leaf_nodes, min_samples_leaf, l2_regularization,
            max_bins: hyper-parameters of both boosted-tree implementations (scikit-learn's
            defaults; no early stopping, so both grow exactly ``max_iter`` trees).
        n_boot: session-bootstrap replicates of the intervals; level: their coverage.
        repeats: most timed runs of each fit and prediction (the median is reported).
        time_budget: seconds after which a model's fit (or prediction) is not repeated.
        curve_points: largest number of points kept per ROC / PR curve.
        calibration_bins: quantile bins of the calibration tables.
        threads: BLAS / OpenMP threads every model may use while it is fitted and timed.
    """

    test_size: float = 0.25
    validation_size: float = 0.2
    top_share: float = 0.2
    alpha: float = 1e-4
    learning_rate: float = 0.1
    max_iter: int = 100
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    max_bins: int = 255
    n_boot: int = 200
    level: float = 0.95
    repeats: int = 5
    time_budget: float = 1.0
    curve_points: int = 200
    calibration_bins: int = 10
    threads: int = 1

    def boosting(self) -> dict[str, Any]:
        """Hyper-parameters shared by the scratch and scikit-learn boosted trees."""
        return {
            "learning_rate": self.learning_rate,
            "max_iter": self.max_iter,
            "max_leaf_nodes": self.max_leaf_nodes,
            "min_samples_leaf": self.min_samples_leaf,
            "l2_regularization": self.l2_regularization,
            "max_bins": self.max_bins,
            "early_stopping": False,
        }


# --------------------------------------------------------------------------------------------
# Baseline: the depth hazard
# --------------------------------------------------------------------------------------------
class DepthHazardClassifier(ClassifierMixin, BaseEstimator):
    """P(leave | depth): the share of training pages at each depth after which the user left.

    The fatigue curve of chapter 03 as a classifier, the baseline a churn model has to beat.

    Args:
        column: index of the depth column (``action_page_id``) in ``X``.
    """

    def __init__(self, column: int = 0) -> None:
        self.column = column

    def fit(self, X: Any, y: Any) -> DepthHazardClassifier:
        """Rates per depth from ``X`` ``(n, d)`` and 0/1 ``y`` ``(n,)``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        self.classes_ = np.array([0, 1])
        depth = np.clip(X[:, self.column].round().astype(int), 0, MAX_PAGE_ID)
        n = np.bincount(depth, minlength=MAX_PAGE_ID + 1)
        k = np.bincount(depth, weights=y.astype(float), minlength=MAX_PAGE_ID + 1)
        prior = float(np.mean(y))
        self.rate_ = np.where(n > 0, k / np.maximum(n, 1), prior)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, 2)`` probabilities of staying and leaving."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        depth = np.clip(X[:, self.column].round().astype(int), 0, MAX_PAGE_ID)
        p = self.rate_[depth]
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """1 where the hazard is at least one half."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


# --------------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """One row of the benchmark.

    Attributes:
        key: unique name (also the registry name's suffix).
        task: ``"churn"`` or ``"value"``.
        label: name for tables.
        implementation: ``"scratch"``, ``"scikit-learn"`` or ``"baseline"``.
        kind: ``"linear"``, ``"trees"``, ``"hurdle"`` or ``"constant"``.
        counterpart: key of the scikit-learn model a scratch model is checked against.
        build: ``n_fit -> unfitted estimator`` (the penalty of scikit-learn depends on n).
    """

    key: str
    task: str
    label: str
    implementation: str
    kind: str
    counterpart: str | None
    build: Callable[[int], Any]


def model_specs(config: BenchmarkConfig, random_state: int) -> list[ModelSpec]:
    """Every model of the benchmark, churn first (see the module docstring)."""
    a = config.alpha
    trees = config.boosting()
    depth_col = features.FEATURE_SETS["churn"].columns.index("action_page_id")

    def scaled(est: Any) -> Pipeline:
        return make_pipeline(StandardScaler(), est)

    def hurdle_linear(_: int) -> HurdleRegressor:
        return HurdleRegressor(
            classifier=scaled(LogisticRegressionGD(alpha=a)),
            regressor=scaled(LinearRegressionGD(alpha=a)),
        )

    def hurdle_trees(_: int) -> HurdleRegressor:
        return HurdleRegressor(
            classifier=BoostedTreesClassifier(**trees, random_state=random_state),
            regressor=BoostedTreesRegressor(**trees, random_state=random_state),
        )

    specs = [
        ModelSpec("logistic_gd", "churn", "Logistic regression (GD)", "scratch", "linear",
                  "logistic_lbfgs", lambda n: scaled(LogisticRegressionGD(alpha=a))),
        ModelSpec("logistic_lbfgs", "churn", "LogisticRegression (lbfgs)", "scikit-learn",
                  "linear", None,
                  lambda n: scaled(LogisticRegression(C=1.0 / (n * a), solver="lbfgs",
                                                     tol=LBFGS_TOL, max_iter=1000))),
        ModelSpec("boosted_trees_clf", "churn", "Boosted trees", "scratch", "trees",
                  "hist_gb_clf",
                  lambda n: BoostedTreesClassifier(**trees, random_state=random_state)),
        ModelSpec("hist_gb_clf", "churn", "HistGradientBoostingClassifier", "scikit-learn",
                  "trees", None,
                  lambda n: HistGradientBoostingClassifier(**trees, random_state=random_state)),
        ModelSpec("depth_hazard", "churn", "Hazard by depth", "baseline", "constant", None,
                  lambda n: DepthHazardClassifier(column=depth_col)),
        ModelSpec("linear_gd", "value", "Linear regression (GD)", "scratch", "linear", "ridge",
                  lambda n: scaled(LinearRegressionGD(alpha=a))),
        ModelSpec("ridge", "value", "Ridge", "scikit-learn", "linear", None,
                  lambda n: scaled(Ridge(alpha=n * a))),
        ModelSpec("linear_lstsq", "value", "LinearRegression", "scikit-learn", "linear", None,
                  lambda n: scaled(LinearRegression())),
        ModelSpec("sgd", "value", "SGDRegressor", "scikit-learn", "linear", None,
                  lambda n: scaled(SGDRegressor(alpha=a, random_state=random_state))),
        ModelSpec("boosted_trees_reg", "value", "Boosted trees", "scratch", "trees",
                  "hist_gb_reg",
                  lambda n: BoostedTreesRegressor(**trees, random_state=random_state)),
        ModelSpec("hist_gb_reg", "value", "HistGradientBoostingRegressor", "scikit-learn",
                  "trees", None,
                  lambda n: HistGradientBoostingRegressor(**trees, random_state=random_state)),
        ModelSpec("hurdle_linear", "value", "Hurdle, linear parts (GD)", "scratch", "hurdle",
                  None, hurdle_linear),
        ModelSpec("hurdle_trees", "value", "Hurdle, boosted-tree parts", "scratch", "hurdle",
                  None, hurdle_trees),
        ModelSpec("mean", "value", "Training mean", "baseline", "constant", None,
                  lambda n: DummyRegressor(strategy="mean")),
        ModelSpec("zero", "value", "Zero", "baseline", "constant", None,
                  lambda n: DummyRegressor(strategy="constant", constant=0.0)),
    ]  # fmt: skip
    return specs


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskData:
    """Design matrices of one task on the three parts of the split.

    Attributes:
        X: part (``"fit"``, ``"validation"``, ``"test"``) -> ``(n_part, d)`` float64 features.
        y: part -> ``(n_part,)`` target.
        sessions: part -> ``(n_part,)`` session id of each row.
        columns: feature names, in the order of the columns of ``X``.
    """

    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    sessions: dict[str, np.ndarray]
    columns: list[str]


def split_sessions(
    sessions: np.ndarray, config: BenchmarkConfig, random_state: int
) -> dict[str, np.ndarray]:
    """Row indices of the fit, validation and test parts, grouped by session.

    Args:
        sessions: ``(n,)`` session id of every page.

    Returns:
        part -> sorted int64 row indices; the three parts cover every row once, and no session
        has rows in two parts.
    """
    outer = evaluation.grouped_split(
        sessions, test_size=config.test_size, random_state=random_state
    )
    inner = evaluation.grouped_split(
        sessions[outer.train], test_size=config.validation_size, random_state=random_state + 1
    )
    return {
        "fit": outer.train[inner.train],
        "validation": outer.train[inner.test],
        "test": outer.test,
    }


def task_data(frame: pd.DataFrame, rows: dict[str, np.ndarray], task: str) -> TaskData:
    """The design matrices of ``task`` on the parts ``rows`` of ``frame``
    (:func:`features.add_features` output); churn keeps the pages with a known outcome."""
    set_name, target = TASKS[task]
    X_all = features.feature_matrix(frame, set_name).to_numpy()
    y_all = frame[target].to_numpy().astype(np.float64)
    keep = known_outcome(frame) if task == "churn" else np.ones(len(frame), dtype=bool)
    sessions = frame["session_id"].to_numpy()
    X, y, s = {}, {}, {}
    for part, idx in rows.items():
        idx = idx[keep[idx]]
        X[part], s[part] = np.ascontiguousarray(X_all[idx]), sessions[idx]
        y[part] = y_all[idx].astype(np.int64) if task == "churn" else y_all[idx]
    return TaskData(X=X, y=y, sessions=s, columns=list(features.FEATURE_SETS[set_name].columns))


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------
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
            ``r2`` (test sessions), ``fit_s``, ``predict_s``, ``best``.
        train_metrics: the same metrics on the fit rows (for the model cards).
        confusion: churn models at their threshold: ``key``, ``threshold``, ``tn``, ``fp``,
            ``fn``, ``tp``.
        calibration: ``key``, ``bin``, ``mean_predicted``, ``observed``, ``count``.
        roc: ``key``, ``fpr``, ``tpr``; pr: ``key``, ``recall``, ``precision`` (test rows,
            at most ``curve_points`` points per model).
        convergence: ``key``, ``part`` (the fitted part), ``kind`` (``"gradient descent"`` or
            ``"boosting"``), ``iteration``, ``loss`` (training objective), ``reference`` (the
            objective at scikit-learn's solution, NaN for boosting).
        agreement: scratch vs scikit-learn: ``scratch``, ``reference``, ``quantity``,
            ``scratch_value``, ``reference_value``, ``difference``, ``tolerance``, ``within``.
        uncertainty: ``metric``, ``value``, ``ci_low``, ``ci_high`` of the best churn model.
        importance: per task and feature: ``trees_gain`` (share of the scratch boosted trees'
            split gain) and ``linear_coef`` (the scratch linear model's weight on the
            standardised feature: log-odds or Yuan per standard deviation).
        gates: :func:`business.evaluate_gates` rows plus ``model``, ``ci_low``, ``ci_high``.
        value_verdict: the best hurdle and the best plain regression on the test sessions:
            ``metric``, ``hurdle``, ``plain``, ``difference`` (hurdle - plain), ``ci_low``,
            ``ci_high`` (session bootstrap of the difference).

    Attributes:
        config, random_state: the settings of the run.
        best: task -> key of the chosen model; verdict: one sentence on hurdle vs plain.
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
    gates: pd.DataFrame
    value_verdict: pd.DataFrame
    verdict: str
    best: dict[str, str]
    features: dict[str, list[str]]
    sessions: dict[str, np.ndarray] = field(repr=False)
    y_test: dict[str, np.ndarray] = field(repr=False)
    predictions: dict[str, np.ndarray] = field(repr=False)
    estimators: dict[str, Any] = field(repr=False)

    TABLES = (
        "split", "metrics", "train_metrics", "confusion", "calibration", "roc", "pr",
        "convergence", "agreement", "uncertainty", "importance", "gates", "value_verdict",
    )  # fmt: skip

    def row(self, key: str, *, train: bool = False) -> dict[str, Any]:
        """The metrics row of model ``key`` (test, or the fit rows with ``train``) as a dict."""
        table = self.train_metrics if train else self.metrics
        rows = table[table["key"] == key]
        if rows.empty:
            raise KeyError(f"no model {key!r}; models: {table['key'].tolist()}")
        return rows.iloc[0].to_dict()

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
            "best": dict(self.best),
            "verdict": self.verdict,
            "features": {k: list(v) for k, v in self.features.items()},
            "tables": {name: records(getattr(self, name)) for name in self.TABLES},
        }


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame`` as a list of dicts of plain Python values, NaN as None."""
    out = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in out]


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------
def _timed(func: Callable[[], Any], repeats: int, budget: float) -> tuple[Any, float]:
    """``func()``'s last result and the median wall-clock seconds of up to ``repeats`` calls,
    stopping once the calls have used ``budget`` seconds (at least one call)."""
    times, out = [], None
    while len(times) < max(1, repeats) and (not times or sum(times) < budget):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def _thin(n: int, points: int) -> np.ndarray:
    """At most ``points`` indices spread evenly over ``0 .. n - 1``, both ends kept."""
    return np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int))


def _score(estimator: Any, task: str, X: np.ndarray) -> np.ndarray:
    return estimator.predict_proba(X)[:, 1] if task == "churn" else estimator.predict(X)


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
    from threadpoolctl import threadpool_limits

    config = config or BenchmarkConfig()
    frame = features.add_features(pages)
    rows = split_sessions(frame["session_id"].to_numpy(), config, random_state)
    data = {task: task_data(frame, rows, task) for task in TASKS}
    _check_data(data)
    specs = model_specs(config, random_state)

    test_rows, train_rows, estimators, predictions = [], [], {}, {}
    with threadpool_limits(config.threads), warnings.catch_warnings():
        # reported through n_iter_ and the convergence curves, not as noise in the book
        warnings.simplefilter("ignore", ConvergenceWarning)
        for spec in specs:
            d = data[spec.task]
            est = spec.build(len(d.y["fit"]))
            est, fit_s = _timed(lambda est=est, d=d: est.fit(d.X["fit"], d.y["fit"]),
                                config.repeats, config.time_budget)  # fmt: skip
            p_test, predict_s = _timed(
                lambda est=est, d=d, t=spec.task: _score(est, t, d.X["test"]),
                config.repeats, config.time_budget,
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
            test_rows.append({**base, "validation": selection, **test_m, **timing})
            train_rows.append({**base, "validation": selection, **train_m, **timing})
            estimators[spec.key], predictions[spec.key] = est, p_test
            if progress is not None:
                progress(1)

    metrics = _metrics_table(test_rows)
    train_metrics = _metrics_table(train_rows)
    best = {
        "churn": _choose(metrics, "churn", higher=True),
        "value": _choose(metrics, "value", higher=False),
    }
    for table in (metrics, train_metrics):
        table["best"] = table["key"].isin(best.values())

    churn, value = data["churn"], data["value"]
    uncertainty = _uncertainty(churn, predictions[best["churn"]], best["churn"], config,
                               random_state)  # fmt: skip
    gates = _gates(metrics, best["churn"], uncertainty)
    value_verdict, verdict = _value_verdict(metrics, value, predictions, config, random_state)
    return BenchmarkResult(
        config=config,
        random_state=random_state,
        split=_split_table(frame, rows),
        metrics=metrics,
        train_metrics=train_metrics,
        confusion=_confusion(metrics),
        calibration=_calibration(churn, predictions, specs, config),
        roc=_curves(churn, predictions, specs, config, "roc"),
        pr=_curves(churn, predictions, specs, config, "pr"),
        convergence=_convergence(estimators, data, config),
        agreement=_agreement(metrics, estimators, data, specs, config),
        uncertainty=uncertainty,
        importance=_importance(estimators, data),
        gates=gates,
        value_verdict=value_verdict,
        verdict=verdict,
        best=best,
        features={task: d.columns for task, d in data.items()},
        sessions={part: np.unique(frame["session_id"].to_numpy()[idx])
                  for part, idx in rows.items()},  # fmt: skip
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


def _choose(metrics: pd.DataFrame, task: str, *, higher: bool) -> str:
    """Key of the best validation score of ``task``'s rows of ``metrics``."""
    return _best_key(metrics[metrics["task"] == task], higher=higher)


def _best_key(rows: pd.DataFrame, *, higher: bool) -> str:
    """Key of the best validation score among ``rows``; scores equal to 6 significant digits
    are ties, won by the row listed first (scratch before scikit-learn)."""
    scores = np.array([float(f"{v:.6g}") for v in rows["validation"]])
    i = int(np.nanargmax(scores) if higher else np.nanargmin(scores))
    return str(rows["key"].iloc[i])


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


def _confusion(metrics: pd.DataFrame) -> pd.DataFrame:
    churn = metrics[metrics["task"] == "churn"]
    out = churn[["key", "model", "threshold", "tn", "fp", "fn", "tp"]].copy()
    for c in ("tn", "fp", "fn", "tp"):
        out[c] = out[c].astype(int)
    return out.reset_index(drop=True)


def _calibration(
    churn: TaskData, predictions: dict[str, np.ndarray], specs: list[ModelSpec],
    config: BenchmarkConfig,
) -> pd.DataFrame:  # fmt: skip
    frames = []
    for spec in specs:
        if spec.task != "churn":
            continue
        table = evaluation.calibration_table(
            churn.y["test"], predictions[spec.key], n_bins=config.calibration_bins
        )
        table.insert(0, "bin", np.arange(len(table)))
        table.insert(0, "key", spec.key)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _curves(
    churn: TaskData, predictions: dict[str, np.ndarray], specs: list[ModelSpec],
    config: BenchmarkConfig, which: str,
) -> pd.DataFrame:  # fmt: skip
    frames = []
    y = churn.y["test"]
    for spec in specs:
        if spec.task != "churn":
            continue
        p = predictions[spec.key]
        if which == "roc":
            a, b, _ = skm.roc_curve(y, p)
            names = ("fpr", "tpr")
        else:
            precision, recall, _ = skm.precision_recall_curve(y, p)
            a, b = recall[::-1], precision[::-1]  # recall increasing, from 0
            names = ("recall", "precision")
        keep = _thin(len(a), config.curve_points)
        frames.append(pd.DataFrame({"key": spec.key, names[0]: a[keep], names[1]: b[keep]}))
    return pd.concat(frames, ignore_index=True)


def _final(est: Any) -> Any:
    return est[-1] if isinstance(est, Pipeline) else est


def _convergence(
    estimators: dict[str, Any], data: dict[str, TaskData], config: BenchmarkConfig
) -> pd.DataFrame:
    """Training objective per iteration of the descent and boosting fits (see BenchmarkResult)."""
    frames = []
    refs = {
        "logistic_gd": _reference_objective(estimators["logistic_lbfgs"], data["churn"], config),
        "linear_gd": _reference_objective(estimators["ridge"], data["value"], config),
    }
    for key, ref in refs.items():
        curve = np.asarray(_final(estimators[key]).loss_curve_)
        frames.append(pd.DataFrame({
            "key": key, "kind": "gradient descent", "iteration": np.arange(1, len(curve) + 1),
            "loss": curve, "reference": ref,
        }))  # fmt: skip
    for key in ("boosted_trees_clf", "boosted_trees_reg"):
        curve = np.asarray(estimators[key].train_loss_)
        frames.append(pd.DataFrame({
            "key": key, "kind": "boosting", "iteration": np.arange(1, len(curve) + 1),
            "loss": curve, "reference": np.nan,
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _importance(estimators: dict[str, Any], data: dict[str, TaskData]) -> pd.DataFrame:
    """Split-gain shares of the scratch boosted trees and standardised weights of the scratch
    linear models, per task and feature."""
    pairs = {"churn": ("boosted_trees_clf", "logistic_gd"),
             "value": ("boosted_trees_reg", "linear_gd")}  # fmt: skip
    frames = []
    for task, (trees, linear) in pairs.items():
        frames.append(pd.DataFrame({
            "task": task,
            "feature": data[task].columns,
            "trees_gain": estimators[trees].feature_importances_,
            "linear_coef": np.ravel(_final(estimators[linear]).coef_),
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _reference_objective(pipeline: Pipeline, d: TaskData, config: BenchmarkConfig) -> float:
    """The scratch model's training objective evaluated at scikit-learn's solution (same
    standardised fit rows, same penalty)."""
    Xs = pipeline[0].transform(d.X["fit"])
    model = pipeline[-1]
    coef = np.ravel(model.coef_)
    intercept = float(np.ravel(model.intercept_)[0])
    loss = log_loss_grad if isinstance(model, LogisticRegression) else squared_loss_grad
    return float(loss(coef, intercept, Xs, d.y["fit"].astype(np.float64), config.alpha)[0])


def _agreement(
    metrics: pd.DataFrame, estimators: dict[str, Any], data: dict[str, TaskData],
    specs: list[ModelSpec], config: BenchmarkConfig,
) -> pd.DataFrame:  # fmt: skip
    """Scratch model vs its scikit-learn counterpart, with the tolerances of issue #5."""
    m = metrics.set_index("key")
    out = []

    def add(scratch: str, ref: str, quantity: str, a: float, b: float, diff: float, tol: float):
        out.append({"scratch": scratch, "reference": ref, "quantity": quantity,
                    "scratch_value": a, "reference_value": b, "difference": diff,
                    "tolerance": tol, "within": bool(abs(diff) <= tol)})  # fmt: skip

    for spec in specs:
        if spec.counterpart is None:
            continue
        s, r = spec.key, spec.counterpart
        if spec.kind == "linear":
            ws = np.ravel(_final(estimators[s]).coef_)
            wr = np.ravel(_final(estimators[r]).coef_)
            rel = float(np.linalg.norm(ws - wr) / max(np.linalg.norm(wr), 1e-12))
            add(s, r, "coefficients (relative L2 difference)", float(np.linalg.norm(ws)),
                float(np.linalg.norm(wr)), rel, TOLERANCES["coef_rel"])
            d = data[spec.task]
            Xs = estimators[s][0].transform(d.X["fit"])
            est = _final(estimators[s])
            loss = log_loss_grad if spec.task == "churn" else squared_loss_grad
            b = float(np.ravel(est.intercept_)[0])
            fs = float(loss(ws, b, Xs, d.y["fit"].astype(float), config.alpha)[0])
            fr = _reference_objective(estimators[r], d, config)
            add(s, r, "training objective", fs, fr, fs - fr,
                TOLERANCES["objective_rel"] * max(1.0, abs(fr)))
        if spec.task == "churn":
            a, b = float(m.loc[s, "roc_auc"]), float(m.loc[r, "roc_auc"])
            tol = TOLERANCES["auc_trees" if spec.kind == "trees" else "auc_linear"]
            add(s, r, "test ROC AUC", a, b, a - b, tol)
        else:
            a, b = float(m.loc[s, "rmse"]), float(m.loc[r, "rmse"])
            tol = TOLERANCES["rmse_rel_trees" if spec.kind == "trees" else "rmse_rel_linear"]
            add(s, r, "test RMSE (relative difference)", a, b, (a - b) / b, tol)
    return pd.DataFrame(out)


def _uncertainty(
    churn: TaskData, prob: np.ndarray, key: str, config: BenchmarkConfig, random_state: int
) -> pd.DataFrame:
    """Session-bootstrap intervals of the headline churn metrics on the test sessions."""
    y, groups = churn.y["test"], churn.sessions["test"]
    stats = {
        "roc_auc": lambda a, b: float(skm.roc_auc_score(a, b)) if len(np.unique(a)) == 2
        else np.nan,
        "precision_at_20": lambda a, b: evaluation.precision_at_top(a, b, config.top_share),
    }  # fmt: skip
    out = []
    for name, stat in stats.items():
        low, high = evaluation.bootstrap_ci(
            stat, y, prob, groups=groups, n_boot=config.n_boot, level=config.level,
            random_state=random_state,
        )  # fmt: skip
        out.append({"model": key, "metric": name, "value": stat(y, prob),
                    "ci_low": low, "ci_high": high})  # fmt: skip
    return pd.DataFrame(out)


def _gates(metrics: pd.DataFrame, key: str, uncertainty: pd.DataFrame) -> pd.DataFrame:
    row = metrics.set_index("key").loc[key]
    gates = business.evaluate_gates({k: float(row[k]) for k in GATE_KEYS}, keys=GATE_KEYS)
    ci = uncertainty.set_index("metric")
    gates.insert(0, "model", key)
    gates["ci_low"] = [float(ci.loc[k, "ci_low"]) for k in gates["key"]]
    gates["ci_high"] = [float(ci.loc[k, "ci_high"]) for k in gates["key"]]
    return gates


def _value_verdict(
    metrics: pd.DataFrame, value: TaskData, predictions: dict[str, np.ndarray],
    config: BenchmarkConfig, random_state: int,
) -> tuple[pd.DataFrame, str]:  # fmt: skip
    """The best hurdle against the best plain regression (each chosen on validation RMSE),
    compared on the test sessions with session-bootstrap intervals of the differences."""
    rows = metrics[metrics["task"] == "value"]
    hurdle_rows = rows[rows["kind"] == "hurdle"]
    plain_rows = rows[rows["kind"].isin(["linear", "trees"])]
    h, p = _best_key(hurdle_rows, higher=False), _best_key(plain_rows, higher=False)
    y, groups = value.y["test"], value.sessions["test"]
    ph, pp = predictions[h], predictions[p]
    out = []
    for metric in VALUE_METRICS:

        def diff(yy: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str = metric) -> float:
            return (evaluation.regression_metrics(yy, a)[metric]
                    - evaluation.regression_metrics(yy, b)[metric])  # fmt: skip

        low, high = evaluation.bootstrap_ci(
            diff, y, ph, pp, groups=groups, n_boot=config.n_boot, level=config.level,
            random_state=random_state,
        )  # fmt: skip
        hv = evaluation.regression_metrics(y, ph)[metric]
        pv = evaluation.regression_metrics(y, pp)[metric]
        out.append({"metric": metric, "hurdle_model": h, "plain_model": p, "hurdle": hv,
                    "plain": pv, "difference": hv - pv, "ci_low": low, "ci_high": high})
    table = pd.DataFrame(out)
    rmse = table.set_index("metric").loc["rmse"]
    labels = rows.set_index("key")["model"]
    if rmse["ci_high"] < 0:
        verdict = (f"the hurdle model ({labels[h]}) has a lower test RMSE than the best plain "
                   f"regression ({labels[p]}), and the session-bootstrap interval of the "
                   "difference excludes zero")  # fmt: skip
    elif rmse["ci_low"] > 0:
        verdict = (f"the best plain regression ({labels[p]}) has a lower test RMSE than the "
                   f"hurdle model ({labels[h]}), and the session-bootstrap interval of the "
                   "difference excludes zero")  # fmt: skip
    else:
        verdict = (f"the hurdle model ({labels[h]}) and the best plain regression ({labels[p]}) "
                   "cannot be told apart on test RMSE: the session-bootstrap interval of the "
                   "difference contains zero")  # fmt: skip
    return table, verdict


# --------------------------------------------------------------------------------------------
# Tables for the book
# --------------------------------------------------------------------------------------------
def display_metrics(result: BenchmarkResult, task: str) -> pd.DataFrame:
    """The metrics table of one task, rounded and labelled for the book."""
    rows = result.metrics[result.metrics["task"] == task]
    if task == "churn":
        cols = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "f1": "F1",
                "precision_at_20": "Precision@20 %", "brier": "Brier", "log_loss": "Log-loss"}
    else:
        cols = {"rmse": "RMSE (Yuan)", "mae": "MAE (Yuan)", "r2": "R²"}  # fmt: skip
    out = pd.DataFrame({
        "Model": rows["model"] + np.where(rows["best"], " (best)", ""),
        "Implementation": rows["implementation"],
        "Validation " + ("AUC" if task == "churn" else "RMSE"): rows["validation"].round(4),
    })  # fmt: skip
    for c, label in cols.items():
        out[label] = rows[c].round(4)
    # two significant digits: the times span four orders of magnitude
    out["Fit (s)"] = rows["fit_s"].map(lambda v: f"{v:.2g}")
    out["Predict (s)"] = rows["predict_s"].map(lambda v: f"{v:.2g}")
    return out.reset_index(drop=True)


def display_gates(result: BenchmarkResult, *, compact: bool = False) -> pd.DataFrame:
    """The gate table for the book and the deck: target, value, interval, verdict
    (``compact``: the value and its interval in one column, for a slide)."""
    g = result.gates
    level = f"{result.config.level:.0%}"
    if compact:
        return pd.DataFrame({
            "Gate": g["gate"],
            "Target": g["target"],
            f"Measured ({level} CI)": [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                                       zip(g["value"], g["ci_low"], g["ci_high"], strict=True)],
            "Verdict": g["verdict"].str.upper(),
        })  # fmt: skip
    return pd.DataFrame({
        "Gate": g["gate"],
        "Target": g["target"],
        "Measured": g["value"].map(lambda v: f"{v:.3f}"),
        f"{level} interval": [f"{lo:.3f} to {hi:.3f}" for lo, hi in zip(g["ci_low"], g["ci_high"],
                                                                         strict=True)],
        "Verdict": g["verdict"].str.upper(),
    })  # fmt: skip


def display_agreement(result: BenchmarkResult) -> pd.DataFrame:
    """The agreement of each scratch model with its scikit-learn counterpart, for the book."""
    a = result.agreement
    return pd.DataFrame({
        "Scratch": [label(result, k) for k in a["scratch"]],
        "scikit-learn": [label(result, k) for k in a["reference"]],
        "Quantity": a["quantity"],
        "Scratch value": a["scratch_value"].map(lambda v: f"{v:.6g}"),
        "scikit-learn value": a["reference_value"].map(lambda v: f"{v:.6g}"),
        "Difference": a["difference"].map(lambda v: f"{v:.1e}"),
        "Tolerance": a["tolerance"].map(lambda v: f"{v:.0e}"),
        "Within": np.where(a["within"], "yes", "NO"),
    })  # fmt: skip


def display_value_verdict(result: BenchmarkResult) -> pd.DataFrame:
    """The best hurdle model against the best plain regression, for the book."""
    v = result.value_verdict
    names = {"rmse": "RMSE (Yuan)", "mae": "MAE (Yuan)", "r2": "R²"}
    level = f"{result.config.level:.0%}"
    return pd.DataFrame({
        "Metric": v["metric"].map(names),
        label(result, v["hurdle_model"].iloc[0]): v["hurdle"].round(4),
        label(result, v["plain_model"].iloc[0]): v["plain"].round(4),
        "Difference": v["difference"].round(4),
        f"{level} interval": [f"{lo:.4f} to {hi:.4f}"
                              for lo, hi in zip(v["ci_low"], v["ci_high"], strict=True)],
    })  # fmt: skip


def display_importance(result: BenchmarkResult, task: str = "churn", top: int = 8) -> pd.DataFrame:
    """The ``top`` features of ``task`` by the boosted trees' gain share, with the linear
    model's standardised weight."""
    imp = result.importance[result.importance["task"] == task]
    imp = imp.sort_values("trees_gain", ascending=False).head(top)
    unit = "log-odds" if task == "churn" else "Yuan"
    return pd.DataFrame({
        "Feature": imp["feature"],
        "Share of split gain (boosted trees)": imp["trees_gain"].map(lambda v: f"{v:.1%}"),
        f"Weight per SD ({unit}, linear GD)": imp["linear_coef"].round(3),
    }).reset_index(drop=True)  # fmt: skip


def label(result: BenchmarkResult, key: str) -> str:
    """The table name of model ``key``."""
    return str(result.metrics.set_index("key").loc[key, "model"])


__all__ = [
    "BenchmarkConfig",
    "BenchmarkResult",
    "CHURN_METRICS",
    "DepthHazardClassifier",
    "ModelSpec",
    "SELECTION_RULES",
    "TASKS",
    "VALUE_METRICS",
    "display_agreement",
    "display_gates",
    "display_importance",
    "display_metrics",
    "display_value_verdict",
    "known_outcome",
    "label",
    "model_specs",
    "records",
    "run_benchmark",
    "split_sessions",
    "task_data",
]
