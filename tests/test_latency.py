"""The open-loop load generator (against a small real server on loopback) and the serving report
the business stage reads from the lake (reports/serving.json)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from microsub.errors import ServingError
from microsub.lake import LocalLake
from microsub.serve import latency, loadtest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def echo_port():
    """A uvicorn server whose POST /score answers 200, or 503 for the body ``{"fail": 1}``."""
    app = FastAPI()

    @app.post("/score")
    async def score(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"ok": True}, status_code=503 if body.get("fail") else 200)

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


def test_open_loop_sends_every_scheduled_request_and_counts_the_errors(echo_port) -> None:
    bodies = [b'{"fail": 0}', b'{"fail": 0}', b'{"fail": 1}']
    requests = loadtest.prepare("127.0.0.1", echo_port, "/score", bodies, {"X-Key": "k"})
    result = loadtest.open_loop("127.0.0.1", echo_port, requests, rate=60, duration=1.0)
    assert result.sent == 60 and len(result.latencies) == 40 and result.errors == 20
    assert result.statuses == {"200": 40, "503": 20}
    assert all(lat > 0 for lat in result.latencies)


def test_a_keep_alive_connection_the_server_closed_is_not_an_error() -> None:
    """A server that closes every connection after one answer (as uvicorn closes an idle one
    after its keep-alive timeout): the next request on the pooled connection either sees the
    close and opens a new connection, or loses the race and is retried on one; never an error."""
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    opened = []

    async def one_answer(reader, writer) -> None:
        opened.append(1)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(one_answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        request = loadtest.prepare("127.0.0.1", port, "/score", [b"{}"], {})[0]
        pool = loadtest._Pool("127.0.0.1", port, 4)
        outcomes = [await loadtest._one(pool, request, time.perf_counter(), 5.0)
                    for _ in range(3)]  # fmt: skip
        pool.close()
        server.close()
        return outcomes

    outcomes = asyncio.run(main())
    assert [status for status, _ in outcomes] == ["200", "200", "200"]
    assert len(opened) == 3


def test_a_closed_port_is_an_error_not_a_hang() -> None:
    requests = loadtest.prepare("127.0.0.1", _free_port(), "/score", [b"{}"], {})
    result = loadtest.open_loop("127.0.0.1", _free_port(), requests, rate=20, duration=0.5,
                                timeout=2.0)  # fmt: skip
    assert result.sent == 10 and result.errors == 10 and result.latencies == ()
    assert result.statuses == {"connection": 10}


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.2", "example.org", "8.8.8.8"])
def test_only_loopback_is_a_target(host) -> None:
    with pytest.raises(ValueError, match="loopback addresses only"):
        loadtest.open_loop(host, 80, [b"x"], rate=1, duration=1)


def _run(rate: float, latencies, errors: int = 0) -> loadtest.LoadResult:
    statuses = {"200": len(latencies)} | ({"timeout": errors} if errors else {})
    return loadtest.LoadResult(rate, 60.0, tuple(latencies), errors, statuses, 60.0)


def test_the_serving_report_round_trips_through_the_lake(tmp_path) -> None:
    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(ServingError, match="benchmarks/serving.py"):
        latency.read(lake)
    fast = [0.001 * (1 + i / 100) for i in range(100)]  # 1.00 .. 1.99 ms
    report = latency.serving_report(
        [_run(200, fast), _run(1000, [0.5, 0.7], errors=3)],
        [0.002, 0.004],
        {"churn": {"name": "microsub-churn", "version": "3"}},
        server={"workers": 1}, machine={"cpus": 2},
        measured_at=dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC),
    )  # fmt: skip
    latency.publish(lake, report)
    stored = latency.read(lake)
    assert stored == report
    assert stored["measured_at"] == "2026-05-01T12:00:00+00:00"
    assert stored["gate_p99_ms"] == 100.0 and stored["target_p99_ms"] == 5.0
    first, second = stored["rates"]
    assert (first["rate"], first["sent"], first["ok"], first["errors"]) == (200, 100, 100, 0)
    assert first["p50_ms"] == pytest.approx(1.495) and first["max_ms"] == pytest.approx(1.99)
    assert first["p99_ms"] == pytest.approx(1.9801)
    assert second["errors"] == 3 and second["statuses"] == {"200": 2, "timeout": 3}
    assert stored["in_process_ms"] == {"n": 2, "p50": 3.0, "p99": pytest.approx(3.98),
                                       "mean": 3.0}  # fmt: skip
    assert latency.scoring_p99_ms(lake) == pytest.approx(1.9801) == stored["scoring_p99_ms"]


def test_errors_at_the_reference_rate_fail_the_gate(tmp_path) -> None:
    lake = LocalLake(tmp_path / "lake")
    report = latency.serving_report([_run(200, [0.001], errors=1)], [], {}, server={},
                                    machine={})  # fmt: skip
    latency.publish(lake, report)
    assert latency.scoring_p99_ms(lake) == math.inf
    nothing = latency.serving_report([_run(200, [], errors=5)], [], {}, server={}, machine={})
    assert nothing["scoring_p99_ms"] is None and nothing["in_process_ms"]["p50"] is None


def test_repeats_combine_into_the_median_repeat_with_every_run_and_the_medians(tmp_path) -> None:
    def report(p99_ms: float, errors: int, when: int) -> dict:
        at_200 = [p99_ms / 1e3] * 100
        load = {"before": (1.0, 2.0, 3.0), "after": (1.5, 2.0, 3.0)}
        return latency.serving_report(
            [_run(200, at_200, errors=errors), _run(1000, [0.002] * 10)], [0.001 * when],
            {}, server={}, machine={}, load_avg=[load, load],
            measured_at=dt.datetime(2026, 5, 1, when, tzinfo=dt.UTC),
        )  # fmt: skip

    reports = [report(9.0, 0, 1), report(3.0, 0, 2), report(4.0, 2, 3)]
    combined = latency.combine(reports)
    assert combined["scoring_p99_ms"] == pytest.approx(4.0)  # the median repeat, published
    assert combined["measured_at"] == "2026-05-01T03:00:00+00:00"
    assert [r["measured_at"][11:13] for r in combined["repeats"]] == ["01", "02", "03"]
    median_200, median_1000 = combined["median"]
    assert median_200["rate"] == 200 and median_200["p99_ms"] == pytest.approx(4.0)
    assert median_200["errors"] == 0 and median_1000["p50_ms"] == pytest.approx(2.0)
    assert combined["in_process_median_ms"]["p50"] == pytest.approx(2.0)
    assert combined["rates"][0]["load_avg"] == {"before": [1.0, 2.0, 3.0], "after": [1.5, 2.0, 3.0]}
    lake = LocalLake(tmp_path / "lake")
    latency.publish(lake, combined)
    assert latency.scoring_p99_ms(lake) == math.inf  # the median repeat had errors at 200
    with pytest.raises(ServingError, match="different rates"):
        latency.combine([reports[0], latency.serving_report([_run(200, [0.001])], [], {},
                                                            server={}, machine={})])  # fmt: skip
    with pytest.raises(ServingError, match="at least one"):
        latency.combine([])
