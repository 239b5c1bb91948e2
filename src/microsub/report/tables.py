"""Every display table of the book and the deck: results in, a small formatted ``DataFrame`` out.

Chapters stay thin: a cell calls one of these and prints it as Markdown. Numbers are formatted
here (through :mod:`microsub.fmt`), column names here (through :mod:`microsub.report.labels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from microsub import fmt
from microsub.analysis.stats import CORRECTION, LEVEL
from microsub.analysis.verdicts import HypothesisResult
from microsub.business.gates import GATES, benchmark_gates
from microsub.fmt import format_number
from microsub.models.benchmark import BenchmarkResult
from microsub.sim.candidates import ACTION_GRID
from microsub.sim.session import OBS_HIGH, OBS_LOW, OBSERVATION
from microsub.sim.study import SimulationResult


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


def display_metrics(result: BenchmarkResult, task: str) -> pd.DataFrame:
    """The metrics table of one task, rounded and labelled for the book."""
    rows = result.metrics[result.metrics["task"] == task]
    if task == "churn":
        cols = {
            "roc_auc": "ROC AUC",
            "pr_auc": "PR AUC",
            "f1": "F1",
            "precision_at_20": "Precision@20 %",
            "brier": "Brier",
            "log_loss": "Log-loss",
        }
    else:
        cols = {"rmse": "RMSE (Yuan)", "mae": "MAE (Yuan)", "r2": "R²"}  # fmt: skip
    out = pd.DataFrame({
        "Model": rows["model"] + np.where(rows["best"], " (best)", ""),
        "Implementation": rows["implementation"],
        "Validation " + ("AUC" if task == "churn" else "RMSE"): rows["validation"].round(4),
    })  # fmt: skip
    for c, label in cols.items():
        out[label] = rows[c].round(4)
    # two significant digits: the times span four orders of magnitude
    out["Fit (s)"] = rows["fit_s"].map(lambda v: f"{v:.2g}")
    out["Predict (s)"] = rows["predict_s"].map(lambda v: f"{v:.2g}")
    return out.reset_index(drop=True)


def display_gates(result: BenchmarkResult, *, compact: bool = False) -> pd.DataFrame:
    """The gate table for the book and the deck: target, value, interval, verdict
    (``compact``: the value and its interval in one column, for a slide)."""
    g = benchmark_gates(result)
    level = f"{result.config.level:.0%}"
    if compact:
        return pd.DataFrame({
            "Gate": g["gate"],
            "Target": g["target"],
            f"Measured ({level} CI)": [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                                       zip(g["value"], g["ci_low"], g["ci_high"], strict=True)],
            "Verdict": g["verdict"].str.upper(),
        })  # fmt: skip
    return pd.DataFrame({
        "Gate": g["gate"],
        "Target": g["target"],
        "Measured": g["value"].map(lambda v: f"{v:.3f}"),
        f"{level} interval": [f"{lo:.3f} to {hi:.3f}" for lo, hi in zip(g["ci_low"], g["ci_high"],
                                                                         strict=True)],
        "Verdict": g["verdict"].str.upper(),
    })  # fmt: skip


def display_agreement(result: BenchmarkResult) -> pd.DataFrame:
    """The agreement of each scratch model with its scikit-learn counterpart, for the book."""
    a = result.agreement
    return pd.DataFrame({
        "Scratch": [label(result, k) for k in a["scratch"]],
        "scikit-learn": [label(result, k) for k in a["reference"]],
        "Quantity": a["quantity"],
        "Scratch value": a["scratch_value"].map(lambda v: f"{v:.6g}"),
        "scikit-learn value": a["reference_value"].map(lambda v: f"{v:.6g}"),
        "Difference": a["difference"].map(lambda v: f"{v:.1e}"),
        "Tolerance": a["tolerance"].map(lambda v: f"{v:.0e}"),
        "Within": np.where(a["within"], "yes", "NO"),
    })  # fmt: skip


def display_value_verdict(result: BenchmarkResult) -> pd.DataFrame:
    """The best hurdle model against the best plain regression, for the book."""
    v = result.value_verdict
    names = {"rmse": "RMSE (Yuan)", "mae": "MAE (Yuan)", "r2": "R²"}
    level = f"{result.config.level:.0%}"
    return pd.DataFrame({
        "Metric": v["metric"].map(names),
        label(result, v["hurdle_model"].iloc[0]): v["hurdle"].round(4),
        label(result, v["plain_model"].iloc[0]): v["plain"].round(4),
        "Difference": v["difference"].round(4),
        f"{level} interval": [f"{lo:.4f} to {hi:.4f}"
                              for lo, hi in zip(v["ci_low"], v["ci_high"], strict=True)],
    })  # fmt: skip


def display_importance(result: BenchmarkResult, task: str = "churn", top: int = 8) -> pd.DataFrame:
    """The ``top`` features of ``task`` by the boosted trees' gain share, with the linear
    model's standardised weight."""
    imp = result.importance[result.importance["task"] == task]
    imp = imp.sort_values("trees_gain", ascending=False).head(top)
    unit = "log-odds" if task == "churn" else "Yuan"
    return pd.DataFrame({
        "Feature": imp["feature"],
        "Share of split gain (boosted trees)": imp["trees_gain"].map(lambda v: f"{v:.1%}"),
        f"Weight per SD ({unit}, linear GD)": imp["linear_coef"].round(3),
    }).reset_index(drop=True)  # fmt: skip


