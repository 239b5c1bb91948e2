"""Display tables of the business case (chapter 07 and the deck)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from microsub import fmt
from microsub.business.config import BusinessConfig
from microsub.business.study import BusinessResult


def usd(x: float) -> str:
    """Dollars for Markdown (a table or prose): ``\\$1.23M``, ``-\\$49,950``. The dollar sign
    is escaped: two of them in a paragraph would otherwise open and close a formula."""
    return fmt.format_money(x, "$").replace("$", r"\$")


def assumptions_table(config: BusinessConfig) -> pd.DataFrame:
    """The assumptions every money figure rests on, with their units."""
    rows = [
        ("Retention budget", usd(config.budget_usd_per_month), "US dollars per month"),
        ("Traffic", fmt.format_count(config.sessions_per_month), "sessions per month"),
        ("Platform scale", fmt.format_count(config.platform_sessions_per_month),
         f"sessions per month ({fmt.format_count(config.platform_monthly_users)} monthly users "
         f"x {fmt.format_setting(config.platform_sessions_per_user)} feed sessions each)"),
        ("Budget per session", usd(config.budget_usd_per_session), "US dollars"),
        ("Exchange rate", fmt.format_setting(config.yuan_per_usd), "Yuan per US dollar"),
        ("Value margin", fmt.format_setting(config.value_margin, percent=True),
         "of the Yuan a shopper spends counted as value"),
    ]  # fmt: skip
    for t in config.interventions:
        rows.append((
            t.name,
            f"{usd(t.cost_usd)}, removes {fmt.format_setting(t.effect, percent=True)} of the risk",
            f"risk {fmt.format_setting(t.min_risk)} to {fmt.format_setting(t.max_risk)}",
        ))  # fmt: skip
    return pd.DataFrame(rows, columns=["Assumption", "Value", "Unit or scope"])


def _ci(value: float, low: float, high: float, render) -> str:  # noqa: ANN001
    return f"{render(value)} ({render(low)} to {render(high)})"


def programme_display(result: BusinessResult, simulator: str = "learned") -> pd.DataFrame:
    """Every programme in one simulator, best net value first: churn reduction, money per
    month, ROI, interventions per session, with 95 % intervals."""
    p = result.programmes[result.programmes["simulator"] == simulator]
    p = p.sort_values("net_usd", ascending=False)
    return pd.DataFrame(
        {
            "Programme": p["policy"],
            "Churn reduction (95 % CI)": [
                _ci(v, lo, hi, fmt.format_percent) for v, lo, hi in
                zip(p["churn_reduction"], p["churn_reduction_low"], p["churn_reduction_high"],
                    strict=True)
            ],
            "Value kept / month": p["retained_usd"].map(usd),
            "Cost / month": p["cost_usd"].map(usd),
            "Net / month (95 % CI)": [
                _ci(v, lo, hi, usd) for v, lo, hi in
                zip(p["net_usd"], p["net_usd_low"], p["net_usd_high"], strict=True)
            ],
            "Interventions / session": p["interventions"].map(fmt.format_number),
        }
    ).reset_index(drop=True)  # fmt: skip


def breakeven_display(result: BusinessResult) -> pd.DataFrame:
    """Per tier: how risky its pages are, what keeping one is worth, and what it would have to
    be worth for the intervention to pay."""
    b = result.breakeven
    return pd.DataFrame(
        {
            "Intervention": b["tier"],
            "Pages in its risk band": b["pages_share"].map(fmt.format_percent),
            "Median risk": b["median_risk"].map(fmt.format_number),
            "Median value at stake": b["median_stake_usd"].map(usd),
            "Value at stake to break even": b["breakeven_stake_usd"].map(usd),
        }
    )


def qini_display(result: BusinessResult) -> pd.DataFrame:
    """The targeting scores' Qini coefficients on the randomised trial."""
    q = result.qini.sort_values("qini_coefficient", ascending=False)
    return pd.DataFrame(
        {
            "Targeting score": q["score"],
            "Qini coefficient": q["qini_coefficient"].map(fmt.format_number),
            "Stays added per page, everyone treated": q["stays_added"].map(fmt.format_number),
        }
    ).reset_index(drop=True)


