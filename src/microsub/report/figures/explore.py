"""Figures of the exploration (chapter 03 and the deck): results of :mod:`microsub.analysis` in,
a matplotlib ``Figure`` out. Axis labels carry their units."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from microsub.analysis.describe import RewardDistribution, SurvivalCurves, trend_fit
from microsub.analysis.verdicts import MARGINS, HypothesisResult
from microsub.fmt import format_count, format_number, format_percent
from microsub.report.figures.base import (
    COLORS,
    GROUP_STYLES,
    WIDTH,
    log_count_axis,
    new_figure,
    percent_axis,
    plain_log_axis,
    rate_errorbars,
    ratio_axis,
    style,
    thousands_axis,
)
from microsub.report.labels import label

#: Columns of the book's correlation heatmap: the golden features and the two targets (page
#: value is the reward, so it appears once, as the value target).
HEATMAP_COLUMNS = (
    "action_page_id",
    "state_purchase_power",
    "hour_sin",
    "hour_cos",
    "engagement",
    "reward",
    "done",
)


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
                f"  {format_count(n)} ({format_percent(share)})",
                va="center",
                fontsize="small",
            )
        ax.set_xlabel("pages")
        ax.set_ylabel("")
        thousands_axis(ax)
        ax.invert_yaxis()
        ax.set_xlim(0, balance["pages"].max() * 1.4)
        ax.set_title("Class balance of the churn label")
    return fig


def correlation_heatmap(
    corr: pd.DataFrame,
    *,
    height: float = 4.4,
    annotate: bool = True,
    columns: Sequence[str] = HEATMAP_COLUMNS,
    threshold: float = MARGINS["correlation"],
) -> Figure:
    """Lower-triangle heatmap of the rank correlations between a few columns (−1 to 1).

    Args:
        corr: square correlation frame (:func:`microsub.analysis.describe.correlation_matrix`).
        height: figure height in inches (the width follows, the cells stay square).
        annotate: write the correlation in each cell whose absolute value is at least
            ``threshold`` (cells below it are negligible and left blank).
        columns: the columns shown, in order (those absent from ``corr`` are skipped); the
            default is :data:`HEATMAP_COLUMNS`.
        threshold: smallest absolute correlation written in its cell (the chapter's margin of
            a negligible rank correlation).
    """
    cols = [c for c in columns if c in corr.columns]
    sub = corr.loc[cols, cols]
    # lower triangle without the diagonal of ones: rows 2..k against columns 1..k-1
    shown = sub.iloc[1:, :-1]
    mask = np.triu(np.ones(shown.shape, dtype=bool), k=1)
    text = np.where(
        annotate & ~mask & (shown.abs().to_numpy() >= threshold),
        np.vectorize(lambda v: format_number(v, 2))(shown.to_numpy()),
        "",
    )
    with style():
        fig, ax = new_figure(height=height, width=min(WIDTH, height * 1.45))
        sns.heatmap(
            shown.to_numpy(),
            mask=mask,
            vmin=-1,
            vmax=1,
            center=0,
            cmap="vlag",
            annot=text if annotate else False,
            fmt="",
            annot_kws={"fontsize": 9},
            square=True,
            linewidths=0.6,
            xticklabels=[label(c) for c in shown.columns],
            yticklabels=[label(c) for c in shown.index],
            cbar_kws={
                "label": "Spearman rank correlation",
                "shrink": 0.8,
                "ticks": [-1, -0.5, 0, 0.5, 1],
            },
            ax=ax,
        )
        for tick in ax.get_xticklabels():
            tick.set(rotation=35, ha="right", rotation_mode="anchor")
        ax.tick_params(axis="y", rotation=0)
        ax.grid(False)
        ax.set_title("Rank correlations: golden features and targets")
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
                f" median {format_number(med)} Yuan",
                va="top",
                color=COLORS["accent"],
                fontsize=9,
            )
            plain_log_axis(ax, "x")
        ax.set_xlabel("page reward, pages with a purchase (Yuan, log scale)")
        ax.set_ylabel("pages")
        ax.set_title(
            f"Non-zero rewards: {format_percent(rewards.share_nonzero)} of pages sell something"
        )
    return fig


def _survival_panel(
    top: Axes,
    bottom: Axes,
    group: str,
    curve: pd.DataFrame,
    others: list[pd.DataFrame],
    color: str,
) -> None:
    """One group's column of :func:`survival_curves`: the other groups in grey, the curve with
    its shaded band and bound marks (``top``), the band's width in points (``bottom``)."""
    for rest in others:
        top.step(rest["pages"], rest["survival"], where="post", color=COLORS["muted"], lw=0.8,
                 alpha=0.6)  # fmt: skip
    top.fill_between(curve["pages"], curve["ci_low"], curve["ci_high"], step="post",
                     color=color, alpha=0.35, lw=0)  # fmt: skip
    top.step(curve["pages"], curve["survival"], where="post", color=color, lw=1.6, label=group)
    err = np.clip(np.vstack([curve["survival"] - curve["ci_low"],
                             curve["ci_high"] - curve["survival"]]), 0, None)  # fmt: skip
    top.errorbar(curve["pages"], curve["survival"], yerr=np.nan_to_num(err), fmt="none",
                 ecolor=color, elinewidth=1, capsize=2.5)  # fmt: skip
    top.set_title(group, fontsize=10)
    width = (curve["ci_high"] - curve["ci_low"]).to_numpy(dtype=float) * 100
    bottom.bar(curve["pages"], np.nan_to_num(width), color=color, alpha=0.6)
    bottom.set_xlabel("pages seen (t)")
    bottom.set_xticks(range(0, int(curve["pages"].max()) + 1, 2))


