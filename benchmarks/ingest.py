"""Speed and memory of ingestion: the naive pandas baseline, the Polars engine and Spark.

Writes official-format logs of about 1 GB and 4 GB (460,000 and 1,840,000 pages by default,
``microsub.data.synth``; about 2.2 KB a page), then measures, each in a fresh subprocess and all
in one run:

- ``naive``: the baseline the targets are set against: ``pandas.read_csv`` in chunks of 5,000
  lines, a Python ``split(",")`` and ``float()`` of every list cell, the page aggregates in
  Python, to one Parquet file (with the item lists, or the pages only);
- ``polars``: ``microsub ingest`` into a local lake: with items, :func:`pipeline.ingest_raw`
  exactly as the CLI runs it (format check, raw copy into ``raw-data``, pages, items and
  quarantine datasets with manifests); without items, the same engine publishing pages and
  quarantine only (no raw copy);
- ``spark``: the same with ``--engine spark`` on ``local[2]``.

Imports are not timed (``microsub ingest`` imports the whole pipeline, about 2 s once per
command; pandas for the baseline); Spark's session is started before the clock too, and its
start-up (about 5 s) is reported apart.

Per row: wall seconds, MB/s of raw text, pages/s, and peak RSS: the largest resident set of the
child's whole process tree (the JVM and Python workers for Spark), sampled every 50 ms, or the
child's own ``VmHWM`` if larger. Speed-ups are against ``naive`` on the same file with the same
items choice. Each row is the median of ``--repeat`` runs (peak RSS: the largest).

Usage::

    .venv/bin/python benchmarks/ingest.py                      # 1 GB and 4 GB, every method
    .venv/bin/python benchmarks/ingest.py --pages 100000 --methods naive polars
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

_LISTS = {
    5: "position",
    6: "ctr",
    7: "cvr",
    8: "price",
    9: "click",
    10: "cart",
    11: "fav",
    12: "amount",
    13: "feature",
}


def naive_ingest(path: Path, out: Path, *, with_items: bool) -> int:
    """Baseline: pandas chunks of 5,000 lines, every list cell split in Python, to Parquet."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, pages = None, 0
    for chunk in pd.read_csv(path, sep=";", header=None, chunksize=5000, dtype=str):
        lists = {
            name: [[float(v) for v in cell.split(",")] for cell in chunk[k]]
            for k, name in _LISTS.items()
        }
        frame = pd.DataFrame(
            {
                "action_page_id": chunk[0].astype(int),
                "hour": chunk[1].astype(int),
                "state_purchase_power": chunk[4].astype(int),
                "n_clicks": [int(sum(v)) for v in lists["click"]],
                "n_carts": [int(sum(v)) for v in lists["cart"]],
                "n_purchases": [sum(a > 0 for a in v) for v in lists["amount"]],
                "page_value": [sum(v) for v in lists["amount"]],
                "mean_ctr": [sum(v) / len(v) for v in lists["ctr"]],
                "mean_cvr": [sum(v) / len(v) for v in lists["cvr"]],
                "mean_log_price": [
                    sum(math.log(max(p, 0.01)) for p in v) / len(v) for v in lists["price"]
                ],
                "done": chunk[14].astype(int),
            }
        )
        if with_items:
            for name, values in lists.items():
                frame[name] = values
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(out / "naive.parquet", table.schema)
        writer.write_table(table)
        pages += len(frame)
    if writer is not None:
        writer.close()
    return pages


def engine_ingest(path: Path, out: Path, *, engine: str, with_items: bool) -> int:
    """``microsub ingest`` into a local lake at ``out`` (``engine``: polars or spark)."""
    from microsub import contract, pipeline
    from microsub.config import Settings
    from microsub.data import background, ingest, spark
    from microsub.lake import open_lake

    settings = Settings(
        lake=str(out / "lake"), raw_path=path, ingest_engine=engine, spark_master="local[2]"
    )
    lake = open_lake(settings)
    if with_items:  # exactly what the CLI runs
        raw = pipeline.RawInput(path, "real", {"file": path.name})
        return pipeline.ingest_raw(settings, lake, raw, force=True).rows
    run = spark.ingest if engine == "spark" else ingest.ingest
    kw = {"master": "local[2]"} if engine == "spark" else {}
    rows = pipeline.ingest.PART_ROWS
    with (
        lake.writer(
            contract.BUCKET_PROCESSED,
            dataset="pages",
            schema=contract.PAGES_SCHEMA,
            part_rows=rows,
        ) as pages,
        lake.writer(
            contract.BUCKET_QUARANTINE,
            dataset="quarantine",
            schema=contract.QUARANTINE_SCHEMA,
            part_rows=rows,
        ) as quarantine,
        background.threaded(lambda n, t: (pages if n == "pages" else quarantine).write(t)) as s,
    ):
        report = run(path, sink=s, with_items=False, **kw)
    return report.pages_written


