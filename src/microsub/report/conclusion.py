"""What the conclusion (chapter 08) and the deck's last slides read: what failed and the
limitations of the run, each with the evidence the stages computed.

The worth of the recommended programme and the ranked next steps are business computations
(:mod:`microsub.business.worth`); this module gathers, from the results of several stages,
what a reader must weigh against them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from microsub import fmt
from microsub.analysis.audit import AuditCheck
from microsub.models.benchmark import BenchmarkResult
from microsub.sim.study import SimulationResult

#: What it costs when a gate fails, by gate key.
CONSEQUENCES = {
    "roc_auc": "the churn score cannot rank leaving pages well enough to target anyone",
    "precision_at_20": "an intervention budget spent on the riskiest fifth of pages would "
    "reach more shoppers who would have stayed than the framework accepts",
    "churn_reduction": "the programme does not meet the objective",
    "scoring_p99_ms": "a score may arrive after the next page is rendered; until it is measured "
    "the real-time path cannot ship",
    "demographic_parity_ratio": "the programme allocates its interventions by age or gender "
    "beyond the four-fifths rule",
}


def _value(key: str, value: float) -> str:
    if value != value:
        return "not measured"
    return f"{fmt.format_number(value)} ms" if key == "scoring_p99_ms" else fmt.format_number(value)


def value_fit(bench: BenchmarkResult) -> dict[str, Any]:
    """The best value model on held-out sessions: ``model``, ``r2`` (share of the variance of
    page value it explains, on test pages)."""
    value = bench.metrics[bench.metrics["task"] == "value"]
    row = value.loc[value["r2"].idxmax()]
    return {"model": str(row["model"]), "r2": float(row["r2"])}


def failures(gates: pd.DataFrame, bench: BenchmarkResult) -> pd.DataFrame:
    """What failed: every gate that fails or was not measured, and the value model's fit.

    Args:
        gates: :func:`~microsub.business.gates.evaluate_gates` rows.
        bench: the benchmark (for the value model's R²).

    Returns:
        ``What``, ``Measured``, ``Needed``, ``Consequence``.
    """
    rows = [
        (g.gate, _value(g.key, g.value), g.target, CONSEQUENCES.get(g.key, g.measured_by))
        for g in gates.itertuples(index=False)
        if not g.passed
    ]
    fit = value_fit(bench)
    rows.append((
        f"Page value model ({fit['model']})",
        f"R² {fmt.format_number(fit['r2'])}",
        "no gate; R² near 0 explains nothing",
        "page value can be predicted on average, not page by page: targeting by value at "
        "stake, and re-ranking by expected Yuan, rest on a weak signal",
    ))  # fmt: skip
    return pd.DataFrame(rows, columns=["What", "Measured", "Needed", "Consequence"])


def limitations(
    source: Mapping[str, Any],
    audit: Iterable[AuditCheck],
    sim: SimulationResult,
    source_text: str,
) -> pd.DataFrame:
    """The limits of this run, each with its evidence.

    Args:
        source: the pages manifest's ``source`` (``kind``: synthetic or real).
        audit: the data-constraint audit.
        sim: the simulate stage's result (validation, the ranking against the truth).
        source_text: the phrase naming the data (:func:`~microsub.report.findings.describe_source`).

    Returns:
        ``Limitation``, ``Evidence``.
    """
    rows = []
    if source.get("kind") == "synthetic":
        rows.append((
            "The data are synthetic",
            f"every number comes from {source_text}: the generator is calibrated to the "
            "100-page real sample, and the hypotheses recover what it built in",
        ))  # fmt: skip
    for check in audit:
        if check.status != "pass":
            rows.append((f"Data constraint: {check.check} ({check.status})", check.detail))
    v = sim.validation
    rows.append((
        "The simulator is checked on held-out sessions, not on interventions",
        f"{int(v['within'].sum())} of {len(v)} checks within tolerance on logged pages; no "
        "intervention was ever logged, so their effects are assumptions",
    ))  # fmt: skip
    truth = sim.rankings.get("truth")
    if truth:
        best = truth["best_promised"]
        gap = sim.gaps.set_index("policy").loc[best]
        rho = fmt.format_number(truth["spearman"])
        rows.append((
            "What the learned simulator promises is not what the truth delivers",
            f"policy ranks agree with the truth at Spearman {rho}; "
            f"its best policy ({best}) promised {fmt.format_money(gap['promised'])} a session, "
            f"the generator delivered {fmt.format_money(gap['truth'])}",
        ))  # fmt: skip
    return pd.DataFrame(rows, columns=["Limitation", "Evidence"])
