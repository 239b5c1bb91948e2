"""The business case: success gates and their evaluation.

The gates are the contract between the analysis and the business: a model ships only when every
gate it is measured on passes. They are data (a tuple of :class:`Gate`), so the findings document,
the benchmark chapter and the deck all show the same targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

from microsub.models.benchmark import BenchmarkResult


@dataclass(frozen=True)
class Gate:
    """One success gate.

    Attributes:
        key: metric key as produced by the code that measures it (e.g. ``"roc_auc"``).
        name: label for tables.
        target: threshold value, in the metric's unit.
        direction: ``">="`` when higher is better, ``"<"`` when lower is better.
        unit: unit of the metric (``""`` for ratios).
        measured_by: which part of the package measures it.
        rationale: why the business needs it.
    """

    key: str
    name: str
    target: float
    direction: Literal[">=", "<"]
    unit: str
    measured_by: str
    rationale: str

    def passes(self, value: float) -> bool:
        """Whether ``value`` meets the gate (NaN never passes)."""
        if value != value:  # NaN
            return False
        return value >= self.target if self.direction == ">=" else value < self.target


GATES: tuple[Gate, ...] = (
    Gate(
        "roc_auc",
        "Churn ROC AUC",
        0.80,
        ">=",
        "",
        "benchmark (held-out sessions)",
        "the churn score must rank leaving pages above staying ones well enough to target",
    ),
    Gate(
        "precision_at_20",
        "Precision at top 20 %",
        0.60,
        ">=",
        "",
        "benchmark (held-out sessions)",
        "most of the pages an intervention budget of 20 % reaches must be real churners",
    ),
    Gate(
        "scoring_p99_ms",
        "Scoring latency p99",
        100.0,
        "<",
        "ms",
        "serving (real-time scoring service)",
        "a score must arrive before the next page is rendered",
    ),
    Gate(
        "demographic_parity_ratio",
        "Demographic parity ratio",
        0.80,
        ">=",
        "",
        "business (fairness audit over age level and gender)",
        "interventions must not be allocated by protected attributes (four-fifths rule)",
    ),
    Gate(
        "churn_reduction",
        "Churn reduction",
        0.20,
        ">=",
        "",
        "simulator (policy vs logged behaviour)",
        "the programme must cut session churn by a fifth to pay for itself",
    ),
)


def gate(key: str) -> Gate:
    """The gate with this ``key``.

    Raises:
        KeyError: naming the known keys.
    """
    for g in GATES:
        if g.key == key:
            return g
    raise KeyError(f"no gate {key!r}; known gates: {[g.key for g in GATES]}")


def evaluate_gates(
    metrics: Mapping[str, float], keys: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Compare measured metrics with the gates.

    Args:
        metrics: metric key -> measured value (keys as in :data:`GATES`).
        keys: which gates to evaluate; default: every gate whose key is in ``metrics``.

    Returns:
        One row per gate: ``gate``, ``target`` (e.g. ``">= 0.80"``), ``value``, ``passed`` (bool),
        ``verdict`` (``"pass"``/``"fail"``), ``measured_by``.
    """
    chosen = [g for g in GATES if (g.key in keys if keys is not None else g.key in metrics)]
    rows = []
    for g in chosen:
        value = float(metrics.get(g.key, float("nan")))
        ok = g.passes(value)
        rows.append(
            {
                "gate": g.name,
                "key": g.key,
                "target": f"{g.direction} {g.target:g}{(' ' + g.unit) if g.unit else ''}",
                "value": value,
                "passed": ok,
                "verdict": "pass" if ok else "fail",
                "measured_by": g.measured_by,
            }
        )
    return pd.DataFrame(rows)


def gates_as_records() -> list[dict]:
    """The gates as plain dicts (for the findings document)."""
    return [asdict(g) for g in GATES]


#: Gates the model benchmark measures (on the best churn model's test sessions).
BENCHMARK_GATE_KEYS = ("roc_auc", "precision_at_20")


def benchmark_gates(result: BenchmarkResult) -> pd.DataFrame:
    """The gates the benchmark measures, for its best churn model, with the session-bootstrap
    intervals of :attr:`BenchmarkResult.uncertainty`.

    Returns:
        :func:`evaluate_gates` rows plus ``model`` (first column), ``ci_low`` and ``ci_high``.
    """
    key = result.best["churn"]
    row = result.metrics.set_index("key").loc[key]
    gates = evaluate_gates(
        {k: float(row[k]) for k in BENCHMARK_GATE_KEYS}, keys=BENCHMARK_GATE_KEYS
    )
    ci = result.uncertainty.set_index("metric")
    gates.insert(0, "model", key)
    gates["ci_low"] = [float(ci.loc[k, "ci_low"]) for k in gates["key"]]
    gates["ci_high"] = [float(ci.loc[k, "ci_high"]) for k in gates["key"]]
    return gates