def _own_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _child(method: str, path: Path, items: bool, out: Path) -> None:
    """One measurement in this process, printed as JSON."""
    # Imports are not timed (the CLI imports its whole pipeline, about 2 s once per command):
    # the rows compare the work that grows with the file.
    import pandas  # noqa: F401

    if method != "naive":
        import microsub.pipeline  # noqa: F401
    from microsub.data import spark

    startup = 0.0
    if method == "spark":  # the JVM's start-up, reported apart
        start = time.perf_counter()
        spark.session("local[2]").sparkContext.setLogLevel("ERROR")
        startup = time.perf_counter() - start
    start = time.perf_counter()
    if method == "naive":
        pages = naive_ingest(path, out, with_items=items)
    else:
        pages = engine_ingest(path, out, engine=method, with_items=items)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"seconds": seconds, "startup": startup, "pages": pages, "own_peak_mb": _own_peak_mb()}
        )
    )


def _tree_rss_mb(pid: int) -> float:
    """Resident set (MB) of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            rss[int(proc.name)] = int(fields[21]) * 4096  # pages of 4 KiB
            children.setdefault(int(fields[1]), []).append(int(proc.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total / 2**20


def _measure(method: str, path: Path, items: bool, workdir: Path) -> dict[str, float]:
    load = os.getloadavg()[0]  # the machine's 1-minute load average as the run starts
    out = workdir / f"out-{method}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", method, str(path), str(int(items)), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = [0.0]

    def sample() -> None:
        while child.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(child.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = child.communicate()
    sampler.join()
    shutil.rmtree(out, ignore_errors=True)
    if child.returncode:
        raise SystemExit(f"{method} on {path.name} failed with code {child.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["rss_mb"] = max(peak[0], result["own_peak_mb"])
    result["load"] = load
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[460_000, 1_840_000])
    parser.add_argument("--methods", nargs="+", default=["naive", "polars", "spark"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("data/bench"))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        method, path, items, out = args.child
        _child(method, Path(path), items == "1", Path(out))
        return

    from microsub.data.synth import generate

    rows = []
    for n_pages in args.pages:
        path = args.workdir / f"bench-{n_pages}p-seed{args.seed}.txt"
        if not path.exists():
            generate(path, n_pages=n_pages, seed=args.seed)
        size_mb = path.stat().st_size / 2**20
        for items in (True, False):
            base = None
            for method in args.methods:
                runs = [_measure(method, path, items, args.workdir) for _ in range(args.repeat)]
                seconds = statistics.median(r["seconds"] for r in runs)
                pages = runs[0]["pages"]
                if pages != n_pages:
                    raise SystemExit(f"{method} wrote {pages} pages of {n_pages}")
                base = base or (seconds if method == "naive" else None)
                rss = max(r["rss_mb"] for r in runs)
                startup = statistics.median(r["startup"] for r in runs)
                each = [(r["seconds"], r["load"]) for r in runs]
                rows.append(
                    (n_pages, size_mb, method, items, seconds, pages, rss, base, startup, each)
                )
                print(
                    f"... {method} items={items} {n_pages} pages: "
                    + ", ".join(f"{t:.1f} s (load {load:.2f})" for t, load in each),
                    flush=True,
                )
    _print_table(rows, args.repeat)


def _print_table(rows: list[tuple], repeat: int) -> None:
    header = (
        f"{'pages':>9} {'file MB':>8} {'method':<7} {'items':<5} {'seconds':>8} {'MB/s':>7} "
        f"{'pages/s':>9} {'peak RSS MB':>11} {'vs naive':>8} {'start-up s':>10} {'load':>5}"
    )
    print(
        f"\ningest benchmark: median of {repeat} run(s) per row, each in a fresh process; "
        "vs naive = naive seconds / these seconds (same file, same items choice); load = the "
        "1-minute load average as the run started (median)"
    )
    print(header)
    print("-" * len(header))
    for n_pages, size_mb, method, items, seconds, pages, rss, base, startup, each in rows:
        ratio = f"{base / seconds:.1f}x" if base else "-"
        start = f"{startup:.1f}" if startup else "-"
        load = statistics.median(load for _, load in each)
        print(
            f"{n_pages:>9} {size_mb:>8.0f} {method:<7} {'yes' if items else 'no':<5} "
            f"{seconds:>8.1f} {size_mb / seconds:>7.1f} {pages / seconds:>9.0f} {rss:>11.0f} "
            f"{ratio:>8} {start:>10} {load:>5.2f}"
        )
    if repeat > 1:
        print("each run (seconds, load):")
        for n_pages, _, method, items, _, _, _, _, _, each in rows:
            runs = "  ".join(f"{t:.1f} ({load:.2f})" for t, load in each)
            print(f"  {n_pages:>9} {method:<7} items={'yes' if items else 'no':<3} {runs}")


if __name__ == "__main__":
    main()
