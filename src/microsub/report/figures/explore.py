"""Figures of the exploration (chapter 03 and the deck): results of :mod:`microsub.analysis` in,
a matplotlib ``Figure`` out. Axis labels carry their units."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from microsub.analysis.describe import RewardDistribution, SurvivalCurves
from microsub.analysis.verdicts import HypothesisResult
from microsub.report.figures.base import (
    COLORS,
    WIDTH,
    log_count_axis,
    new_figure,
    percent_axis,
    rate_errorbars,
    ratio_axis,
    style,
    thousands_axis,
)
from microsub.report.labels import LABELS


def class_balance(balance: pd.DataFrame) -> Figure:
    """Bar chart of the churn label: pages after which the user stayed vs left.

    Args:
        balance: :func:`microsub.hypotheses.class_balance` (``label``, ``pages``, ``share``).
    """
    with style():
        fig, ax = new_figure(height=3.0)
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
        thousands_axis(ax)
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

    labels = [LABELS.get(c, c) for c in corr.columns]
    mask = np.triu(np.ones(corr.shape, dtype=bool), k=1)
    with style():
        fig, ax = new_figure(height=height, width=WIDTH * height / 6.2)
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

    with style():
        fig, ax = new_figure(height=3.4)
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
        fig, ax = new_figure(height=3.8)
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
        percent_axis(ax)
        ax.set_ylim(0, 1.02)
        ax.set_xticks(range(0, int(survival.curves["pages"].max()) + 1))
        ax.legend(title="purchase power")
        ax.set_title("Session survival by purchase-power group (Kaplan-Meier)")
    return fig


def fatigue(result: HypothesisResult, *, height: float = 4.6) -> Figure:
    """Hazard of leaving by page depth (with intervals) and the fitted trend past the first
    page, above the number of sessions at risk (the survivors the hazard is computed on);
    ``height`` in inches."""
    t = result.table
    with style():
        fig, (ax, ax2) = new_figure(
            2, 1, height=height, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        x = t["action_page_id"].to_numpy()
        rate_errorbars(ax, x, t, color=COLORS["main"], lw=1.2, label="observed hazard")
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
        percent_axis(ax)
        ax.legend(loc="upper left")
        ax.set_title("Fatigue: hazard of leaving by page depth")
        ax2.bar(x, t["pages"], color=COLORS["muted"])
        ax2.set_yscale("log")
        log_count_axis(ax2)
        ax2.set_ylabel("at risk\n(pages, log)")
        ax2.set_xlabel("page depth (action_page_id)")
        ax2.set_xticks(x)
    return fig


def hour_of_day(result: HypothesisResult) -> Figure:
    """Churn rate by hour of day (line, 95 % cluster-adjusted band), the two compared windows
    shaded."""
    t = result.table
    with style():
        fig, ax = new_figure(height=3.4)
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
        percent_axis(ax)
        ax.set_xticks(range(0, 24, 2))
        ax.set_xlim(-0.5, 23.5)
        ax.set_title("Churn rate by hour of day")
    return fig


def purchase_power(value: HypothesisResult, churn: HypothesisResult) -> Figure:
    """Left: box plots of total session reward of buying sessions per purchase-power level
    (Yuan, log scale), with the share of sessions that buy. Right: churn rate per level."""
    tv, tc = value.table, churn.table
    with style():
        fig, (ax, ax2) = new_figure(1, 2, height=3.6, width=WIDTH + 0.6)
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
            rate_errorbars(ax2, tc["state_purchase_power"].to_numpy(), tc, color=COLORS["main"])
        ax2.set_xlabel("purchase power (level as logged)")
        ax2.set_ylabel("share of pages followed by leaving")
        percent_axis(ax2)
        ax2.set_title("Churn rate per page\n", pad=14)
    return fig


def engagement(result: HypothesisResult) -> Figure:
    """Retention at t + 1 (share of pages followed by a next page) by engagement on page t,
    one line per depth band (95 % cluster-adjusted intervals)."""
    t = result.table
    colors = [COLORS["accent"], COLORS["second"], COLORS["main"]]
    with style():
        fig, ax = new_figure(height=3.6)
        for (band, part), color in zip(t.groupby("depth_band", sort=False), colors, strict=False):
            part = part.sort_values("engagement_level")
            x = part["engagement_level"].to_numpy(dtype=float)
            rate_errorbars(ax, x, part, color=color, label=band)
        levels = sorted(t["engagement_level"].unique())
        ax.set_xticks(levels)
        ax.set_xticklabels([f"{v}+" if v == max(levels) else str(v) for v in levels])
        ax.set_xlabel("engagement on page t (clicks + carts)")
        ax.set_ylabel("share asking for page t + 1")
        percent_axis(ax)
        ax.legend(title="depth of page t")
        ax.set_title("Engagement and retention at the next page")
    return fig


def purchase_reset(result: HypothesisResult) -> Figure:
    """Hazard by depth for pages right after a purchase and pages after none (95 % Wilson
    intervals), side by side at each depth."""
    t = result.table
    with style():
        fig, ax = new_figure(height=3.6)
        for flag, label, color, shift in (
            (0, "previous page without purchase", COLORS["main"], -0.12),
            (1, "page right after a purchase", COLORS["accent"], 0.12),
        ):
            part = t[t["after_purchase"] == flag].sort_values("action_page_id")
            if len(part):
                x = part["action_page_id"].to_numpy(dtype=float) + shift
                rate_errorbars(ax, x, part, color=color, label=label, lw=1)
        ax.set_xlabel("page depth (action_page_id)")
        ax.set_ylabel("share leaving after the page")
        percent_axis(ax)
        ax.set_xticks(sorted(t["action_page_id"].unique()))
        ax.legend(loc="upper left")
        ax.set_title("Does a purchase reset the churn clock?")
    return fig


def item_mix(churn: HypothesisResult, spend: HypothesisResult) -> Figure:
    """Forest plots of the item-mix effects: odds ratio of leaving (left) and ratio of mean
    page reward (right) per standard deviation of each mix variable, 95 % intervals, log axis."""
    with style():
        fig, axes = new_figure(1, 2, height=2.8, width=WIDTH + 0.6, sharey=True)
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
            ratio_axis(ax)
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
        fig, ax = new_figure(height=0.45 * max(len(rows), 2) + 1.0)
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
        ratio_axis(ax)
        ax.set_xlabel("ratio (odds ratio or ratio of means; log scale)")
        for verdict, color in colors.items():
            ax.plot([], [], "o", color=color, label=verdict)
        ax.legend(loc="lower left")
        ax.set_title("Hypotheses: estimates with their intervals")
    return fig
