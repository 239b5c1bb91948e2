"""Progress reporting, one vocabulary for the whole package.

Long loops take a :data:`Progress` callback and call it with the number of units they just
completed (pages, bytes, rows); they never print. Stages that run several such loops take a
:data:`ProgressFactory`: ``factory(description, total)`` is a context manager that opens one
task and yields its :data:`Progress` callback. The CLI passes a factory that draws Rich bars on a
terminal and writes plain lines to a log; library callers pass nothing (:func:`quiet`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

#: Called with the number of units just completed.
Progress = Callable[[int], None]

#: ``factory(description, total)`` opens a task (``total`` None: unknown size) and yields its
#: :data:`Progress` callback; leaving the context marks the task complete.
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Progress]]


def ignore(n: int) -> None:
    """A :data:`Progress` callback that reports nothing."""


@contextmanager
def quiet(description: str, total: int | None) -> Iterator[Progress]:
    """A :data:`ProgressFactory` that reports nothing (the default of library calls)."""
    yield ignore


class LineProgress:
    """A :data:`ProgressFactory` that writes whole lines, for logs and pipes.

    A terminal redraws a progress bar in place; a log file keeps every redraw, squeezed to
    the log's width. This factory writes one line when a task starts, a line at each
    ``step`` of its total (default every 10 %) or every ``interval`` seconds for a task of
    unknown size, and one line when it ends::

        generating 300,000 synthetic pages: started
        generating 300,000 synthetic pages: 30,000 / 300,000 (10 %), 0:00:02
        ...
        generating 300,000 synthetic pages: done, 300,000 in 0:00:21

    Args:
        write: where lines go (a function of one line, without its newline).
        step: share of the total between two lines.
        interval: seconds between two lines of a task of unknown size.
        clock: a monotonic clock (seconds), for tests.
    """

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        step: float = 0.1,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.step = step
        self.interval = interval
        self.clock = clock

    @contextmanager
    def __call__(self, description: str, total: int | None) -> Iterator[Progress]:
        start = self.clock()
        done = 0
        next_mark = self.step * total if total else None
        last_line = start
        self.write(f"{description}: started")

        def elapsed() -> str:
            return _clock_text(self.clock() - start)

        def advance(n: int) -> None:
            nonlocal done, next_mark, last_line
            done += n
            now = self.clock()
            if total and next_mark is not None and done >= next_mark and done < total:
                self.write(f"{description}: {done:,} / {total:,} ({done / total:.0%}), {elapsed()}")
                while next_mark <= done:
                    next_mark += self.step * total
            elif not total and now - last_line >= self.interval:
                self.write(f"{description}: {done:,} so far, {elapsed()}")
                last_line = now

        yield advance
        count = f", {total:,}" if total else ""
        self.write(f"{description}: done{count} in {elapsed()}")


def _clock_text(seconds: float) -> str:
    """``h:mm:ss`` of a duration in seconds."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
