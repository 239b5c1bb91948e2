"""Display tables of the model benchmark (chapter 05 and the deck)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from microsub.business.gates import benchmark_gates
from microsub.models.benchmark import BenchmarkResult


def display_metrics(result: BenchmarkResult, task: str) -> pd.DataFrame:
    """The metrics table of one task, rounded and labelled for the book."""
    rows = result.metrics[result.metrics["task"] == task]
    if task == "churn":
        cols = {
            "roc_auc": "ROC AUC",
            "pr_auc": "PR AUC",
            "f1": "F1",
            "precision_at_20": "Precision@20 %",
            "brier": "Brier",
            "log_loss": "Log-loss",
        }
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
    g = benchmark_gates(result)
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
