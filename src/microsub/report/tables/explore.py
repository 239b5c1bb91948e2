"""Display tables of the data and the exploration (chapters 01-03)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from microsub import fmt
from microsub.analysis.features import FEATURE_SETS
from microsub.analysis.recovery import LEAVE_TERMS
from microsub.analysis.stats import CORRECTION, LEVEL
from microsub.analysis.verdicts import HypothesisResult
from microsub.business.config import BusinessConfig, load_config
from microsub.fmt import format_count, format_interval, format_number
from microsub.report.findings import GENERATOR_TERMS
from microsub.report.labels import label, words


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


def gates_table(config: BusinessConfig | None = None) -> pd.DataFrame:
    """The success gates: ``Gate``, ``Target``, ``Measured by``, ``Why``."""
    return pd.DataFrame(
        [
            {
                "Gate": g.name,
                "Target": g.target_text,
                "Measured by": g.measured_by,
                "Why": g.rationale,
            }
            for g in (config or load_config()).gates
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
        ("lines read", format_count(lines)),
        ("pages published", format_count(int(r.get("pages_written", 0) or 0))),
        (
            "lines quarantined",
            f"{format_count(quarantined)} ({fmt.format_percent(quarantined / lines)})"
            if lines
            else "0",
        ),
        (
            "quarantine reasons",
            ", ".join(f"{k}: {format_count(v)}" for k, v in reasons.items()) or "none",
        ),
        ("lines = pages + quarantined", "yes" if r.get("reconciles") else "NO"),
        ("sessions", format_count(int(r.get("sessions", 0) or 0))),
        ("ended by the user (terminal flag)", format_count(int(r.get("sessions_done", 0) or 0))),
        (
            "truncated (cap, jump, end of file)",
            format_count(int(r.get("sessions_truncated", 0) or 0)),
        ),
        ("opened by a page-id jump", format_count(int(r.get("page_jumps", 0) or 0))),
        ("notes", "; ".join(r.get("notes") or []) or "none"),
    ]
    return pd.DataFrame(rows, columns=["Check", "Value"])


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
                f"{CORRECTION.capitalize()} p": fmt.format_p(r.p_adjusted),
                "Sessions": format_count(r.n_sessions),
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


#: When the features of a set are known, in words (``FeatureSet.view``).
VIEW_WORDS = {"post": "end of page t", "pre": "start of page t"}


def feature_sets_display() -> pd.DataFrame:
    """The feature sets of :data:`microsub.analysis.features.FEATURE_SETS` in words: ``Set``,
    ``Known at``, ``Features`` (how many) and ``Columns`` (their labels)."""
    return pd.DataFrame(
        [
            {
                "Set": fs.name,
                "Known at": VIEW_WORDS.get(fs.view, fs.view),
                "Features": len(fs.columns),
                "Columns": ", ".join(label(c) for c in fs.columns),
            }
            for fs in FEATURE_SETS.values()
        ]
    )


def audit_display(audit: pd.DataFrame) -> pd.DataFrame:
    """The data-constraint audit (``check``, ``status``, ``detail``) for the book: capitalised
    headers, column names in the details replaced by their words (:func:`words`)."""
    return pd.DataFrame(
        {
            "Check": audit["check"].map(words),
            "Status": audit["status"],
            "Detail": audit["detail"].map(words),
        }
    )


def _status(row: Mapping[str, Any], names: Mapping[str, str]) -> str:
    supported = [names.get(k, k) for k, v in row["evidence"].items() if v == "supported"]
    if row["golden"] and supported:
        return "confirmed: golden, and supported by " + ", ".join(supported)
    if row["golden"]:
        return "confirmed: golden"
    if supported:
        return "confirmed: supported by " + ", ".join(supported)
    if row["tested"]:
        return "kept: its tests did not support it"
    return "kept without a test"


def feature_findings_display(findings: Mapping[str, Any]) -> pd.DataFrame:
    """What the findings document says about each feature column, in words: ``Feature``,
    ``Feature sets``, ``Evidence`` (the hypotheses that speak for it, with their verdicts) and
    ``Status`` (confirmed as golden or by a supported hypothesis, or kept without one).

    Args:
        findings: :func:`microsub.report.findings.build_findings` output.
    """
    names = {r["key"]: r["name"] for r in findings["hypotheses"]["results"]}
    rows = []
    for row in findings["features"]["columns"]:
        evidence = "; ".join(
            f"{names.get(k, k)}: {v or 'not run'}" for k, v in row["evidence"].items()
        )
        rows.append(
            {
                "Feature": label(row["feature"]),
                "Feature sets": ", ".join(row["feature_sets"]),
                "Evidence": evidence or "no hypothesis about it",
                "Status": _status(row, names),
            }
        )
    return pd.DataFrame(rows)


#: Generator coefficients outside the leave model, in words (:data:`GENERATOR_TERMS`).
GENERATOR_WORDS = {
    "buy_power": "purchase power's lift of the chance of buying a clicked item",
    "price_power_shift": "pricier items shown to shoppers of higher purchase power",
    "buy_scale": "how strongly an item's predicted conversion turns a click into a purchase",
    "click_user_corr": "shoppers who click more are also those who stay longer",
}


def _tested_by(parameters: tuple[str, ...], names: Mapping[str, str]) -> str:
    keys = [k for k, terms in GENERATOR_TERMS.items() if set(parameters) & set(terms)]
    return ", ".join(names.get(k, k) for k in keys) or "none (page 0 is outside the tests)"


def recovery_display(recovery: pd.DataFrame, findings: Mapping[str, Any]) -> pd.DataFrame:
    """The generator's leave coefficients beside their estimates, for the book: ``Term``,
    ``Tested by`` (the hypotheses the coefficient builds), ``True value``,
    ``Estimate (95 % CI)``, ``Truth in the interval``, ``Estimate / truth`` and, when the
    table has the control fit (:func:`microsub.analysis.recovery.with_control`),
    ``Without the hidden propensity`` (the truth in the control fit's interval).

    Args:
        recovery: :func:`microsub.analysis.recovery.recover_leave_model` output.
        findings: the findings document (for the hypotheses' names).
    """
    names = {r["key"]: r["name"] for r in findings["hypotheses"]["results"]}
    params = {t.key: t.parameters for t in LEAVE_TERMS}
    pct = round(LEVEL * 100)
    return pd.DataFrame(
        [
            {
                "Term": r["meaning"],
                "Tested by": _tested_by(params.get(r["term"], ()), names),
                "True value": format_number(r["truth"]),
                f"Estimate ({pct} % CI)": format_interval(
                    r["estimate"], r["ci_low"], r["ci_high"], level=LEVEL
                ).replace(f"({pct} % CI ", "("),
                "Truth in the interval": "yes" if r["covered"] else "no",
                "Estimate / truth": fmt.format_percent(r["relative"]),
                **(
                    {"Without the hidden propensity": "yes" if r["control_covered"] else "no"}
                    if "control_covered" in recovery
                    else {}
                ),
            }
            for _, r in recovery.iterrows()
        ]
    )


def recovery_summary(recovery: pd.DataFrame) -> dict[str, Any]:
    """Numbers for the prose about :func:`recovery_display`.

    Returns:
        ``terms`` (count), ``covered`` (true values inside their interval), ``covered_terms``,
        ``missed_terms`` and ``larger_terms`` (their meanings: covered, not covered, estimate
        farther from zero than the truth), ``relative_low`` and
        ``relative_high`` (the smallest and largest estimate / truth), and for the control
        fit (None without one) ``control_covered`` (true values inside its interval),
        ``control_missed_terms``, ``control_relative_low`` and ``control_relative_high``.
    """
    short = recovery["meaning"].astype(str)
    covered = recovery["covered"].astype(bool).to_numpy()
    rel = recovery["relative"].astype(float)
    has_control = "control_covered" in recovery
    control_in = recovery["control_covered"].astype(bool).to_numpy() if has_control else None
    control_rel = recovery["control_relative"].astype(float) if has_control else None
    return {
        "terms": len(recovery),
        "covered": int(covered.sum()),
        "covered_terms": list(short[covered]),
        "missed_terms": list(short[~covered]),
        "larger_terms": list(short[(rel > 1).to_numpy()]),
        "relative_low": float(rel.min()) if len(rel) else float("nan"),
        "relative_high": float(rel.max()) if len(rel) else float("nan"),
        "control_covered": int(control_in.sum()) if has_control else None,
        "control_missed_terms": list(short[~control_in]) if has_control else None,
        "control_relative_low": float(control_rel.min()) if has_control else None,
        "control_relative_high": float(control_rel.max()) if has_control else None,
    }


def generator_terms_outside(findings: Mapping[str, Any]) -> list[str]:
    """The generator coefficients behind a hypothesis that are not terms of the leave model
    (so :func:`recovery_display` has no estimate for them), in words."""
    leave = {p for t in LEAVE_TERMS for p in t.parameters}
    used = {p for terms in GENERATOR_TERMS.values() for p in terms}
    return [GENERATOR_WORDS.get(p, p) for p in sorted(used - leave)]


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


def calibration_display(table: pd.DataFrame | None, reason: str = "") -> pd.DataFrame:
    """:func:`calibration_comparison` output with readable names and formatted numbers; for no
    table (a run on the real log, say), one row that says why there is no comparison."""
    if table is None:
        return pd.DataFrame(
            {
                "Statistic": ["calibration of the generator"],
                "Real sample": ["not compared"],
                "Synthetic": [reason or "no synthetic log in this run"],
            }
        )
    return pd.DataFrame(
        {
            "Statistic": [CALIBRATION_LABELS.get(k, k) for k in table["statistic"]],
            "Real sample": [format_number(v) for v in table["real"]],
            "Synthetic": [format_number(v) for v in table["synthetic"]],
        }
    )
