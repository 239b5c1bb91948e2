"""Success gates and their evaluation.

The gates are the contract between the analysis and the business: a programme ships only when
every gate passes. They are data (:class:`~microsub.business.config.Gate` in ``business.yaml``),
so the findings document, the chapters and the deck show the same targets. A gate whose metric
nothing has measured is reported as **not measured** and fails: a value is never typed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from microsub.business.config import BusinessConfig, Gate, load_config
from microsub.models.benchmark import BenchmarkResult
from microsub.plain import plain

#: Gates the model benchmark measures (on the best churn model's test sessions).
BENCHMARK_GATE_KEYS = ("roc_auc", "precision_at_20")


def evaluate_gates(
    measurements: Mapping[str, float | None],
    gates: Sequence[Gate] | None = None,
    *,
    keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compare measured metrics with the gates.

    Args:
        measurements: metric key -> measured value; a key absent or None is "not measured".
        gates: the gates (default: those of the packaged configuration).
        keys: which gates to evaluate; default: every gate.

    Returns:
        One row per gate: ``gate``, ``key``, ``target`` (e.g. ``">= 0.8"``), ``value`` (NaN
        when not measured), ``passed`` (bool), ``verdict`` (``"pass"``, ``"fail"`` or
        ``"not measured"``), ``measured_by``.
    """
    gates = load_config().gates if gates is None else gates
    chosen = [g for g in gates if keys is None or g.key in keys]
    rows = []
    for g in chosen:
        value = measurements.get(g.key)
        measured = value is not None and value == value
        ok = g.passes(value)
        rows.append(
            {
                "gate": g.name,
                "key": g.key,
                "target": g.target_text,
                "value": float(value) if measured else float("nan"),
                "passed": ok,
                "verdict": "pass" if ok else ("fail" if measured else "not measured"),
                "measured_by": g.measured_by,
            }
        )
    return pd.DataFrame(rows)


def gates_as_records(config: BusinessConfig | None = None) -> list[dict]:
    """The gates as plain dicts (for the findings document)."""
    return plain([g.model_dump() for g in (config or load_config()).gates])


def benchmark_measurements(result: BenchmarkResult) -> dict[str, float]:
    """The gate metrics the benchmark measured, for its best churn model."""
    row = result.metrics.set_index("key").loc[result.best["churn"]]
    return {k: float(row[k]) for k in BENCHMARK_GATE_KEYS}


def benchmark_gates(result: BenchmarkResult, config: BusinessConfig | None = None) -> pd.DataFrame:
    """The gates the benchmark measures, for its best churn model, with the session-bootstrap
    intervals of :attr:`BenchmarkResult.uncertainty`.

    Returns:
        :func:`evaluate_gates` rows plus ``model`` (first column), ``ci_low`` and ``ci_high``.
    """
    gates = (config or load_config()).gates
    table = evaluate_gates(benchmark_measurements(result), gates, keys=BENCHMARK_GATE_KEYS)
    ci = result.uncertainty.set_index("metric")
    table.insert(0, "model", result.best["churn"])
    table["ci_low"] = [float(ci.loc[k, "ci_low"]) for k in table["key"]]
    table["ci_high"] = [float(ci.loc[k, "ci_high"]) for k in table["key"]]
    return table
