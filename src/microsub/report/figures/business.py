"""Figures of the business case (chapter 07 and the deck): tables of
:class:`~microsub.business.study.BusinessResult` in, a matplotlib ``Figure`` out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from microsub import fmt
from microsub.report.figures.base import COLORS, new_figure, percent_axis, style

_SIM_COLORS = {"learned": COLORS["main"], "truth": COLORS["accent"]}
_SIM_LABELS = {"learned": "learned simulator", "truth": "true generator"}


def _dollars(ax, axis: str = "x") -> None:  # noqa: ANN001
    formatter = FuncFormatter(lambda v, _: fmt.format_money(v, "$", compact=True))
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(formatter)
    target.set_major_locator(MaxNLocator(nbins=5))  # dollar labels are wide: few of them


def net_value(
    programmes: pd.DataFrame,
    *,
    scale: float = 1.0,
    xlabel: str = "net value per month (value kept minus cost, 95 % interval)",
    title: str = "What each programme is worth a month",
    short: bool = False,
) -> Figure:
    """Net value of every programme, with 95 % intervals, in each simulator.

    Args:
        programmes: the study's programme table (``policy``, ``simulator``, ``net_usd``,
            ``net_usd_low``, ``net_usd_high``; US$ a month at the configured traffic).
        scale: factor applied to every amount (e.g. to a year at the platform's scale:
            12 x platform sessions / configured sessions); ``xlabel`` and ``title`` say it.
        short: programme names without their parenthesis (slides).
    """
    learned = programmes[programmes["simulator"] == "learned"].set_index("policy")
    order = list(learned["net_usd"].sort_values().index)
    sims = [s for s in ("learned", "truth") if s in set(programmes["simulator"])]
    with style():
        fig, ax = new_figure(height=0.45 * len(order) + 1.6)
        for k, sim in enumerate(sims):
            rows = programmes[programmes["simulator"] == sim].set_index("policy").loc[order]
            y = np.arange(len(order)) + (k - (len(sims) - 1) / 2) * 0.25
            net = rows["net_usd"] * scale
            err = np.vstack([net - rows["net_usd_low"] * scale,
                             rows["net_usd_high"] * scale - net])  # fmt: skip
            ax.errorbar(net, y, xerr=err, fmt="o", ms=5, capsize=2,
                        color=_SIM_COLORS[sim], label=_SIM_LABELS[sim])  # fmt: skip
        ax.axvline(0, color=COLORS["muted"], lw=1, ls=":")
        ax.set_yticks(range(len(order)), [p.split(" (")[0] if short else p for p in order])
        ax.set_xlabel(xlabel)
        _dollars(ax)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
        ax.set_title(title)
    return fig


def breakeven(table: pd.DataFrame) -> Figure:
    """Per intervention: what keeping one of its shoppers is worth (median) against what it
    would have to be worth for the intervention to pay, on a log scale.

    Args:
        table: the study's break-even table.
    """
    with style():
        fig, ax = new_figure(height=2.8)
        y = np.arange(len(table))
        ax.barh(y + 0.18, table["median_stake_usd"], height=0.36, color=COLORS["main"],
                label="median value at stake")  # fmt: skip
        ax.barh(y - 0.18, table["breakeven_stake_usd"], height=0.36, color=COLORS["accent"],
                label="value at stake needed to break even")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yticks(y, table["tier"])
        ax.set_xlabel("US$ per kept shopper (log scale)")
        _dollars(ax)
        ax.legend(loc="lower right")
        ax.set_title("Keeping a shopper for a session is worth far less than an intervention")
    return fig


def qini_curves(curves: pd.DataFrame) -> Figure:
    """Qini curves of the targeting scores on the randomised trial.

    Args:
        curves: ``score``, ``phi``, ``qini`` (stays added per page of the trial).
    """
    colors = {"churn risk": COLORS["main"], "expected value kept": COLORS["second"],
              "random": COLORS["muted"]}  # fmt: skip
    with style():
        fig, ax = new_figure(height=3.2, width=5.6)
        for score, rows in curves.groupby("score", sort=False):
            ax.plot(rows["phi"], rows["qini"], label=score, color=colors.get(score),
                    ls=":" if score == "random" else "-")  # fmt: skip
        ax.set_xlabel("share of pages targeted, highest score first")
        ax.set_ylabel("stays added per page of the trial")
        percent_axis(ax, "x")
        ax.legend(loc="lower right")
        ax.set_title("Qini curves: which score finds the shoppers worth keeping")
    return fig


def selection_by_group(groups: pd.DataFrame, policy: str) -> Figure:
    """Share of pages granted an intervention by gender and by age level, for ``policy``."""
    rows = groups[groups["policy"] == policy]
    with style():
        fig, axes = new_figure(1, 2, height=2.8, gridspec_kw={"width_ratios": [1, 3]})
        for ax, (attribute, part) in zip(axes, rows.groupby("attribute", sort=False),
                                         strict=True):  # fmt: skip
            ax.bar(part["group"].astype(str), part["selection_rate"], color=COLORS["main"])
            for x, (rate, n) in enumerate(zip(part["selection_rate"], part["selected"],
                                              strict=True)):  # fmt: skip
                ax.text(x, rate, f"{n:,}", ha="center", va="bottom", fontsize=8)
            ax.set_xlabel(attribute)
            ax.set_ylabel("pages granted an intervention")
            percent_axis(ax, decimals=2)
        fig.suptitle(f"Who gets an intervention: {policy} (numbers: selected pages)",
                     fontweight="bold", fontsize=11)  # fmt: skip
    return fig
