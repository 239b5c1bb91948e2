"""Progress vocabulary: the quiet factory, and whole lines for logs (LineProgress)."""

from __future__ import annotations

from microsub import progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_quiet_factory_reports_nothing_and_accepts_advances() -> None:
    with progress.quiet("anything", 10) as advance:
        advance(3)
        advance(7)


def test_line_progress_writes_a_line_per_tenth_and_one_at_each_end() -> None:
    lines: list[str] = []
    clock = FakeClock()
    factory = progress.LineProgress(lines.append, clock=clock)
    with factory("generating 1,000 pages", 1000) as advance:
        for _ in range(10):
            clock.now += 2.0
            advance(100)
    assert lines == [
        "generating 1,000 pages: started",
        *[f"generating 1,000 pages: {k * 100:,} / 1,000 ({k * 10}%), 0:00:{2 * k:02d}"
          for k in range(1, 10)],
        "generating 1,000 pages: done, 1,000 in 0:00:20",
    ]  # fmt: skip


def test_line_progress_skips_marks_a_large_advance_passes() -> None:
    lines: list[str] = []
    factory = progress.LineProgress(lines.append, clock=FakeClock())
    with factory("ingesting", 100) as advance:
        advance(35)  # passes the 10, 20 and 30 % marks at once: one line
        advance(10)
    assert lines == [
        "ingesting: started",
        "ingesting: 35 / 100 (35%), 0:00:00",
        "ingesting: 45 / 100 (45%), 0:00:00",
        "ingesting: done, 100 in 0:00:00",
    ]


def test_line_progress_of_unknown_size_reports_by_time() -> None:
    lines: list[str] = []
    clock = FakeClock()
    factory = progress.LineProgress(lines.append, interval=30.0, clock=clock)
    with factory("exploring", None) as advance:
        clock.now += 10
        advance(1)  # too soon for a line
        clock.now += 25
        advance(1)
    assert lines == [
        "exploring: started",
        "exploring: 2 so far, 0:00:35",
        "exploring: done in 0:00:35",
    ]