def sensitivity_display(result: BusinessResult) -> pd.DataFrame:
    """Churn reduction and net value per month of the targeting programmes, for every scale of
    the assumed effects."""
    s = result.sensitivity
    out = s.pivot(index="policy", columns="factor", values="net_usd").map(usd)
    red = s.pivot(index="policy", columns="factor", values="churn_reduction")
    table = pd.DataFrame({"Programme": out.index})
    for factor in out.columns:
        table[f"effects x{fmt.format_setting(factor)}"] = [
            f"{fmt.format_percent(red.loc[p, factor])}, net {out.loc[p, factor]}" for p in out.index
        ]
    return table


def fairness_display(result: BusinessResult) -> pd.DataFrame:
    """The fairness audit of the targeting programmes: ratios by attribute, the fewest
    selections in a group, the gate, and what a mitigation would cost."""
    f = result.fairness
    return pd.DataFrame(
        {
            "Programme": f["policy"],
            "Attribute": f["attribute"],
            "Demographic parity ratio": f["demographic_parity_ratio"].map(fmt.format_number),
            "Equal opportunity ratio": f["equal_opportunity_ratio"].map(fmt.format_number),
            "Fewest selections in a group": f["fewest_selected"].map(lambda v: f"{v:,}"),
            "Four-fifths rule": f["passes"].map({True: "pass", False: "FAIL"}),
            "Mitigation / month": f["mitigation_usd"].map(usd),
        }
    )


def gate_display(gates: pd.DataFrame) -> pd.DataFrame:
    """The success gates with their measurements (one table in the book)."""

    def measured(row: pd.Series) -> str:
        if row["verdict"] == "not measured":
            return "not measured"
        if row["key"] == "churn_reduction":
            return fmt.format_percent(row["value"])
        unit = " ms" if row["key"] == "scoring_p99_ms" else ""
        return fmt.format_number(row["value"]) + unit

    return pd.DataFrame(
        {
            "Gate": gates["gate"],
            "Target": gates["target"],
            "Measured": [measured(r) for _, r in gates.iterrows()],
            "Verdict": gates["verdict"].str.upper(),
            "Measured by": gates["measured_by"],
        }
    )


def serving_display(report: Mapping[str, Any]) -> pd.DataFrame:
    """The scoring service's measured latency (``reports/serving.json``, keys in
    :mod:`microsub.serve.latency`): one row per load rate over HTTP, and one page scored inside
    the process, for the book."""

    def ms(x: Any) -> str:
        return "n/a" if x is None else fmt.format_number(x)

    rows = [
        {
            "Requests": f"POST /score, {fmt.format_count(r['rate'])} per second for "
            f"{fmt.format_setting(r['duration_s'])} s",
            "Answered": fmt.format_count(r["ok"]),
            "Errors": fmt.format_count(r["errors"]),
            "p50 (ms)": ms(r["p50_ms"]),
            "p99 (ms)": ms(r["p99_ms"]),
            "Max (ms)": ms(r["max_ms"]),
        }
        for r in report["rates"]
    ]
    inside = report["in_process_ms"]
    rows.append({
        "Requests": "one page inside the process (features and both models, no HTTP)",
        "Answered": fmt.format_count(inside["n"]), "Errors": "", "p50 (ms)": ms(inside["p50"]),
        "p99 (ms)": ms(inside["p99"]), "Max (ms)": "",
    })  # fmt: skip
    return pd.DataFrame(rows)


_SIM_NAMES = {"learned": "learned simulator", "truth": "true generator"}


def worth_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`~microsub.business.worth.worth_table` for the book: one column per simulator,
    one row per quantity, each with its 95 % interval."""
    rows = {
        "Churn reduction": ("churn_reduction", fmt.format_percent),
        "Net value per session": ("per_session", lambda x: usd(x)),
        "Per month, configured traffic": ("per_month", usd),
        "Per month, platform scale": ("platform_month", usd),
        "Per year, platform scale": ("platform_year", usd),
    }
    out = {"Quantity": list(rows)}
    for r in table.to_dict("records"):
        out[_SIM_NAMES.get(r["simulator"], r["simulator"])] = [
            _ci(r[key], r[f"{key}_low"], r[f"{key}_high"], render) for key, render in rows.values()
        ]
    return pd.DataFrame(out)


def next_steps_display(steps: pd.DataFrame) -> pd.DataFrame:
    """:func:`~microsub.business.worth.next_steps` for the book: ``Rank``, ``Step``,
    ``Worth a month``, ``Basis``."""
    return pd.DataFrame({
        "Rank": range(1, len(steps) + 1),
        "Step": steps["step"],
        "Worth a month": [usd(x) if x == x else "not priced" for x in steps["worth_usd_month"]],
        "Basis": steps["basis"],
    })  # fmt: skip
