"""Speed and memory of :func:`microsub.ingest.ingest` against a naive per-line parser.

Writes official-format logs of two sizes (default 20k and 100k pages, 5x apart) with
:func:`microsub.synth.generate`, then, for each file, measures in a fresh subprocess each

- ``ingest``: the streaming, vectorised parser with sessions, items and contract conformance
  (``sink=None``: tables are built and dropped, as the pipeline's sink would store them), for
  each batch size asked for;
- ``naive``: the baseline, one Python ``str.split`` per line and per list, ``float()`` per item,
  the same page aggregates, streamed line by line (no tables, no sessions, fewer checks: it does
  less work than ``ingest``, so the speed ratio understates the difference).

Each measurement runs ``--repeat`` times; the table shows the median time, MB/s and pages/s from
it, and the largest peak RSS (``VmHWM`` of the child, see :func:`_peak_rss_mb`, which includes
the interpreter and imports: ``rss_imports`` is the same process's peak before the run; both
methods start with pandas imported, as in the pipeline). Memory
that does not grow with the file size shows as equal peaks for the two sizes at the same batch
size; pick batch sizes below the smaller file's size, or the small file fits in one batch.

Usage::

    .venv/bin/python benchmarks/ingest.py --pages 20000 100000 --batch-mb 16 64 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    """This process's peak resident set (MB): ``VmHWM`` of /proc/self/status on Linux.

    Not ``ru_maxrss``: Linux carries the parent's resident set across the child's fork and exec
    into it, so a child of a large parent would report the parent's size.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: KiB


def naive_parse(path: Path) -> int:
    """Baseline: parse the official layout line by line in plain Python; return pages parsed."""
    pages = bad = 0
    n_clicks = 0
    total_value = 0.0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            fields = line.rstrip("\n").split(";")
            if len(fields) != 15:
                bad += 1
                continue
            page_id, hour = int(fields[0]), int(fields[1])
            lists = [[float(x) for x in fields[k].split(",")] for k in range(5, 14)]
            if any(len(v) != 50 for v in lists) or not (0 <= page_id <= 11 and 0 <= hour <= 23):
                bad += 1
                continue
            _, ctr, cvr, price, click, cart, fav, amount, _ = lists
            clicks, carts = int(sum(click)), int(sum(cart))
            page = (
                page_id,
                hour,
                clicks,
                carts,
                int(sum(fav)),
                clicks + carts,
                sum(a > 0 for a in amount),
                sum(amount),
                sum(ctr) / 50,
                sum(cvr) / 50,
                sum(math.log(max(p, 0.01)) for p in price) / 50,
                int(fields[14]),
            )
            n_clicks += page[2]
            total_value += page[7]
            pages += 1
    return pages


def _child(method: str, path: Path, batch_mb: int) -> None:
    """Run one measurement in this process and print it as JSON."""
    # pyarrow imports pandas on its first numpy conversion (~0.4 s once per process); the
    # pipeline has pandas loaded anyway, so both methods start with it loaded.
    import pandas  # noqa: F401
    from microsub.ingest import ingest

    rss_imports = _peak_rss_mb()
    start = time.perf_counter()
    if method == "ingest":
        report = ingest(path, batch_bytes=batch_mb * 2**20, max_quarantine_share=0.0)
        pages = report.pages_written
    else:
        pages = naive_parse(path)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "pages": pages,
                "rss_mb": _peak_rss_mb(),
                "rss_imports_mb": rss_imports,
            }
        )
    )


def _measure(method: str, path: Path, batch_mb: int, repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--child", method, str(path), str(batch_mb)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout))
    size_mb = path.stat().st_size / 2**20
    seconds = statistics.median(r["seconds"] for r in runs)
    pages = runs[0]["pages"]
    return {
        "seconds": seconds,
        "mb_s": size_mb / seconds,
        "pages_s": pages / seconds,
        "rss_mb": max(r["rss_mb"] for r in runs),
        "rss_imports_mb": max(r["rss_imports_mb"] for r in runs),
        "pages": pages,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--batch-mb", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("data/bench"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        method, path, batch_mb = args.child
        _child(method, Path(path), int(batch_mb))
        return

    from microsub.synth import generate

    rows = []
    for n_pages in args.pages:
        path = args.workdir / f"bench-{n_pages}-seed{args.seed}.txt"
        if not path.exists():
            generate(path, n_pages=n_pages, seed=args.seed)
        size_mb = path.stat().st_size / 2**20
        naive = _measure("naive", path, 0, args.repeat)
        rows.append((n_pages, size_mb, "naive per-line", "-", naive, 1.0))
        for batch_mb in args.batch_mb:
            fast = _measure("ingest", path, batch_mb, args.repeat)
            if fast["pages"] != naive["pages"]:
                raise SystemExit(f"page counts differ: {fast['pages']} vs {naive['pages']}")
            rows.append(
                (n_pages, size_mb, "ingest", batch_mb, fast, naive["seconds"] / fast["seconds"])
            )

    header = (
        f"{'pages':>8} {'file MB':>8} {'method':<15} {'batch MB':>8} {'median s':>9} "
        f"{'MB/s':>7} {'pages/s':>9} {'peak RSS MB':>11} {'RSS imports':>11} "
        f"{'speed-up':>8}"
    )
    print(
        f"ingest benchmark: median of {args.repeat} runs per row, each in a fresh process; "
        "speed-up = naive median / this median (same file)"
    )
    print(header)
    print("-" * len(header))
    for n_pages, size_mb, method, batch_mb, m, ratio in rows:
        print(
            f"{n_pages:>8} {size_mb:>8.1f} {method:<15} {batch_mb!s:>8} {m['seconds']:>9.2f} "
            f"{m['mb_s']:>7.1f} {m['pages_s']:>9.0f} {m['rss_mb']:>11.0f} "
            f"{m['rss_imports_mb']:>11.0f} {ratio:>7.1f}x"
        )


if __name__ == "__main__":
    main()
