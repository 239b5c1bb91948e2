"""Open-loop load on an HTTP endpoint: requests leave on a fixed schedule, whatever the server.

A closed loop (send, wait for the answer, send the next) slows down with the server and so
hides its queueing ("coordinated omission"). Here request ``i`` is due at ``start + i / rate``
seconds and is sent then, on an idle keep-alive connection or a new one (at most
``connections`` open); its latency runs from the moment it was *due* to the last byte of the
answer, so time spent waiting for a connection counts too, and so does its ``timeout``. The run
is bounded: ``rate * duration`` requests, each answered or given up ``timeout`` seconds after
it was due.

The client is a minimal HTTP/1.1 writer and reader on asyncio streams (one prepared request per
body, ``Content-Length`` framed answers), cheap enough that one core can drive 1,000 requests/s
while the server has the other; only loopback targets are meant (``host`` is checked). During a
run the objects alive before it are frozen out of the garbage collector's scans
(:func:`gc.freeze`): the caller's heap (pandas, MLflow, the request bodies) would otherwise make
each full collection a pause of the client, counted as server latency.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass

import uvloop

#: Hosts this load generator agrees to target.
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class LoadResult:
    """What one open-loop run measured.

    Attributes:
        rate: requests per second scheduled; duration: seconds scheduled.
        latencies: seconds from due time to the full answer, one per request answered 200.
        errors: requests that got another status, a broken connection or no answer within
            the timeout; statuses: status code (or ``"timeout"``, ``"connection"``) -> count.
        elapsed: seconds from the first due time to the last answer.
    """

    rate: float
    duration: float
    latencies: tuple[float, ...]
    errors: int
    statuses: dict[str, int]
    elapsed: float

    @property
    def sent(self) -> int:
        """Requests sent (answered or not)."""
        return len(self.latencies) + self.errors


def _check_loopback(host: str) -> None:
    if host in LOOPBACK_NAMES:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"load tests target loopback addresses only (127.0.0.0/8, ::1); got {host!r}")


def prepare(host: str, port: int, path: str, bodies: Sequence[bytes], headers: dict[str, str]
            ) -> list[bytes]:  # fmt: skip
    """The raw HTTP/1.1 POST requests for ``bodies`` (JSON), with ``headers``."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return [
        (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
         f"{extra}Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body
        for body in bodies
    ]  # fmt: skip


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 answer framed by Content-Length; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


class _Pool:
    """Keep-alive connections to one server, at most ``limit`` open at once."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.all: list[asyncio.StreamWriter] = []
        self.slots = asyncio.Semaphore(limit)

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """An idle connection or a new one, and whether it was idle (reused); waits while
        ``limit`` connections are busy. Idle connections the server has closed (its keep-alive
        timeout) are dropped."""
        await self.slots.acquire()
        while self.idle:
            reader, writer = self.idle.pop()
            if not (reader.at_eof() or writer.is_closing()):
                return reader, writer, True
            writer.close()
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except BaseException:
            self.slots.release()
            raise
        self.all.append(writer)
        return reader, writer, False

    def give_back(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
                  ) -> None:  # fmt: skip
        """Return a connection after a full answer (``None``: it was dropped)."""
        if connection is not None:
            self.idle.append(connection)
        self.slots.release()

    def close(self) -> None:
        for writer in self.all:
            writer.close()


async def _one(pool: _Pool, request: bytes, due: float, timeout: float) -> tuple[str, float]:
    """Send one request; ``timeout`` runs from its due time, like its latency. A reused
    connection that the server closed before answering a byte (its keep-alive timeout racing
    the request: the server never read it) is retried once on a new connection, as HTTP
    clients do with pooled connections."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout - (time.perf_counter() - due)
    connection = None
    try:
        async with asyncio.timeout_at(deadline):
            for attempt in range(2):
                reader, writer, reused = await pool.take()
                connection = reader, writer
                writer.write(request)
                try:
                    await writer.drain()
                    status = await _read_answer(reader)
                except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
                    stale = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
                    if not (reused and stale and attempt == 0):
                        raise
                    writer.close()
                    pool.give_back(None)
                    connection = None
                    continue
                break
    except TimeoutError:
        if connection is not None:  # the answer may still come: the connection is unusable
            connection[1].close()
            pool.give_back(None)
        return "timeout", 0.0
    except (OSError, asyncio.IncompleteReadError, ValueError):
        if connection is not None:
            connection[1].close()
            pool.give_back(None)
        return "connection", 0.0
    pool.give_back(connection)
    return str(status), time.perf_counter() - due


async def _run(host: str, port: int, requests: Sequence[bytes], rate: float, duration: float,
               timeout: float, connections: int) -> LoadResult:  # fmt: skip
    pool = _Pool(host, port, connections)
    n = int(round(rate * duration))
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(n):
        due = start + i / rate
        while (delay := due - time.perf_counter()) > 0:  # timers may wake a little early
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(pool, requests[i % len(requests)], due, timeout)))
    outcomes = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    pool.close()
    statuses: dict[str, int] = {}
    for status, _ in outcomes:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = tuple(lat for status, lat in outcomes if status == "200")
    return LoadResult(rate, duration, latencies, n - len(latencies), statuses, elapsed)


def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    rate: float,
    duration: float,
    timeout: float = 5.0,
    connections: int = 256,
) -> LoadResult:
    """Send ``rate * duration`` prepared ``requests`` (cycled) at ``rate`` per second.

    Args:
        host, port: the server (loopback only).
        requests: raw requests from :func:`prepare`.
        rate: requests per second; duration: seconds of scheduled sending.
        timeout: seconds from a request's due time after which it counts as an error.
        connections: most connections open at once (a request due while all are busy waits
            for one, and that wait counts in its latency).

    Raises:
        ValueError: a host that is not a loopback address, or no requests.
    """
    _check_loopback(host)
    if not requests or rate <= 0 or duration <= 0:
        raise ValueError("need at least one request, a positive rate and a positive duration")
    gc.collect()
    gc.freeze()
    try:
        # uvloop (from uvicorn[standard]): a faster loop with finer timers than asyncio's own
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_run(host, port, requests, rate, duration, timeout, connections))
    finally:
        gc.unfreeze()


__all__ = ["LoadResult", "open_loop", "prepare"]
