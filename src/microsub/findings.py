"""The findings document: what the exploration established, as data.

:func:`build_findings` assembles, from what the pipeline computed (never from typed-in values),
one plain dict: the business context and the success gates with their targets, the data source,
the data-quality summary of the ingestion, the targets and the confirmed features, the
hypothesis verdicts with their estimates and intervals, the descriptive statistics, and the
data-constraint audit. :func:`to_yaml` writes it, :func:`write_findings` stores it in the lake
at ``reports/findings.yaml`` and :func:`read_findings` reads it back; the later chapters and the
deck quote it, so a finding is stated once.

The functions at the end format the same results for the book (thin chapter cells).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from microsub import __version__
from microsub.business import GATES, gates_as_records
from microsub.contract import BUCKET_REPORTS, PROTECTED_COLUMNS
from microsub.errors import ObjectNotFoundError
from microsub.features import FEATURE_SETS, GOLDEN, TARGETS
from microsub.hypotheses import (
    ALPHA,
    CORRECTION,
    LEVEL,
    Exploration,
    HypothesisResult,
    format_number,
)
from microsub.hypotheses import to_plain as plain

if TYPE_CHECKING:
    import pyarrow as pa

#: Version of the document's layout.
SCHEMA_VERSION = 1
#: Key of the document in the ``reports`` bucket.
FINDINGS_KEY = "findings.yaml"

#: The framing of the analysis (the question, not its answers).
BUSINESS_CONTEXT = {
    "thesis": "a browsing session is a micro-subscription: each request for another page "
    "renews it, leaving ends it, and what is bought on a page is that period's revenue",
    "unit": "page (one request of 50 items in the Taobao mobile feed)",
    "decision": "which sessions to act on, page by page, to keep shoppers who are worth it, "
    "under an intervention budget",
}

#: Hypotheses whose verdict speaks for a feature column.
FEATURE_EVIDENCE: dict[str, tuple[str, ...]] = {
    "state_purchase_power": ("purchase_power_churn", "purchase_power_value"),
    "hour_sin": ("hour",),
    "hour_cos": ("hour",),
    "engagement": ("engagement",),
    "action_page_id": ("fatigue",),
    "purchased": ("purchase_reset",),
    "pages_since_purchase": ("purchase_reset",),
    "prev_pages_since_purchase": ("purchase_reset",),
    "mean_ctr": ("item_mix_churn",),
    "mean_cvr": ("item_mix_spend",),
    "mean_log_price": ("item_mix_churn", "item_mix_spend"),
}

#: Coefficients of the synthetic generator (:class:`microsub.synth.SynthParams`) that build each
#: hypothesis's effect into synthetic data: a verdict on synthetic data recovers these.
GENERATOR_TERMS: dict[str, tuple[str, ...]] = {
    "fatigue": ("leave_depth", "leave_night_fatigue", "leave_since_purchase"),
    "hour": ("leave_hour", "leave_night_fatigue"),
    "purchase_power_value": ("buy_power", "price_power_shift"),
    "purchase_power_churn": ("leave_power",),
    "engagement": ("leave_engagement", "click_user_corr"),
    "purchase_reset": ("leave_since_purchase",),
    "item_mix_churn": ("leave_mix",),
    "item_mix_spend": ("buy_scale",),
}


# --------------------------------------------------------------------------------------------
# Building the document
# --------------------------------------------------------------------------------------------
def describe_source(source: Mapping[str, Any]) -> str:
    """One phrase naming the data a run used, from the pages manifest's ``source``."""
    kind = source.get("kind")
    if kind == "synthetic":
        pages = source.get("n_pages")
        size = f"{pages:,} pages, " if isinstance(pages, int) else ""
        return (
            f"synthetic data of the {source.get('profile', '?')} profile ({size}seed "
            f"{source.get('seed', '?')}, generator {source.get('params_digest', '?')})"
        )
    if kind == "real":
        return f"the real page log {source.get('file', '?')}"
    return "data of unknown origin (the pages manifest records no source)"