def survival_curves(survival: SurvivalCurves, *, height: float = 4.4) -> Figure:
    """Kaplan-Meier curves of sessions by purchase-power group, one column per group: the curve
    with its confidence band (shaded, its bounds marked at every t) and the other groups in grey
    behind it for comparison (top), and the band's width at every t in percentage points
    (bottom), so that a band too narrow to see at the curve's scale still shows; ``height`` in
    inches."""
    groups = list(survival.curves.groupby("group", sort=False)) if len(survival.curves) else []
    k = max(len(groups), 1)
    with style():
        fig, axes = new_figure(
            2,
            k,
            height=height,
            sharex=True,
            sharey="row",
            squeeze=False,
            gridspec_kw={"height_ratios": [3, 1]},
        )
        for (top, bottom), (group, curve), look in zip(axes.T, groups, GROUP_STYLES, strict=False):
            others = [rest for other, rest in groups if other != group]
            _survival_panel(top, bottom, str(group), curve, others, look["color"])
        axes[0, 0].set_ylabel("sessions still running\nafter t pages")
        percent_axis(axes[0, 0])
        axes[0, 0].set_ylim(0, 1.02)
        axes[1, 0].set_ylabel("band width\n(points)")
        groups_of = f"{label('state_purchase_power')} group"
        fig.suptitle(
            f"Session survival by {groups_of} (Kaplan-Meier, 95 % bands)",
            fontsize=11,
            fontweight="bold",
        )
    return fig


