"""The look shared by every figure of the book and the deck, and small axis helpers.

Each figure draws inside :func:`style` (a context: nothing is set at import or left behind) on a
figure from :func:`new_figure`, which is already closed in pyplot, so a notebook shows it once,
when the cell returns it, and a script keeps no figures open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
    PercentFormatter,
)

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


#: Text size factor of every figure: 1 for the book; the deck raises it
#: (:func:`set_font_scale`) so a room reads its figures from the back.
_TEXT = {"scale": 1.0}


def set_font_scale(scale: float) -> None:
    """Scale the text of every figure drawn from now on in this process (1: the book's size).

    The deck calls it once in its setup cell; the book never does.
    """
    if not scale > 0:
        raise ValueError(f"font scale must be positive, got {scale!r}")
    _TEXT["scale"] = float(scale)


#: Colours, markers and line styles of ordered groups drawn side by side (purchase-power
#: groups, depth bands): blue, orange and green of the colour-blind palette, never the orange
#: and the vermillion together (neighbours a reader cannot tell apart in thin lines), each with
#: its own marker and dash so that the groups differ without colour too.
GROUP_STYLES = (
    {"color": "#0173b2", "marker": "o", "linestyle": "-"},
    {"color": "#de8f05", "marker": "s", "linestyle": "--"},
    {"color": "#029e73", "marker": "^", "linestyle": "-."},
    {"color": "#cc78bc", "marker": "D", "linestyle": ":"},
)


@contextmanager
def style() -> Iterator[None]:
    """The figures' look (seaborn white grid, colour-blind palette), for the ``with`` block."""

    k = _TEXT["scale"]
    rc = {
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "font.size": 10 * k,
        "axes.titlesize": 11 * k,
        "axes.titleweight": "bold",
        "axes.labelsize": 10 * k,
        "xtick.labelsize": 9 * k,
        "ytick.labelsize": 9 * k,
        "legend.fontsize": 9 * k,
        "legend.frameon": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with sns.axes_style("whitegrid"), mpl.rc_context(rc), sns.color_palette("colorblind"):
        yield


def new_figure(
    nrows: int = 1, ncols: int = 1, *, height: float = 3.6, width: float = WIDTH, **kwargs: Any
) -> tuple[Figure, Any]:
    """A constrained-layout figure, closed in pyplot at once (see the module docstring)."""

    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kwargs)
    plt.close(fig)
    return fig, axes


def percent_axis(ax: Axes, axis: str = "y", decimals: int = 0) -> None:

    fmt = PercentFormatter(1.0, decimals=decimals)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def thousands_axis(ax: Axes, axis: str = "x") -> None:
    """Counts on ``axis`` with thousands separators, at most five ticks (wide labels)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    target.set_major_locator(MaxNLocator(nbins=4, integer=True))


def log_count_axis(ax: Axes) -> None:
    """Plain counts (1,000 rather than 10^3) on a logarithmic y axis, no minor labels."""

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0), numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def plain_log_axis(ax: Axes, axis: str = "y") -> None:
    """Plain numbers (1, 10, 100, 1,000 rather than 10^0 ... 10^3) on a logarithmic axis, no
    minor labels."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10, numticks=12))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def ratio_axis(ax: Axes) -> None:
    """Readable ticks on a logarithmic ratio axis (0.5, 1, 2 rather than 5 x 10^-1)."""

    low, high = ax.get_xlim()
    nice = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 20])
    ticks = nice[(nice >= low) & (nice <= high)]
    if len(ticks) < 3:
        ticks = np.unique(np.r_[ticks, np.round(np.geomspace(low, high, 4), 2)])
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def rate_errorbars(ax: Axes, x: np.ndarray, table: pd.DataFrame, **kwargs: Any) -> None:
    rate = table["rate"].to_numpy()
    err = np.vstack([rate - table["ci_low"].to_numpy(), table["ci_high"].to_numpy() - rate])
    err = np.nan_to_num(np.clip(err, 0.0, None))  # rounding can leave -1e-17 at a 0 % rate
    ax.errorbar(x, rate, yerr=err, **{"capsize": 2.5, "marker": "o", "markersize": 4, **kwargs})
