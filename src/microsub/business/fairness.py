"""Fairness of a programme: who gets an intervention, by gender and by age level.

At a programme's operating point, every page played is either selected (granted an
intervention) or not. With fairlearn (Weerts et al., 2023):

* **selection rate** by group and the **demographic parity ratio** (the smallest group rate
  over the largest; the four-fifths rule asks for at least 0.8);
* **equal opportunity**: among the pages after which the shopper would have left, the share
  selected, by group. The simulator knows each page's probability of leaving without an
  intervention, ``p``; a page counts for "would have left" with weight ``p`` (the expected
  true-positive rate ``sum(selected * p) / sum(p)`` per group), and the ratio of the smallest
  to the largest.

A programme that treats every page alike (no one, or everyone: a re-ranking) selects every
group at the same rate: its ratios are 1 by definition (fairlearn's 0 / 0 is read as equal).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate

from microsub.business.programme import ProgrammeRun
from microsub.business.targeting import NONE

#: Protected attributes audited, and their names in tables.
ATTRIBUTES = {"gender": "gender", "age_level": "age level"}


def _ratio(by_group: pd.Series) -> float:
    low, high = float(by_group.min()), float(by_group.max())
    if high == 0:
        return 1.0  # every group at 0: equal
    return low / high


def audit(run: ProgrammeRun) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fairness of ``run``'s interventions.

    Returns:
        ``(groups, summary)``: groups ``attribute``, ``group``, ``pages``, ``selected``,
        ``selection_rate``, ``tpr`` (would-have-left pages selected); summary per attribute:
        ``attribute``, ``demographic_parity_ratio``, ``equal_opportunity_ratio``,
        ``smallest_group`` (pages), ``fewest_selected`` (selected pages of the group with
        the fewest: below about 10 the ratios say more about chance than about the policy).
    """
    log = run.pages_log
    selected = (log["tier"].to_numpy() != NONE).astype(int)
    ones = np.ones(len(log), int)
    p = log["p_leave"].to_numpy(float)
    rows, summary = [], []
    for column, label in ATTRIBUTES.items():
        group = log[column].to_numpy()
        sel = MetricFrame(metrics=selection_rate, y_true=ones, y_pred=selected,
                          sensitive_features=pd.Series(group, name=label))  # fmt: skip
        tpr = MetricFrame(metrics=true_positive_rate, y_true=ones, y_pred=selected,
                          sensitive_features=pd.Series(group, name=label),
                          sample_params={"sample_weight": p})  # fmt: skip
        counts = pd.Series(group).value_counts()
        chosen = pd.Series(group[selected == 1]).value_counts().reindex(counts.index, fill_value=0)
        for g in sel.by_group.index:
            rows.append({"attribute": label, "group": int(g), "pages": int(counts[g]),
                         "selected": int(chosen[g]), "selection_rate": float(sel.by_group[g]),
                         "tpr": float(tpr.by_group[g])})  # fmt: skip
        summary.append({
            "attribute": label,
            "demographic_parity_ratio": _ratio(sel.by_group),
            "equal_opportunity_ratio": _ratio(tpr.by_group),
            "smallest_group": int(counts.min()),
            "fewest_selected": int(chosen.min()),
        })  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(summary)


def mitigation_cost(run: ProgrammeRun, target: float, sessions_per_month: int) -> float:
    """US$ per month of the interventions that would lift every group's selection rate to
    ``target`` times the highest (same average cost per intervention); 0 when no group is
    below it. The rest of the audit's attributes are handled the same way, the largest extra
    count wins."""
    log = run.pages_log
    selected = log["tier"].to_numpy() != NONE
    if not selected.any():
        return 0.0
    unit = float(log.loc[selected, "cost"].mean())
    extra = 0.0
    for column in ATTRIBUTES:
        g = log.groupby(column)
        rate = g.apply(lambda d: float((d["tier"] != NONE).mean()), include_groups=False)
        need = (target * rate.max() - rate).clip(lower=0) * g.size()
        extra = max(extra, float(need.sum()))
    n_sessions = len(run.value)
    return extra * unit / n_sessions * sessions_per_month
