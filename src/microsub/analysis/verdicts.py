"""Hypothesis results and the rule that turns an estimate, its interval and an adjusted p-value
into a verdict.

Verdicts
========

Each test has a hypothesised direction (for example "the odds of leaving rise with depth", an
odds ratio above 1) and a *margin*, the smallest effect that matters: effects inside the band
[1 / margin, margin] (ratios) or [−margin, margin] (differences) are negligible. With the 95 %
interval [lo, hi] and the Holm-adjusted p-value:

* **supported**: adjusted p < alpha, the estimate lies on the hypothesised side of the null,
  and outside the negligible band;
* **not supported**: the whole interval lies inside the negligible band (any effect is too small
  to matter), or adjusted p < alpha with the estimate on the opposite side (the data contradict
  the hypothesis);
* **inconclusive**: anything else, in particular an interval too wide to tell a negligible
  effect from one that matters (and any test that cannot be run on the data at hand).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from microsub.analysis.stats import ALPHA, CORRECTION, LEVEL, Coef
from microsub.fmt import format_number
from microsub.plain import plain

Verdict = Literal["supported", "not supported", "inconclusive"]


Scale = Literal["ratio", "difference"]


#: Smallest effects that matter (see "Verdicts" in the module docstring).
MARGINS: dict[str, float] = {
    # an odds ratio per page or per purchase-power level: 2 % a step compounds to about 22 %
    # over the ten pages after the first, and to 13 % across the six steps of purchase power
    "ratio_per_step": 1.02,
    # an odds ratio or a ratio of mean spend between two kinds of page, or per standard
    # deviation of a continuous variable: a tenth more or less
    "ratio_per_contrast": 1.10,
    # a rank correlation below 0.05 explains less than 0.25 % of the rank variance
    "correlation": 0.05,
}


@dataclass(frozen=True)
class HypothesisResult:
    """The test of one hypothesis.

    Attributes:
        key: short identifier (``"fatigue"``, ``"hour"``, ...).
        name: label for tables.
        question: the hypothesis as a question.
        statistic: what ``estimate`` measures, with its unit.
        method: how it was estimated (model, adjustment, interval).
        estimate: point estimate.
        ci_low, ci_high: ``LEVEL`` interval (unadjusted for multiplicity).
        null: value of no effect (1 for ratios, 0 for differences).
        expected: hypothesised side of the null, ``">"`` or ``"<"``.
        scale: ``"ratio"`` or ``"difference"`` (how ``margin`` is read).
        margin: smallest effect that matters (see the module docstring).
        n_pages, n_sessions: observations the estimate used.
        p_value: two-sided p-value of the test of no effect.
        p_adjusted: p-value adjusted for the family (equal to ``p_value`` until :func:`adjust`).
        verdict: ``"supported"``, ``"not supported"`` or ``"inconclusive"``.
        summary: one computed sentence.
        details: further named numbers (JSON-safe floats) for the text.
        table: the frame behind the hypothesis's figure.
    """

    key: str
    name: str
    question: str
    statistic: str
    method: str
    estimate: float
    ci_low: float
    ci_high: float
    null: float
    expected: Literal[">", "<"]
    scale: Scale
    margin: float
    n_pages: int
    n_sessions: int
    p_value: float
    p_adjusted: float
    verdict: Verdict
    summary: str
    details: dict[str, float] = field(default_factory=dict)
    table: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False, repr=False)

    def interval_text(self) -> str:
        """``"1.13 (95 % CI 1.12 to 1.14)"``: the estimate and its interval, for prose."""
        if not np.isfinite(self.estimate):
            return "not estimable"
        pct = round(LEVEL * 100)
        return (
            f"{format_number(self.estimate)} ({pct} % CI {format_number(self.ci_low)} to "
            f"{format_number(self.ci_high)})"
        )

    def to_record(self) -> dict[str, Any]:
        """The result without its table, as plain JSON types (NaN as ``None``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "table"}
        return plain(out)


def decide(
    estimate: float,
    ci_low: float,
    ci_high: float,
    p_adjusted: float,
    *,
    null: float,
    expected: Literal[">", "<"],
    scale: Scale,
    margin: float,
    alpha: float = ALPHA,
) -> Verdict:
    """The verdict rule of the module docstring ("Verdicts").

    Args:
        estimate, ci_low, ci_high: the effect and its interval.
        p_adjusted: the multiplicity-adjusted p-value.
        null: value of no effect.
        expected: hypothesised side of ``null``.
        scale: ``"ratio"`` (band [null / margin, null · margin]) or ``"difference"``
            (band [null − margin, null + margin]).
        margin: smallest effect that matters (> 1 for ratios, > 0 for differences).
        alpha: family-wise error rate.
    """
    values = (estimate, ci_low, ci_high, p_adjusted)
    if not all(v is not None and np.isfinite(v) for v in values):
        return "inconclusive"
    ratio = scale == "ratio"
    band = (null / margin, null * margin) if ratio else (null - margin, null + margin)
    on_side = estimate > null if expected == ">" else estimate < null
    meaningful = not band[0] <= estimate <= band[1]
    if band[0] <= ci_low and ci_high <= band[1]:
        return "not supported"
    if p_adjusted < alpha:
        if not on_side:
            return "not supported"
        if meaningful:
            return "supported"
    return "inconclusive"


