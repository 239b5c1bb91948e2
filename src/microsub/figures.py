"""Figures of the book and the deck: results in, a matplotlib ``Figure`` out.

One function per figure. Each takes what :mod:`microsub.hypotheses` computed (never the raw
pages), draws inside :func:`style` (a context: nothing is set at import or left behind), and
returns a figure that is already closed in pyplot, so a notebook shows it once, when the cell
returns it, and a script keeps no figures open. Axis labels carry their units.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from microsub.hypotheses import HypothesisResult, RewardDistribution, SurvivalCurves

#: Figure width in inches (about a book column at 100 % zoom).
WIDTH = 7.0
#: Colours of recurring roles (seaborn's colour-blind palette).
COLORS = {
    "main": "#0173b2",
    "second": "#de8f05",
    "third": "#029e73",
    "accent": "#d55e00",
    "muted": "#949494",
}
#: Readable names of pages-table and feature columns, for axes and heatmaps.
LABELS = {
    "action_page_id": "page depth",
    "state_purchase_power": "purchase power",
    "hour_sin": "hour (sin)",
    "hour_cos": "hour (cos)",
    "n_clicks": "clicks",
    "n_carts": "carts",
    "n_favs": "favourites",
    "n_purchases": "purchases",
    "engagement": "engagement",
    "reward": "reward (Yuan)",
    "page_value": "page value (Yuan)",
    "mean_ctr": "mean CTR",
    "mean_cvr": "mean CVR",
    "mean_log_price": "mean log price",
    "cum_value": "session value so far",
    "pages_since_purchase": "pages since purchase",
    "done": "left (done)",
}


@contextmanager
def style() -> Iterator[None]:
    """The figures' look (seaborn white grid, colour-blind palette), for the ``with`` block."""
    import matplotlib as mpl
    import seaborn as sns

    rc = {
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "axes.labelsize": 10,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "legend.fontsize": 9,
        "legend.frameon": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with sns.axes_style("whitegrid"), mpl.rc_context(rc), sns.color_palette("colorblind"):
        yield


def _new(
    nrows: int = 1, ncols: int = 1, *, height: float = 3.6, width: float = WIDTH, **kwargs: Any
) -> tuple[Figure, Any]:
    """A constrained-layout figure, closed in pyplot at once (see the module docstring)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kwargs)
    plt.close(fig)
    return fig, axes


def _percent(ax: Axes, axis: str = "y", decimals: int = 0) -> None:
    from matplotlib.ticker import PercentFormatter

    fmt = PercentFormatter(1.0, decimals=decimals)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _thousands(ax: Axes, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}")
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(fmt)


def _log_counts(ax: Axes) -> None:
    """Plain counts (1,000 rather than 10^3) on a logarithmic y axis, no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0), numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _ratio_axis(ax: Axes) -> None:
    """Readable ticks on a logarithmic ratio axis (0.5, 1, 2 rather than 5 x 10^-1)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    low, high = ax.get_xlim()
    nice = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 20])
    ticks = nice[(nice >= low) & (nice <= high)]
    if len(ticks) < 3:
        ticks = np.unique(np.r_[ticks, np.round(np.geomspace(low, high, 4), 2)])
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _errorbars(ax: Axes, x: np.ndarray, table: pd.DataFrame, **kwargs: Any) -> None:
    rate = table["rate"].to_numpy()
    err = np.vstack([rate - table["ci_low"].to_numpy(), table["ci_high"].to_numpy() - rate])
    err = np.nan_to_num(np.clip(err, 0.0, None))  # rounding can leave -1e-17 at a 0 % rate
    ax.errorbar(x, rate, yerr=err, capsize=2.5, marker="o", markersize=4, **kwargs)


# --------------------------------------------------------------------------------------------
# Descriptive figures
# --------------------------------------------------------------------------------------------
def class_balance(balance: pd.DataFrame) -> Figure:
    """Bar chart of the churn label: pages after which the user stayed vs left.

    Args:
        balance: :func:`microsub.hypotheses.class_balance` (``label``, ``pages``, ``share``).
    """
    with style():
        fig, ax = _new(height=3.0)
        colors = [COLORS["main"], COLORS["accent"]]
        bars = ax.barh(balance["label"], balance["pages"], color=colors[: len(balance)])
        for bar, share, n in zip(bars, balance["share"], balance["pages"], strict=True):
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f"  {n:,} ({share:.1%})",
                va="center",
                fontsize=9,
            )
        ax.set_xlabel("pages")
        ax.set_ylabel("")
        _thousands(ax)
        ax.invert_yaxis()
        ax.set_xlim(0, balance["pages"].max() * 1.3)
        ax.set_title("Class balance of the churn label (done)")
    return fig


def correlation_heatmap(
    corr: pd.DataFrame, *, height: float = 6.2, annotate: bool = True
) -> Figure:
    """Lower-triangle heatmap of a correlation matrix (values from −1 to 1).

    Args:
        corr: square correlation frame (:func:`microsub.hypotheses.correlation_matrix`).
        height: figure height in inches (the width follows, the cells stay square).
        annotate: write each correlation in its cell (too small to read on a slide).
    """
    import seaborn as sns

    labels = [LABELS.get(c, c) for c in corr.columns]
    mask = np.triu(np.ones(corr.shape, dtype=bool), k=1)
    with style():
        fig, ax = _new(height=height, width=WIDTH * height / 6.2)
        sns.heatmap(
            corr.to_numpy(),
            mask=mask,
            vmin=-1,
            vmax=1,
            center=0,
            cmap="vlag",
            annot=annotate,
            fmt=".2f",
            annot_kws={"fontsize": 7},
            square=True,
            linewidths=0.4,
            xticklabels=labels,
            yticklabels=labels,
            cbar_kws={"label": "Spearman correlation", "shrink": 0.7},
            ax=ax,
        )
        for label in ax.get_xticklabels():
            label.set(rotation=55, ha="right", rotation_mode="anchor")
        ax.grid(False)
        ax.set_title("Rank correlations between page columns")
    return fig


def reward_distribution(rewards: RewardDistribution) -> Figure:
    """Histogram and kernel density of the non-zero page rewards on a log scale (Yuan)."""
    import seaborn as sns

    with style():
        fig, ax = _new(height=3.4)
        if rewards.n_nonzero:
            sns.histplot(
                rewards.values, log_scale=True, kde=True, bins=40, color=COLORS["main"], ax=ax
            )
            med = rewards.quantiles["p50"]
            ax.axvline(med, color=COLORS["accent"], lw=1.2, ls="--")
            ax.text(
                med,
                ax.get_ylim()[1] * 0.95,
                f" median {med:,.0f} Yuan",
                va="top",
                color=COLORS["accent"],
                fontsize=9,
            )
        ax.set_xlabel("page reward, pages with a purchase (Yuan, log scale)")
        ax.set_ylabel("pages")
        ax.set_title(f"Non-zero rewards: {rewards.share_nonzero:.1%} of pages sell something")
    return fig


def survival_curves(survival: SurvivalCurves) -> Figure:
    """Kaplan-Meier curves of sessions by purchase-power group, with their confidence bands."""
    with style():
        fig, ax = _new(height=3.8)
        colors = [COLORS["accent"], COLORS["second"], COLORS["main"], COLORS["third"]]
        for (group, curve), color in zip(
            survival.curves.groupby("group", sort=False), colors, strict=False
        ):
            ax.step(curve["pages"], curve["survival"], where="post", color=color, label=group)
            ax.fill_between(
                curve["pages"],
                curve["ci_low"],
                curve["ci_high"],
                step="post",
                color=color,
                alpha=0.2,
                lw=0,
            )
        ax.set_xlabel("pages seen (t)")
        ax.set_ylabel("sessions still running after t pages")
        _percent(ax)
        ax.set_ylim(0, 1.02)
        ax.set_xticks(range(0, int(survival.curves["pages"].max()) + 1))
        ax.legend(title="purchase power")
        ax.set_title("Session survival by purchase-power group (Kaplan-Meier)")
    return fig


# --------------------------------------------------------------------------------------------
# Hypotheses
# --------------------------------------------------------------------------------------------
def fatigue(result: HypothesisResult, *, height: float = 4.6) -> Figure:
    """Hazard of leaving by page depth (with intervals) and the fitted trend past the first
    page, above the number of sessions at risk (the survivors the hazard is computed on);
    ``height`` in inches."""
    t = result.table
    with style():
        fig, (ax, ax2) = _new(
            2, 1, height=height, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        x = t["action_page_id"].to_numpy()
        _errorbars(ax, x, t, color=COLORS["main"], lw=1.2, label="observed hazard")
        if "trend" in t and t["trend"].notna().any():
            ax.plot(
                x,
                t["trend"],
                color=COLORS["accent"],
                ls="--",
                lw=1.2,
                label="logistic trend, pages 1-11",
            )
        ax.set_ylabel("share leaving after the page")
        _percent(ax)
        ax.legend(loc="upper left")
        ax.set_title("Fatigue: hazard of leaving by page depth")
        ax2.bar(x, t["pages"], color=COLORS["muted"])
        ax2.set_yscale("log")
        _log_counts(ax2)
        ax2.set_ylabel("at risk\n(pages, log)")
        ax2.set_xlabel("page depth (action_page_id)")
        ax2.set_xticks(x)
    return fig


def hour_of_day(result: HypothesisResult) -> Figure:
    """Churn rate by hour of day (line, 95 % cluster-adjusted band), the two compared windows
    shaded."""
    t = result.table
    with style():
        fig, ax = _new(height=3.4)
        if len(t):
            hours = t["hour"].to_numpy(dtype=float)
            ax.plot(hours, t["rate"], marker="o", markersize=3.5, color=COLORS["main"])
            ax.fill_between(hours, t["ci_low"], t["ci_high"], color=COLORS["main"], alpha=0.2, lw=0)
            for name, color in (("night", COLORS["accent"]), ("evening", COLORS["third"])):
                window = hours[t["window"].to_numpy() == name]
                if len(window):
                    ax.axvspan(window.min() - 0.5, window.max() + 0.5, color=color, alpha=0.12)
                    ax.text(
                        window.mean(),
                        ax.get_ylim()[1],
                        name,
                        ha="center",
                        va="top",
                        color=color,
                        fontsize=9,
                    )
        ax.set_xlabel("hour of day (h)")
        ax.set_ylabel("share of pages followed by leaving")
        _percent(ax)
        ax.set_xticks(range(0, 24, 2))
        ax.set_xlim(-0.5, 23.5)
        ax.set_title("Churn rate by hour of day")
    return fig


def purchase_power(value: HypothesisResult, churn: HypothesisResult) -> Figure:
    """Left: box plots of total session reward of buying sessions per purchase-power level
    (Yuan, log scale), with the share of sessions that buy. Right: churn rate per level."""
    tv, tc = value.table, churn.table
    with style():
        fig, (ax, ax2) = _new(1, 2, height=3.6, width=WIDTH + 0.6)
        stats = [
            {
                "label": str(int(r["state_purchase_power"])),
                "med": r["median"],
                "q1": r["q1"],
                "q3": r["q3"],
                "whislo": r["whislo"],
                "whishi": r["whishi"],
                "mean": r["mean"],
                "fliers": [],
            }
            for _, r in tv.iterrows()
            if r.buying_sessions > 0
        ]
        if stats:
            ax.bxp(
                stats,
                showmeans=True,
                patch_artist=True,
                boxprops={"facecolor": COLORS["main"], "alpha": 0.35},
                medianprops={"color": COLORS["accent"]},
                meanprops={
                    "marker": "D",
                    "markerfacecolor": "white",
                    "markeredgecolor": "black",
                    "markersize": 4,
                },
            )
            ax.set_yscale("log")
            top = ax.get_ylim()[1]
            for i, (_, r) in enumerate(tv[tv.buying_sessions > 0].iterrows(), start=1):
                ax.text(
                    i,
                    top,
                    f"{r.buying_share:.0%}",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    color=COLORS["muted"],
                )
        ax.set_xlabel("purchase power (level as logged)")
        ax.set_ylabel("total session reward,\nbuying sessions (Yuan, log)")
        ax.set_title("Spend per buying session\n(grey: share of sessions that buy)", pad=14)
        if len(tc):
            _errorbars(ax2, tc["state_purchase_power"].to_numpy(), tc, color=COLORS["main"])
        ax2.set_xlabel("purchase power (level as logged)")
        ax2.set_ylabel("share of pages followed by leaving")
        _percent(ax2)
        ax2.set_title("Churn rate per page\n", pad=14)
    return fig


def engagement(result: HypothesisResult) -> Figure:
    """Retention at t + 1 (share of pages followed by a next page) by engagement on page t,
    one line per depth band (95 % cluster-adjusted intervals)."""
    t = result.table
    colors = [COLORS["accent"], COLORS["second"], COLORS["main"]]
    with style():
        fig, ax = _new(height=3.6)
        for (band, part), color in zip(t.groupby("depth_band", sort=False), colors, strict=False):
            part = part.sort_values("engagement_level")
            x = part["engagement_level"].to_numpy(dtype=float)
            _errorbars(ax, x, part, color=color, label=band)
        levels = sorted(t["engagement_level"].unique())
        ax.set_xticks(levels)
        ax.set_xticklabels([f"{v}+" if v == max(levels) else str(v) for v in levels])
        ax.set_xlabel("engagement on page t (clicks + carts)")
        ax.set_ylabel("share asking for page t + 1")
        _percent(ax)
        ax.legend(title="depth of page t")
        ax.set_title("Engagement and retention at the next page")
    return fig


def purchase_reset(result: HypothesisResult) -> Figure:
    """Hazard by depth for pages right after a purchase and pages after none (95 % Wilson
    intervals), side by side at each depth."""
    t = result.table
    with style():
        fig, ax = _new(height=3.6)
        for flag, label, color, shift in (
            (0, "previous page without purchase", COLORS["main"], -0.12),
            (1, "page right after a purchase", COLORS["accent"], 0.12),
        ):
            part = t[t["after_purchase"] == flag].sort_values("action_page_id")
            if len(part):
                x = part["action_page_id"].to_numpy(dtype=float) + shift
                _errorbars(ax, x, part, color=color, label=label, lw=1)
        ax.set_xlabel("page depth (action_page_id)")
        ax.set_ylabel("share leaving after the page")
        _percent(ax)
        ax.set_xticks(sorted(t["action_page_id"].unique()))
        ax.legend(loc="upper left")
        ax.set_title("Does a purchase reset the churn clock?")
    return fig


def item_mix(churn: HypothesisResult, spend: HypothesisResult) -> Figure:
    """Forest plots of the item-mix effects: odds ratio of leaving (left) and ratio of mean
    page reward (right) per standard deviation of each mix variable, 95 % intervals, log axis."""
    with style():
        fig, axes = _new(1, 2, height=2.8, width=WIDTH + 0.6, sharey=True)
        for ax, result, title, color in (
            (axes[0], churn, "Leaving (odds ratio)", COLORS["accent"]),
            (axes[1], spend, "Spend (ratio of means)", COLORS["main"]),
        ):
            t = result.table
            if len(t):
                y = np.arange(len(t))[::-1]
                err = np.clip(
                    np.vstack([t["ratio"] - t["ci_low"], t["ci_high"] - t["ratio"]]), 0, None
                )
                ax.errorbar(t["ratio"], y, xerr=err, fmt="o", color=color, capsize=3)
                ax.set_yticks(y)
                ax.set_yticklabels(t["label"])
            ax.axvline(1.0, color=COLORS["muted"], lw=1, ls="--")
            ax.set_xscale("log")
            _ratio_axis(ax)
            ax.set_xlabel("effect per SD of the variable (log scale)")
            ax.set_title(title)
        fig.suptitle("Item mix of the page: adjusted effects", fontsize=11, fontweight="bold")
    return fig


def verdicts(results: Sequence[HypothesisResult]) -> Figure:
    """The ratio-scaled estimates of the hypothesis family with their intervals (log axis),
    coloured by verdict; estimates on a difference scale are left out."""
    colors = {
        "supported": COLORS["third"],
        "not supported": COLORS["accent"],
        "inconclusive": COLORS["muted"],
    }
    rows = [r for r in results if r.scale == "ratio" and np.isfinite(r.estimate)]
    with style():
        fig, ax = _new(height=0.45 * max(len(rows), 2) + 1.0)
        for i, r in enumerate(rows[::-1]):
            ax.errorbar(
                r.estimate,
                i,
                xerr=[[r.estimate - r.ci_low], [r.ci_high - r.estimate]],
                fmt="o",
                capsize=3,
                color=colors[r.verdict],
            )
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r.name for r in rows[::-1]])
        ax.axvline(1.0, color=COLORS["muted"], lw=1, ls="--")
        ax.set_xscale("log")
        _ratio_axis(ax)
        ax.set_xlabel("ratio (odds ratio or ratio of means; log scale)")
        for verdict, color in colors.items():
            ax.plot([], [], "o", color=color, label=verdict)
        ax.legend(loc="lower left")
        ax.set_title("Hypotheses: estimates with their intervals")
    return fig


# ============================================================================================
# Benchmark figures (chapter 05 and the deck): tables of microsub.benchmark.BenchmarkResult in.
#
# ``metrics`` is BenchmarkResult.metrics (``key``, ``model``, ``implementation``, ``kind``,
# ``roc_auc``, ``pr_auc``, ``base_rate``, ``fit_s``, ``best``, ...). A model's colour says its
# family (linear, trees, baseline) and its line style its implementation (scratch solid,
# scikit-learn dashed), so a scratch model and its reference overlap when they agree.
# ============================================================================================
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
        fig, ax = _new(height=height, width=width)
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
        fig, ax = _new(height=3.8)
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
        _percent(ax)
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
        fig, ax = _new(height=3.8)
        top = float(calibration[["mean_predicted", "observed"]].to_numpy().max())
        lim = min(1.0, top * 1.05 + 0.02)
        ax.plot([0, lim], [0, lim], color=COLORS["muted"], lw=0.8, ls=(0, (1, 3)))
        for row in _model_rows(metrics, calibration["key"].unique()):
            t = calibration[calibration["key"] == row.name]
            ax.plot(t["mean_predicted"], t["observed"], marker="o", markersize=3.5,
                    label=f"{row['model']} ({row['brier']:.4f})", **_model_style(row))  # fmt: skip
        ax.set_xlabel("mean predicted probability of leaving (bin)")
        ax.set_ylabel("observed share leaving (bin)")
        _percent(ax)
        _percent(ax, "x")
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
        fig, (left, right) = _new(1, 2, height=3.4)
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
        fig, axes = _new(nrows, ncols, height=2.6 * nrows + 0.3, squeeze=False)
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
    (default: from the number of models)."""
    rows = metrics[metrics["task"] == task].iloc[::-1]
    score, score_label = ("roc_auc", "test ROC AUC") if task == "churn" else (
        "rmse", "test RMSE (Yuan)")  # fmt: skip
    with style():
        height = height if height is not None else 0.42 * len(rows) + 1.2
        fig, (left, right) = _new(1, 2, height=height, sharey=True)
        y = np.arange(len(rows))
        colors = [_FAMILY_COLORS.get(k, COLORS["muted"]) for k in rows["kind"]]
        hatches = ["//" if i == "scikit-learn" else "" for i in rows["implementation"]]
        for ax, col in ((left, score), (right, "fit_s")):
            bars = ax.barh(y, rows[col], color=colors, edgecolor="white")
            for bar, hatch in zip(bars, hatches, strict=True):
                bar.set_hatch(hatch)
        names = [m + ("  ★" if b else "") for m, b in zip(rows["model"], rows["best"],
                                                          strict=True)]  # fmt: skip
        left.set_yticks(y, names)
        values = rows[score].to_numpy()
        spread = values.max() - values.min()
        left.set_xlim(max(0.0, values.min() - 0.6 * spread - 1e-9), values.max() + 0.3 * spread)
        for yi, v in zip(y, values, strict=True):
            left.text(v, yi, f" {v:.3f}", va="center", fontsize=8)
        left.set_xlabel(score_label)
        right.set_xscale("log")
        times = rows["fit_s"].to_numpy()
        right.set_xlim(times.min() / 2, times.max() * 8)
        right.set_xlabel("fit time (s, log scale, one thread)")
        for yi, v in zip(y, times, strict=True):
            right.text(v, yi, f" {v:.2g}", va="center", fontsize=8)
        from matplotlib.patches import Patch

        right.legend(handles=[Patch(facecolor="white", edgecolor="black", label="scratch"),
                              Patch(facecolor="white", edgecolor="black", hatch="//",
                                    label="scikit-learn")], loc="lower right", fontsize=8)
        left.set_title("Score")
        right.set_title("Fit time")
    return fig