def label(result: BenchmarkResult, key: str) -> str:
    """The table name of model ``key``."""
    return str(result.metrics.set_index("key").loc[key, "model"])


# --------------------------------------------------------------------------------------------
# The session simulator (chapter 06)
# --------------------------------------------------------------------------------------------
def observation_table() -> pd.DataFrame:
    """The simulator's observation: ``Index``, ``Observation``, ``Range`` (the environment's
    spec, :mod:`microsub.sim.session`)."""
    meanings = {
        "depth": "page depth",
        "purchase_power": "purchase-power level",
        "hour_sin": "hour of day, sine",
        "hour_cos": "hour of day, cosine",
        "last_engagement": "clicks + carts on the previous page",
        "session_value": "Yuan spent so far in the session",
        "pages_since_purchase": "pages since the last purchase",
    }
    return pd.DataFrame(
        {
            "Index": range(len(OBSERVATION)),
            "Observation": [meanings[name] for name in OBSERVATION],
            "Range": [f"{lo:,g} to {hi:,g}" for lo, hi in zip(OBS_LOW, OBS_HIGH, strict=True)],
        }
    )  # fmt: skip


def action_table() -> pd.DataFrame:
    """The discrete actions: ``Action``, ``a (CVR)``, ``b (price)``, ``Page shows``."""
    rows = [{"Action": 0, "a (CVR)": "–", "b (price)": "–",
             "Page shows": "the logged page, as the platform ranked it"}]  # fmt: skip
    for k, (a, b) in enumerate(ACTION_GRID, start=1):
        rows.append({"Action": k, "a (CVR)": f"{a:g}", "b (price)": f"{b:g}",
                     "Page shows": f"the 50 best of 100 candidates by ctr · cvr^{a:g} · "
                     f"price^{b:g}"})  # fmt: skip
    return pd.DataFrame(rows)


def _interval(value: float, low: float, high: float) -> str:
    return f"{fmt.format_number(value)} ({fmt.format_number(low)} to {fmt.format_number(high)})"


def validation_display(result: SimulationResult) -> pd.DataFrame:
    """The validation checks, summarised: reach and churn by depth as their worst case, the
    session totals one by one."""
    v = result.validation
    rows = []
    for prefix, label in (("sessions reaching page", "sessions reaching a page (worst page)"),
                          ("churn after page", "churn after a page (worst page)")):  # fmt: skip
        part = v[v["check"].str.startswith(prefix)]
        worst = part.loc[(part["difference"].abs() - part["sampling"]).idxmax()]
        rows.append((label, worst))
    rows += [(r["check"], r) for _, r in v[~v["check"].str.contains("page ")].iterrows()]
    out = []
    for label, r in rows:
        pct = (lambda x: fmt.format_percent(x, signed=True)) if r["relative"] else None
        diff = pct(r["difference"]) if pct else f"{r['difference']:+.3f}"
        tol = (f"± {fmt.format_percent(r['tolerance'])} + {fmt.format_percent(r['sampling'])}"
               if r["relative"] else f"± {r['tolerance']:.3f} + {r['sampling']:.3f}")  # fmt: skip
        out.append({
            "Check": label if "worst" not in label else f"{label}: {r['check'].split()[-1]}",
            "Simulator A": fmt.format_number(r["simulated"]),
            "Held-out B": fmt.format_number(r["held_out"]),
            "Difference": diff,
            "Allowed (tolerance + sampling)": tol,
            "Within": "yes" if r["within"] else "NO",
        })  # fmt: skip
    return pd.DataFrame(out)


def policy_display(result: SimulationResult, simulator: str = "A") -> pd.DataFrame:
    """The policy table of one simulator, best first: value and pages per session with 95 %
    intervals, churn, buying share, and the share of pages inside the logged range."""
    t = result.policies[result.policies["simulator"] == simulator].sort_values(
        "value", ascending=False
    )
    return pd.DataFrame(
        {
            "Policy": t["policy"],
            "Yuan per session (95 % CI)": [
                _interval(v, lo, hi)
                for v, lo, hi in zip(t["value"], t["value_low"], t["value_high"], strict=True)
            ],
            "Pages per session (95 % CI)": [
                _interval(v, lo, hi)
                for v, lo, hi in zip(t["pages"], t["pages_low"], t["pages_high"], strict=True)
            ],
            "Sessions that buy": t["buying_share"].map(fmt.format_percent),
            "Pages inside the logged range": t["support"].map(fmt.format_percent),
        }
    ).reset_index(drop=True)


def gap_display(result: SimulationResult) -> pd.DataFrame:
    """Promised (A) against delivered (B, truth) per policy, Yuan per session."""
    g = result.gaps.sort_values("promised", ascending=False)
    out = {"Policy": g["policy"], "Promised by A": g["promised"].map(fmt.format_number)}
    for name, label in (("B", "simulator B"), ("truth", "the truth")):
        if name in g:
            out[f"Delivered by {label}"] = g[name].map(fmt.format_number)
            out[f"Gap ({label})"] = g[f"gap_{name}"].map(lambda v: f"{v:+.2f}")
    return pd.DataFrame(out).reset_index(drop=True)