def _generator_terms(source: Mapping[str, Any]) -> dict[str, Any] | None:
    """The generator coefficients behind each hypothesis (values when the data were made with
    the default parameters), or None for real data."""
    if source.get("kind") != "synthetic":
        return None
    from microsub import synth

    defaults = source.get("params_digest") == synth.params_digest(synth.DEFAULT_PARAMS)
    out: dict[str, Any] = {}
    for key, names in GENERATOR_TERMS.items():
        if defaults:
            out[key] = {n: getattr(synth.DEFAULT_PARAMS, n) for n in names}
        else:
            out[key] = {n: None for n in names}
    return {"default_parameters": defaults, "terms": out}


def _features(exploration: Exploration) -> list[dict[str, Any]]:
    verdicts = {r.key: r.verdict for r in exploration.hypotheses}
    columns = sorted(
        {c for fs in FEATURE_SETS.values() for c in fs.columns}, key=lambda c: (c not in GOLDEN, c)
    )
    rows = []
    for c in columns:
        evidence = FEATURE_EVIDENCE.get(c, ())
        found = [verdicts[k] for k in evidence if k in verdicts]
        supported = "supported" in found
        golden = c in GOLDEN
        rows.append(
            {
                "feature": c,
                "golden": golden,
                "feature_sets": sorted(n for n, fs in FEATURE_SETS.items() if c in fs.columns),
                "evidence": {k: verdicts.get(k) for k in evidence},
                "tested": bool(found),
                "supported_by_analysis": supported,
                "confirmed": golden or supported,
            }
        )
    return rows


def build_findings(
    source: Mapping[str, Any],
    ingest_report: Mapping[str, Any],
    exploration: Exploration,
    *,
    data_digest: str | None = None,
) -> dict[str, Any]:
    """The findings document as plain data (see the module docstring).

    Args:
        source: where the pages came from (``Context.source``: ``kind``, ``profile``, ...).
        ingest_report: the ingestion's reconciliation (``Context.ingest_report``).
        exploration: :func:`microsub.hypotheses.run_all` of the same pages.
        data_digest: digest of the pages dataset (``Context.data_digest``), for provenance.

    Returns:
        A dict of JSON types only (NaN as None), in document order.
    """
    ex = exploration
    balance = ex.class_balance.set_index("done")
    left = balance.loc[1] if 1 in balance.index else None
    lines = int(ingest_report.get("lines_read", 0) or 0)
    quarantined = int(ingest_report.get("lines_quarantined", 0) or 0)
    rewards = ex.rewards
    corr_done = (
        ex.correlation["done"].drop("done").sort_values(key=abs, ascending=False).head(5)
        if "done" in ex.correlation
        else pd.Series(dtype=float)
    )
    doc = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": f"microsub {__version__}",
        "business_context": dict(BUSINESS_CONTEXT),
        "success_metrics": gates_as_records(),
        "data_source": {
            "description": describe_source(source),
            "data_digest": data_digest,
            **{k: source[k] for k in sorted(source)},
        },
        "data_quality": {
            "reconciles": ingest_report.get("reconciles"),
            "layout": ingest_report.get("layout"),
            "container": ingest_report.get("container"),
            "lines_read": lines,
            "pages_written": ingest_report.get("pages_written"),
            "lines_quarantined": quarantined,
            "quarantine_share": quarantined / lines if lines else 0.0,
            "quarantine_reasons": dict(ingest_report.get("quarantine_reasons") or {}),
            "sessions": ingest_report.get("sessions"),
            "sessions_done": ingest_report.get("sessions_done"),
            "sessions_truncated": ingest_report.get("sessions_truncated"),
            "page_jumps": ingest_report.get("page_jumps"),
            "notes": list(ingest_report.get("notes") or []),
        },
        "targets": {
            "classification": {
                "column": TARGETS["churn"][0],
                "meaning": TARGETS["churn"][1],
                "positive_share": float(left["share"]) if left is not None else None,
                "positive_pages": int(left["pages"]) if left is not None else 0,
            },
            "regression": {
                "column": TARGETS["value"][0],
                "meaning": TARGETS["value"][1],
                "nonzero_share": rewards.share_nonzero,
                "nonzero_median": rewards.quantiles["p50"],
                "nonzero_p90": rewards.quantiles["p90"],
                "nonzero_p99": rewards.quantiles["p99"],
                "nonzero_mean": rewards.mean,
                "max": rewards.max,
            },
        },
        "features": {
            "golden": list(GOLDEN),
            "protected_never_features": list(PROTECTED_COLUMNS),
            "feature_sets": {
                name: {"view": fs.view, "columns": list(fs.columns), "description": fs.description}
                for name, fs in FEATURE_SETS.items()
            },
            "columns": _features(ex),
        },
        "hypotheses": {
            "alpha": ALPHA,
            "interval_level": LEVEL,
            "correction": CORRECTION,
            "family_size": sum(1 for r in ex.hypotheses if r.p_value == r.p_value),
            "results": [r.to_record() for r in ex.hypotheses],
            "generator_terms": _generator_terms(source),
        },
        "descriptive": {
            "pages": ex.n_pages,
            "sessions": ex.n_sessions,
            "survival_by_purchase_power": ex.survival.summary.to_dict(orient="records"),
            "logrank_p": ex.survival.logrank_p,
            "strongest_rank_correlations_with_done": {k: float(v) for k, v in corr_done.items()},
        },
        "audit": [dataclasses.asdict(c) for c in ex.audit],
    }
    return plain(doc)


