"""Speed and memory of the synthetic log generator (microsub.data.synth.generate).

Each case runs in a fresh Python process, so its peak RSS is its own (``os.wait4``); times are
medians over ``--repeats`` runs. The baseline, measured in the same run, formats the pages of one
simulated block with plain Python string operations (per value ``str``/``join``), which is what
the vectorised Arrow formatter replaces; ``ratio`` is pages/s over the baseline's pages/s.

    .venv/bin/python benchmarks/synth.py                 # 20k and 300k pages, 3 repeats
    .venv/bin/python benchmarks/synth.py --sizes 20000 --repeats 5 --gzip
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

GENERATE = textwrap.dedent(
    """
    import sys, time
    from microsub.sim import dynamics, params
    from microsub.data import synth
    out, n = sys.argv[1], int(sys.argv[2])
    t = time.perf_counter()
    s = synth.generate(out, n_pages=n, seed=20190513)
    print(time.perf_counter() - t, s.n_pages, s.bytes)
    """
)

BASELINE = textwrap.dedent(
    """
    import sys, time

    n = int(sys.argv[1])
    block = dynamics.simulate_sessions(dynamics.block_rng(20190513, 0), dynamics.SESSIONS_PER_BLOCK,
                                  params.DEFAULT_PARAMS).head(n)

    def fmt_list(values, scale=None):
        if scale is None:
            return ",".join(str(int(v)) for v in values)
        return ",".join(str(round(v / scale, 6)) for v in values)

    t = time.perf_counter()
    lines = []
    for i in range(len(block)):
        lines.append(";".join([
            str(block.page_id[i]), str(block.hour[i]), str(block.age_level[i]),
            str(block.gender[i]), str(block.purchase_power[i]),
            fmt_list(block.position[i]), fmt_list(block.ctr_u[i], 1e6),
            fmt_list(block.cvr_u[i], 1e6), fmt_list(block.price_c[i], 100),
            fmt_list(block.click[i]), fmt_list(block.cart[i]), fmt_list(block.fav[i]),
            fmt_list(block.amount_c[i], 100), fmt_list(block.feature_u[i], 1e4),
            str(block.terminal[i]),
        ]) + "\\n")
    data = "".join(lines).encode()
    print(time.perf_counter() - t, len(block), len(data))
    """
)


def run_child(code: str, *args: str) -> tuple[list[float], float]:
    """Run ``code`` in a fresh interpreter; return its printed numbers and its peak RSS (MB)."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed with exit code {proc.returncode}")
    return [float(x) for x in out.split()], usage.ru_maxrss / 1024  # ru_maxrss is in KiB


def measure(code: str, args: list[str], repeats: int) -> dict[str, float]:
    """Median seconds, pages, bytes and the largest peak RSS over ``repeats`` runs."""
    runs = [run_child(code, *args) for _ in range(repeats)]
    seconds = statistics.median(r[0][0] for r in runs)
    pages, n_bytes = runs[0][0][1], runs[0][0][2]
    return {
        "seconds": seconds,
        "pages": pages,
        "pages_per_s": pages / seconds,
        "mb_per_s": n_bytes / seconds / 1e6,
        "mb": n_bytes / 1e6,
        "rss_mb": max(r[1] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 300_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-pages", type=int, default=2_000)
    parser.add_argument("--gzip", action="store_true", help="also time .gz output")
    args = parser.parse_args()

    rows: list[tuple[str, dict[str, float]]] = []
    base = measure(BASELINE, [str(args.baseline_pages)], args.repeats)
    rows.append(("baseline: Python str/join formatting only", base))
    suffixes = [".txt", ".txt.gz"] if args.gzip else [".txt"]
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            for suffix in suffixes:
                out = str(Path(tmp) / f"synthetic-{n}{suffix}")
                rows.append((f"generate {suffix}", measure(GENERATE, [out, str(n)], args.repeats)))
                Path(out).unlink()

    version = sys.version.split()[0]
    print(f"microsub.data.synth benchmark: median of {args.repeats} runs, python {version}")
    header = (
        f"{'case':<44}{'pages':>9}{'median s':>10}{'pages/s':>10}{'MB out':>9}"
        f"{'MB/s':>8}{'peak RSS MB':>13}{'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, r in rows:
        print(
            f"{name:<44}{r['pages']:>9.0f}{r['seconds']:>10.2f}{r['pages_per_s']:>10.0f}"
            f"{r['mb']:>9.1f}{r['mb_per_s']:>8.1f}{r['rss_mb']:>13.0f}"
            f"{r['pages_per_s'] / base['pages_per_s']:>8.1f}"
        )


if __name__ == "__main__":
    main()
