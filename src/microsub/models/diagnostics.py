"""Tables derived from a benchmark run: confusion, calibration, curves, convergence, the
agreement of scratch models with scikit-learn, session-bootstrap intervals, feature importance,
the selection of the best models (with ties), where the squared error of the value models comes
from, what the value models can rank, the descent variants, and the hurdle-vs-plain verdict.
Pure: fitted estimators and predictions in, frames out.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from sklearn import metrics as skm
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from microsub.analysis.stats import bootstrap_ci
from microsub.models import (
    evaluation,
)
from microsub.models.linear import LogisticRegressionGD
from microsub.models.losses import log_loss_grad, squared_loss_grad
from microsub.models.specs import (
    SELECTION_METRIC,
    SELECTION_TOLERANCE,
    TOLERANCES,
    VALUE_METRICS,
    BenchmarkConfig,
    ModelSpec,
)
from microsub.models.tasks import TaskData


def confusion(metrics: pd.DataFrame) -> pd.DataFrame:
    churn = metrics[metrics["task"] == "churn"]
    out = churn[["key", "model", "threshold", "tn", "fp", "fn", "tp"]].copy()
    for c in ("tn", "fp", "fn", "tp"):
        out[c] = out[c].astype(int)
    return out.reset_index(drop=True)


def calibration(
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


def curves(
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
        keep = thin(len(a), config.curve_points)
        frames.append(pd.DataFrame({"key": spec.key, names[0]: a[keep], names[1]: b[keep]}))
    return pd.concat(frames, ignore_index=True)


def _final(est: Any) -> Any:
    return est[-1] if isinstance(est, Pipeline) else est


def convergence(
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


def importance(estimators: dict[str, Any], data: dict[str, TaskData]) -> pd.DataFrame:
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


def agreement(
    metrics: pd.DataFrame, estimators: dict[str, Any], data: dict[str, TaskData],
    specs: list[ModelSpec], config: BenchmarkConfig,
) -> pd.DataFrame:  # fmt: skip
    """Scratch model vs its scikit-learn counterpart, with the tolerances of issue #5.

    One row per check: ``scratch``, ``reference`` (keys), ``quantity`` (what is compared:
    ``coefficients``, ``training objective``, ``test ROC AUC``, ``test RMSE``),
    ``scratch_value`` and ``reference_value`` (the quantity of each model; NaN for the
    coefficients, a vector), ``measure`` (how the gap is measured), ``gap`` (a dimensionless
    number >= 0), ``tolerance`` (the largest gap allowed, same measure), ``within``.

    Gaps: coefficients ``||w - w_ref|| / ||w_ref||``; training objective
    ``|f - f_ref| / max(1, |f_ref|)``; ROC AUC ``|AUC - AUC_ref|``; RMSE
    ``|RMSE - RMSE_ref| / RMSE_ref``.
    """
    m = metrics.set_index("key")
    out = []

    def add(scratch: str, ref: str, quantity: str, a: float, b: float, measure: str,
            gap: float, tol: float) -> None:  # fmt: skip
        out.append({"scratch": scratch, "reference": ref, "quantity": quantity,
                    "scratch_value": a, "reference_value": b, "measure": measure,
                    "gap": abs(gap), "tolerance": tol,
                    "within": bool(abs(gap) <= tol)})  # fmt: skip

    for spec in specs:
        if spec.counterpart is None:
            continue
        s, r = spec.key, spec.counterpart
        if spec.kind == "linear":
            ws = np.ravel(_final(estimators[s]).coef_)
            wr = np.ravel(_final(estimators[r]).coef_)
            rel = float(np.linalg.norm(ws - wr) / max(np.linalg.norm(wr), 1e-12))
            add(s, r, "coefficients", np.nan, np.nan, "relative distance", rel,
                TOLERANCES["coef_rel"])  # fmt: skip
            d = data[spec.task]
            Xs = estimators[s][0].transform(d.X["fit"])
            est = _final(estimators[s])
            loss = log_loss_grad if spec.task == "churn" else squared_loss_grad
            b = float(np.ravel(est.intercept_)[0])
            fs = float(loss(ws, b, Xs, d.y["fit"].astype(float), config.alpha)[0])
            fr = _reference_objective(estimators[r], d, config)
            add(s, r, "training objective", fs, fr, "relative difference",
                (fs - fr) / max(1.0, abs(fr)), TOLERANCES["objective_rel"])  # fmt: skip
        if spec.task == "churn":
            a, b = float(m.loc[s, "roc_auc"]), float(m.loc[r, "roc_auc"])
            tol = TOLERANCES["auc_trees" if spec.kind == "trees" else "auc_linear"]
            add(s, r, "test ROC AUC", a, b, "difference", a - b, tol)
        else:
            a, b = float(m.loc[s, "rmse"]), float(m.loc[r, "rmse"])
            tol = TOLERANCES["rmse_rel_trees" if spec.kind == "trees" else "rmse_rel_linear"]
            add(s, r, "test RMSE", a, b, "relative difference", (a - b) / b, tol)
    return pd.DataFrame(out)


def uncertainty(
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
        low, high = bootstrap_ci(
            stat, y, prob, groups=groups, n_boot=config.n_boot, level=config.level,
            random_state=random_state,
        )  # fmt: skip
        out.append({"model": key, "metric": name, "value": stat(y, prob),
                    "ci_low": low, "ci_high": high})  # fmt: skip
    return pd.DataFrame(out)


def value_verdict(
    metrics: pd.DataFrame, value: TaskData, predictions: dict[str, np.ndarray],
    config: BenchmarkConfig, random_state: int,
) -> tuple[pd.DataFrame, str]:  # fmt: skip
    """The best hurdle against the best plain regression (each chosen on validation RMSE),
    compared on the test sessions with session-bootstrap intervals of the differences."""
    rows = metrics[metrics["task"] == "value"]
    hurdle_rows = rows[rows["kind"] == "hurdle"]
    plain_rows = rows[rows["kind"].isin(["linear", "trees"])]
    h, p = best_key(hurdle_rows, higher=False), best_key(plain_rows, higher=False)
    y, groups = value.y["test"], value.sessions["test"]
    ph, pp = predictions[h], predictions[p]
    out = []
    for metric in VALUE_METRICS:

        def diff(yy: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str = metric) -> float:
            return (evaluation.regression_metrics(yy, a)[metric]
                    - evaluation.regression_metrics(yy, b)[metric])  # fmt: skip

        low, high = bootstrap_ci(
            diff, y, ph, pp, groups=groups, n_boot=config.n_boot, level=config.level,
            random_state=random_state,
        )  # fmt: skip
        hv = evaluation.regression_metrics(y, ph)[metric]
        pv = evaluation.regression_metrics(y, pp)[metric]
        out.append(
            {
                "metric": metric,
                "hurdle_model": h,
                "plain_model": p,
                "hurdle": hv,
                "plain": pv,
                "difference": hv - pv,
                "ci_low": low,
                "ci_high": high,
            }
        )
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


def selection(
    metrics: pd.DataFrame, data: dict[str, TaskData], validation: dict[str, np.ndarray],
    specs: list[ModelSpec], config: BenchmarkConfig, random_state: int,
) -> pd.DataFrame:  # fmt: skip
    """The selection rule applied to each task (:func:`evaluation.select_model`).

    For every model, the validation score minus the top model's, with a paired
    session-bootstrap interval (:func:`evaluation.paired_difference`, ``config.n_boot``
    replicates at ``config.level``), its complexity rank and fit time; then ``top``, ``tied``
    and ``chosen``.

    Args:
        metrics: the benchmark's metrics table (``validation``, ``fit_s``).
        data: task -> :class:`TaskData` (validation targets and sessions).
        validation: model key -> prediction on its task's validation rows.

    Returns:
        One row per model: ``task``, ``key``, ``metric``, ``validation``, ``difference``,
        ``ci_low``, ``ci_high``, ``complexity``, ``fit_s``, ``top``, ``tied``, ``chosen``.
    """
    rank = {spec.key: spec.rank for spec in specs}
    frames = []
    for task, metric in SELECTION_METRIC.items():
        rows = metrics[metrics["task"] == task]
        higher = evaluation.SELECTION_METRICS[metric]
        scores = rows["validation"].to_numpy(dtype=float)
        top = str(rows["key"].iloc[int(np.nanargmax(scores) if higher else np.nanargmin(scores))])
        d = data[task]
        out = []
        for key, score, fit_s in zip(rows["key"], scores, rows["fit_s"], strict=True):
            diff, low, high = evaluation.paired_difference(
                metric, d.y["validation"], validation[key], validation[top],
                d.sessions["validation"], n_boot=config.n_boot, level=config.level,
                random_state=random_state,
            )  # fmt: skip
            out.append({"task": task, "key": key, "metric": metric, "validation": score,
                        "difference": diff, "ci_low": low, "ci_high": high,
                        "complexity": rank[key], "fit_s": fit_s})  # fmt: skip
        tolerance = SELECTION_TOLERANCE * abs(float(rows.set_index("key").loc[top, "validation"]))
        frames.append(evaluation.select_model(pd.DataFrame(out), higher=higher,
                                              tolerance=tolerance))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


#: The k worst-predicted pages whose share of the squared error :func:`value_tail` reports.
TAIL_PAGES = (1, 10)


def value_tail(value: TaskData, predictions: dict[str, np.ndarray], key: str) -> pd.DataFrame:
    """Where the squared error of value model ``key`` comes from, in each part of the split.

    Args:
        value: the value task's data.
        predictions: part (``fit``, ``validation``, ``test``) -> the model's prediction (Yuan).
        key: the model's key (stored in the table).

    Returns:
        One row per part: ``key``, ``part``, ``pages``, ``largest`` (the largest page value,
        Yuan), ``rmse``, and for each k of :data:`TAIL_PAGES` ``share_top{k}`` (share of the
        squared error carried by the k worst-predicted pages) and ``rmse_without_top{k}`` (the
        RMSE of the other pages): see :func:`evaluation.squared_error_concentration`.
    """
    out = []
    for part, pred in predictions.items():
        y = value.y[part]
        row = {"key": key, "part": part}
        for k in TAIL_PAGES:
            c = evaluation.squared_error_concentration(y, pred, k)
            row.update({"pages": c["pages"], "largest": c["largest"], "rmse": c["rmse"]})
            row.update({f"share_top{k}": c["share"], f"rmse_without_top{k}": c["rmse_without"]})
        out.append(row)
    return pd.DataFrame(out)


def value_ranking(
    value: TaskData, predictions: dict[str, np.ndarray], hurdle: Any, hurdle_key: str,
    chosen: str, config: BenchmarkConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """What the value models can rank on the test pages, part by part of the hurdle model.

    Scores: the hurdle's ``P(buy)`` (``predict_positive_proba``), its ``E[amount | buy]``
    (``predict_amount``), its product ``E[value]``, the chosen value model's prediction, and the
    page values themselves (a perfect ranking, the yardstick). For each score:

    * ``sale_auc``: ROC AUC of the score for "the page sold" (``y > 0``);
    * ``amount_rank``: Spearman's rank correlation of the score with the Yuan, on the pages
      that sold;
    * ``capture``: the share of all test Yuan on the ``config.top_share`` of pages with the
      highest score (a random order holds ``top_share`` of it).

    Args:
        value: the value task's data; predictions: key -> test prediction (Yuan).
        hurdle: the fitted best hurdle model; hurdle_key: its key; chosen: the chosen value
            model's key.

    Returns:
        ``(table, curves)``: table with ``score``, ``key``, ``sale_auc``, ``amount_rank``,
        ``capture``; curves (:func:`evaluation.capture_curve`) with ``score``,
        ``share_pages``, ``share_total``.
    """
    X, y = value.X["test"], value.y["test"]
    sold = y > 0
    scores = {
        "p_buy": (hurdle_key, hurdle.predict_positive_proba(X)),
        "amount": (hurdle_key, hurdle.predict_amount(X)),
        "hurdle": (hurdle_key, predictions[hurdle_key]),
        "chosen": (chosen, predictions[chosen]),
        "actual": ("", y),
    }
    rows, curves = [], []
    for name, (key, score) in scores.items():
        varies = sold.sum() > 2 and np.ptp(score[sold]) > 0
        rank = sps.spearmanr(score[sold], y[sold]).statistic if varies else np.nan
        k = max(1, int(np.ceil(config.top_share * len(y))))
        top = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k]
        rows.append({
            "score": name, "key": key,
            "sale_auc": float(skm.roc_auc_score(sold, score)) if 0 < sold.sum() < len(y)
            else np.nan,
            "amount_rank": float(rank),
            "capture": float(y[top].sum() / y.sum()) if y.sum() > 0 else np.nan,
        })  # fmt: skip
        if name != "amount":
            curves.append(evaluation.capture_curve(y, score).assign(score=name))
    curve = pd.concat(curves, ignore_index=True)[["score", "share_pages", "share_total"]]
    return pd.DataFrame(rows), curve


#: The variants of gradient descent :func:`descent_paths` compares: name -> (preconditioner,
#: accelerate). The last is the default of :class:`LogisticRegressionGD`.
DESCENT_VARIANTS = {
    "plain, standardised": ("diagonal", False),
    "Nesterov with restart, standardised": ("diagonal", True),
    "plain, whitened": ("full", False),
    "Nesterov with restart, whitened (default)": ("full", True),
}


def descent_paths(
    churn: TaskData, lbfgs: Pipeline, config: BenchmarkConfig, max_iter: int = 1000
) -> pd.DataFrame:
    """The churn logistic regression fitted by each descent of :data:`DESCENT_VARIANTS`.

    Every variant minimises the same objective (log-loss plus ``alpha/2 ||w||^2`` on the fit
    rows standardised by ``lbfgs``'s scaler) from the same start; the gap to the optimum is
    ``(f_k - f*) / |f*|`` with ``f*`` the lower of scikit-learn's lbfgs objective and the lowest
    value any variant reached.

    Args:
        churn: the churn task's data; lbfgs: the fitted ``StandardScaler`` + lbfgs pipeline.
        max_iter: most gradient evaluations per variant.

    Returns:
        ``variant``, ``preconditioner``, ``accelerate``, ``iteration`` (from 1), ``loss``,
        ``gap``, ``converged`` (the variant met its stopping rule within ``max_iter``).
    """
    Xs = lbfgs[0].transform(churn.X["fit"])
    y = churn.y["fit"]
    reference = _reference_objective(lbfgs, churn, config)
    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported in ``converged``
        for name, (preconditioner, accelerate) in DESCENT_VARIANTS.items():
            model = LogisticRegressionGD(
                alpha=config.alpha,
                preconditioner=preconditioner,
                accelerate=accelerate,
                max_iter=max_iter,
            ).fit(Xs, y)
            curve = np.asarray(model.loss_curve_)
            frames.append(pd.DataFrame({
                "variant": name, "preconditioner": preconditioner, "accelerate": accelerate,
                "iteration": np.arange(1, len(curve) + 1), "loss": curve,
                "converged": model.n_iter_ < max_iter,
            }))  # fmt: skip
    out = pd.concat(frames, ignore_index=True)
    best = min(reference, float(out["loss"].min()))
    out["gap"] = (out["loss"] - best) / abs(best)
    return out


def thin(n: int, points: int) -> np.ndarray:
    """At most ``points`` indices spread evenly over ``0 .. n - 1``, both ends kept."""
    return np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int))


def best_key(rows: pd.DataFrame, *, higher: bool) -> str:
    """Key of the best validation score among ``rows``; scores equal to 6 significant digits
    are ties, won by the row listed first (scratch before scikit-learn)."""
    scores = np.array([float(f"{v:.6g}") for v in rows["validation"]])
    i = int(np.nanargmax(scores) if higher else np.nanargmin(scores))
    return str(rows["key"].iloc[i])