# --------------------------------------------------------------------------------------------
# YAML and the lake
# --------------------------------------------------------------------------------------------
def to_yaml(findings: Mapping[str, Any]) -> str:
    """The document as YAML (keys in document order, Unicode kept)."""
    return yaml.safe_dump(plain(dict(findings)), sort_keys=False, allow_unicode=True, width=100)


def from_yaml(text: str | bytes) -> dict[str, Any]:
    """Parse a findings document written by :func:`to_yaml`."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or "schema_version" not in doc:
        from microsub.errors import ContractError

        raise ContractError(
            "the findings document is not a mapping with a schema_version; rewrite it with "
            "`microsub run --force`"
        )
    return doc


def write_findings(lake: Any, findings: Mapping[str, Any], *, force: bool = False) -> bool:
    """Store the document at ``reports/findings.yaml``; returns True when the bytes changed.

    Args:
        lake: a :class:`microsub.lake.Lake`.
        findings: :func:`build_findings` output.
        force: write even when the stored text is identical.
    """
    text = to_yaml(findings).encode("utf-8")
    return lake.put_bytes(
        BUCKET_REPORTS, FINDINGS_KEY, text, "application/yaml", if_changed=not force
    )


def read_findings(lake: Any) -> dict[str, Any]:
    """The findings document stored in a lake (``reports/findings.yaml``).

    Raises:
        ObjectNotFoundError: the lake has none yet (run ``microsub run``: its explore stage
            writes it).
    """
    try:
        data = lake.get_bytes(BUCKET_REPORTS, FINDINGS_KEY)
    except ObjectNotFoundError as exc:
        raise ObjectNotFoundError(
            f"no findings document at {BUCKET_REPORTS}/{FINDINGS_KEY} in the lake "
            f"{getattr(lake, 'location', lake)}; run `microsub run` (its explore stage "
            "writes it)"
        ) from exc
    return from_yaml(data)


# --------------------------------------------------------------------------------------------
# For the book: the same results as display tables
# --------------------------------------------------------------------------------------------
def strongest_correlate(corr: pd.DataFrame, target: str = "done") -> tuple[str, float]:
    """The column with the largest absolute correlation with ``target`` and that correlation,
    or ``("none", nan)`` when the matrix has no ``target`` (constant in the data)."""
    if target not in corr.columns or len(corr.columns) < 2:
        return "none", float("nan")
    others = corr[target].drop(target).dropna()
    if others.empty:
        return "none", float("nan")
    name = str(others.abs().idxmax())
    return name, float(others[name])


def gates_table() -> pd.DataFrame:
    """The success gates: ``Gate``, ``Target``, ``Measured by``, ``Why``."""
    return pd.DataFrame(
        [
            {
                "Gate": g.name,
                "Target": f"{g.direction} {g.target:g}{(' ' + g.unit) if g.unit else ''}",
                "Measured by": g.measured_by,
                "Why": g.rationale,
            }
            for g in GATES
        ]
    )


def quality_table(ingest_report: Mapping[str, Any]) -> pd.DataFrame:
    """The ingestion's reconciliation as ``Check`` / ``Value`` rows (counts with separators)."""
    r = ingest_report
    lines = int(r.get("lines_read", 0) or 0)
    quarantined = int(r.get("lines_quarantined", 0) or 0)
    reasons = r.get("quarantine_reasons") or {}
    rows = [
        ("raw layout", r.get("layout", "?")),
        ("container", r.get("container", "?")),
        ("lines read", f"{lines:,}"),
        ("pages published", f"{int(r.get('pages_written', 0) or 0):,}"),
        ("lines quarantined", f"{quarantined:,} ({quarantined / lines:.2%})" if lines else "0"),
        ("quarantine reasons", ", ".join(f"{k}: {v:,}" for k, v in reasons.items()) or "none"),
        ("lines = pages + quarantined", "yes" if r.get("reconciles") else "NO"),
        ("sessions", f"{int(r.get('sessions', 0) or 0):,}"),
        ("ended by the user (done)", f"{int(r.get('sessions_done', 0) or 0):,}"),
        ("truncated (cap, jump, end of file)", f"{int(r.get('sessions_truncated', 0) or 0):,}"),
        ("opened by a page-id jump", f"{int(r.get('page_jumps', 0) or 0):,}"),
        ("notes", "; ".join(r.get("notes") or []) or "none"),
    ]
    return pd.DataFrame(rows, columns=["Check", "Value"])


