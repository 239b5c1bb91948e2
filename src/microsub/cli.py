"""The ``microsub`` command line (Typer + Rich).

::

    microsub generate --profile ci --out data/raw/ci.txt      # a synthetic raw log
    microsub ingest PATH [--lake LAKE] [--engine spark]        # raw log -> lake
    microsub lake ls [--lake LAKE]                             # datasets in the lake
    microsub run [--profile NAME] [--lake LAKE] [--raw PATH]   # the whole pipeline
    microsub score PATH_OR_DATASET [--lake LAKE]               # batch scores -> lake
    microsub monitor --reference DATASET --current DATASET     # drift -> reports/drift.json
    microsub serve [--host 127.0.0.1] [--port 8000]            # the real-time scoring service

User mistakes (a missing file, a bad lake URL, missing credentials, a file that is not the log)
print one clear message and exit with status 1, without a traceback. Options fall back on the
``MICROSUB_*`` environment variables (:mod:`microsub.config`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from microsub import contract, pipeline
from microsub.config import Settings, get_settings
from microsub.errors import ConfigError, MicrosubError
from microsub.lake import open_lake
from microsub.pipeline.monitor import monitor as monitor_drift
from microsub.pipeline.score import score_dataset
from microsub.progress import LineProgress, ProgressFactory
from microsub.serve import latency, registry
from microsub.serve.app import MAX_IN_FLIGHT, create_app

app = typer.Typer(
    name="microsub",
    help="Shopping sessions as micro-subscriptions: from the Taobao page log to a data lake, "
    "models and a book.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
lake_app = typer.Typer(help="Look into the data lake.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")

console = Console()
err_console = Console(stderr=True)

ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile", help="synthetic data size: ci, default or full [env MICROSUB_PROFILE]"
    ),
]
LakeOpt = Annotated[
    str | None,
    typer.Option(
        "--lake",
        help="a folder, or s3://HOST:PORT with MICROSUB_S3_ACCESS_KEY/SECRET_KEY set "
        "[env MICROSUB_LAKE; default data/lake]",
    ),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="seed [env MICROSUB_SEED]")]


def _settings(**overrides: Any) -> Settings:
    try:
        return get_settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid settings ({problems})") from None


def _friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a MicrosubError as one red line and exit 1 (no traceback for user mistakes)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MicrosubError as exc:
            message = escape(str(exc))  # a message is text, not Rich markup
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: nothing half-written was committed")
            raise typer.Exit(130) from None

    return wrapper


@contextmanager
def _bars() -> Iterator[ProgressFactory]:
    """Progress of the tasks in the block: Rich bars on a terminal, plain lines in a log.

    Yields a :data:`~microsub.progress.ProgressFactory`. Piped to a file, Rich would keep every
    redraw of a bar, squeezed to the log's width; :class:`~microsub.progress.LineProgress`
    writes whole lines instead.
    """
    if not err_console.is_terminal:
        yield LineProgress(lambda line: err_console.print(line, highlight=False, soft_wrap=True))
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as bars:

        @contextmanager
        def task(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
            tid = bars.add_task(description, total=total)
            yield lambda n: bars.advance(tid, n)
            if total is not None:
                bars.update(tid, completed=total)
            else:
                bars.update(tid, total=1, completed=1)

        yield task


@app.command()
@_friendly
def generate(
    profile: ProfileOpt = None,
    pages: Annotated[
        int | None, typer.Option("--pages", min=1, help="number of pages (overrides --profile)")
    ] = None,
    seed: SeedOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="file to write (.gz for gzip)")] = None,
) -> None:
    """Write a synthetic raw log in the official 15-column format."""
    settings = _settings(profile=profile, seed=seed)
    n_pages = pages or settings.data_profile.n_pages
    if out is None:
        out = (
            settings.synthetic_raw_path
            if pages is None
            else settings.data_dir / "raw" / f"synthetic-{n_pages}p-seed{settings.seed}.txt"
        )
    with _bars() as task:
        summary = pipeline.generate_synthetic(
            out, n_pages=n_pages, seed=settings.seed, progress=task
        )
    console.print(
        f"wrote [bold]{summary.path}[/]: {summary.n_pages:,} pages, {summary.n_sessions:,} "
        f"sessions, {summary.bytes / 2**20:,.1f} MiB, seed {summary.seed}"
    )


@app.command()
@_friendly
def ingest(
    path: Annotated[
        str,
        typer.Argument(
            help="raw log: plain text, .gz or the public tar; with --engine spark also a URI "
            "Spark reads (s3a://..., abfss://..., dbfs:/..., file://...)"
        ),
    ],
    lake: LakeOpt = None,
    force: Annotated[bool, typer.Option("--force", help="ingest even if up to date")] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="polars (this machine, all cores) or spark (needs the spark extra) "
            "[env MICROSUB_INGEST_ENGINE; default polars]",
        ),
    ] = None,
    spark_master: Annotated[
        str | None,
        typer.Option(
            "--spark-master",
            help="Spark master of --engine spark: local[*], spark://HOST:7077, yarn, ... "
            "[env MICROSUB_SPARK_MASTER; default local[*]]",
        ),
    ] = None,
) -> None:
    """Parse a raw log into the lake: pages, item lists, quarantine, with a reconciliation."""
    is_uri = "://" in path or path.startswith("dbfs:/")
    if not is_uri and not Path(path).is_file():
        raise ConfigError(f"no file at {path!r}; give the path of the raw log to ingest")
    settings = _settings(
        lake=lake,
        raw_path=None if is_uri else Path(path),
        ingest_engine=engine,
        spark_master=spark_master,
    )
    store = open_lake(settings)
    with _bars() as task:
        if is_uri:
            manifest = pipeline.ingest_uri(settings, store, path, progress=task)
        else:
            raw = pipeline.RawInput(Path(path), "real", {"file": Path(path).name})
            manifest = pipeline.ingest_raw(settings, store, raw, force=force, progress=task)
    _print_reconciliation(manifest.meta.get("ingest", {}), store.location)


def _print_reconciliation(report: dict[str, Any], location: str) -> None:
    table = Table(title=f"ingestion into {location}", show_header=False)
    for key in (
        "layout",
        "container",
        "lines_read",
        "pages_written",
        "lines_quarantined",
        "sessions",
        "sessions_done",
        "sessions_truncated",
        "page_jumps",
        "n_purchases",
    ):
        value = report.get(key, "")
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    for reason, count in (report.get("quarantine_reasons") or {}).items():
        table.add_row(f"  quarantined: {reason}", f"{count:,}")
    ok = report.get("reconciles")
    table.add_row("reconciles", "[green]yes[/]" if ok else "[red]NO[/]")
    console.print(table)


@lake_app.command("ls")
@_friendly
def lake_ls(lake: LakeOpt = None) -> None:
    """List the committed datasets of the lake with their rows and parts."""
    store = open_lake(_settings(lake=lake))
    manifests = store.datasets()
    if not manifests:
        console.print(f"no datasets in {store.location} (run `microsub run` to build them)")
        return
    table = Table(title=f"lake {store.location}")
    for col in ("bucket", "prefix", "dataset", "rows", "parts", "source"):
        table.add_column(col, justify="right" if col in ("rows", "parts") else "left")
    for m in manifests:
        source = m.meta.get("source", {})
        label = source.get("kind", "") + (f" ({source['profile']})" if "profile" in source else "")
        table.add_row(m.bucket, m.prefix or "/", m.dataset, f"{m.rows:,}", str(len(m.parts)), label)
    console.print(table)


@app.command()
@_friendly
def run(
    profile: ProfileOpt = None,
    lake: LakeOpt = None,
    raw: Annotated[
        Path | None,
        typer.Option(
            "--raw",
            help="ingest this real log instead of the synthetic one [env MICROSUB_RAW_PATH]",
        ),
    ] = None,
    seed: SeedOpt = None,
    force: Annotated[bool, typer.Option("--force", help="redo every stage")] = False,
) -> None:
    """Run the pipeline: generate (if needed), ingest, then every later stage."""
    settings = _settings(profile=profile, lake=lake, raw_path=raw, seed=seed)
    with _bars() as task:
        ctx = pipeline.run(settings, force=force, progress=task)
    source = ctx.source
    what = (
        f"synthetic data (profile {source.get('profile')}, seed {source.get('seed')})"
        if source.get("kind") == "synthetic"
        else f"the real log {source.get('file')}"
    )
    console.print(f"pipeline done on {what}; lake {ctx.lake.location}")
    _print_reconciliation(ctx.ingest_report, ctx.lake.location)
    _print_outputs(ctx)


def _print_outputs(ctx: pipeline.Context) -> None:
    """What the later stages left: the findings and the champion models in the MLflow registry."""
    lake = ctx.lake
    if lake.exists(contract.BUCKET_REPORTS, "findings.yaml"):
        console.print(f"findings: {contract.BUCKET_REPORTS}/findings.yaml")
    champions = [v for v in registry.versions(ctx.settings) if registry.CHAMPION in v.aliases]
    if not champions:
        return
    table = Table(title=f"champion models in {ctx.settings.tracking_uri}")
    for col in ("model", "version", "estimator", "test metric", "trained on"):
        table.add_column(col)
    for v in champions:
        m = v.metrics
        metric = (
            f"ROC AUC {m['test_roc_auc']:.3f}"
            if "test_roc_auc" in m
            else f"RMSE {m['test_rmse']:.2f}"
            if "test_rmse" in m
            else ""
        )
        table.add_row(
            f"models:/{v.name}@{registry.CHAMPION}", v.version, v.label, metric,
            f"{v.data_rows:,} pages ({v.data_digest})",
        )  # fmt: skip
    console.print(table)
    if lake.exists(contract.BUCKET_REPORTS, latency.REPORT_KEY):
        served = latency.read(lake)
        at = latency.reference_run(served)
        p99 = "no answers" if at["p99_ms"] is None else f"p99 {at['p99_ms']:.1f} ms"
        console.print(
            f"scoring service: {p99}, {at['errors']} errors at {served['reference_rate']} "
            f"requests/s (gate: p99 < {served['gate_p99_ms']:g} ms); "
            f"{contract.BUCKET_REPORTS}/{latency.REPORT_KEY}"
        )


#: Exit status of ``microsub monitor`` when a column drifted past the act threshold (PSI >= 0.2):
#: retraining is due. 0 means nothing needs action; 1 is a user mistake, as for every command.
EXIT_RETRAIN = 3
DatasetArg = Annotated[
    str,
    typer.Argument(
        metavar="PATH_OR_DATASET",
        help="a Parquet file or folder of pages, or BUCKET or BUCKET/PREFIX of the lake "
        "(processed-data is the pages table)",
    ),
]


@app.command()
@_friendly
def score(
    dataset: DatasetArg,
    lake: LakeOpt = None,
    out: Annotated[
        str | None,
        typer.Option("--out", help="prefix in processed-data [default: scores, or scores/PREFIX]"),
    ] = None,
) -> None:
    """Score a pages dataset with the champion models and publish the scores dataset."""
    settings = _settings(lake=lake)
    store = open_lake(settings)
    manifest = score_dataset(settings, store, dataset, out=out)
    models = ", ".join(f"{m['name']} v{m['version']}" for m in manifest.meta["models"].values())
    console.print(
        f"scored {manifest.rows:,} pages with {models}; published "
        f"{store.location}/{manifest.bucket}/{manifest.prefix}"
    )


@app.command()
@_friendly
def monitor(
    reference: Annotated[str, typer.Option("--reference", help="PATH_OR_DATASET of reference")],
    current: Annotated[str, typer.Option("--current", help="PATH_OR_DATASET to check")],
    lake: LakeOpt = None,
) -> None:
    """Drift of the features and scores (PSI, KS) of CURRENT against REFERENCE; writes
    reports/drift.json. Exits 0 when nothing needs action, 3 when retraining is due."""
    settings = _settings(lake=lake)
    store = open_lake(settings)
    report = monitor_drift(settings, store, reference, current)
    table = Table(title=f"drift of {current} against {reference}")
    for col in ("column", "PSI", "status", "KS D", "KS p-value"):
        table.add_column(col, justify="left" if col in ("column", "status") else "right")
    colour = {"ok": "green", "watch": "yellow", "act": "bold red"}
    for c in report["columns"]:
        table.add_row(
            c["column"], f"{c['psi']:.3f}", f"[{colour[c['status']]}]{c['status']}[/]",
            f"{c['ks_statistic']:.3f}", f"{c['ks_pvalue']:.2g}",
        )  # fmt: skip
    console.print(table)
    console.print(f"report: {contract.BUCKET_REPORTS}/drift.json in {store.location}")
    if report["retrain"]:
        err_console.print(
            f"[bold red]retraining due[/]: PSI >= 0.2 on {', '.join(report['act'])}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
        raise typer.Exit(EXIT_RETRAIN)


@app.command()
@_friendly
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port")] = 8000,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="one log line per request")
    ] = False,
    max_in_flight: Annotated[
        int,
        typer.Option(
            "--max-in-flight",
            min=1,
            help="requests to /score in hand at once; more get 503 + Retry-After",
        ),
    ] = MAX_IN_FLIGHT,
    lake: LakeOpt = None,
) -> None:
    """Serve POST /score and GET /health (FastAPI under uvicorn) with the champion models.
    Clients send MICROSUB_API_KEY in the X-API-Key header."""
    settings = _settings(lake=lake)
    # refuses to exist without an API key
    application = create_app(settings, max_in_flight=max_in_flight)
    for task in registry.MODEL_NAMES:
        if registry.version(settings, task) is None:  # say so before uvicorn starts
            registry.load(settings, task)  # raises the ServingError that says how to fix it
    uvicorn.run(application, host=host, port=port, access_log=access_log, log_level="info")


def main() -> None:
    """Entry point of the ``microsub`` script."""
    app()