def _summary(r: HypothesisResult) -> str:
    """One sentence from the numbers of a result."""
    if not np.isfinite(r.estimate):
        reason = r.details.get("reason_text", "it cannot be estimated on this data")
        return f"{r.name}: not testable here ({reason}); verdict: {r.verdict}."
    p = r.p_adjusted
    p_text = "< 0.001" if p < 0.001 else f"= {p:.3f}"
    return (
        f"{r.name}: {r.statistic} {r.interval_text()}, {r.n_sessions:,} sessions, "
        f"{CORRECTION.capitalize()}-adjusted p {p_text}; verdict: {r.verdict}."
    )


def make_result(
    *,
    key: str,
    name: str,
    question: str,
    statistic: str,
    method: str,
    coef: Coef | None,
    expected: Literal[">", "<"],
    margin: float,
    rows: pd.DataFrame,
    table: pd.DataFrame,
    null: float = 1.0,
    scale: Scale = "ratio",
    details: dict[str, float] | None = None,
    reason: str | None = None,
) -> HypothesisResult:
    """Build a result; its verdict uses the unadjusted p-value until :func:`adjust`.

    ``n_pages`` and ``n_sessions`` are counted from ``rows``, the pages the estimate used (a
    frame with ``session_id``); ``null`` and ``scale`` default to a ratio's (1, ``"ratio"``).
    """
    details = dict(details or {})
    if coef is None:
        coef = Coef(math.nan, math.nan, math.nan, math.nan)
        details["reason_text"] = reason or "not estimable"  # type: ignore[assignment]
    r = HypothesisResult(
        key=key,
        name=name,
        question=question,
        statistic=statistic,
        method=method,
        estimate=coef.estimate,
        ci_low=coef.ci_low,
        ci_high=coef.ci_high,
        null=null,
        expected=expected,
        scale=scale,
        margin=margin,
        n_pages=len(rows),
        n_sessions=int(rows["session_id"].nunique()),
        p_value=coef.p_value,
        p_adjusted=coef.p_value,
        verdict="inconclusive",
        summary="",
        details=details,
        table=table,
    )
    return _finish(r)


def _finish(r: HypothesisResult) -> HypothesisResult:
    verdict = decide(
        r.estimate,
        r.ci_low,
        r.ci_high,
        r.p_adjusted,
        null=r.null,
        expected=r.expected,
        scale=r.scale,
        margin=r.margin,
    )
    r = dataclasses.replace(r, verdict=verdict)
    return dataclasses.replace(r, summary=_summary(r))


def adjust(
    results: Iterable[HypothesisResult], method: str = CORRECTION
) -> tuple[HypothesisResult, ...]:
    """Adjust the p-values of a family of results for multiplicity and redo the verdicts.

    Holm's step-down method: with the m finite p-values sorted p_(1) ≤ … ≤ p_(m),
    p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)). Results without a p-value get none.
    """

    results = tuple(results)
    finite = [i for i, r in enumerate(results) if np.isfinite(r.p_value)]
    adjusted = [
        r if i in finite else _finish(dataclasses.replace(r, p_adjusted=math.nan))
        for i, r in enumerate(results)
    ]
    if finite:
        p = np.array([results[i].p_value for i in finite])
        _, p_adj, _, _ = multipletests(p, alpha=ALPHA, method=method)
        for i, pa in zip(finite, p_adj, strict=True):
            adjusted[i] = _finish(dataclasses.replace(results[i], p_adjusted=float(pa)))
    return tuple(adjusted)


def strongest_ratio(results: Iterable[HypothesisResult]) -> HypothesisResult | None:
    """The ratio-scaled result whose estimate lies farthest from 1 (largest |ln estimate|),
    or None when no result has a finite ratio estimate."""
    ratios = [r for r in results if r.scale == "ratio" and np.isfinite(r.estimate)]
    ratios = [r for r in ratios if r.estimate > 0]
    return max(ratios, key=lambda r: abs(math.log(r.estimate)), default=None)


def verdict_table(results: Iterable[HypothesisResult]) -> pd.DataFrame:
    """One row per hypothesis: ``hypothesis``, ``statistic``, ``estimate``, ``ci_low``,
    ``ci_high``, ``p_adjusted``, ``sessions``, ``verdict``."""
    return pd.DataFrame(
        [
            {
                "hypothesis": r.name,
                "statistic": r.statistic,
                "estimate": r.estimate,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "p_adjusted": r.p_adjusted,
                "sessions": r.n_sessions,
                "verdict": r.verdict,
            }
            for r in results
        ]
    )
