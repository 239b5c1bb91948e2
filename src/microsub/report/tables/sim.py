"""Display tables of the session simulator (chapter 06)."""

from __future__ import annotations

import pandas as pd

from microsub import fmt
from microsub.sim.candidates import ACTION_GRID
from microsub.sim.session import OBS_HIGH, OBS_LOW, OBSERVATION
from microsub.sim.study import SimulationResult


def _bound(x: float) -> str:
    return fmt.format_count(x) if float(x).is_integer() else fmt.format_number(x)


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
            "Range": [
                f"{_bound(lo)} to {_bound(hi)}" for lo, hi in zip(OBS_LOW, OBS_HIGH, strict=True)
            ],
        }
    )  # fmt: skip


def action_table() -> pd.DataFrame:
    """The discrete actions: ``Action``, ``a (CVR)``, ``b (price)``, ``Page shows``."""
    rows = [{"Action": 0, "a (CVR)": "–", "b (price)": "–",
             "Page shows": "the logged page, as the platform ranked it"}]  # fmt: skip
    for k, (a, b) in enumerate(ACTION_GRID, start=1):
        a_text, b_text = fmt.format_setting(a), fmt.format_setting(b)
        rows.append({"Action": k, "a (CVR)": a_text, "b (price)": b_text,
                     "Page shows": f"the 50 best of 100 candidates by ctr · cvr^{a_text} · "
                     f"price^{b_text}"})  # fmt: skip
    return pd.DataFrame(rows)


def interval_text(value: float, low: float, high: float) -> str:
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
                interval_text(v, lo, hi)
                for v, lo, hi in zip(t["value"], t["value_low"], t["value_high"], strict=True)
            ],
            "Pages per session (95 % CI)": [
                interval_text(v, lo, hi)
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
