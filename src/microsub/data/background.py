"""Work in a background thread, so that reading, parsing and writing overlap on the cores.

The single-machine engine is a pipeline of three stages: read (file I/O, gunzip, SHA-256 of
every byte), parse (Polars and NumPy) and store (Parquet encoding, hashing and writing the
parts). Each stage spends most of its time in C code that releases the GIL, so running the
first and the last in their own threads keeps both cores busy. Order is kept, memory stays
bounded (``depth`` items in flight at most) and an exception in a worker is raised in the
caller.

- :func:`prefetch`: an iterator computed ``depth`` items ahead in a worker thread.
- :func:`threaded`: a sink whose calls run in a worker thread, in order; leaving the block
  waits for every call to finish.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    """An exception raised in a worker, carried to the caller."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; returns whether it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` as they are, computed in a worker thread up to ``depth`` items ahead.

    If the caller stops early, the worker stops too and ``items`` is closed (its ``finally``
    blocks run in the worker).
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if not _put(q, item, stop):
                    break
            else:
                _put(q, _END, stop)
        except BaseException as exc:  # carried to the caller
            _put(q, _Failure(exc), stop)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="microsub-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()


@contextmanager
def threaded(
    sink: Callable[[str, Any], None], depth: int = 2
) -> Iterator[Callable[[str, Any], None]]:
    """A sink that hands each ``(name, table)`` to ``sink`` in a worker thread, in order.

    At most ``depth`` calls wait. The first exception of ``sink`` is raised by the next call
    and when the block ends; leaving the block (cleanly or not) waits until every call made is
    done, so the caller may commit or inspect what ``sink`` wrote.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    failures: list[BaseException] = []

    def work() -> None:
        while (item := q.get()) is not _END:
            if not failures:
                try:
                    sink(*item)
                except BaseException as exc:
                    failures.append(exc)

    worker = threading.Thread(target=work, name="microsub-sink", daemon=True)
    worker.start()

    def call(name: str, table: Any) -> None:
        if failures:
            raise failures[0]
        q.put((name, table))

    try:
        yield call
    finally:
        q.put(_END)
        worker.join()
    if failures:
        raise failures[0]
