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
                       statuses ({status or "timeout"/"connection": count}; 503 is a request
                       the service refused at capacity), achieved_rps
                       (answers 200 per second, first due time to last answer),
                       p50_ms, p99_ms, max_ms (latency from due time to the full answer,
                       requests answered 200; null when none was), and load_avg
                       ({"before": [1, 5, 15 min], "after": [...]}, the machine's load
                       averages around the run; absent when not recorded)
    in_process_ms      scoring one page inside the process (features + both models, no HTTP):
                       n, p50, p99, mean
    models             {"churn": {"name", "version"}, "value": {...}} that served
    server             {"workers": 1, "host": "127.0.0.1", "access_log": false, ...}
    machine            {"cpus": int, "python": "3.11.7", "platform": "..."}

A measurement repeated on a shared machine (:func:`combine`) publishes the repeat whose p99 at
the reference rate is the median, with three more keys::

    repeats               every repeat: measured_at, rates, in_process_ms (as above)
    median                one record per rate: rate, and the median over the repeats of
                          p50_ms, p99_ms, max_ms, errors, achieved_rps
    in_process_median_ms  {"p50", "p99"}: the medians over the repeats of in_process_ms
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


def rate_record(
    result: LoadResult, load_avg: Mapping[str, Sequence[float]] | None = None
) -> dict[str, Any]:
    """One record of ``rates`` (module docstring) from an open-loop run; ``load_avg``: the
    machine's ``{"before": (1, 5, 15 min), "after": (...)}`` load averages around it."""
    stats = percentiles_ms(result.latencies)
    extra = {} if load_avg is None else {"load_avg": {k: list(v) for k, v in load_avg.items()}}
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
    } | extra


def serving_report(
    runs: Sequence[LoadResult],
    in_process_seconds: Sequence[float],
    models: Mapping[str, Mapping[str, Any]],
    *,
    server: Mapping[str, Any],
    machine: Mapping[str, Any],
    measured_at: dt.datetime | None = None,
    load_avg: Sequence[Mapping[str, Sequence[float]]] | None = None,
) -> dict[str, Any]:
    """The report of the module docstring (plain JSON values); ``load_avg``: one
    :func:`rate_record` ``load_avg`` per run, or None."""
    loads = list(load_avg) if load_avg is not None else [None] * len(runs)
    rates = [rate_record(r, load) for r, load in zip(runs, loads, strict=True)]
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


def _median(values: Sequence[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.median(finite)) if finite else None


def combine(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One report of several repeats of the same measurement (module docstring: the repeat
    with the median p99 at the reference rate, plus ``repeats`` and ``median``).

    Args:
        reports: :func:`serving_report` of each repeat, the same rates in each.

    Raises:
        ServingError: no reports, or repeats of different rates.
    """
    if not reports:
        raise ServingError("combine needs at least one serving report")
    rates = [[r["rate"] for r in report["rates"]] for report in reports]
    if any(r != rates[0] for r in rates):
        raise ServingError(f"repeats measured different rates: {rates}")

    def p99_key(report: Mapping[str, Any]) -> float:
        value = report["scoring_p99_ms"]
        return math.inf if value is None or math.isnan(value) else float(value)

    ordered = sorted(reports, key=p99_key)
    chosen = dict(ordered[(len(ordered) - 1) // 2])  # the lower middle for an even count
    chosen["repeats"] = [
        {"measured_at": r["measured_at"], "rates": r["rates"], "in_process_ms": r["in_process_ms"]}
        for r in reports
    ]
    median = []
    for i, rate in enumerate(rates[0]):
        runs = [report["rates"][i] for report in reports]
        median.append({"rate": rate} | {
            key: _median([run[key] for run in runs])
            for key in ("p50_ms", "p99_ms", "max_ms", "errors", "achieved_rps")
        })  # fmt: skip
    chosen["median"] = median
    chosen["in_process_median_ms"] = {
        key: _median([r["in_process_ms"][key] for r in reports]) for key in ("p50", "p99")
    }
    return plain(chosen)


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


def reference_run(report: Mapping[str, Any]) -> dict[str, Any]:
    """The record of ``report["rates"]`` at the report's reference rate (the gate's run).

    Raises:
        ServingError: the report measured no run at that rate.
    """
    for run in report["rates"]:
        if run["rate"] == report["reference_rate"]:
            return dict(run)
    raise ServingError(
        f"{REPORT_KEY} has no run at {report['reference_rate']} requests/s; measure again"
    )


def scoring_p99_ms(lake: Lake) -> float:
    """The measured p99 latency (ms) at the reference rate: the value of the gate
    ``scoring_p99_ms``. A run with errors at that rate counts as failed: ``inf``."""
    run = reference_run(read(lake))
    return math.inf if run["errors"] or run["p99_ms"] is None else float(run["p99_ms"])


__all__ = [
    "REFERENCE_RATE",
    "REPORT_KEY",
    "TARGET_P99_MS",
    "combine",
    "percentiles_ms",
    "publish",
    "rate_record",
    "read",
    "reference_run",
    "scoring_p99_ms",
    "serving_report",
]
