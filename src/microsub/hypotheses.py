"""The exploration's hypotheses, tested with honest uncertainty; descriptive statistics; the
data-constraint audit. Pure: a pages frame in, small results out (no lake, no files).

Units and conventions
=====================

* A **page** at depth ``d`` is a row with ``action_page_id = d``; a **session** is a
  ``session_id``. The churn event of page ``d`` is ``done = 1``: the user left after page ``d``.
* **Known outcome.** A page whose session is *truncated* there below the cap (end of file, a
  page-id jump) has no known outcome: the log stops before we learn whether the user would have
  asked for the next page. Those pages are left out of every churn rate and churn model. A page
  truncated *at* the cap (page 11) counts as "did not leave": the user did not leave, the
  platform stopped the session.
* **Hazard** at depth ``d``: h(d) = (pages at depth d with done = 1) / (pages at depth d with a
  known outcome), the probability of leaving after page d among sessions that reached it. Each
  session has at most one page per depth, so the pages of one depth are independent and a
  Wilson (1927) interval is valid for them.
* **Survival** (Kaplan-Meier): a session's duration T is the number of pages after which its
  outcome is known: T = last page + 1 when it ended with ``done``; T = 12 when it was truncated
  at the cap (censored: it survived page 11); T = last page when truncated elsewhere (censored:
  the last page's outcome is unknown). A session whose first page is p > 0 (a page-id jump)
  enters the risk set at time p + 1 (delayed entry). With these conventions
  S(t) = Π_{d < t} (1 − h(d)) for sessions that start at page 0.

Dependence and multiple testing
===============================

Pages of one session share the user, so page-level observations are not independent. Every
interval that pools several pages of a session accounts for it:

* churn rates of groups that hold several pages per session (an hour, an engagement level) use a
  Wilson interval on the effective sample size n / deff, where the design effect
  deff = max(1, v_cluster / v_binomial) compares the cluster-robust (linearised) variance of the
  ratio estimator p = Σy / n,  v_cluster = C / (C − 1) · Σ_c (y_c − p m_c)² / n²  (C sessions,
  y_c events and m_c pages of session c), with the binomial p (1 − p) / n;
* regression estimates (odds ratios, ratios of mean spend) come from GLMs fitted by statsmodels
  with cluster-robust (sandwich) standard errors, clustered by session;
* session-level statistics (one row per session) are independent across sessions; their
  bootstrap intervals resample sessions (:func:`microsub.evaluation.bootstrap_ci`).

The eight hypothesis tests form one family: p-values are adjusted with Holm's step-down method
(:func:`adjust`), which controls the family-wise error rate at ``alpha``.

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

What the tests can and cannot show
==================================

Every estimate is an association in observational data. Adjusting for page depth (fixed effects)
removes the most obvious confounder (deeper pages draw fewer clicks and end more often), and for
purchase power where it matters, but not the user's unobserved propensity to leave, which also
drives clicks and purchases. The hazard by depth is computed on the sessions still running at
that depth: as users prone to leaving drop out early, the survivors at depth d are a selected
group, so the population hazard mixes each user's fatigue with that selection (survivor bias).
A rising population hazard is therefore a lower bound on the typical user's fatigue, a falling
one could be selection alone, and no per-user statement follows from it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from microsub.contract import MAX_PAGE_ID, PROTECTED_COLUMNS
from microsub.evaluation import bootstrap_ci
from microsub.features import FEATURE_SETS, FeatureSet, add_features, known_outcome

Verdict = Literal["supported", "not supported", "inconclusive"]
Scale = Literal["ratio", "difference"]

#: Family-wise error rate of the hypothesis family.
ALPHA = 0.05
#: Coverage of every interval.
LEVEL = 0.95
#: Multiple-testing correction (a method name of statsmodels' ``multipletests``).
CORRECTION = "holm"

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

#: The two windows of the hour comparison: "about 2 AM" and "about 8 PM" (hours of day).
NIGHT_HOURS = (1, 2, 3)
EVENING_HOURS = (19, 20, 21)

#: Purchase-power groups of the survival curves (levels as logged, 1..7).
PURCHASE_POWER_GROUPS: dict[str, tuple[int, ...]] = {
    "low (1-3)": (1, 2, 3),
    "middle (4-5)": (4, 5),
    "high (6-7)": (6, 7),
}

#: Pages after which the survival summary reads S(t).
SURVIVAL_AT = 5

#: Columns of the correlation matrix (pages table and derived features).
CORRELATION_COLUMNS = (
    "action_page_id",
    "state_purchase_power",
    "hour_sin",
    "hour_cos",
    "n_clicks",
    "n_carts",
    "n_favs",
    "n_purchases",
    "reward",
    "mean_ctr",
    "mean_cvr",
    "mean_log_price",
    "cum_value",
    "pages_since_purchase",
    "done",
)

_DERIVED = ("hour_sin", "purchased", "cum_value", "pages_since_purchase", "prev_engagement")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
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
        return to_plain(out)


@dataclass(frozen=True)
class RewardDistribution:
    """Non-zero page rewards (Yuan).

    Attributes:
        values: shape (n_nonzero,), the positive ``reward`` values.
        n_pages: pages looked at.
        share_nonzero: n_nonzero / n_pages.
        quantiles: ``{"p50": ..., "p90": ..., "p99": ...}`` of the positive values (Yuan).
        mean: mean positive value (Yuan).
        max: largest value (Yuan).
    """

    values: np.ndarray = field(repr=False, compare=False)
    n_pages: int
    share_nonzero: float
    quantiles: dict[str, float]
    mean: float
    max: float

    @property
    def n_nonzero(self) -> int:
        return int(len(self.values))


@dataclass(frozen=True)
class SurvivalCurves:
    """Kaplan-Meier curves of sessions by group (see "Survival" in the module docstring).

    Attributes:
        curves: one row per (group, pages): ``group``, ``pages`` (t, 0..12), ``survival``
            (S(t), share of sessions still running after t pages), ``ci_low``, ``ci_high``
            (lifelines' exponential Greenwood interval), ``at_risk``.
        summary: one row per group: ``group``, ``levels``, ``sessions``, ``events``,
            ``censored``, ``median_pages`` (inf when S never falls to 0.5), ``survival_at``
            (S after :data:`SURVIVAL_AT` pages).
        logrank_statistic, logrank_p: multivariate log-rank test of equal curves (delayed
            entry ignored: exact when no session opens with a page-id jump).
    """

    curves: pd.DataFrame
    summary: pd.DataFrame
    logrank_statistic: float
    logrank_p: float


@dataclass(frozen=True)
class AuditCheck:
    """One line of the data-constraint audit.

    Attributes:
        check: what is checked.
        status: ``"pass"``, ``"fail"``, ``"review"`` (a human should look) or ``"cannot meet"``
            (the dataset cannot satisfy it; reported, not faked).
        detail: what was found, computed from the columns and values.
    """

    check: str
    status: Literal["pass", "fail", "review", "cannot meet"]
    detail: str


@dataclass(frozen=True)
class Exploration:
    """Everything the exploration computes (:func:`run_all`).

    Attributes:
        n_pages, n_sessions: size of the pages table.
        class_balance: :func:`class_balance`.
        correlation: :func:`correlation_matrix`.
        rewards: :func:`reward_distribution`.
        survival: :func:`survival_by_purchase_power`.
        hypotheses: the eight tests, Holm-adjusted (:func:`adjust`).
        audit: :func:`audit_constraints`.
        alpha, correction: the family's error rate and correction method.
    """

    n_pages: int
    n_sessions: int
    class_balance: pd.DataFrame
    correlation: pd.DataFrame
    rewards: RewardDistribution
    survival: SurvivalCurves
    hypotheses: tuple[HypothesisResult, ...]
    audit: tuple[AuditCheck, ...]
    alpha: float = ALPHA
    correction: str = CORRECTION

    def result(self, key: str) -> HypothesisResult:
        """The hypothesis result with this ``key`` (KeyError naming the known keys)."""
        for r in self.hypotheses:
            if r.key == key:
                return r
        raise KeyError(f"no hypothesis {key!r}; known: {[r.key for r in self.hypotheses]}")

    def verdict_table(self) -> pd.DataFrame:
        """:func:`verdict_table` of the hypotheses."""
        return verdict_table(self.hypotheses)

    def audit_table(self) -> pd.DataFrame:
        """The audit as a frame: ``check``, ``status``, ``detail``."""
        return pd.DataFrame([dataclasses.asdict(c) for c in self.audit])


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def format_number(x: float | None) -> str:
    """A number for prose and tables: 0.00197, 0.877, 1.203, 39.95, 2,412 ("n/a" for None,
    NaN, inf)."""
    if x is None or not np.isfinite(x):
        return "n/a"
    if x != 0 and abs(x) < 0.001:
        return f"{x:.1e}"
    if abs(x) < 0.1:
        return f"{x:.3g}"
    if abs(x) < 10:
        return f"{x:.3f}"
    if abs(x) < 100:
        return f"{x:.2f}"
    return f"{x:,.0f}"


def to_plain(obj: Any) -> Any:
    """Recursively convert numpy scalars to Python types and NaN/inf to None."""
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _frame(pages: pd.DataFrame) -> pd.DataFrame:
    """``pages`` with the derived features (added when absent) and ``known`` (outcome known)."""
    frame = pages if all(c in pages.columns for c in _DERIVED) else add_features(pages)
    if "known" not in frame.columns:
        frame = frame.copy()
        frame["known"] = known_outcome(frame)
    return frame


def _z() -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + LEVEL / 2))


def wilson_interval(
    events: np.ndarray, n: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of proportions ``events / n`` (arrays; ``n`` may be fractional).

    Returns (low, high); NaN where ``n`` is 0.
    """
    from statsmodels.stats.proportion import proportion_confint

    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    ok = n > 0
    low = np.full(n.shape, np.nan)
    high = np.full(n.shape, np.nan)
    if ok.any():
        lo, hi = proportion_confint(events[ok], n[ok], alpha=1 - level, method="wilson")
        low[ok], high[ok] = lo, hi
    return low, high


def cluster_rates(
    frame: pd.DataFrame, by: str | Sequence[str], y: str = "done", cluster: str = "session_id"
) -> pd.DataFrame:
    """Share of ``y == 1`` per group, with a cluster-adjusted Wilson interval.

    The interval is Wilson's on the effective sample size n / deff, with the design effect
    deff = max(1, v_cluster / v_binomial) of the module docstring ("Dependence"): groups that
    hold one page per session get deff ≈ 1 (plain Wilson), groups that pool pages of the same
    sessions get wider intervals.

    Args:
        frame: rows to count (already restricted to known outcomes if ``y`` is ``done``).
        by: grouping column(s).
        y: 0/1 column.
        cluster: column of the cluster (session) ids.

    Returns:
        One row per group: the ``by`` columns, ``pages``, ``sessions``, ``events``, ``rate``,
        ``ci_low``, ``ci_high``, ``deff``.
    """
    by = [by] if isinstance(by, str) else list(by)
    per = (
        frame.groupby(by + [cluster], observed=True, sort=True)[y]
        .agg(["sum", "size"])
        .rename(columns={"sum": "y_c", "size": "m_c"})
        .reset_index()
    )
    grouped = per.groupby(by, observed=True, sort=True)
    out = grouped.agg(pages=("m_c", "sum"), sessions=("m_c", "size"), events=("y_c", "sum"))
    out = out.reset_index()
    out["rate"] = out["events"] / out["pages"]
    rate = per.merge(out[by + ["rate"]], on=by)["rate"].to_numpy()
    per["resid2"] = (per["y_c"].to_numpy() - rate * per["m_c"].to_numpy()) ** 2
    ss = per.groupby(by, observed=True, sort=True)["resid2"].sum().to_numpy()
    n = out["pages"].to_numpy(dtype=float)
    c = out["sessions"].to_numpy(dtype=float)
    p = out["rate"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        v_cl = np.where(c > 1, c / (c - 1) * ss / n**2, np.nan)
        v_bin = p * (1 - p) / n
        deff = np.where((v_bin > 0) & np.isfinite(v_cl), np.maximum(1.0, v_cl / v_bin), 1.0)
    low, high = wilson_interval(p * n / deff, n / deff)
    out["ci_low"], out["ci_high"], out["deff"] = low, high, deff
    out["events"] = out["events"].astype(int)
    return out


@dataclass(frozen=True)
class _Coef:
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float


def _glm(
    y: np.ndarray,
    X: pd.DataFrame,
    groups: np.ndarray,
    family: str = "binomial",
) -> Any:
    """A GLM (logit link for ``"binomial"``, log link for ``"poisson"``) with an intercept and
    cluster-robust standard errors (clusters = ``groups``). Returns statsmodels' results."""
    import statsmodels.api as sm
    from threadpoolctl import threadpool_limits

    fam = sm.families.Binomial() if family == "binomial" else sm.families.Poisson()
    exog = sm.add_constant(X.astype("float64"), has_constant="add")
    codes = pd.factorize(np.asarray(groups))[0]
    endog = np.asarray(y, dtype="float64")
    model = sm.GLM(endog, exog, family=fam)
    # start at the intercept-only fit: the log link otherwise takes many IRLS steps on money
    start = np.zeros(exog.shape[1])
    mean = float(endog.mean())
    if 0.0 < mean < 1.0 or family != "binomial":
        start[0] = np.log(mean) if family != "binomial" else np.log(mean / (1 - mean))
    # one BLAS thread: these products are small, and threads fighting over a busy machine's
    # cores made each IRLS step up to 60x slower (measured: 20 solves of 10k x 16)
    with threadpool_limits(limits=1, user_api="blas"):
        return model.fit(start_params=start, cov_type="cluster", cov_kwds={"groups": codes})


def _ratio(res: Any, name: str) -> _Coef:
    """exp(coefficient) of ``name`` with its interval and two-sided p-value."""
    b = float(res.params[name])
    se = float(res.bse[name])
    z = _z()
    return _Coef(
        float(np.exp(b)),
        float(np.exp(b - z * se)),
        float(np.exp(b + z * se)),
        float(res.pvalues[name]),
    )


def _depth_dummies(depth: pd.Series) -> pd.DataFrame:
    """Fixed effects of page depth: one 0/1 column per depth but the smallest present."""
    return pd.get_dummies(depth.astype(int), prefix="depth", drop_first=True, dtype=float)


def _testable(y: np.ndarray, exposure: np.ndarray | None = None) -> str | None:
    """Why a binary-outcome test cannot run (no variation), or None when it can."""
    if len(y) == 0:
        return "no observations"
    if np.nanmin(y) == np.nanmax(y):
        return "the outcome does not vary (no terminal flags in this log?)"
    if exposure is not None and np.nanmin(exposure) == np.nanmax(exposure):
        return "the exposure does not vary"
    return None


def _leave_odds_ratio(
    rows: pd.DataFrame, exposure: pd.Series, covariates: Sequence[pd.Series] = ()
) -> tuple[_Coef | None, str | None]:
    """The odds ratio of leaving after a page with ``exposure``, at the same depth.

    logit h = a + b·exposure + Σ_k c_k·covariate_k + depth fixed effects on ``rows``, clustered
    by session; the estimate is exp(b).

    Args:
        rows: the pages of the test (``done``, ``action_page_id``, ``session_id``), usually
            those with a known outcome.
        exposure: one value per row, indexed like ``rows``; its name names the coefficient.
        covariates: further columns indexed like ``rows``, in the design's order; those that
            do not vary on ``rows`` are dropped.

    Returns:
        (exp(b) with its interval and p-value, None), or (None, the reason of
        :func:`_testable`) when the outcome or the exposure does not vary.
    """
    y = rows["done"].to_numpy()
    reason = _testable(y, exposure.to_numpy())
    if reason is not None:
        return None, reason
    # a covariate that does not vary (one purchase-power level, say) duplicates the intercept
    # and would make the design singular: it adjusts for nothing, so it is left out
    varying = [c for c in covariates if c.nunique() > 1]
    X = pd.concat([exposure, *varying, _depth_dummies(rows["action_page_id"])], axis=1)
    return _ratio(_glm(y, X, rows["session_id"].to_numpy()), str(exposure.name)), None


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


def _result(
    *,
    key: str,
    name: str,
    question: str,
    statistic: str,
    method: str,
    coef: _Coef | None,
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
        coef = _Coef(math.nan, math.nan, math.nan, math.nan)
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
    from statsmodels.stats.multitest import multipletests

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


# --------------------------------------------------------------------------------------------
# Session table
# --------------------------------------------------------------------------------------------
def session_table(pages: pd.DataFrame) -> pd.DataFrame:
    """One row per session.

    Returns:
        Columns ``session_id``, ``first_page``, ``last_page``, ``pages`` (rows), ``done``
        (1 if it ended with a terminal flag), ``truncated``, ``hour``, ``state_purchase_power``,
        ``total_reward`` (Yuan), ``n_purchases``, and the Kaplan-Meier ``duration`` and
        ``entry`` of the module docstring ("Survival").
    """
    df = pages.sort_values(["session_id", "line_no"], kind="stable")
    g = df.groupby("session_id", sort=True)
    out = pd.DataFrame(
        {
            "first_page": g["action_page_id"].first().astype(int),
            "last_page": g["action_page_id"].last().astype(int),
            "pages": g.size(),
            "done": g["done"].last().astype(int),
            "truncated": g["truncated"].last().astype(int),
            "hour": g["hour"].first(),
            "state_purchase_power": g["state_purchase_power"].first().astype(int),
            "total_reward": g["reward"].sum(),
            "n_purchases": g["n_purchases"].sum().astype(int),
        }
    ).reset_index()
    last = out["last_page"].to_numpy()
    capped = (out["truncated"].to_numpy() == 1) & (last >= MAX_PAGE_ID)
    out["duration"] = np.where(
        out["done"].to_numpy() == 1, last + 1, np.where(capped, MAX_PAGE_ID + 1, last)
    )
    first = out["first_page"].to_numpy()
    out["entry"] = np.where(first > 0, first + 1, 0)
    return out


# --------------------------------------------------------------------------------------------
# Descriptive pieces
# --------------------------------------------------------------------------------------------
def class_balance(pages: pd.DataFrame) -> pd.DataFrame:
    """Counts of the churn label ``done`` over pages.

    Returns:
        Two rows (``done`` 0 and 1): ``done``, ``label``, ``pages``, ``share``, and
        ``truncated`` (pages of that class without a known outcome: truncated below the cap).
    """
    done = pages["done"].to_numpy()
    unknown = (pages["truncated"].to_numpy() == 1) & (
        pages["action_page_id"].to_numpy() < MAX_PAGE_ID
    )
    n = len(done)
    rows = []
    for value, label in ((0, "stayed (asked for the next page)"), (1, "left after the page")):
        k = int((done == value).sum())
        rows.append(
            {
                "done": value,
                "label": label,
                "pages": k,
                "share": k / n if n else math.nan,
                "truncated": int(((done == value) & unknown).sum()),
            }
        )
    return pd.DataFrame(rows)


def correlation_matrix(
    pages: pd.DataFrame, columns: Sequence[str] = CORRELATION_COLUMNS
) -> pd.DataFrame:
    """Spearman rank correlations between numeric columns of the pages (and derived features).

    Rank correlation, because money and counts are heavy-tailed; columns that are constant in
    this data are dropped (their correlation is undefined).
    """
    frame = _frame(pages)
    cols = [c for c in columns if c in frame.columns and frame[c].nunique(dropna=True) > 1]
    return frame[cols].astype("float64").corr(method="spearman")


def reward_distribution(pages: pd.DataFrame) -> RewardDistribution:
    """The positive page rewards (Yuan) and their summary."""
    reward = pages["reward"].to_numpy(dtype=float)
    values = np.sort(reward[reward > 0])
    n = len(reward)
    if len(values):
        q = np.quantile(values, [0.5, 0.9, 0.99])
        quantiles = {"p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}
        mean, top = float(values.mean()), float(values.max())
    else:
        quantiles = {"p50": math.nan, "p90": math.nan, "p99": math.nan}
        mean = top = math.nan
    return RewardDistribution(
        values=values,
        n_pages=n,
        share_nonzero=len(values) / n if n else math.nan,
        quantiles=quantiles,
        mean=mean,
        max=top,
    )


def kaplan_meier(sessions: pd.DataFrame, label: str = "all") -> tuple[pd.DataFrame, float]:
    """Kaplan-Meier curve (lifelines) of a session table (:func:`session_table`).

    Sessions whose duration is below their entry (a page-id-jump session truncated on its first
    page: no known outcome) are left out. Without any session that ends with ``done`` (a log
    without terminal flags) there is no curve to estimate: survival and intervals are NaN.

    Returns:
        (curve, median): curve rows for t = 0..12 with ``group``, ``pages``, ``survival``,
        ``ci_low``, ``ci_high``, ``at_risk``; the median number of pages (inf if S stays
        above 0.5, NaN without events).
    """
    from lifelines import KaplanMeierFitter
    from lifelines.exceptions import StatError

    s = sessions[sessions["duration"] >= sessions["entry"]]
    timeline = np.arange(0, MAX_PAGE_ID + 2)
    kmf = KaplanMeierFitter(alpha=1 - LEVEL)
    entry = s["entry"].to_numpy() if (s["entry"] > 0).any() else None
    try:
        if not len(s) or not s["done"].any():
            raise StatError("no session ends with a terminal flag")
        kmf.fit(
            s["duration"], event_observed=s["done"], entry=entry, timeline=timeline, label=label
        )
    except StatError:
        empty = np.full(len(timeline), np.nan)
        curve = pd.DataFrame(
            {
                "group": label,
                "pages": timeline,
                "survival": empty,
                "ci_low": empty,
                "ci_high": empty,
                "at_risk": np.zeros(len(timeline), dtype=int),
            }
        )
        return curve, math.nan
    ci = kmf.confidence_interval_survival_function_
    table = kmf.event_table.reindex(timeline)
    at_risk = table["at_risk"].ffill().bfill().to_numpy()
    curve = pd.DataFrame(
        {
            "group": label,
            "pages": timeline,
            "survival": kmf.survival_function_.iloc[:, 0].to_numpy(),
            "ci_low": ci.iloc[:, 0].to_numpy(),
            "ci_high": ci.iloc[:, 1].to_numpy(),
            "at_risk": at_risk.astype(int),
        }
    )
    return curve, float(kmf.median_survival_time_)


def survival_by_purchase_power(
    pages: pd.DataFrame, groups: Mapping[str, tuple[int, ...]] = PURCHASE_POWER_GROUPS
) -> SurvivalCurves:
    """Kaplan-Meier curves of sessions by purchase-power group, and a log-rank test.

    Args:
        pages: the pages table.
        groups: label -> purchase-power levels; sessions outside every group are left out.
    """
    from lifelines.statistics import multivariate_logrank_test

    sessions = session_table(pages)
    curves, rows, parts = [], [], []
    for label, levels in groups.items():
        s = sessions[sessions["state_purchase_power"].isin(levels)]
        if s.empty:
            continue
        curve, median = kaplan_meier(s, label)
        curves.append(curve)
        s5 = curve.loc[curve["pages"] == SURVIVAL_AT, "survival"]
        rows.append(
            {
                "group": label,
                "levels": ", ".join(str(v) for v in levels),
                "sessions": len(s),
                "events": int(s["done"].sum()),
                "censored": int((s["done"] == 0).sum()),
                "median_pages": median,
                "survival_at": float(s5.iloc[0]) if len(s5) else math.nan,
            }
        )
        parts.append(s.assign(group=label))
    stat, p = math.nan, math.nan
    if len(parts) > 1:
        both = pd.concat(parts)
        if both["done"].nunique() > 1:
            test = multivariate_logrank_test(both["duration"], both["group"], both["done"])
            stat, p = float(test.test_statistic), float(test.p_value)
    return SurvivalCurves(
        curves=pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(),
        summary=pd.DataFrame(rows),
        logrank_statistic=stat,
        logrank_p=p,
    )


# --------------------------------------------------------------------------------------------
# Hypotheses
# --------------------------------------------------------------------------------------------
def hazard_by_depth(pages: pd.DataFrame) -> pd.DataFrame:
    """h(d) with a Wilson interval per depth (pages with a known outcome).

    Returns:
        One row per depth: ``action_page_id``, ``pages`` (at risk), ``sessions``, ``events``,
        ``rate`` (the hazard), ``ci_low``, ``ci_high``, ``deff``.
    """
    frame = _frame(pages)
    return cluster_rates(frame[frame["known"]], "action_page_id")


def fatigue(pages: pd.DataFrame) -> HypothesisResult:
    """Fatigue: past the first page, does the hazard of leaving rise with depth?

    Discrete-time logistic hazard on pages with depth d ≥ 1 and a known outcome,
    logit h = a + b·d + c·purchase power + e·sin(hour) + f·cos(hour), clustered by session;
    the estimate is the odds ratio per page, exp(b). Page 0 is left out of the trend: its high
    rate is a bounce (sessions that never start), reported in ``details`` (``bounce_rate``
    against ``page1_rate``) and in the table. The profile terms hold the observed mix of users
    fixed as depth grows; the unobserved mix is the survivor bias of the module docstring.
    """
    frame = _frame(pages)
    table = hazard_by_depth(frame)
    rows = frame[frame["known"] & (frame["action_page_id"] >= 1)]
    y = rows["done"].to_numpy()
    reason = _testable(y, rows["action_page_id"].to_numpy())
    coef = None
    trend = np.full(len(table), np.nan)
    if reason is None:
        X = rows[["action_page_id", "state_purchase_power", "hour_sin", "hour_cos"]]
        X = X.loc[:, X.nunique() > 1]
        res = _glm(y, X, rows["session_id"].to_numpy())
        coef = _ratio(res, "action_page_id")
        # fitted hazard at the profile means, for the figure
        grid = pd.DataFrame({c: np.full(len(table), rows[c].mean()) for c in X.columns})
        grid["action_page_id"] = table["action_page_id"].to_numpy()
        fitted = res.predict(
            np.column_stack([np.ones(len(grid)), grid[list(X.columns)].to_numpy()])
        )
        trend = np.where(table["action_page_id"].to_numpy() >= 1, fitted, np.nan)
    table = table.assign(trend=trend)
    rate = dict(zip(table["action_page_id"], table["rate"], strict=True))
    return _result(
        key="fatigue",
        name="Fatigue",
        question="Past the first page, is a deeper page more likely to be the last one?",
        statistic="odds ratio of leaving per page of depth (pages 1-11)",
        method="logistic hazard model on pages 1-11 with known outcome, adjusted for purchase "
        "power and hour; session-clustered standard errors",
        coef=coef,
        expected=">",
        margin=MARGINS["ratio_per_step"],
        rows=rows,
        table=table,
        details={
            "bounce_rate": float(rate.get(0, math.nan)),
            "page1_rate": float(rate.get(1, math.nan)),
            "last_rate": float(table["rate"].iloc[-1]) if len(table) else math.nan,
            "last_depth": float(table["action_page_id"].iloc[-1]) if len(table) else math.nan,
        },
        reason=reason,
    )


def hour_of_day(
    pages: pd.DataFrame,
    night: Sequence[int] = NIGHT_HOURS,
    evening: Sequence[int] = EVENING_HOURS,
) -> HypothesisResult:
    """Hour: do sessions around 2 AM end faster than sessions around 8 PM?

    The churn rate per hour of day (pages with a known outcome, cluster-adjusted Wilson
    intervals) is the table behind the line chart. The test compares the two windows
    (``night`` and ``evening`` hours) on pages with a known outcome:
    logit h = a + b·[night] + depth fixed effects, clustered by session; the estimate is the
    odds ratio exp(b), night against evening at the same depth (night sessions are shorter, so
    an unadjusted rate would mix the hour with the depth mix). ``details`` holds each window's
    leave rate and mean pages per session.
    """
    frame = _frame(pages)
    known = frame[frame["known"] & frame["hour"].notna()]
    table = cluster_rates(known, "hour") if len(known) else pd.DataFrame()
    sessions = session_table(frame)
    if len(table):
        length = sessions.groupby("hour")["pages"].mean()
        table["mean_pages"] = table["hour"].map(length).to_numpy()
        table["window"] = np.select(
            [table["hour"].isin(night), table["hour"].isin(evening)],
            ["night", "evening"],
            default="",
        )
    rows = known[known["hour"].isin(list(night) + list(evening))]
    is_night = rows["hour"].isin(night).to_numpy().astype(float)
    coef, reason = None, "the log has no hour of day"
    if len(rows):
        coef, reason = _leave_odds_ratio(rows, pd.Series(is_night, index=rows.index, name="night"))
    details: dict[str, float] = {}
    if coef is not None:
        for label, hours in (("night", night), ("evening", evening)):
            part = rows[rows["hour"].isin(hours)]
            details[f"{label}_rate"] = float(part["done"].mean())
            details[f"{label}_mean_pages"] = float(
                sessions.loc[sessions["hour"].isin(hours), "pages"].mean()
            )
            details[f"{label}_sessions"] = float(part["session_id"].nunique())
    return _result(
        key="hour",
        name="Hour of day",
        question="Do sessions around 2 AM (1-3 h) end faster than sessions around 8 PM (19-21 h)?",
        statistic="odds ratio of leaving, 1-3 h vs 19-21 h, same depth",
        method="logistic model of leaving on pages of the two windows with depth fixed "
        "effects; session-clustered standard errors",
        coef=coef,
        expected=">",
        margin=MARGINS["ratio_per_contrast"],
        rows=rows,
        table=table,
        details=details,
        reason=reason,
    )


def _box_stats(values: np.ndarray) -> dict[str, float]:
    """Tukey box-plot statistics (quartiles, whiskers at the last points within 1.5 IQR)."""
    if len(values) == 0:
        return dict.fromkeys(("q1", "median", "q3", "whislo", "whishi", "mean"), math.nan)
    q1, med, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    iqr = q3 - q1
    inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
    return {
        "q1": float(q1),
        "median": float(med),
        "q3": float(q3),
        "whislo": float(inside.min()),
        "whishi": float(inside.max()),
        "mean": float(values.mean()),
    }


def purchase_power_value(
    pages: pd.DataFrame, *, n_boot: int = 300, random_state: int = 0
) -> HypothesisResult:
    """Purchase power vs total session reward: do higher levels spend more per session?

    Spearman's rank correlation between a session's purchase-power level and its total reward
    (Yuan; zero for the many sessions that buy nothing), one row per session (independent);
    p-value from scipy, interval from a bootstrap over sessions. The table has one row per
    level: ``sessions``, ``buying_share`` (sessions with a purchase), ``mean_reward`` and the
    box-plot statistics of the total reward of the *buying* sessions (the others are all 0).
    """
    from scipy.stats import spearmanr

    sessions = session_table(pages)
    rows = []
    for level, s in sessions.groupby("state_purchase_power", sort=True):
        buying = s.loc[s["total_reward"] > 0, "total_reward"].to_numpy()
        rows.append(
            {
                "state_purchase_power": int(level),
                "sessions": len(s),
                "buying_share": float((s["total_reward"] > 0).mean()),
                "mean_reward": float(s["total_reward"].mean()),
                "buying_sessions": len(buying),
                **_box_stats(buying),
            }
        )
    table = pd.DataFrame(rows)
    x = sessions["state_purchase_power"].to_numpy(dtype=float)
    v = sessions["total_reward"].to_numpy(dtype=float)
    reason = _testable(v, x)
    coef = None
    if reason is None:

        def rho(a: np.ndarray, b: np.ndarray) -> float:
            return float(spearmanr(a, b).statistic)

        test = spearmanr(x, v)
        low, high = bootstrap_ci(rho, x, v, n_boot=n_boot, level=LEVEL, random_state=random_state)
        coef = _Coef(float(test.statistic), low, high, float(test.pvalue))
    return _result(
        key="purchase_power_value",
        name="Purchase power and spend",
        question="Do sessions of higher purchase-power levels spend more in total?",
        statistic="Spearman correlation of purchase power and total session reward",
        method=f"rank correlation over sessions; percentile bootstrap over sessions "
        f"({n_boot} resamples)",
        coef=coef,
        expected=">",
        margin=MARGINS["correlation"],
        rows=pages,
        table=table,
        null=0.0,
        scale="difference",
        details={"buying_share": float((v > 0).mean()) if len(v) else math.nan},
        reason=reason,
    )


def purchase_power_churn(pages: pd.DataFrame) -> HypothesisResult:
    """Purchase power vs churn: do higher levels leave less, at the same depth?

    logit h = a + b·(purchase-power level) + depth fixed effects on pages with a known outcome,
    clustered by session; the estimate is the odds ratio per level, exp(b). The table holds the
    churn rate per level (cluster-adjusted Wilson intervals).
    """
    frame = _frame(pages)
    rows = frame[frame["known"]]
    table = cluster_rates(rows, "state_purchase_power")
    coef, reason = _leave_odds_ratio(rows, rows["state_purchase_power"].astype(float))
    return _result(
        key="purchase_power_churn",
        name="Purchase power and churn",
        question="At the same depth, do users of higher purchase-power levels leave less?",
        statistic="odds ratio of leaving per purchase-power level, same depth",
        method="logistic model of leaving with depth fixed effects; session-clustered "
        "standard errors",
        coef=coef,
        expected="<",
        margin=MARGINS["ratio_per_step"],
        rows=rows,
        table=table,
        reason=reason,
    )


#: Engagement levels of the engagement table (clicks + carts on the page).
ENGAGEMENT_BINS = (0, 1, 2, 3, 4)
#: Depth bands of the engagement table.
DEPTH_BANDS = {"page 0": (0, 0), "pages 1-3": (1, 3), "pages 4-11": (4, MAX_PAGE_ID)}


def engagement_retention(pages: pd.DataFrame) -> HypothesisResult:
    """Engagement on page t vs retention at t + 1: does a page with a click or a cart more
    often lead to a request for the next page?

    logit h = a + b·[engagement > 0] + c·(purchase power) + depth fixed effects on pages with a
    known outcome, clustered by session; the estimate is the odds ratio of leaving exp(b)
    (below 1: engaged pages are followed by a next page more often). The table holds the
    retention rate 1 − h per engagement level (0, 1, 2, 3, 4+) and depth band.
    """
    frame = _frame(pages)
    rows = frame[frame["known"]].copy()
    level = np.minimum(rows["engagement"].to_numpy(), ENGAGEMENT_BINS[-1])
    rows["engagement_level"] = level
    depth = rows["action_page_id"].to_numpy()
    rows["depth_band"] = np.select(
        [(depth >= lo) & (depth <= hi) for lo, hi in DEPTH_BANDS.values()],
        list(DEPTH_BANDS),
        default="",
    )
    rows["stayed"] = 1 - rows["done"]
    table = cluster_rates(rows, ["depth_band", "engagement_level"], y="stayed")
    table["engagement_label"] = [
        f"{v}+" if v == ENGAGEMENT_BINS[-1] else str(v) for v in table["engagement_level"]
    ]
    engaged = (rows["engagement"].to_numpy() > 0).astype(float)
    coef, reason = _leave_odds_ratio(
        rows,
        pd.Series(engaged, index=rows.index, name="engaged"),
        [rows["state_purchase_power"].astype(float)],
    )
    details: dict[str, float] = {}
    if coef is not None:
        y = rows["done"].to_numpy()
        details = {
            "retention_engaged": float(1 - y[engaged == 1].mean()),
            "retention_not_engaged": float(1 - y[engaged == 0].mean()),
            "engaged_share": float(engaged.mean()),
        }
    return _result(
        key="engagement",
        name="Engagement",
        question="Is a page with a click or an add-to-cart less often the last page than a "
        "page without, at the same depth?",
        statistic="odds ratio of leaving, engaged vs not engaged page, same depth",
        method="logistic model of leaving with depth fixed effects and purchase power; "
        "session-clustered standard errors",
        coef=coef,
        expected="<",
        margin=MARGINS["ratio_per_contrast"],
        rows=rows,
        table=table,
        details=details,
        reason=reason,
    )


def purchase_reset(pages: pd.DataFrame) -> HypothesisResult:
    """Does a purchase reset the churn clock? The hazard on the page after a purchase against
    pages at the same depth whose previous page had none.

    Pages t ≥ 1 (within their session) with a known outcome; exposure = a purchase on page
    t − 1. logit h = a + b·[purchase on t − 1] + depth fixed effects + c·(purchase power)
    + e·ln(1 + engagement on t − 1), clustered by session; the estimate is exp(b). Depth is the
    main confounder (purchases and leaving both change with depth); purchase power and the
    previous page's engagement separate the reset from "buyers are engaged, loyal users" as far
    as observed columns allow. The table holds the hazard per depth for both kinds of page
    (Wilson intervals: one page per session and depth).
    """
    frame = _frame(pages).sort_values(["session_id", "line_no"], kind="stable")
    first = frame["session_id"].ne(frame["session_id"].shift()).to_numpy()
    prev_bought = np.r_[0, frame["purchased"].to_numpy()[:-1]]
    frame = frame.assign(after_purchase=np.where(first, 0, prev_bought), first_row=first)
    rows = frame[frame["known"] & ~frame["first_row"]]
    table = cluster_rates(rows, ["action_page_id", "after_purchase"])
    exposure = rows["after_purchase"].to_numpy().astype(float)
    coef, reason = _leave_odds_ratio(
        rows,
        pd.Series(exposure, index=rows.index, name="after_purchase"),
        [
            rows["state_purchase_power"].astype(float),
            np.log1p(rows["prev_engagement"].astype(float)),
        ],
    )
    details: dict[str, float] = {}
    if coef is not None:
        y = rows["done"].to_numpy()
        details = {
            "rate_after_purchase": float(y[exposure == 1].mean()),
            "rate_without": float(y[exposure == 0].mean()),
            "pages_after_purchase": float((exposure == 1).sum()),
        }
    return _result(
        key="purchase_reset",
        name="Purchase resets the clock",
        question="At the same depth, is the page after a purchase less often the last one?",
        statistic="odds ratio of leaving, page after a purchase vs none, same depth",
        method="logistic model of leaving with depth fixed effects, purchase power and the "
        "previous page's engagement; session-clustered standard errors",
        coef=coef,
        expected="<",
        margin=MARGINS["ratio_per_contrast"],
        rows=rows,
        table=table,
        details=details,
        reason=reason,
    )


#: The item-mix variables, standardised over pages: name -> (label, transform of the column).
MIX_VARIABLES: dict[str, tuple[str, Callable[[pd.DataFrame], np.ndarray]]] = {
    "z_log_ctr": ("mean predicted CTR (log)", lambda f: np.log(f["mean_ctr"].to_numpy(float))),
    "z_log_cvr": ("mean predicted CVR (log)", lambda f: np.log(f["mean_cvr"].to_numpy(float))),
    "z_log_price": ("mean log price", lambda f: f["mean_log_price"].to_numpy(float)),
}


def _mix_design(rows: pd.DataFrame) -> pd.DataFrame:
    cols = {}
    for name, (_, transform) in MIX_VARIABLES.items():
        with np.errstate(divide="ignore"):
            v = transform(rows)
        v = np.where(np.isfinite(v), v, np.nan)
        sd = np.nanstd(v)
        cols[name] = (v - np.nanmean(v)) / sd if sd > 0 else np.zeros_like(v)
    X = pd.DataFrame(cols, index=rows.index).fillna(0.0)
    power = rows["state_purchase_power"].astype(float)
    # as in _leave_odds_ratio: a purchase power that does not vary adjusts for nothing
    adjust = [power] if power.nunique() > 1 else []
    return pd.concat([X, *adjust, _depth_dummies(rows["action_page_id"])], axis=1)


def _mix_table(res: Any, outcome: str) -> pd.DataFrame:
    rows = []
    for name, (label, _) in MIX_VARIABLES.items():
        c = _ratio(res, name)
        rows.append(
            {
                "outcome": outcome,
                "variable": name,
                "label": label,
                "ratio": c.estimate,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "p_value": c.p_value,
            }
        )
    return pd.DataFrame(rows)


def _mix_fit(
    rows: pd.DataFrame, y: np.ndarray, *, family: str, term: str, outcome: str
) -> tuple[_Coef, pd.DataFrame]:
    """The GLM of ``y`` (one value per row of ``rows``) on :func:`_mix_design`, clustered by
    session: the ratio of ``term`` and the :func:`_mix_table` of all three mix terms."""
    res = _glm(y, _mix_design(rows), rows["session_id"].to_numpy(), family=family)
    return _ratio(res, term), _mix_table(res, outcome)


def item_mix_churn(pages: pd.DataFrame) -> HypothesisResult:
    """Item mix vs churn: does a page of more clickable items (higher mean predicted CTR) lead
    to less leaving?

    logit h = a + Σ_k b_k z_k + c·(purchase power) + depth fixed effects on pages with a known
    outcome, clustered by session, with z_k the page's standardised mean log CTR, mean log CVR
    and mean log price (:data:`MIX_VARIABLES`). The estimate is the odds ratio per standard
    deviation of the CTR term, exp(b_ctr); the table holds all three (the figure). The mix is
    not adjusted for the page's clicks: its effect through engagement is part of what the
    platform's choice of items does.
    """
    frame = _frame(pages)
    rows = frame[frame["known"]]
    y = rows["done"].to_numpy()
    reason = _testable(y)
    coef, table = None, pd.DataFrame()
    if reason is None:
        coef, table = _mix_fit(
            rows, y, family="binomial", term="z_log_ctr", outcome="churn (odds ratio)"
        )
    return _result(
        key="item_mix_churn",
        name="Item mix and churn",
        question="At the same depth, is a page of more clickable items (higher predicted CTR) "
        "less often the last one?",
        statistic="odds ratio of leaving per SD of the page's mean log CTR",
        method="logistic model of leaving on the standardised mix (CTR, CVR, price), purchase "
        "power and depth fixed effects; session-clustered standard errors",
        coef=coef,
        expected="<",
        margin=MARGINS["ratio_per_contrast"],
        rows=rows,
        table=table,
        reason=reason,
    )


def item_mix_spend(pages: pd.DataFrame) -> HypothesisResult:
    """Item mix vs spend: does a page of items more likely to convert (higher mean predicted
    CVR) sell more?

    Poisson pseudo-likelihood (log link) for the mean page reward,
    log E[reward] = a + Σ_k b_k z_k + c·(purchase power) + depth fixed effects, on all pages,
    clustered by session (the sandwich errors make it valid for a non-negative, zero-heavy
    amount in Yuan, whatever its variance); the estimate is the ratio of mean spend per
    standard deviation of the CVR term, exp(b_cvr); the table holds all three terms.
    """
    frame = _frame(pages)
    y = frame["reward"].to_numpy(dtype=float)
    reason = None if (y > 0).any() else "no page has a purchase"
    coef, table = None, pd.DataFrame()
    if reason is None:
        coef, table = _mix_fit(
            frame, y, family="poisson", term="z_log_cvr", outcome="spend (ratio of means)"
        )
    return _result(
        key="item_mix_spend",
        name="Item mix and spend",
        question="At the same depth, does a page of items more likely to convert (higher "
        "predicted CVR) sell more?",
        statistic="ratio of mean page reward per SD of the page's mean log CVR",
        method="Poisson pseudo-likelihood (log link) on the standardised mix, purchase power "
        "and depth fixed effects; session-clustered standard errors",
        coef=coef,
        expected=">",
        margin=MARGINS["ratio_per_contrast"],
        rows=frame,
        table=table,
        reason=reason,
    )


# --------------------------------------------------------------------------------------------
# Data-constraint audit
# --------------------------------------------------------------------------------------------
#: Name tokens of direct personal identifiers (a column name is split on ``_``).
PII_TOKENS = frozenset(
    {
        "user", "userid", "uid", "customer", "member", "account", "nick", "nickname", "name",
        "email", "mail", "phone", "mobile", "address", "ip", "device", "imei", "idfa", "cookie",
        "ssn", "passport", "birthday", "dob", "zip", "postcode", "lat", "lon", "location",
    }
)  # fmt: skip
#: Row and session identifiers of the pages table: lineage, not features.
ROW_IDENTIFIERS = ("session_id", "line_no")
#: Name tokens of calendar time.
DATE_TOKENS = frozenset(
    {"date", "day", "week", "month", "year", "timestamp", "ts", "datetime", "epoch"}
)
#: Largest |Spearman| between a feature and a protected attribute before a human should look.
PROXY_LIMIT = 0.3


def _tokens(column: str) -> set[str]:
    return set(re.split(r"[_\W]+", column.lower())) - {""}


def audit_constraints(
    pages: pd.DataFrame, feature_sets: Mapping[str, FeatureSet] = FEATURE_SETS
) -> tuple[AuditCheck, ...]:
    """Check the data constraints against the actual columns and values.

    Checks (each computed from ``pages`` and ``feature_sets``):

    1. no direct identifier among the features: no feature column's name holds a token of
       :data:`PII_TOKENS` or is a row identifier (:data:`ROW_IDENTIFIERS`), every feature is
       numeric, and none takes a distinct value in most sessions while constant within them
       (an identifier in disguise);
    2. protected attributes (:data:`microsub.contract.PROTECTED_COLUMNS`) in no feature set;
    3. no feature is a strong proxy of a protected attribute (|Spearman| < :data:`PROXY_LIMIT`;
       ``"review"`` otherwise);
    4. historical depth: a calendar-date column exists (``"cannot meet"`` when none);
    5. freshness: the same evidence (without dates the data's age cannot be measured);
    6. user identity across sessions: a user identifier exists (``"cannot meet"`` when none);
    7. hour of day present (the hour hypothesis and the cyclical feature need it).

    Args:
        pages: the pages table (with or without the derived features).
        feature_sets: the feature sets to audit (default: every set the package builds).
    """
    frame = _frame(pages)
    checks: list[AuditCheck] = []
    all_features = sorted({c for fs in feature_sets.values() for c in fs.columns})

    # 1. direct identifiers
    named = [c for c in all_features if _tokens(c) & PII_TOKENS or c in ROW_IDENTIFIERS]
    present = [c for c in all_features if c in frame.columns]
    non_numeric = [c for c in present if not pd.api.types.is_numeric_dtype(frame[c])]
    disguised = []
    n_sessions = frame["session_id"].nunique()
    for c in present:
        per_session = frame.groupby("session_id")[c].nunique()
        if (per_session <= 1).all() and frame[c].nunique() > 0.5 * n_sessions > 1:
            disguised.append(c)
    bad = sorted(set(named) | set(non_numeric) | set(disguised))
    checks.append(
        AuditCheck(
            "no direct identifier among the features",
            "fail" if bad else "pass",
            (
                f"offending columns: {bad}"
                if bad
                else f"{len(all_features)} feature columns in {len(feature_sets)} sets: none is "
                "named like a personal identifier or row id, all numeric, none constant within "
                "sessions and distinct across most of them"
            ),
        )
    )

    # 2. protected attributes
    leaks = {
        name: sorted(set(fs.columns) & set(PROTECTED_COLUMNS))
        for name, fs in feature_sets.items()
        if set(fs.columns) & set(PROTECTED_COLUMNS)
    }
    checks.append(
        AuditCheck(
            "protected attributes excluded from every feature set",
            "fail" if leaks else "pass",
            (
                f"feature sets with protected attributes: {leaks}"
                if leaks
                else f"{', '.join(PROTECTED_COLUMNS)} appear in none of the sets "
                f"{', '.join(sorted(feature_sets))}"
            ),
        )
    )

    # 3. proxies
    protected = [c for c in PROTECTED_COLUMNS if c in frame.columns]
    numeric = [c for c in present if c not in protected and frame[c].nunique() > 1]
    worst, worst_pair = 0.0, ("", "")
    if protected and numeric:
        corr = frame[numeric + protected].astype(float).corr(method="spearman")
        block = corr.loc[numeric, protected].abs().fillna(0.0)
        if block.size:
            worst = float(block.to_numpy().max())
            i, j = np.unravel_index(int(np.argmax(block.to_numpy())), block.shape)
            worst_pair = (block.index[i], block.columns[j])
    checks.append(
        AuditCheck(
            "no feature is a strong proxy of a protected attribute",
            "review" if worst >= PROXY_LIMIT else "pass",
            f"largest absolute Spearman correlation of a feature with a protected attribute: "
            f"{worst:.3f} "
            f"({worst_pair[0]} vs {worst_pair[1]}); limit {PROXY_LIMIT}",
        )
    )

    # 4-6. what the columns cannot give
    date_cols = [c for c in frame.columns if _tokens(c) & DATE_TOKENS]
    user_cols = [c for c in frame.columns if _tokens(c) & {"user", "userid", "uid", "customer"}]
    checks.append(
        AuditCheck(
            "historical depth (calendar dates)",
            "pass" if date_cols else "cannot meet",
            (
                f"date columns: {date_cols}"
                if date_cols
                else "no date column: the log gives the hour of day only, so trends, seasonality, "
                "cohorts and time-based splits are out of reach; splits are by session"
            ),
        )
    )
    checks.append(
        AuditCheck(
            "freshness",
            "pass" if date_cols else "cannot meet",
            (
                f"date columns: {date_cols}"
                if date_cols
                else "no timestamp: the age of the data and drift over calendar time cannot be "
                "measured; monitoring can only compare batches as they arrive"
            ),
        )
    )
    checks.append(
        AuditCheck(
            "user identity across sessions",
            "pass" if user_cols else "cannot meet",
            (
                f"user columns: {user_cols}"
                if user_cols
                else f"no user identifier: the {n_sessions:,} sessions are reconstructed from "
                "consecutive lines, a returning user counts as new sessions, sessions are "
                "treated as independent, and lifetime value is out of reach"
            ),
        )
    )
    has_hour = "hour" in frame.columns and frame["hour"].notna().any()
    checks.append(
        AuditCheck(
            "hour of day recorded",
            "pass" if has_hour else "cannot meet",
            (
                f"hour present on {frame['hour'].notna().mean():.1%} of pages"
                if has_hour
                else "the log's layout has no hour: the hour hypothesis cannot be tested"
            ),
        )
    )
    return tuple(checks)


# --------------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------------
def run_hypotheses(
    pages: pd.DataFrame,
    *,
    n_boot: int = 300,
    random_state: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[HypothesisResult, ...]:
    """The eight hypothesis tests, Holm-adjusted as one family (see the module docstring)."""
    frame = _frame(pages)
    tests: list[Callable[[pd.DataFrame], HypothesisResult]] = [
        fatigue,
        hour_of_day,
        lambda f: purchase_power_value(f, n_boot=n_boot, random_state=random_state),
        purchase_power_churn,
        engagement_retention,
        purchase_reset,
        item_mix_churn,
        item_mix_spend,
    ]
    results = []
    for test in tests:
        results.append(test(frame))
        if progress is not None:
            progress(1)
    return adjust(results)


#: Steps :func:`run_all` reports to ``progress`` (for a progress bar's total).
RUN_ALL_STEPS = 13


def run_all(
    pages: pd.DataFrame,
    *,
    n_boot: int = 300,
    random_state: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Exploration:
    """The whole exploration of a pages table.

    Args:
        pages: the pages table (contract columns).
        n_boot: bootstrap resamples of the session-level interval.
        random_state: seed of the bootstrap.
        progress: called with 1 after each of :data:`RUN_ALL_STEPS` steps.
    """
    tick = progress or (lambda n: None)
    frame = _frame(pages)
    tick(1)
    balance = class_balance(frame)
    tick(1)
    corr = correlation_matrix(frame)
    tick(1)
    rewards = reward_distribution(frame)
    survival = survival_by_purchase_power(frame)
    tick(1)
    results = run_hypotheses(frame, n_boot=n_boot, random_state=random_state, progress=tick)
    audit = audit_constraints(frame)
    tick(1)
    return Exploration(
        n_pages=len(frame),
        n_sessions=int(frame["session_id"].nunique()),
        class_balance=balance,
        correlation=corr,
        rewards=rewards,
        survival=survival,
        hypotheses=results,
        audit=audit,
    )
