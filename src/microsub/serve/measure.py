"""Measuring the scoring service: a real ``microsub serve`` process under open-loop load.

The I/O edge of latency measurement, shared by ``benchmarks/serving.py`` (60 s per rate,
repeats) and the pipeline's ``serve`` stage (a short run at the reference rate, so the book's
latency gate is a measurement of this run's champions, not a number typed anywhere).

:func:`measure_service` starts the service as a child process on a free loopback port with a
fresh random API key (handed over in the child's environment, never written or logged), warms
it up, then sends requests on a fixed schedule at each rate (:func:`microsub.serve.loadtest.
open_loop`), records the machine's load averages around every rate, stops the server and
returns :func:`microsub.serve.latency.serving_report`.

The request bodies are real sessions of a pages table (:func:`session_bodies`: every prefix of
some sessions, one request per page a shopper saw), so the feature code runs on sessions of
every length.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from microsub.errors import ServingError
from microsub.serve import latency, loadtest, scoring
from microsub.serve.registry import LoadedModel

#: The loopback address the measured server listens on.
HOST = "127.0.0.1"
#: Seconds the server may take to answer ``/health`` after it starts (loads the models).
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LoadPlan:
    """What to measure.

    Attributes:
        rates: requests per second, one open-loop run each, in order.
        duration: seconds of scheduled sending per rate.
        timeout: seconds from a request's due time after which it is an error.
        warmup: seconds at 50 requests/s before the first rate, not counted.
        max_in_flight: the server's admission limit (``microsub serve --max-in-flight``);
            None: the command's default.
        in_process: pages scored inside this process (features + models, no HTTP).
        pause: seconds between rates, so a saturated server drains.
    """

    rates: tuple[float, ...] = (float(latency.REFERENCE_RATE),)
    duration: float = 60.0
    timeout: float = 5.0
    warmup: float = 3.0
    max_in_flight: int | None = None
    in_process: int = 2000
    pause: float = 2.0


def session_bodies(pages: pd.DataFrame, sessions: int, seed: int) -> list[list[dict[str, Any]]]:
    """Every prefix of ``sessions`` random sessions of ``pages`` (a pages table), shuffled: the
    pages a client sends, one list per request."""
    all_ids = pages["session_id"].unique()
    ids = np.random.default_rng(seed).choice(all_ids, min(sessions, len(all_ids)), replace=False)
    chosen = pages[pages["session_id"].isin(ids)].sort_values(["session_id", "line_no"])
    out: list[list[dict[str, Any]]] = []
    for _, session in chosen.groupby("session_id"):
        records = json.loads(session[list(scoring.PAGE_FIELDS)].to_json(orient="records"))
        out += [records[: t + 1] for t in range(len(records))]
    order = np.random.default_rng(seed + 1).permutation(len(out))
    return [out[i] for i in order]


def in_process(
    bodies: Sequence[Sequence[Mapping[str, Any]]], scorer: scoring.Scorer, n: int
) -> list[float]:
    """Seconds to score the last page of each of ``n`` bodies (cycled) inside this process."""
    times = []
    for i in range(n):
        pages = bodies[i % len(bodies)]
        start = time.perf_counter()
        scoring.score_session(pages, scorer)
        times.append(time.perf_counter() - start)
    return times


def free_port() -> int:
    """A TCP port on :data:`HOST` that nothing listens on now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def load_avg() -> tuple[float, float, float]:
    """The machine's 1, 5 and 15 minute load averages (as ``uptime`` prints them)."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def _healthy(port: int) -> bool:
    """Whether ``GET /health`` on ``HOST:port`` answers 200 within a second (the standard
    library's client: the base install has no HTTP client of its own)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=1) as answer:
            return answer.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_server(
    port: int,
    key: str,
    log: Path,
    max_in_flight: int | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``microsub serve`` on ``HOST:port`` with API key ``key``, admission limit
    ``max_in_flight`` (None: the command's default) and the settings of ``env`` (this process's
    environment by default); waits for ``/health``.

    Raises:
        ServingError: the server exited, or did not answer within :data:`START_TIMEOUT_S`
            (the message ends with the tail of its ``log``).
    """
    child_env = {**(env if env is not None else os.environ), "MICROSUB_API_KEY": key}
    command = [sys.executable, "-m", "microsub", "serve", "--host", HOST, "--port", str(port)]
    if max_in_flight is not None:
        command += ["--max-in-flight", str(max_in_flight)]
    process = subprocess.Popen(
        command, env=child_env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServingError(f"microsub serve exited:\n{log.read_text()[-3000:]}")
        if _healthy(port):
            return process
        time.sleep(0.2)
    process.terminate()
    process.wait(30)
    raise ServingError(
        f"microsub serve did not answer /health within {START_TIMEOUT_S:g} s:\n"
        f"{log.read_text()[-3000:]}"
    )


def measure_service(
    bodies: Sequence[Sequence[Mapping[str, Any]]],
    models: Mapping[str, LoadedModel],
    plan: LoadPlan,
    log: Path,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One measurement: in-process times, then a fresh server under each rate of ``plan``.

    Args:
        bodies: request bodies' pages (:func:`session_bodies`).
        models: the champions the server will load (``registry.champions`` of the same
            settings): scored in-process and named in the report.
        plan: rates, durations and limits.
        log: file that receives the server's output.
        env: the server's environment (its ``MICROSUB_*`` settings); this process's by default.

    Returns:
        :func:`microsub.serve.latency.serving_report` of the runs.
    """
    scorer = scoring.Scorer.from_models(models)
    inside = in_process(bodies, scorer, plan.in_process)
    key, port = secrets.token_urlsafe(24), free_port()
    requests = loadtest.prepare(HOST, port, "/score",
                                [json.dumps({"pages": b}).encode() for b in bodies],
                                {"X-API-Key": key})  # fmt: skip
    server = start_server(port, key, log, plan.max_in_flight, env)
    runs, loads = [], []
    try:
        if plan.warmup > 0:
            loadtest.open_loop(HOST, port, requests, rate=50, duration=plan.warmup)
        for i, rate in enumerate(plan.rates):
            if i:
                time.sleep(plan.pause)
            before = load_avg()
            run = loadtest.open_loop(
                HOST, port, requests, rate=rate, duration=plan.duration, timeout=plan.timeout
            )
            runs.append(run)
            loads.append({"before": before, "after": load_avg()})
    finally:
        server.terminate()
        server.wait(30)
    return latency.serving_report(
        runs, inside,
        {t: {"name": m.info.name, "version": m.info.version} for t, m in models.items()},
        server={"workers": 1, "host": HOST, "access_log": False,
                "max_in_flight": plan.max_in_flight or "default"},
        machine={"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform()},
        load_avg=loads,
    )  # fmt: skip


__all__ = [
    "HOST",
    "LoadPlan",
    "free_port",
    "in_process",
    "load_avg",
    "measure_service",
    "session_bodies",
    "start_server",
]
