"""Figures of the model benchmark (chapter 05 and the deck): tables of
:class:`~microsub.models.benchmark.BenchmarkResult` in, a matplotlib ``Figure`` out.

``metrics`` is ``BenchmarkResult.metrics`` (``key``, ``model``, ``implementation``, ``kind``,
``roc_auc``, ``pr_auc``, ``base_rate``, ``fit_s``, ``best``, ...). A model's colour says its
family (linear, trees, baseline) and its line style its implementation (scratch solid,
scikit-learn dashed), so a scratch model and its reference overlap when they agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from microsub import fmt
from microsub.report.figures.base import COLORS, WIDTH, new_figure, percent_axis, style

_FAMILY_COLORS = {"linear": COLORS["main"], "trees": COLORS["accent"], "hurdle": COLORS["third"],
                  "constant": COLORS["muted"]}  # fmt: skip


_IMPLEMENTATION_STYLES = {"scratch": "-", "scikit-learn": "--", "baseline": ":"}


def _model_style(row: pd.Series) -> dict[str, Any]:
    return {
        "color": _FAMILY_COLORS.get(row["kind"], COLORS["muted"]),
        "ls": _IMPLEMENTATION_STYLES.get(row["implementation"], "-"),
        "lw": 2.2 if row["implementation"] == "scratch" else 1.4,
    }


def _model_rows(metrics: pd.DataFrame, keys: Sequence[str]) -> list[pd.Series]:
    table = metrics.set_index("key")
    return [table.loc[k].rename(k) for k in keys if k in table.index]


def roc_curves(
    roc: pd.DataFrame, metrics: pd.DataFrame, *, height: float = 4.2, legend_outside: bool = False
) -> Figure:
    """ROC curves of the churn models on the test sessions, the AUC in the legend.

    Args:
        roc: ``key``, ``fpr``, ``tpr`` (``BenchmarkResult.roc``).
        metrics: the benchmark's metrics table (labels, AUC, styles).
        height: figure height in inches.
        legend_outside: put the legend right of the axes (for a slide) instead of inside.
    """
    width = WIDTH if legend_outside else WIDTH * 0.8 * height / 4.2
    with style():
        fig, ax = new_figure(height=height, width=width)
        for row in _model_rows(metrics, roc["key"].unique()):
            curve = roc[roc["key"] == row.name]
            ax.plot(curve["fpr"], curve["tpr"], label=f"{row['model']} ({row['roc_auc']:.3f})",
                    **_model_style(row))  # fmt: skip
        ax.plot([0, 1], [0, 1], color=COLORS["muted"], lw=0.8, ls=(0, (1, 3)))
        ax.set_xlabel("false-positive rate (stayers flagged)")
        ax.set_ylabel("true-positive rate (leavers caught)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        if legend_outside:
            fig.legend(title="model (ROC AUC)", loc="outside right center")
        else:
            ax.set_aspect("equal")
            ax.legend(title="model (ROC AUC)", loc="lower right")
        ax.set_title("ROC curves, test sessions")
    return fig


def pr_curves(pr: pd.DataFrame, metrics: pd.DataFrame) -> Figure:
    """Precision-recall curves of the churn models on the test sessions, the share of leaving
    pages (the precision of a random ranking) as a dotted line.

    Args:
        pr: ``key``, ``recall``, ``precision`` (``BenchmarkResult.pr``).
        metrics: the benchmark's metrics table.
    """
    with style():
        fig, ax = new_figure(height=3.8)
        rows = _model_rows(metrics, pr["key"].unique())
        for row in rows:
            curve = pr[pr["key"] == row.name]
            ax.plot(curve["recall"], curve["precision"],
                    label=f"{row['model']} ({row['pr_auc']:.3f})", **_model_style(row))  # fmt: skip
        if rows:
            base = float(rows[0]["base_rate"])
            ax.axhline(base, color=COLORS["muted"], lw=0.8, ls=(0, (1, 3)))
            ax.text(0.01, base, f"share leaving {base:.1%} (random ranking)", ha="left",
                    va="bottom", fontsize=8, color=COLORS["muted"])  # fmt: skip
        ax.set_xlabel("recall (share of leaving pages flagged)")
        ax.set_ylabel("precision (flagged pages that leave)")
        percent_axis(ax)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.legend(title="model (PR AUC)", loc="upper right")
        ax.set_title("Precision-recall curves, test sessions")
    return fig


def calibration_curves(calibration: pd.DataFrame, metrics: pd.DataFrame) -> Figure:
    """Observed share of leaving pages against the mean predicted probability, in quantile bins
    of each churn model's predictions; the diagonal is perfect calibration.

    Args:
        calibration: ``key``, ``mean_predicted``, ``observed``, ``count``
            (``BenchmarkResult.calibration``).
        metrics: the benchmark's metrics table (labels and Brier scores).
    """
    with style():
        fig, ax = new_figure(height=3.8)
        top = float(calibration[["mean_predicted", "observed"]].to_numpy().max())
        lim = min(1.0, top * 1.05 + 0.02)
        ax.plot([0, lim], [0, lim], color=COLORS["muted"], lw=0.8, ls=(0, (1, 3)))
        for row in _model_rows(metrics, calibration["key"].unique()):
            t = calibration[calibration["key"] == row.name]
            ax.plot(t["mean_predicted"], t["observed"], marker="o", markersize=3.5,
                    label=f"{row['model']} ({row['brier']:.4f})", **_model_style(row))  # fmt: skip
        ax.set_xlabel("mean predicted probability of leaving (bin)")
        ax.set_ylabel("observed share leaving (bin)")
        percent_axis(ax)
        percent_axis(ax, "x")
        ax.set_xlim(0, lim)
        ax.set_ylim(0, lim)
        fig.legend(title="model (Brier score)", loc="outside right upper")
        ax.set_title("Calibration, test sessions")
    return fig


def convergence_curves(convergence: pd.DataFrame, metrics: pd.DataFrame) -> Figure:
    """Left: the gap of the gradient-descent objective to scikit-learn's solution, relative to
    that objective, per iteration (log scale). Right: the boosting training loss per tree,
    relative to its first value.

    Args:
        convergence: ``key``, ``kind``, ``iteration``, ``loss``, ``reference``
            (``BenchmarkResult.convergence``).
        metrics: the benchmark's metrics table (labels).
    """
    labels = metrics.set_index("key")["model"]
    tasks = metrics.set_index("key")["task"]
    with style():
        fig, (left, right) = new_figure(1, 2, height=3.4)
        gd = convergence[convergence["kind"] == "gradient descent"]
        gd_colors = (COLORS["main"], COLORS["second"])
        for (key, curve), color in zip(gd.groupby("key", sort=False), gd_colors, strict=False):
            loss = curve["loss"].to_numpy()
            ref = min(float(curve["reference"].iloc[0]), float(loss.min()))
            gap = (loss - ref) / abs(ref)
            ok = gap > 0
            left.plot(curve["iteration"].to_numpy()[ok], gap[ok], marker="o", markersize=2.5,
                      color=color, label=f"{labels[key]}, {tasks[key]}")  # fmt: skip
        left.set_yscale("log")
        left.set_xlabel("iteration (gradient evaluations)")
        left.set_ylabel("relative gap to the optimum\n(f_k − f*) / |f*|")
        left.legend(loc="lower left", fontsize=8)
        left.set_title("Gradient descent")
        boost = convergence[convergence["kind"] == "boosting"]
        tree_colors = (COLORS["accent"], COLORS["third"])
        for (key, curve), color in zip(boost.groupby("key", sort=False), tree_colors,
                                       strict=False):  # fmt: skip
            loss = curve["loss"].to_numpy()
            right.plot(curve["iteration"], loss / loss[0], color=color,
                       label=f"{labels[key]}, {tasks[key]}")  # fmt: skip
        right.set_xlabel("boosting iteration (trees)")
        right.set_ylabel("training loss / loss after tree 1")
        right.legend(loc="upper right")
        right.set_title("Boosted trees")
    return fig


def confusion_matrices(confusion: pd.DataFrame, *, ncols: int = 3) -> Figure:
    """One confusion matrix per churn model at its F1 threshold (chosen on validation
    sessions): page counts, with the share of each true class in brackets.

    Args:
        confusion: ``key``, ``model``, ``threshold``, ``tn``, ``fp``, ``fn``, ``tp``
            (``BenchmarkResult.confusion``).
        ncols: panels per row.
    """
    n = len(confusion)
    nrows = int(np.ceil(n / ncols))
    with style():
        fig, axes = new_figure(nrows, ncols, height=2.6 * nrows + 0.3, squeeze=False)
        for ax, (_, row) in zip(axes.flat, confusion.iterrows(), strict=False):
            counts = np.array([[row["tn"], row["fp"]], [row["fn"], row["tp"]]], dtype=float)
            shares = counts / counts.sum(axis=1, keepdims=True)
            ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
            for i in range(2):
                for j in range(2):
                    ax.text(j, i, f"{counts[i, j]:,.0f}\n({shares[i, j]:.0%})", ha="center",
                            va="center", fontsize=8,
                            color="white" if shares[i, j] > 0.6 else "black")  # fmt: skip
            ax.set_xticks([0, 1], ["stays", "leaves"])
            ax.set_yticks([0, 1], ["stayed", "left"])
            ax.set_xlabel("predicted")
            ax.set_ylabel("observed")
            ax.grid(False)
            ax.set_title(f"{row['model']}\nthreshold {row['threshold']:.2f}", fontsize=9)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
    return fig


def model_comparison(
    metrics: pd.DataFrame, task: str = "churn", *, height: float | None = None
) -> Figure:
    """Scratch against scikit-learn at a glance: the test score (ROC AUC for churn, RMSE for
    value) and the fit time (log scale) of each model of ``task``; ``height`` in inches
    (default: from the number of models). ★ marks the chosen model, "(tie)" a model whose
    validation score ties with the top one (``metrics["tied"]``), so a choice made by the
    tie-breaker reads as one."""
    rows = metrics[metrics["task"] == task].iloc[::-1]
    score, score_label = ("roc_auc", "test ROC AUC") if task == "churn" else (
        "rmse", "test RMSE (Yuan)")  # fmt: skip
    with style():
        height = height if height is not None else 0.42 * len(rows) + 1.2
        fig, (left, right) = new_figure(1, 2, height=height, sharey=True)
        y = np.arange(len(rows))
        colors = [_FAMILY_COLORS.get(k, COLORS["muted"]) for k in rows["kind"]]
        hatches = ["//" if i == "scikit-learn" else "" for i in rows["implementation"]]
        for ax, col in ((left, score), (right, "fit_s")):
            bars = ax.barh(y, rows[col], color=colors, edgecolor="white")
            for bar, hatch in zip(bars, hatches, strict=True):
                bar.set_hatch(hatch)
        tied = rows["tied"] if "tied" in rows else pd.Series(False, index=rows.index)
        names = [m + ("  ★" if b else "  (tie)" if t else "")
                 for m, b, t in zip(rows["model"], rows["best"], tied, strict=True)]  # fmt: skip
        left.set_yticks(y, names)
        values = rows[score].to_numpy()
        spread = values.max() - values.min()
        left.set_xlim(max(0.0, values.min() - 0.6 * spread - 1e-9), values.max() + 0.3 * spread)
        for yi, v in zip(y, values, strict=True):
            left.text(v, yi, f" {fmt.format_number(v)}", va="center", fontsize=8)
        left.set_xlabel(score_label)
        right.set_xscale("log")
        times = rows["fit_s"].to_numpy()
        right.set_xlim(times.min() / 2, times.max() * 8)
        right.set_xlabel("fit time (s, log scale, one thread)")
        for yi, v in zip(y, times, strict=True):
            right.text(v, yi, f" {fmt.format_number(v)}", va="center", fontsize=8)

        right.legend(
            handles=[
                Patch(facecolor="white", edgecolor="black", label="scratch"),
                Patch(facecolor="white", edgecolor="black", hatch="//", label="scikit-learn"),
            ],
            loc="lower right",
            fontsize=8,
        )
        left.set_title("Score")
        right.set_title("Fit time")
    return fig


def descent_paths(descent: pd.DataFrame) -> Figure:
    """The gap to the optimum per iteration of each variant of gradient descent on the churn
    logistic regression (log scale): colour the preconditioner, line style the momentum.

    Args:
        descent: ``variant``, ``preconditioner``, ``accelerate``, ``iteration``, ``gap``
            (``BenchmarkResult.descent``).
    """
    colors = {"diagonal": COLORS["second"], "full": COLORS["main"]}
    with style():
        fig, ax = new_figure(height=3.6)
        for name, curve in descent.groupby("variant", sort=False):
            ok = curve["gap"] > 0
            first = curve.iloc[0]
            n = int(curve["iteration"].max())
            ax.plot(curve.loc[ok, "iteration"], curve.loc[ok, "gap"],
                    color=colors.get(first["preconditioner"], COLORS["muted"]),
                    ls="-" if first["accelerate"] else "--",
                    lw=2.0 if first["accelerate"] else 1.4,
                    label=f"{name}: {fmt.format_count(n)} iterations")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("iteration (gradient evaluations)")
        ax.set_ylabel("relative gap to the optimum\n(f_k − f*) / |f*|")
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title("Churn logistic regression: four ways down to the same optimum")
    return fig


_SCORE_STYLES = {
    "actual": ("the page values themselves (perfect ranking)", COLORS["muted"], "-"),
    "chosen": (None, COLORS["main"], "-"),
    "hurdle": (None, COLORS["third"], "--"),
    "p_buy": (None, COLORS["accent"], ":"),
}


def value_capture(
    curves: pd.DataFrame, ranking: pd.DataFrame, metrics: pd.DataFrame, top_share: float
) -> Figure:
    """Share of the test Yuan on the pages ranked highest by each value score, against the
    share of pages (a cumulative gain curve); the diagonal is a random order and a dotted line
    marks ``top_share``.

    Args:
        curves: ``score``, ``share_pages``, ``share_total`` (``BenchmarkResult.value_capture``).
        ranking: ``score``, ``key``, ``capture`` (``BenchmarkResult.value_ranking``).
        metrics: the benchmark's metrics table (model names).
        top_share: the share of pages the gate and the prose use.
    """
    names = metrics.set_index("key")["model"]
    keys = ranking.set_index("score")["key"]
    capture = ranking.set_index("score")["capture"]
    labels = {
        "chosen": lambda: f"{names[keys['chosen']]}: E[value]",
        "hurdle": lambda: f"{names[keys['hurdle']]}: E[value]",
        "p_buy": lambda: f"{names[keys['p_buy']]}: P(buy) alone",
    }
    with style():
        fig, ax = new_figure(height=3.8)
        for score, curve in curves.groupby("score", sort=False):
            label, color, ls = _SCORE_STYLES.get(score, (score, COLORS["muted"], "-"))
            label = label or labels[score]()
            ax.plot(curve["share_pages"], curve["share_total"], color=color, ls=ls, lw=1.8,
                    label=f"{label} ({fmt.format_percent(capture[score])})")  # fmt: skip
        ax.plot([0, 1], [0, 1], color=COLORS["muted"], lw=0.8, ls=(0, (1, 3)))
        ax.axvline(top_share, color=COLORS["muted"], lw=0.8, ls=(0, (1, 3)))
        ax.set_xlabel("share of test pages, highest score first")
        ax.set_ylabel("share of the test Yuan on those pages")
        percent_axis(ax)
        percent_axis(ax, "x")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        share = fmt.format_setting(top_share, percent=True)
        ax.legend(title=f"ranked by (share of the Yuan in the top {share})", loc="lower right",
                  fontsize=8)  # fmt: skip
        ax.set_title("What the value models rank, test sessions")
    return fig
