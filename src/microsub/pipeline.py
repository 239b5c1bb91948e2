"""The pipeline: raw log → lake → exploration → models, and the cached results the book reads.

Stages, each idempotent (it does nothing when its output in the lake is already up to date):

1. ``raw``: the input log. The real one when ``MICROSUB_RAW_PATH`` is set, else the synthetic log
   of the profile and seed (:mod:`microsub.synth`), generated once and reused.
2. ``ingest``: the raw file is copied to ``raw-data`` and parsed (:mod:`microsub.ingest`) into the
   pages table (top of ``processed-data``), the item lists (``items-data``) and the quarantine;
   the pages manifest records where the data came from and the reconciliation.
3. later stages (exploration, models) register themselves in :data:`STAGES`.

The book and the deck call :func:`context`, which runs whatever is missing and hands back the
lake and the pages manifest; expensive analyses go through :func:`cached`, a joblib cache keyed
by the digest of the data they read, so the chapters and the deck share work within a render and
a new dataset invalidates it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from microsub import __version__, contract
from microsub.config import Settings, get_settings
from microsub.errors import ConfigError, DatasetNotFoundError, QuarantineLimitError
from microsub.lake import Lake, Manifest, open_lake

T = TypeVar("T")

#: ``progress(description, total)`` returns a context manager that yields an ``advance(n)``
#: callback; the CLI passes Rich progress bars, library callers pass nothing.
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]

#: Parts of the pages and items datasets hold at most this many rows (bounded reader memory).
PART_ROWS = 65_536


@contextmanager
def _quiet(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


@dataclass(frozen=True)
class RawInput:
    """The raw log a run ingests.

    Attributes:
        path: the file.
        kind: ``"synthetic"`` or ``"real"``.
        details: JSON-safe description (profile, seed and generator digest for synthetic data).
    """

    path: Path
    kind: str
    details: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Cheap identity of the file and of the code that reads it (size, mtime, versions)."""
        stat = self.path.stat()
        payload = {
            "file": str(self.path.resolve()),
            "bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "microsub": __version__,
            "schema_version": contract.SCHEMA_VERSION,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare_raw(settings: Settings, *, progress: ProgressFactory = _quiet) -> RawInput:
    """The raw log of this run: the real file, or the synthetic one (generated if needed).

    A synthetic log is regenerated only when its sidecar ``<file>.json`` (the generator's
    summary) does not match the profile's size, the seed and the generator's parameters.

    Raises:
        ConfigError: ``MICROSUB_RAW_PATH`` names a file that does not exist.
    """
    if settings.raw_path is not None:
        path = Path(settings.raw_path)
        if not path.is_file():
            raise ConfigError(
                f"MICROSUB_RAW_PATH / --raw points at {str(path)!r}, which is not a file. Give the "
                "path of www.data (plain, .gz or the public wwwdata.tar), or unset it to use the "
                "synthetic log."
            )
        return RawInput(path, "real", {"file": path.name})

    from microsub import synth

    path = settings.synthetic_raw_path
    sidecar = path.with_name(path.name + ".json")
    n_pages = settings.data_profile.n_pages
    want = {
        "n_pages": n_pages,
        "seed": settings.seed,
        "params_digest": synth.params_digest(synth.DEFAULT_PARAMS),
    }
    if path.is_file() and sidecar.is_file():
        known = json.loads(sidecar.read_text())
        if all(known.get(k) == v for k, v in want.items()) and known.get("bytes") == (
            path.stat().st_size
        ):
            return RawInput(path, "synthetic", _synthetic_details(settings, known))
    summary = generate_synthetic(path, n_pages=n_pages, seed=settings.seed, progress=progress)
    known = {
        "n_pages": summary.n_pages,
        "n_sessions": summary.n_sessions,
        "seed": summary.seed,
        "params_digest": summary.params_digest,
        "sha256": summary.sha256,
        "bytes": summary.bytes,
    }
    sidecar.write_text(json.dumps(known, indent=2, sort_keys=True))
    return RawInput(path, "synthetic", _synthetic_details(settings, known))


def generate_synthetic(
    out: Path, *, n_pages: int, seed: int, progress: ProgressFactory = _quiet
) -> Any:
    """:func:`microsub.synth.generate` with a progress task counting pages.

    Returns:
        The generator's :class:`~microsub.synth.SynthSummary`.
    """
    from microsub import synth

    with progress(f"generating {n_pages:,} synthetic pages", n_pages) as advance:
        return synth.generate(out, n_pages=n_pages, seed=seed, progress=advance)


def _synthetic_details(settings: Settings, known: dict[str, Any]) -> dict[str, Any]:
    return {
        "file": settings.synthetic_raw_path.name,
        "profile": settings.profile,
        "seed": known["seed"],
        "params_digest": known["params_digest"],
        "n_pages": known["n_pages"],
    }


def ingest_raw(
    settings: Settings,
    lake: Lake,
    raw: RawInput,
    *,
    force: bool = False,
    progress: ProgressFactory = _quiet,
) -> Manifest:
    """Copy the raw log into ``raw-data`` and publish pages, items and quarantine datasets.

    Skipped (the current pages manifest is returned) when the pages dataset was built from the
    same file by the same code, unless ``force``. The pages manifest's ``meta`` holds
    ``source`` (what the data is) and ``ingest`` (the reconciliation,
    :meth:`microsub.ingest.IngestReport.to_dict`).

    When too many lines are malformed, the quarantine dataset is still published (so the bad
    lines can be inspected) but the pages and items are not, and the error is re-raised.
    """
    from microsub import ingest

    fingerprint = raw.fingerprint()
    if not force:
        try:
            current = lake.manifest(contract.BUCKET_PROCESSED)
        except DatasetNotFoundError:
            current = None
        if current is not None and current.meta.get("source", {}).get("fingerprint") == fingerprint:
            return current

    lake.ensure_buckets()
    size = raw.path.stat().st_size
    with progress(f"copying {raw.path.name} to {contract.BUCKET_RAW}", None) as advance:
        lake.put_file(contract.BUCKET_RAW, raw.path.name, raw.path)
        advance(size)

    source = {"kind": raw.kind, "fingerprint": fingerprint, **raw.details}
    common = {"meta": {"source": source}, "part_rows": PART_ROWS}
    with ExitStack() as stack:
        writers = {
            "pages": stack.enter_context(
                lake.writer(
                    contract.BUCKET_PROCESSED,
                    dataset="pages",
                    schema=contract.PAGES_SCHEMA,
                    **common,
                )
            ),
            "items": stack.enter_context(
                lake.writer(
                    contract.BUCKET_ITEMS,
                    dataset="items",
                    schema=contract.ITEMS_SCHEMA,
                    **common,
                )
            ),
        }
        quarantine = lake.writer(
            contract.BUCKET_QUARANTINE,
            dataset="quarantine",
            schema=contract.QUARANTINE_SCHEMA,
            meta={"source": source},
        )

        def sink(name: str, table: pa.Table) -> None:
            (quarantine if name == "quarantine" else writers[name]).write(table)

        with progress(f"ingesting {raw.path.name}", size) as advance:
            try:
                report = ingest.ingest(
                    raw.path,
                    sink=sink,
                    batch_bytes=settings.ingest_batch_bytes,
                    max_quarantine_share=settings.max_quarantine_share,
                    progress=advance,
                )
            except QuarantineLimitError:
                quarantine.commit()  # keep the evidence; pages/items abort with the error
                raise
            except BaseException:
                quarantine.abort()
                raise
        details = report.to_dict()
        source["sha256"] = report.sha256
        for w in (*writers.values(), quarantine):
            w.update_meta({"source": source, "ingest": details})
        quarantine.commit()
        lake.put_json(contract.BUCKET_REPORTS, "ingest.json", {"source": source, **details})
    return lake.manifest(contract.BUCKET_PROCESSED)


# --------------------------------------------------------------------------------------------
# Stages and runs
# --------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What a chapter or a later stage needs: settings, the lake, the pages manifest."""

    settings: Settings
    lake: Lake
    manifest: Manifest

    @property
    def data_digest(self) -> str:
        """Digest of the pages dataset (changes whenever its content does)."""
        parts = "".join(p.sha256 for p in self.manifest.parts)
        return hashlib.sha256(parts.encode()).hexdigest()[:16]

    @property
    def source(self) -> dict[str, Any]:
        """Where the pages came from (``kind`` is ``"synthetic"`` or ``"real"``)."""
        return dict(self.manifest.meta.get("source", {}))

    @property
    def ingest_report(self) -> dict[str, Any]:
        """The ingestion's reconciliation (:meth:`IngestReport.to_dict`)."""
        return dict(self.manifest.meta.get("ingest", {}))


Stage = Callable[[Context, ProgressFactory, bool], Any]
#: Stages after ingestion, in order: name -> function(context, progress, force).
STAGES: dict[str, Stage] = {}


# --- explore: hypotheses, survival, audit -> reports/findings.yaml ----------------------------
def _code_digest(*modules: Any) -> str:
    """Digest of the source files of ``modules`` (a package counts with every ``.py`` file in
    its folder). joblib keys a cache on the called function's own code only; putting this in
    the key makes an edit to any module the computation runs recompute it."""
    h = hashlib.sha256()
    for module in modules:
        path = Path(module.__file__)
        files = sorted(path.parent.glob("*.py")) if path.name == "__init__.py" else [path]
        for file in files:
            h.update(file.name.encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def _cached_on_pages(ctx: Context, func: Callable[..., T], code_digest: str, force: bool) -> T:
    """``func(pages, seed, data_digest, code_digest)`` through :func:`cached`."""
    return cached(
        ctx,
        func,
        (ctx.settings.seed, ctx.data_digest, code_digest),
        data=("pages",),
        load=lambda: (read_pages(ctx).to_pandas(),),
        force=force,
    )


def _explore(pages: Any, random_state: int, data_digest: str, code_digest: str) -> Any:
    """:func:`microsub.hypotheses.run_all` (the digests are part of the cache key only)."""
    from microsub import hypotheses

    return hypotheses.run_all(pages, random_state=random_state)


def exploration(ctx: Context, *, force: bool = False) -> Any:
    """The exploration of the context's pages (:class:`microsub.hypotheses.Exploration`),
    cached by the pages' digest, the seed and the analysis code (``force``: recompute)."""
    from microsub import evaluation, features, hypotheses

    return _cached_on_pages(ctx, _explore, _code_digest(hypotheses, features, evaluation), force)


def calibration(ctx: Context) -> Any:
    """The generator's calibration table (:func:`microsub.findings.calibration_comparison`):
    the real sample beside every page of this context's synthetic data, read from the lake's
    pages and items datasets; None for real data or when the real sample is not at hand.

    Cached (joblib) by the pages' and items' digests, the real sample's path and fingerprint
    and the code of synth and ingest; a cache hit reads neither dataset.
    """

    from microsub import ingest, synth

    if ctx.source.get("kind") != "synthetic":
        return None
    real = Path(ctx.settings.real_sample_path)
    if not real.is_file():
        return None
    items_parts = "".join(p.sha256 for p in ctx.lake.manifest(contract.BUCKET_ITEMS).parts)
    key = (
        str(real),
        ctx.data_digest,
        hashlib.sha256(items_parts.encode()).hexdigest()[:16],
        RawInput(real, "real").fingerprint(),
        _code_digest(synth, ingest),
    )

    def load() -> tuple[pa.Table, pa.Table]:
        lake = ctx.lake
        return (
            lake.read_table(contract.BUCKET_PROCESSED, columns=list(synth.STATISTICS_PAGE_COLUMNS)),
            lake.read_table(contract.BUCKET_ITEMS, columns=list(synth.STATISTICS_ITEM_COLUMNS)),
        )

    return cached(ctx, _calibrate, key, data=("pages", "items"), load=load)


def _calibrate(pages: Any, items: Any, real_path: str, *digests: str) -> Any:
    """:func:`microsub.findings.calibration_comparison` (the digests key the cache only)."""
    from microsub import findings

    return findings.calibration_comparison(real_path, pages, items)


def explore_stage(ctx: Context, progress: ProgressFactory = _quiet, force: bool = False) -> dict:
    """Stage ``explore``: compute the exploration and write ``reports/findings.yaml``.

    Idempotent: the exploration comes from the cache when the data and code are unchanged,
    and the document is rewritten only when its text changes (or with ``force``).

    Returns:
        The findings document (:func:`microsub.findings.build_findings`).
    """
    from microsub import findings

    with progress("exploring the pages: hypotheses, survival, audit", None) as advance:
        result = exploration(ctx, force=force)
        doc = findings.build_findings(
            ctx.source, ctx.ingest_report, result, data_digest=ctx.data_digest
        )
        findings.write_findings(ctx.lake, doc, force=force)
        advance(1)
    return doc


STAGES["explore"] = explore_stage


# --- train: benchmark, model registry (models bucket), reports/benchmark.json -----------------
def _benchmark(pages: Any, random_state: int, data_digest: str, code_digest: str) -> Any:
    """:func:`microsub.benchmark.run_benchmark` (the digests are part of the cache key only)."""
    from microsub import benchmark

    return benchmark.run_benchmark(pages, random_state=random_state)


def benchmark(ctx: Context, *, force: bool = False) -> Any:
    """The benchmark of the context's pages (:class:`microsub.benchmark.BenchmarkResult`),
    cached by the pages' digest, the seed and the code of benchmark, models, features,
    evaluation and business (``force``: recompute)."""
    from microsub import benchmark, business, evaluation, features, models

    digest = _code_digest(benchmark, business, evaluation, features, models)
    return _cached_on_pages(ctx, _benchmark, digest, force)


def registry_names(result: Any) -> dict[str, str]:
    """Registry name -> benchmark key of the models the train stage saves: the chosen model of
    each task under the task's name (``churn``, ``value``), every scratch model under
    ``<task>-<key>`` (e.g. ``churn-logistic-gd``, ``value-boosted-trees``)."""
    names = {task: key for task, key in result.best.items()}
    scratch = result.metrics[result.metrics["implementation"] == "scratch"]
    for task, key in zip(scratch["task"], scratch["key"], strict=True):
        short = key.removesuffix("_clf").removesuffix("_reg").replace("_", "-")
        names[f"{task}-{short}"] = key
    return names


def _training_data(ctx: Context, result: Any) -> dict[str, Any]:
    """What a model card says about the data a model was trained on."""
    from microsub import benchmark as bm

    return {
        "digest": ctx.data_digest,
        "rows": ctx.manifest.rows,
        "source": ctx.source,
        "manifest": {
            "bucket": ctx.manifest.bucket,
            "dataset": ctx.manifest.dataset,
            "schema_version": ctx.manifest.schema_version,
            "parts": [p.sha256 for p in ctx.manifest.parts],
        },
        "seed": ctx.settings.seed,
        "split": bm.records(result.split),
    }


def train_stage(ctx: Context, progress: ProgressFactory = _quiet, force: bool = False) -> dict:
    """Stage ``train``: benchmark the models, register the chosen and the scratch ones in the
    ``models`` bucket with their cards, and write ``reports/benchmark.json``.

    Idempotent: the benchmark comes from the cache when the data and code are unchanged, and
    neither the models nor the report are rewritten when their content is the same.

    Returns:
        ``{"best": task -> key, "models": registry name -> sha256 of the model bytes}``.
    """
    from microsub import benchmark as bm
    from microsub import features, registry

    with progress("training and benchmarking the churn and value models", None) as advance:
        result = benchmark(ctx, force=force)
        data = _training_data(ctx, result)
        saved = {}
        for name, key in registry_names(result).items():
            test, train = result.row(key), result.row(key, train=True)
            task = str(test["task"])
            set_name, target = bm.TASKS[task]
            keep = [*bm.CHURN_METRICS, "base_rate"] if task == "churn" else [*bm.VALUE_METRICS]
            timing = ["fit_s", "predict_s", "validation"]
            card = registry.make_card(
                task=task,
                target=target,
                feature_set=set_name,
                features=list(features.FEATURE_SETS[set_name].columns),
                estimator=result.estimators[key],
                metrics={
                    "test": {k: float(test[k]) for k in [*keep, *timing]},
                    "train": {k: float(train[k]) for k in keep},
                },
                data=data,
                model=key,
                label=str(test["model"]),
                implementation=str(test["implementation"]),
                chosen=name == task,
                selection_rule=bm.SELECTION_RULES[task],
            )
            stored = registry.save_model(ctx.lake, name, result.estimators[key], card)
            saved[name] = stored["artifact"]["sha256"]
        report = {
            **result.to_dict(),
            "data": {k: data[k] for k in ("digest", "rows", "source", "seed")},
            "models": saved,
        }
        ctx.lake.put_json(contract.BUCKET_REPORTS, "benchmark.json", report, if_changed=not force)
        advance(1)
    return {"best": dict(result.best), "models": saved}


STAGES["train"] = train_stage


def run(
    settings: Settings | None = None,
    *,
    force: bool = False,
    stages: tuple[str, ...] | None = None,
    progress: ProgressFactory = _quiet,
) -> Context:
    """Run the pipeline: raw log, ingestion, then the registered later ``stages`` (all by default).

    Returns:
        The :class:`Context` of the data the run produced.
    """
    settings = settings or get_settings()
    lake = open_lake(settings)
    raw = prepare_raw(settings, progress=progress)
    manifest = ingest_raw(settings, lake, raw, force=force, progress=progress)
    ctx = Context(settings, lake, manifest)
    for name, stage in STAGES.items():
        if stages is None or name in stages:
            stage(ctx, progress, force)
    return ctx


def context(settings: Settings | None = None) -> Context:
    """The pipeline's context for the book: runs what is missing (quietly) and returns it."""
    return run(settings, stages=())


# --------------------------------------------------------------------------------------------
# Cache shared by the chapters and the deck
# --------------------------------------------------------------------------------------------
def cached(
    ctx: Context,
    func: Callable[..., T],
    key: tuple[Any, ...],
    *,
    data: tuple[str, ...] = (),
    load: Callable[[], tuple[Any, ...]] = tuple,
    force: bool = False,
) -> T:
    """``func(*load(), *key)`` through the joblib cache in ``settings.cache_dir``.

    The arguments ``load`` returns (the pages table, say), named ``data`` in ``func``'s
    signature, are left out of the cache key: ``key`` must identify them (the dataset's digest)
    together with the code that computes (:func:`_code_digest`). A cache hit therefore neither
    loads nor hashes the data. ``force`` recomputes without the cache.
    """
    if force:
        return func(*load(), *key)
    import joblib

    memory = joblib.Memory(ctx.settings.cache_dir, verbose=0)
    func_cached = memory.cache(func, ignore=list(data))
    blank = (None,) * len(data)
    if func_cached.check_call_in_cache(*blank, *key):
        return func_cached(*blank, *key)
    return func_cached(*load(), *key)


def read_pages(ctx: Context) -> pa.Table:
    """The pages table of the context, verified against its manifest."""
    return ctx.lake.read_table(contract.BUCKET_PROCESSED)


__all__ = [
    "Context",
    "RawInput",
    "STAGES",
    "cached",
    "context",
    "ingest_raw",
    "prepare_raw",
    "read_pages",
    "run",
]
