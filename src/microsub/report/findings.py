"""The findings document: what the exploration established, as data.

:func:`build_findings` assembles, from what the pipeline computed (never from typed-in values),
one plain dict: the business context and the success gates with their targets, the data source,
the data-quality summary of the ingestion, the targets and the confirmed features, the
hypothesis verdicts with their estimates and intervals, the descriptive statistics, and the
data-constraint audit. :func:`to_yaml` writes it, :func:`write_findings` stores it in the lake
at ``reports/findings.yaml`` and :func:`read_findings` reads it back; the later chapters and the
deck quote it, so a finding is stated once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pandas as pd
import yaml

from microsub import __version__
from microsub.analysis.explore import Exploration
from microsub.analysis.features import FEATURE_SETS, GOLDEN, TARGETS
from microsub.analysis.stats import ALPHA, CORRECTION, LEVEL
from microsub.business.gates import gates_as_records
from microsub.contract import BUCKET_REPORTS, PROTECTED_COLUMNS
from microsub.errors import ContractError, ObjectNotFoundError
from microsub.lake import Lake
from microsub.plain import plain
from microsub.sim.params import DEFAULT_PARAMS, params_digest

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


def describe_source(source: Mapping[str, Any], *, brief: bool = False) -> str:
    """One phrase naming the data a run used, from the pages manifest's ``source``
    (``brief``: without seed and generator digest, for slides)."""
    kind = source.get("kind")
    if kind == "synthetic" and brief:
        pages = source.get("n_pages")
        size = f" ({pages:,} pages)" if isinstance(pages, int) else ""
        return f"synthetic data calibrated to the real sample{size}"
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

    defaults = source.get("params_digest") == params_digest(DEFAULT_PARAMS)
    out: dict[str, Any] = {}
    for key, names in GENERATOR_TERMS.items():
        if defaults:
            out[key] = {n: getattr(DEFAULT_PARAMS, n) for n in names}
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


def _data_quality(report: Mapping[str, Any]) -> dict[str, Any]:
    """The ingestion's reconciliation, as the document's ``data_quality`` section."""
    lines = int(report.get("lines_read", 0) or 0)
    quarantined = int(report.get("lines_quarantined", 0) or 0)
    return {
        "reconciles": report.get("reconciles"),
        "layout": report.get("layout"),
        "container": report.get("container"),
        "lines_read": lines,
        "pages_written": report.get("pages_written"),
        "lines_quarantined": quarantined,
        "quarantine_share": quarantined / lines if lines else 0.0,
        "quarantine_reasons": dict(report.get("quarantine_reasons") or {}),
        "sessions": report.get("sessions"),
        "sessions_done": report.get("sessions_done"),
        "sessions_truncated": report.get("sessions_truncated"),
        "page_jumps": report.get("page_jumps"),
        "notes": list(report.get("notes") or []),
    }


def _targets(ex: Exploration) -> dict[str, Any]:
    """The two targets and their distributions, as the document's ``targets`` section."""
    balance = ex.class_balance.set_index("done")
    left = balance.loc[1] if 1 in balance.index else None
    rewards = ex.rewards
    return {
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
    }


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
        "data_quality": _data_quality(ingest_report),
        "targets": _targets(ex),
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


def to_yaml(findings: Mapping[str, Any]) -> str:
    """The document as YAML (keys in document order, Unicode kept)."""
    return yaml.safe_dump(plain(dict(findings)), sort_keys=False, allow_unicode=True, width=100)


def from_yaml(text: str | bytes) -> dict[str, Any]:
    """Parse a findings document written by :func:`to_yaml`."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise ContractError(
            "the findings document is not a mapping with a schema_version; rewrite it with "
            "`microsub run --force`"
        )
    return doc


def write_findings(lake: Lake, findings: Mapping[str, Any], *, force: bool = False) -> bool:
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


def read_findings(lake: Lake) -> dict[str, Any]:
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
