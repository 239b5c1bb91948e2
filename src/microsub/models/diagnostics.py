"""Tables derived from a benchmark run: confusion, calibration, curves, convergence, the
agreement of scratch models with scikit-learn, session-bootstrap intervals, feature importance,
the gates and the hurdle-vs-plain verdict. Pure: fitted estimators and predictions in, frames out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from microsub.analysis.stats import bootstrap_ci
from microsub.models import (
    evaluation,
)
from microsub.models.losses import log_loss_grad, squared_loss_grad
from microsub.models.specs import TOLERANCES, VALUE_METRICS, BenchmarkConfig, ModelSpec
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


def thin(n: int, points: int) -> np.ndarray:
    """At most ``points`` indices spread evenly over ``0 .. n - 1``, both ends kept."""
    return np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int))


def best_key(rows: pd.DataFrame, *, higher: bool) -> str:
    """Key of the best validation score among ``rows``; scores equal to 6 significant digits
    are ties, won by the row listed first (scratch before scikit-learn)."""
    scores = np.array([float(f"{v:.6g}") for v in rows["validation"]])
    i = int(np.nanargmax(scores) if higher else np.nanargmin(scores))
    return str(rows["key"].iloc[i])
