"""Figures of the book and the deck: results in, a matplotlib ``Figure`` out.

One function per figure; :mod:`.base` holds the shared look, :mod:`.explore` the figures of the
exploration, :mod:`.models` those of the model benchmark, :mod:`.sim` those of the simulator,
:mod:`.business` those of the business case.
"""

from __future__ import annotations

from microsub.report.figures.base import COLORS, WIDTH, style
from microsub.report.figures.business import breakeven, net_value, qini_curves, selection_by_group
from microsub.report.figures.explore import (
    HEATMAP_COLUMNS,
    class_balance,
    correlation_heatmap,
    engagement,
    fatigue,
    hour_of_day,
    item_mix,
    purchase_power,
    purchase_reset,
    reward_distribution,
    survival_curves,
    verdicts,
)
from microsub.report.figures.models import (
    calibration_curves,
    confusion_matrices,
    convergence_curves,
    descent_paths,
    model_comparison,
    pr_curves,
    roc_curves,
    value_capture,
)
from microsub.report.figures.sim import policy_values, sim_gap, slot_curve, validation

__all__ = [
    "COLORS",
    "HEATMAP_COLUMNS",
    "WIDTH",
    "breakeven",
    "calibration_curves",
    "class_balance",
    "confusion_matrices",
    "convergence_curves",
    "correlation_heatmap",
    "descent_paths",
    "engagement",
    "fatigue",
    "hour_of_day",
    "item_mix",
    "model_comparison",
    "net_value",
    "policy_values",
    "pr_curves",
    "purchase_power",
    "purchase_reset",
    "qini_curves",
    "reward_distribution",
    "roc_curves",
    "selection_by_group",
    "sim_gap",
    "slot_curve",
    "style",
    "survival_curves",
    "validation",
    "value_capture",
    "verdicts",
]
