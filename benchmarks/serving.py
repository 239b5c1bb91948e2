"""Latency of the real-time scoring service under open-loop load, beside the in-process time.

Starts a real ``microsub serve`` process on a free loopback port (one uvicorn worker, access log
off), warms it up, then sends requests on a fixed schedule (:mod:`microsub.serve.loadtest`:
open loop, so a slow server is not hidden by a slower client) at each ``--rates`` value for
``--duration`` seconds: p50, p99 and max latency (from the time a request was due to the full
answer) and the errors (any status but 200, broken connections, answers later than
``--timeout``). Beside it, the time to score one page inside the process (the same features and
models, no HTTP). Target: p99 < 5 ms at 200 requests/s; the business gate is 100 ms.

The request bodies are real sessions of the lake's pages table (every prefix of 500 sessions:
one request per page a shopper saw), so the feature code runs on sessions of every length.

On a shared machine the numbers move with the other processes' load: ``--repeat 3`` measures
three times, each against a fresh server, records the machine's load averages before and after
every rate, prints each repeat and the medians, and publishes the repeat with the median p99 at
200 requests/s (with every repeat and the medians beside it: :func:`microsub.serve.latency.
combine`). Requests the server refuses at capacity (503) are errors, as timeouts are.

The result is printed as a table and published to the lake of the current settings as
``reports/serving.json`` (keys: :mod:`microsub.serve.latency`), where the business stage reads
it. Settings come from ``MICROSUB_*`` as for the ``microsub`` command; the champions must be
registered (``--train`` runs the pipeline's train stage first, which registers them)::

    .venv/bin/python benchmarks/serving.py                      # 200 and 1,000 requests/s, 60 s
    .venv/bin/python benchmarks/serving.py --repeat 3           # the same, three times
    .venv/bin/python benchmarks/serving.py --rates 100 --duration 10 --train
"""

from __future__ import annotations

import argparse
from pathlib import Path

from microsub import pipeline
from microsub.config import get_settings
from microsub.lake import open_lake
from microsub.serve import latency, registry
from microsub.serve.app import MAX_IN_FLIGHT
from microsub.serve.measure import LoadPlan, measure_service, session_bodies


def _ms(value) -> str:
    return f"{value:8.2f}" if value is not None else f"{'-':>8}"


def print_table(report: dict, title: str) -> None:
    """One repeat: per rate, the latency, errors by kind and the load averages around it."""
    head = (
        f"{'rate (req/s)':>12} {'sent':>7} {'errors':>7} {'achieved':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}  {'load before -> after (1/5/15 min)':<36} non-200"
    )
    print(f"\n{title}\n{head}\n{'-' * len(head)}")  # fmt: skip
    for r in report["rates"]:
        load = r.get("load_avg", {})
        around = (
            (
                f"{'/'.join(f'{x:.2f}' for x in load['before'])} -> "
                f"{'/'.join(f'{x:.2f}' for x in load['after'])}"
            )
            if load
            else ""
        )
        bad = {k: v for k, v in r["statuses"].items() if k != "200"}
        print(f"{r['rate']:>12g} {r['sent']:>7} {r['errors']:>7} {r['achieved_rps']:>9.1f} "
              f"{_ms(r['p50_ms'])} {_ms(r['p99_ms'])} {_ms(r['max_ms'])}  {around:<36} "
              f"{bad or ''}")  # fmt: skip
    inside = report["in_process_ms"]
    print(
        f"{'in-process':>12} {inside['n']:>7} {'':>7} {'':>9} {_ms(inside['p50'])} "
        f"{_ms(inside['p99'])} {'':>8}  (one page: features + both models, no HTTP)"
    )


def print_summary(report: dict) -> None:
    """The medians over the repeats, and the target."""
    n = len(report["repeats"])
    head = f"{'rate (req/s)':>12} {'errors':>7} {'achieved':>9} {'p50 ms':>8} {'p99 ms':>8} " \
           f"{'max ms':>8}"  # fmt: skip
    print(f"\nmedian of {n} repeat{'s' if n > 1 else ''}\n{head}\n{'-' * len(head)}")
    for r in report["median"]:
        print(f"{r['rate']:>12g} {r['errors']:>7g} {r['achieved_rps']:>9.1f} "
              f"{_ms(r['p50_ms'])} {_ms(r['p99_ms'])} {_ms(r['max_ms'])}")  # fmt: skip
    inside = report["in_process_median_ms"]
    print(
        f"{'in-process':>12} {'':>7} {'':>9} {_ms(inside['p50'])} {_ms(inside['p99'])} "
        f"{'':>8}   (one page: features + both models, no HTTP)"
    )
    print(
        f"target: p99 < {report['target_p99_ms']:g} ms at {report['reference_rate']} req/s; "
        f"business gate p99 < {report['gate_p99_ms']:g} ms. Published p99 at "
        f"{report['reference_rate']} (the median repeat): {report['scoring_p99_ms']} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200,1000", help="requests/s, comma-separated")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per rate")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before an error")
    parser.add_argument("--repeat", type=int, default=1, help="measurements (fresh server each)")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=MAX_IN_FLIGHT,
        help="the server's admission limit (microsub serve --max-in-flight)",
    )
    parser.add_argument("--sessions", type=int, default=500, help="sessions of request bodies")
    parser.add_argument("--in-process", type=int, default=2000, help="pages scored in-process")
    parser.add_argument("--train", action="store_true", help="run the train stage first")
    parser.add_argument(
        "--log", type=Path, default=None, help="server log [<data dir>/serving-benchmark.log]"
    )
    args = parser.parse_args()

    settings = get_settings()
    log = args.log or settings.data_dir / "serving-benchmark.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ctx = pipeline.run(settings, stages=("train",) if args.train else ())
    models = registry.champions(settings)
    bodies = session_bodies(pipeline.read_pages(ctx).to_pandas(), args.sessions, settings.seed)
    plan = LoadPlan(
        rates=tuple(float(r) for r in args.rates.split(",")),
        duration=args.duration,
        timeout=args.timeout,
        max_in_flight=args.max_in_flight,
        in_process=args.in_process,
    )
    reports = []
    for i in range(args.repeat):
        reports.append(measure_service(bodies, models, plan, log))
        print_table(reports[-1], f"repeat {i + 1} of {args.repeat}, {reports[-1]['measured_at']}")
    report = latency.combine(reports)
    print_summary(report)
    lake = open_lake(settings)
    latency.publish(lake, report)
    print(f"published {lake.location}/reports/{latency.REPORT_KEY}")


if __name__ == "__main__":
    main()
