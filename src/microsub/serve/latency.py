"""The measured latency of the scoring service, as plain JSON in the lake: ``reports/serving.json``.

``benchmarks/serving.py`` measures it (open-loop load against a real ``microsub serve``) and
calls :func:`publish`; the business stage reads it with :func:`read` or :func:`scoring_p99_ms`
(the value of the success gate ``scoring_p99_ms``), never from a typed number.

Keys of ``reports/serving.json`` (times in milliseconds, rates in requests per second)::

    measured_at        ISO 8601 UTC time the measurement ended
    target_p99_ms      5.0: the engineering target at the reference rate
    gate_p99_ms        100.0: the business gate (microsub.business.gates, "scoring_p99_ms")
    reference_rate     200: the rate whose p99 is the gate's value
    scoring_p99_ms     p99 at reference_rate (what the gate is evaluated on); null when no
                       request was answered
    rates              one record per rate: rate, duration_s, sent, ok, errors,
                       statuses ({status or "timeout"/"connection": count}), achieved_rps
                       (answers 200 per second, first due time to last answer),
                       p50_ms, p99_ms, max_ms (latency from due time to the full answer,
                       requests answered 200; null when none was)
    in_process_ms      scoring one page inside the process (features + both models, no HTTP):
                       n, p50, p99, mean
    models             {"churn": {"name", "version"}, "value": {...}} that served
    server             {"workers": 1, "host": "127.0.0.1", "access_log": false}
    machine            {"cpus": int, "python": "3.11.7", "platform": "..."}
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from microsub import contract
from microsub.business.config import load_config
from microsub.errors import ObjectNotFoundError, ServingError
from microsub.lake import Lake
from microsub.plain import plain
from microsub.serve.loadtest import LoadResult

#: Key of the report in the ``reports`` bucket.
REPORT_KEY = "serving.json"
#: Engineering target of the p99 at :data:`REFERENCE_RATE` (ms).
TARGET_P99_MS = 5.0
#: Rate whose p99 is the value of the business gate (requests per second).
REFERENCE_RATE = 200


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """``p50``, ``p99``, ``max`` and ``mean`` of durations given in seconds, in milliseconds
    (NaN for no durations)."""
    if len(seconds) == 0:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "mean": float(ms.mean()),
    }


def rate_record(result: LoadResult) -> dict[str, Any]:
    """One record of ``rates`` (module docstring) from an open-loop run."""
    stats = percentiles_ms(result.latencies)
    return {
        "rate": result.rate,
        "duration_s": result.duration,
        "sent": result.sent,
        "ok": len(result.latencies),
        "errors": result.errors,
        "statuses": dict(result.statuses),
        "achieved_rps": len(result.latencies) / result.elapsed if result.elapsed > 0 else math.nan,
        "p50_ms": stats["p50"],
        "p99_ms": stats["p99"],
        "max_ms": stats["max"],
    }


def serving_report(
    runs: Sequence[LoadResult],
    in_process_seconds: Sequence[float],
    models: Mapping[str, Mapping[str, Any]],
    *,
    server: Mapping[str, Any],
    machine: Mapping[str, Any],
    measured_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The report of the module docstring (plain JSON values)."""
    rates = [rate_record(r) for r in runs]
    reference = [r for r in rates if r["rate"] == REFERENCE_RATE]
    inside = percentiles_ms(in_process_seconds)
    when = measured_at or dt.datetime.now(dt.UTC)
    return plain({
        "measured_at": when.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "target_p99_ms": TARGET_P99_MS,
        "gate_p99_ms": load_config().gate("scoring_p99_ms").target,
        "reference_rate": REFERENCE_RATE,
        "scoring_p99_ms": reference[0]["p99_ms"] if reference else math.nan,
        "rates": rates,
        "in_process_ms": {"n": len(in_process_seconds), "p50": inside["p50"],
                          "p99": inside["p99"], "mean": inside["mean"]},
        "models": {t: dict(m) for t, m in models.items()},
        "server": dict(server),
        "machine": dict(machine),
    })  # fmt: skip


def publish(lake: Lake, report: Mapping[str, Any]) -> None:
    """Store ``report`` at ``reports/serving.json``."""
    lake.put_json(contract.BUCKET_REPORTS, REPORT_KEY, dict(report))


def read(lake: Lake) -> dict[str, Any]:
    """The last published report.

    Raises:
        ServingError: none published yet (the message says how to measure it).
    """
    try:
        return lake.get_json(contract.BUCKET_REPORTS, REPORT_KEY)
    except ObjectNotFoundError:
        raise ServingError(
            f"no {contract.BUCKET_REPORTS}/{REPORT_KEY} in {lake.location}: measure the scoring "
            "service with `.venv/bin/python benchmarks/serving.py` (same MICROSUB_* settings)"
        ) from None


def scoring_p99_ms(lake: Lake) -> float:
    """The measured p99 latency (ms) at the reference rate: the value of the gate
    ``scoring_p99_ms``. A run with errors at that rate counts as failed: ``inf``."""
    report = read(lake)
    reference = [r for r in report["rates"] if r["rate"] == report["reference_rate"]]
    if not reference:
        raise ServingError(
            f"{REPORT_KEY} has no run at {report['reference_rate']} requests/s; measure again"
        )
    run = reference[0]
    return math.inf if run["errors"] or run["p99_ms"] is None else float(run["p99_ms"])


__all__ = [
    "REFERENCE_RATE",
    "REPORT_KEY",
    "TARGET_P99_MS",
    "percentiles_ms",
    "publish",
    "rate_record",
    "read",
    "scoring_p99_ms",
    "serving_report",
]
