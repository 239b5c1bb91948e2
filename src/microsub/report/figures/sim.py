"""Figures of the session simulator (chapter 06 and the deck): tables of
:class:`~microsub.sim.study.SimulationResult` in, a matplotlib ``Figure`` out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from microsub.report.figures.base import COLORS, new_figure, percent_axis, style

#: Colour of each simulator in the policy figures.
SIMULATOR_COLORS = {"A": COLORS["main"], "B": COLORS["second"], "truth": COLORS["accent"]}
#: How each simulator is named in legends.
SIMULATOR_LABELS = {
    "A": "learned simulator A (policies learned here)",
    "B": "learned simulator B (other half of the sessions)",
    "truth": "true generator",
}


def slot_curve(curve: pd.DataFrame) -> Figure:
    """Clicks by on-page slot, relative to the page average: the position bias of the log.

    Args:
        curve: ``slot``, ``relative`` (:func:`~microsub.sim.candidates.slot_click_curve`).
    """
    with style():
        fig, ax = new_figure(height=2.8)
        ax.plot(curve["slot"], curve["relative"], marker="o", ms=3, color=COLORS["main"])
        ax.axhline(1.0, color=COLORS["muted"], lw=1, ls=":")
        ax.set_xlabel("slot on the page (0 = top)")
        ax.set_ylabel("click rate / page average")
        ax.set_title("Clicks fall only mildly down the page")
    return fig


def validation(reach: pd.DataFrame, hazard: pd.DataFrame) -> Figure:
    """Simulator A under the logged policy against the held-out sessions of B: the share of
    sessions reaching each page, and the churn after each page with 95 % intervals.

    Args:
        reach: ``source``, ``depth``, ``share``; hazard: ``source``, ``depth``, ``rate``,
            ``ci_low``, ``ci_high``, ``pages`` (:class:`~microsub.sim.study.SimulationResult`).
    """
    colors = {"simulator A": COLORS["main"], "held-out B": COLORS["accent"]}
    with style():
        fig, (left, right) = new_figure(1, 2, height=3.2)
        for source, rows in reach.groupby("source", sort=False):
            ls = "-" if source == "simulator A" else "--"
            left.plot(rows["depth"], rows["share"], marker="o", ms=4, label=source,
                      color=colors[source], ls=ls)  # fmt: skip
        left.set_xlabel("page")
        left.set_ylabel("sessions reaching the page")
        percent_axis(left)
        left.legend()
        for k, (source, rows) in enumerate(hazard.groupby("source", sort=False)):
            rows = rows[rows["pages"] >= 30]
            x = rows["depth"].to_numpy() + (k - 0.5) * 0.15
            err = np.vstack([rows["rate"] - rows["ci_low"], rows["ci_high"] - rows["rate"]])
            right.errorbar(x, rows["rate"], yerr=np.clip(err, 0, None), marker="o", ms=4,
                           capsize=2.5, color=colors[source], label=source, ls="none")  # fmt: skip
        right.set_xlabel("page")
        right.set_ylabel("left after the page")
        percent_axis(right)
        fig.suptitle("The simulator replays held-out sessions", fontweight="bold", fontsize=11)
    return fig


def policy_values(policies: pd.DataFrame, order: list[str] | None = None) -> Figure:
    """Yuan per session of every policy in every simulator, with 95 % intervals.

    Args:
        policies: the study's policy table (``policy``, ``simulator``, ``value``,
            ``value_low``, ``value_high``).
        order: policies top to bottom (default: by value in simulator A).
    """
    a = policies[policies["simulator"] == "A"].set_index("policy")["value"]
    order = order or list(a.sort_values().index)
    sims = [s for s in ("A", "B", "truth") if s in set(policies["simulator"])]
    with style():
        fig, ax = new_figure(height=0.36 * len(order) + 2.0)
        y = {name: i for i, name in enumerate(order)}
        for k, sim in enumerate(sims):
            rows = policies[policies["simulator"] == sim].set_index("policy").loc[order]
            pos = np.array([y[p] for p in rows.index]) + (k - (len(sims) - 1) / 2) * 0.22
            err = np.vstack([rows["value"] - rows["value_low"], rows["value_high"] - rows["value"]])
            ax.errorbar(rows["value"], pos, xerr=err, fmt="o", ms=4, capsize=2,
                        color=SIMULATOR_COLORS[sim], label=SIMULATOR_LABELS[sim])  # fmt: skip
        ax.set_yticks(range(len(order)), order)
        ax.set_xlabel("Yuan per session (mean, 95 % interval)")
        ax.set_ylabel("")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, frameon=False)
        ax.set_title("What each policy is worth, in each simulator")
    return fig


def sim_gap(gaps: pd.DataFrame, column: str = "truth") -> Figure:
    """Promised (simulator A) against delivered (``column``): one point per policy; points
    below the diagonal were oversold by the simulator.

    Args:
        gaps: :func:`~microsub.sim.evaluate.gap_table` output.
        column: ``"truth"`` or ``"B"``.
    """
    with style():
        fig, ax = new_figure(height=4.0, width=5.2)
        x, y = gaps["promised"].to_numpy(), gaps[column].to_numpy()
        ax.scatter(x, y, color=SIMULATOR_COLORS.get(column, COLORS["main"]), zorder=3)
        lo, hi = min(x.min(), y.min()) * 0.9, max(x.max(), y.max()) * 1.05
        ax.plot([lo, hi], [lo, hi], color=COLORS["muted"], ls=":", lw=1)
        for name, a, b in zip(gaps["policy"], x, y, strict=True):
            if (
                name in ("logged", "random")
                or name.startswith(("greedy", "learned"))
                or (abs(b - a) == np.abs(y - x).max())
            ):
                ax.annotate(name.split(" (")[0], (a, b), xytext=(4, 4),
                            textcoords="offset points", fontsize=8)  # fmt: skip
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("promised by simulator A (Yuan per session)")
        ax.set_ylabel(f"delivered by {SIMULATOR_LABELS.get(column, column).split(' (')[0]}")
        ax.set_title("Promised against delivered")
    return fig
