"""The benchmark's settings and its list of models (scratch, scikit-learn, baselines).

The protocol they serve is described in :mod:`microsub.models.benchmark`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from microsub.analysis import features
from microsub.models import (
    BoostedTreesClassifier,
    BoostedTreesRegressor,
    HurdleRegressor,
    LinearRegressionGD,
    LogisticRegressionGD,
)
from microsub.models.baselines import DepthHazardClassifier

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

#: The validation score of each task (a key of ``evaluation.SELECTION_METRICS``).
SELECTION_METRIC = {"churn": "roc_auc", "value": "rmse"}

#: Two validation scores closer than this share of the top score are equal whatever their
#: interval says (one part in a million: identical models fitted by different code).
SELECTION_TOLERANCE = 1e-6

#: What happens when the top validation score is not clearly the best (see
#: :func:`microsub.models.evaluation.select_model`).
TIE_RULE = (
    "a model ties with the top one when the paired session-bootstrap interval of its "
    "validation score minus the top score contains zero; among tied models the simplest is "
    "chosen, then the fastest to fit"
)

#: Complexity ranks of the selection's tie-breaker (fewer fitted parts and parameters first).
COMPLEXITY = {
    0: "a constant or a table",
    1: "one linear model",
    2: "two linear models",
    3: "one ensemble of trees",
    4: "two ensembles of trees",
}


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
        complexity: rank for the selection's tie-breaker (see :data:`COMPLEXITY`); by default
            0 for a constant, 1 for a linear model, 3 for trees.
    """

    key: str
    task: str
    label: str
    implementation: str
    kind: str
    counterpart: str | None
    build: Callable[[int], Any]
    complexity: int | None = None

    @property
    def rank(self) -> int:
        """The complexity rank used by the tie-breaker."""
        if self.complexity is not None:
            return self.complexity
        return {"constant": 0, "linear": 1, "trees": 3}.get(self.kind, 4)


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
                  None, hurdle_linear, complexity=2),
        ModelSpec("hurdle_trees", "value", "Hurdle, boosted-tree parts", "scratch", "hurdle",
                  None, hurdle_trees, complexity=4),
        ModelSpec("mean", "value", "Training mean", "baseline", "constant", None,
                  lambda n: DummyRegressor(strategy="mean")),
        ModelSpec("zero", "value", "Zero", "baseline", "constant", None,
                  lambda n: DummyRegressor(strategy="constant", constant=0.0)),
    ]  # fmt: skip
    return specs