def _p_text(p: float) -> str:
    if p is None or p != p:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def verdict_display(results: tuple[HypothesisResult, ...] | list[HypothesisResult]) -> pd.DataFrame:
    """The verdict table for the book: ``Hypothesis``, ``Statistic``, ``Estimate (95 % CI)``,
    ``Holm p``, ``Sessions``, ``Verdict``."""
    pct = round(LEVEL * 100)
    return pd.DataFrame(
        [
            {
                "Hypothesis": r.name,
                "Statistic": r.statistic,
                f"Estimate ({pct} % CI)": (
                    f"{format_number(r.estimate)} ({format_number(r.ci_low)} to "
                    f"{format_number(r.ci_high)})"
                    if r.estimate == r.estimate
                    else "not testable"
                ),
                f"{CORRECTION.capitalize()} p": _p_text(r.p_adjusted),
                "Sessions": f"{r.n_sessions:,}",
                "Verdict": r.verdict,
            }
            for r in results
        ]
    )


def generator_display(findings: Mapping[str, Any]) -> pd.DataFrame | None:
    """Per hypothesis, the generator coefficients that build its effect into synthetic data
    (``Hypothesis``, ``Verdict``, ``Built in by``), or None for real data."""
    terms = findings["hypotheses"].get("generator_terms")
    if not terms:
        return None
    names = {r["key"]: (r["name"], r["verdict"]) for r in findings["hypotheses"]["results"]}
    rows = []
    for key, params in terms["terms"].items():
        name, verdict = names.get(key, (key, "?"))
        built = ", ".join(
            f"`{k}` = {v:g}" if isinstance(v, int | float) else f"`{k}`" for k, v in params.items()
        )
        rows.append({"Hypothesis": name, "Verdict": verdict, "Built in by": built})
    return pd.DataFrame(rows)


#: Statistics of the calibration table shown in the book (see :func:`calibration_comparison`).
CALIBRATION_ROWS = (
    "pages",
    "sessions_per_page",
    "page_id_share_0",
    "page_id_share_3",
    "page_id_share_7",
    "page_id_share_8plus",
    "clicks_per_page_mean",
    "clicks_per_page_share_0",
    "price_p50",
    "price_p90",
    "price_p99",
    "price_whole_yuan_share",
    "ctr_p50",
    "cvr_p50",
    "page_mean_log_ctr_sd",
    "clicked_ctr_ratio",
    "pages_with_purchase_share",
    "purchase_power_share_6",
    "gender_1_share",
)


