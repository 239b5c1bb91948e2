"""Display tables of the model benchmark (chapters 04 and 05, and the deck).

Every number goes through :mod:`microsub.fmt` (three significant digits, fixed point, never
scientific notation), every table fits a page (at most seven columns), and each column holds
one kind of quantity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from microsub import fmt
from microsub.business.gates import benchmark_gates
from microsub.models.benchmark import BenchmarkResult
from microsub.models.diagnostics import TAIL_PAGES
from microsub.models.specs import COMPLEXITY
from microsub.report.labels import LABELS

#: Names of the parts of the split.
PARTS = {"fit": "Fit", "validation": "Validation", "test": "Test"}

#: The most columns a display table of this module has (a page's width).
MAX_COLUMNS = 7


def _numbers(values: Any, formatter: Callable[[Any], str] = fmt.format_number) -> list[str]:
    return [formatter(v) for v in values]


def _interval(lows: Any, highs: Any, formatter: Callable[[Any], str] = fmt.format_number):
    return [f"{formatter(lo)} to {formatter(hi)}" for lo, hi in zip(lows, highs, strict=True)]


def model_names(result: BenchmarkResult, rows: pd.DataFrame) -> list[str]:
    """Model names with the selection's marks: "(chosen)" for the chosen model, "(tie)" for a
    model whose validation score ties with the top one."""
    tied = rows["tied"] if "tied" in rows else pd.Series(False, index=rows.index)
    return [m + (" (chosen)" if b else " (tie)" if t else "")
            for m, b, t in zip(rows["model"], rows["best"], tied, strict=True)]  # fmt: skip


def display_metrics(result: BenchmarkResult, task: str) -> pd.DataFrame:
    """The main metrics table of one task: the validation score that chooses, the test
    scores a reader needs and the fit time (seconds, one thread)."""
    rows = result.metrics[result.metrics["task"] == task]
    out = pd.DataFrame({
        "Model": model_names(result, rows),
        "Implementation": rows["implementation"].to_numpy(),
    })  # fmt: skip
    if task == "churn":
        top = fmt.format_setting(result.config.top_share, percent=True)
        cols = {"validation": "Validation ROC AUC", "roc_auc": "Test ROC AUC",
                "pr_auc": "Test PR AUC", "precision_at_20": f"Precision, top {top}"}  # fmt: skip
    else:
        cols = {"validation": "Validation RMSE (Yuan)", "rmse": "Test RMSE (Yuan)",
                "mae": "Test MAE (Yuan)", "r2": "Test R²"}  # fmt: skip
    for c, label in cols.items():
        out[label] = _numbers(rows[c])
    out["Fit (s)"] = _numbers(rows["fit_s"])
    return out


def display_churn_details(result: BenchmarkResult) -> pd.DataFrame:
    """The churn metrics the main table leaves out: the F1 threshold (chosen on validation)
    and F1, the probability scores (Brier, log-loss) and the prediction time."""
    rows = result.metrics[result.metrics["task"] == "churn"]
    return pd.DataFrame({
        "Model": rows["model"].to_numpy(),
        "Threshold": _numbers(rows["threshold"]),
        "F1": _numbers(rows["f1"]),
        "Brier score": _numbers(rows["brier"]),
        "Log-loss": _numbers(rows["log_loss"]),
        "Predict (s)": _numbers(rows["predict_s"]),
    })  # fmt: skip


def display_selection(result: BenchmarkResult, task: str) -> pd.DataFrame:
    """The selection rule at work for one task: each model's validation score, its difference
    to the top score with the paired session-bootstrap interval, its complexity rank, and
    whether it ties."""
    sel = result.selection[result.selection["task"] == task]
    names = result.metrics.set_index("key")["model"]
    level = fmt.format_setting(result.config.level, percent=True)
    verdict = np.where(sel["chosen"], "chosen", np.where(sel["tied"], "tie", "worse"))
    return pd.DataFrame({
        "Model": names[sel["key"]].to_numpy(),
        "Validation " + ("ROC AUC" if task == "churn" else "RMSE (Yuan)"):
            _numbers(sel["validation"]),
        "Minus the top score": _numbers(sel["difference"]),
        f"{level} interval": _interval(sel["ci_low"], sel["ci_high"]),
        "Complexity": sel["complexity"].map(COMPLEXITY).to_numpy(),
        "Fit (s)": _numbers(sel["fit_s"]),
        "Outcome": verdict,
    })  # fmt: skip


def display_gates(result: BenchmarkResult, *, compact: bool = False) -> pd.DataFrame:
    """The gate table for the book and the deck: target, value, interval, verdict
    (``compact``: the value and its interval in one column, for a slide)."""
    g = benchmark_gates(result)
    level = fmt.format_setting(result.config.level, percent=True)
    n = fmt.format_number
    if compact:
        return pd.DataFrame({
            "Gate": g["gate"],
            "Target": g["target"],
            f"Measured ({level} CI)": [f"{n(v)} [{n(lo)}, {n(hi)}]" for v, lo, hi in
                                       zip(g["value"], g["ci_low"], g["ci_high"], strict=True)],
            "Verdict": g["verdict"].str.upper(),
        })  # fmt: skip
    return pd.DataFrame({
        "Gate": g["gate"],
        "Target": g["target"],
        "Measured": _numbers(g["value"]),
        f"{level} interval": _interval(g["ci_low"], g["ci_high"]),
        "Verdict": g["verdict"].str.upper(),
    })  # fmt: skip


def display_agreement(result: BenchmarkResult) -> pd.DataFrame:
    """Each scratch model against its scikit-learn counterpart: what is compared, how the gap
    is measured, the gap and the tolerance (both in that measure), and whether it is met."""
    a = result.agreement
    return pd.DataFrame({
        "Scratch model": [label(result, k) for k in a["scratch"]],
        "scikit-learn model": [label(result, k) for k in a["reference"]],
        "Compared": a["quantity"],
        "Gap measured as": a["measure"],
        "Gap": _numbers(a["gap"]),
        "Tolerance": _numbers(a["tolerance"], fmt.format_setting),
        "Within": np.where(a["within"], "yes", "NO"),
    })  # fmt: skip


def display_value_verdict(result: BenchmarkResult) -> pd.DataFrame:
    """The best hurdle model against the best plain regression, for the book."""
    v = result.value_verdict
    names = {"rmse": "RMSE (Yuan)", "mae": "MAE (Yuan)", "r2": "R²"}
    level = fmt.format_setting(result.config.level, percent=True)
    return pd.DataFrame({
        "Metric (test)": v["metric"].map(names),
        label(result, v["hurdle_model"].iloc[0]): _numbers(v["hurdle"]),
        label(result, v["plain_model"].iloc[0]): _numbers(v["plain"]),
        "Hurdle minus plain": _numbers(v["difference"]),
        f"{level} interval": _interval(v["ci_low"], v["ci_high"]),
    })  # fmt: skip


def display_value_tail(result: BenchmarkResult) -> pd.DataFrame:
    """Where the chosen value model's squared error comes from, part by part: the largest
    page, the RMSE, the share of the squared error on the worst-predicted pages, and the RMSE
    without them."""
    t = result.value_tail
    k = max(TAIL_PAGES)
    return pd.DataFrame({
        "Part": t["part"].map(PARTS),
        "Pages": _numbers(t["pages"], fmt.format_count),
        "Largest page (Yuan)": _numbers(t["largest"]),
        "RMSE (Yuan)": _numbers(t["rmse"]),
        "Share of squared error, worst page": _numbers(t["share_top1"], fmt.format_percent),
        f"Share, worst {k} pages": _numbers(t[f"share_top{k}"], fmt.format_percent),
        "RMSE without them (Yuan)": _numbers(t[f"rmse_without_top{k}"]),
    })  # fmt: skip


#: What each score of ``BenchmarkResult.value_ranking`` is, in words (``{model}``: its model).
SCORE_NAMES = {
    "p_buy": "P(buy), will the page sell: first part of {model}",
    "amount": "E[amount if it sells]: second part of {model}",
    "hurdle": "E[value] = P(buy) × E[amount] of {model}",
    "chosen": "E[value] of {model}, the chosen value model",
    "actual": "the page values themselves (a perfect ranking)",
}


def display_value_ranking(result: BenchmarkResult) -> pd.DataFrame:
    """What each part of the value models ranks on the test pages: whether a page sells (ROC
    AUC), how much among pages that sold (rank correlation), and the share of the Yuan on the
    top pages."""
    r = result.value_ranking
    top = fmt.format_setting(result.config.top_share, percent=True)
    names = [SCORE_NAMES[s].format(model=label(result, k) if k else "")
             for s, k in zip(r["score"], r["key"], strict=True)]  # fmt: skip
    return pd.DataFrame({
        "Ranked by": names,
        "ROC AUC, page sold": _numbers(r["sale_auc"]),
        "Rank correlation with the Yuan, pages that sold": _numbers(r["amount_rank"]),
        f"Share of the Yuan on the top {top} of pages": _numbers(r["capture"],
                                                                  fmt.format_percent),
    })  # fmt: skip


def display_split(result: BenchmarkResult) -> pd.DataFrame:
    """The split by session: sessions and pages per part, pages with a known churn outcome,
    the share of them after which the shopper left, the share of pages that sold."""
    s = result.split
    return pd.DataFrame({
        "Part": s["part"].map(PARTS),
        "Sessions": _numbers(s["sessions"], fmt.format_count),
        "Pages": _numbers(s["pages"], fmt.format_count),
        "Pages with a known churn outcome": _numbers(s["churn_pages"], fmt.format_count),
        "Left after the page": _numbers(s["churn_rate"], fmt.format_percent),
        "Pages that sold": _numbers(s["buying_share"], fmt.format_percent),
    })  # fmt: skip


def display_importance(result: BenchmarkResult, task: str = "churn", top: int = 8) -> pd.DataFrame:
    """The ``top`` features of ``task`` by the boosted trees' gain share, with the linear
    model's standardised weight."""
    imp = result.importance[result.importance["task"] == task]
    imp = imp.sort_values("trees_gain", ascending=False).head(top)
    unit = "log-odds" if task == "churn" else "Yuan"
    return pd.DataFrame({
        "Feature": [LABELS.get(f, f) for f in imp["feature"]],
        "Share of split gain (boosted trees)": _numbers(imp["trees_gain"], fmt.format_percent),
        f"Weight per SD ({unit}, linear GD)": _numbers(imp["linear_coef"]),
    }).reset_index(drop=True)  # fmt: skip


