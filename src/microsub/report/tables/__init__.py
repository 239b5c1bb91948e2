"""Every display table of the book and the deck: results in, a small formatted ``DataFrame`` out.

Chapters stay thin: a cell calls one of these and prints it as Markdown. Numbers are formatted
here (through :mod:`microsub.fmt`), column names here (through :mod:`microsub.report.labels`).

Modules: :mod:`.explore` (data and exploration), :mod:`.models` (the benchmark), :mod:`.sim`
(the simulator), :mod:`.business` (the business case), :mod:`.deck` (tables only the deck
shows). Every table is importable from here.
"""

from __future__ import annotations

from microsub.report.tables.business import (
    assumptions_table,
    breakeven_display,
    fairness_display,
    gate_display,
    next_steps_display,
    programme_display,
    qini_display,
    sensitivity_display,
    serving_display,
    worth_display,
)
from microsub.report.tables.deck import data_overview, feature_strategy, gate_summary
from microsub.report.tables.explore import (
    CALIBRATION_LABELS,
    FIELD_MEANINGS,
    GENERATOR_WORDS,
    audit_display,
    calibration_display,
    feature_findings_display,
    feature_sets_display,
    gates_table,
    generator_display,
    generator_terms_outside,
    layout_table,
    quality_table,
    recovery_display,
    recovery_summary,
    strongest_correlate,
    verdict_display,
)
from microsub.report.tables.models import (
    display_agreement,
    display_churn_details,
    display_gates,
    display_importance,
    display_metrics,
    display_selection,
    display_split,
    display_value_ranking,
    display_value_tail,
    display_value_verdict,
    label,
    name_list,
    selection_text,
)
from microsub.report.tables.sim import (
    action_table,
    gap_display,
    observation_table,
    policy_display,
    validation_display,
)

__all__ = [
    "CALIBRATION_LABELS",
    "FIELD_MEANINGS",
    "GENERATOR_WORDS",
    "action_table",
    "assumptions_table",
    "audit_display",
    "breakeven_display",
    "calibration_display",
    "data_overview",
    "display_agreement",
    "display_churn_details",
    "display_gates",
    "display_importance",
    "display_metrics",
    "display_selection",
    "display_split",
    "display_value_ranking",
    "display_value_tail",
    "display_value_verdict",
    "fairness_display",
    "feature_strategy",
    "feature_findings_display",
    "feature_sets_display",
    "gate_display",
    "serving_display",
    "gate_summary",
    "gap_display",
    "gates_table",
    "generator_display",
    "generator_terms_outside",
    "label",
    "layout_table",
    "next_steps_display",
    "name_list",
    "observation_table",
    "policy_display",
    "programme_display",
    "qini_display",
    "quality_table",
    "selection_text",
    "recovery_display",
    "recovery_summary",
    "sensitivity_display",
    "strongest_correlate",
    "validation_display",
    "verdict_display",
    "worth_display",
]