def calibration_comparison(
    real_path: str | Path,
    pages: pa.Table | pd.DataFrame,
    items: pa.Table,
    *,
    rows: tuple[str, ...] | None = CALIBRATION_ROWS,
) -> pd.DataFrame | None:
    """The generator's calibration: statistics of the real sample beside the synthetic data's.

    The statistics of :func:`microsub.synth.sample_statistics`, of the real sample read from its
    file and of every page of the synthetic data from its ingested tables
    (:func:`microsub.synth.sample_statistics_of`), so nothing re-parses the synthetic log.

    Args:
        real_path: the 100-page real sample (raw text).
        pages: the synthetic data's pages table (the lake's ``processed-data``; at least
            :data:`microsub.synth.STATISTICS_PAGE_COLUMNS`).
        items: its items table (``items-data``; at least
            :data:`microsub.synth.STATISTICS_ITEM_COLUMNS`).
        rows: statistics to keep, in this order (None: all).

    Returns:
        ``statistic``, ``real``, ``synthetic`` rows, or None when the real sample is absent.
    """
    from microsub import synth

    real_path = Path(real_path)
    if not real_path.is_file():
        return None
    real = synth.sample_statistics(real_path)
    synthetic = synth.sample_statistics_of(pages, items)
    keys = [k for k in (rows or tuple(real)) if k in real]
    return pd.DataFrame(
        {
            "statistic": keys,
            "real": [real[k] for k in keys],
            "synthetic": [synthetic.get(k, float("nan")) for k in keys],
        }
    )


#: What each field of the raw layouts holds (upstream readme; ``RawLayout`` field names).
FIELD_MEANINGS = {
    "page_id": ("scalar", "page id of the request, 0 to {max_page}: the depth in the session"),
    "hour": ("scalar", "hour of day of the request"),
    "age_level": ("scalar", "user profile: age level (protected)"),
    "gender": ("scalar", "user profile: gender (protected)"),
    "purchase_power": ("scalar", "user profile: purchase-power level (a small integer)"),
    "position": ("list", "item positions; page k holds {n}k to {n}k + {last}"),
    "ctr": ("list", "platform-predicted click-through rate"),
    "cvr": ("list", "platform-predicted conversion rate"),
    "price": ("list", "item price (Yuan)"),
    "click": ("list", "clicked (0/1)"),
    "cart": ("list", "added to cart (0/1)"),
    "fav": ("list", "added to favourites (0/1)"),
    "amount": ("list", "purchase amount (Yuan; 0 when not bought)"),
    "feature": ("list", "an optional item feature"),
    "terminal": ("scalar", "terminal flag: 1 if the user left after this page, else 0"),
}


def layout_table(layout: Any, items_per_page: int, max_page_id: int) -> pd.DataFrame:
    """The fields of a raw layout (:class:`microsub.contract.RawLayout`) in column order:
    ``Column`` (1-based), ``Field``, ``Values``, ``Meaning``."""
    fill = {"n": items_per_page, "last": items_per_page - 1, "max_page": max_page_id}
    rows = []
    for name, (kind, meaning) in FIELD_MEANINGS.items():
        position = getattr(layout, name, None)
        if position is None:
            continue
        values = "1" if kind == "scalar" else f"{items_per_page} (one per item)"
        rows.append((position + 1, name, values, meaning.format(**fill)))
    rows.sort()
    return pd.DataFrame(rows, columns=["Column", "Field", "Values", "Meaning"])


#: Readable names of the calibration statistics shown in the book.
CALIBRATION_LABELS = {
    "pages": "pages read",
    "sessions_per_page": "session starts per page",
    "page_id_share_0": "share of pages at depth 0",
    "page_id_share_3": "share of pages at depth 3",
    "page_id_share_7": "share of pages at depth 7",
    "page_id_share_8plus": "share of pages at depth 8 or more",
    "clicks_per_page_mean": "clicks per page (mean)",
    "clicks_per_page_share_0": "share of pages without a click",
    "price_p50": "item price, median (Yuan)",
    "price_p90": "item price, 90th percentile (Yuan)",
    "price_p99": "item price, 99th percentile (Yuan)",
    "price_whole_yuan_share": "share of prices in whole Yuan",
    "ctr_p50": "predicted CTR, median",
    "cvr_p50": "predicted CVR, median",
    "page_mean_log_ctr_sd": "spread of the page mean log CTR (SD)",
    "clicked_ctr_ratio": "CTR of clicked items / CTR of all items",
    "pages_with_purchase_share": "share of pages with a purchase",
    "purchase_power_share_6": "share of pages with purchase power 6",
    "gender_1_share": "share of pages with gender 1",
}


def calibration_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`calibration_comparison` output with readable names and formatted numbers."""
    return pd.DataFrame(
        {
            "Statistic": [CALIBRATION_LABELS.get(k, k) for k in table["statistic"]],
            "Real sample": [format_number(v) for v in table["real"]],
            "Synthetic": [format_number(v) for v in table["synthetic"]],
        }
    )