def fatigue(result: HypothesisResult, *, height: float = 4.6) -> Figure:
    """Hazard of leaving by page depth (with intervals) and the fitted trend past the first
    page, the depths where the trend overshoots the observed interval shaded, above the number
    of sessions at risk (the survivors the hazard is computed on); ``height`` in inches."""
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
                label="logistic trend (one slope), pages 1-11",
            )
            above = trend_fit(t).above
            if above:
                ax.axvspan(
                    min(above) - 0.5,
                    max(above) + 0.5,
                    color=COLORS["muted"],
                    alpha=0.15,
                    lw=0,
                    label="trend above the observed interval",
                )
        ax.set_ylabel("share leaving after the page")
        percent_axis(ax)
        ax.legend(loc="upper left")
        ax.set_title("Fatigue: hazard of leaving by page depth")
        ax2.bar(x, t["pages"], color=COLORS["muted"])
        ax2.set_yscale("log")
        log_count_axis(ax2)
        ax2.set_ylabel("at risk\n(pages, log)")
        ax2.set_xlabel(label("action_page_id"))
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
        ax.set_xlabel(f"{label('hour')} (h)")
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
            plain_log_axis(ax, "y")
            top = ax.get_ylim()[1]
            for i, (_, r) in enumerate(tv[tv.buying_sessions > 0].iterrows(), start=1):
                ax.text(
                    i,
                    top,
                    format_percent(r.buying_share, 2),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    color=COLORS["muted"],
                )
        ax.set_xlabel(f"{label('state_purchase_power')} (level as logged)")
        ax.set_ylabel("total session reward,\nbuying sessions (Yuan, log)")
        ax.set_title("Spend per buying session\n(grey: share of sessions that buy)", pad=14)
        if len(tc):
            rate_errorbars(ax2, tc["state_purchase_power"].to_numpy(), tc, color=COLORS["main"])
        ax2.set_xlabel(f"{label('state_purchase_power')} (level as logged)")
        ax2.set_ylabel("share of pages followed by leaving")
        percent_axis(ax2)
        ax2.set_title("Churn rate per page\n", pad=14)
    return fig


def engagement(result: HypothesisResult) -> Figure:
    """Retention at t + 1 (share of pages followed by a next page) by engagement on page t,
    one line per depth band (95 % cluster-adjusted intervals)."""
    t = result.table
    with style():
        fig, ax = new_figure(height=3.6)
        for (band, part), look in zip(
            t.groupby("depth_band", sort=False), GROUP_STYLES, strict=False
        ):
            part = part.sort_values("engagement_level")
            x = part["engagement_level"].to_numpy(dtype=float)
            rate_errorbars(ax, x, part, label=band, **look)
        levels = sorted(t["engagement_level"].unique())
        ax.set_xticks(levels)
        ax.set_xticklabels([f"{v}+" if v == max(levels) else str(v) for v in levels])
        ax.set_xlabel(f"{label('engagement')} on page t (clicks + carts)")
        ax.set_ylabel("share asking for page t + 1")
        percent_axis(ax)
        ax.legend(title=f"{label('action_page_id')} of page t")
        ax.set_title("Engagement and retention at the next page")
    return fig


def purchase_reset(result: HypothesisResult) -> Figure:
    """Hazard by depth for pages right after a purchase and pages after none (95 % Wilson
    intervals), side by side at each depth."""
    t = result.table
    with style():
        fig, ax = new_figure(height=3.6)
        for flag, name, color, shift in (
            (0, "previous page without purchase", COLORS["main"], -0.12),
            (1, "page right after a purchase", COLORS["accent"], 0.12),
        ):
            part = t[t["after_purchase"] == flag].sort_values("action_page_id")
            if len(part):
                x = part["action_page_id"].to_numpy(dtype=float) + shift
                rate_errorbars(ax, x, part, color=color, label=name, lw=1)
        ax.set_xlabel(label("action_page_id"))
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


#: Colour of each verdict in the verdict figure.
VERDICT_COLORS = {
    "supported": COLORS["third"],
    "not supported": COLORS["accent"],
    "inconclusive": COLORS["muted"],
}


def verdicts(results: Sequence[HypothesisResult]) -> Figure:
    """The ratio-scaled estimates of the hypothesis family with their intervals (log axis),
    coloured by verdict, with a legend of the verdicts that occur; estimates on a difference
    scale are left out."""
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
                color=VERDICT_COLORS[r.verdict],
            )
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r.name for r in rows[::-1]])
        ax.axvline(1.0, color=COLORS["muted"], lw=1, ls="--")
        ax.set_xscale("log")
        ratio_axis(ax)
        ax.set_xlabel("ratio (odds ratio or ratio of means; log scale)")
        present = {r.verdict for r in rows}
        for verdict, color in VERDICT_COLORS.items():
            if verdict in present:
                ax.plot([], [], "o", color=color, label=verdict)
        if present:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="verdict")
        ax.set_title("Hypotheses: estimates with their intervals")
    return fig