def label(result: BenchmarkResult, key: str) -> str:
    """The table name of model ``key``."""
    return str(result.metrics.set_index("key").loc[key, "model"])


def selection_text(result: BenchmarkResult, task: str) -> str:
    """One sentence on how ``task``'s model was chosen: a clear win, or a tie settled by the
    tie-breaker, with the validation scores and the interval of the closest difference."""
    sel = result.selection[result.selection["task"] == task].set_index("key")
    names = result.metrics.set_index("key")["model"]
    metric = "ROC AUC" if task == "churn" else "RMSE"
    chosen, top = result.best[task], result.top(task)
    level = fmt.format_setting(result.config.level, percent=True)
    n = fmt.format_number
    if not result.is_tie(task):
        others = sel.drop(index=top)
        closest = others.loc[others["difference"].abs().idxmin()]
        return (f"a clear choice: {names[top]} has the best validation {metric} "
                f"({n(sel.loc[top, 'validation'])}), and the closest other model, "
                f"{names[closest.name]}, is {n(abs(closest['difference']))} away ({level} "
                f"interval of the difference {n(closest['ci_low'])} to "
                f"{n(closest['ci_high'])}, which excludes zero)")  # fmt: skip
    tied = [k for k in result.tied(task) if k != top]
    others = sel.loc[tied]
    widest = others.loc[others["difference"].abs().idxmax()]
    listed = name_list(result, tied)
    return (f"a tie: the top validation {metric} is {names[top]}'s "
            f"({n(sel.loc[top, 'validation'])}), but {listed} "
            f"{'is' if len(tied) == 1 else 'are'} within its uncertainty (the largest of these "
            f"differences, {n(widest['difference'])}, has a {level} interval from "
            f"{n(widest['ci_low'])} to {n(widest['ci_high'])}); among the tied models the "
            "tie-breaker, the simplest and then the fastest to fit, chose "
            f"{names[chosen]}")  # fmt: skip


def name_list(result: BenchmarkResult, keys: list[str]) -> str:
    """Model names for prose, in italics (several contain commas): "*A*, *B* and *C*"."""
    names = [f"*{label(result, k)}*" for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
