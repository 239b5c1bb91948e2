"""Statistics helpers of the exploration: intervals, cluster-robust rates and GLMs, the bootstrap.

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
  bootstrap intervals resample sessions (:func:`bootstrap_ci`).

The eight hypothesis tests form one family: p-values are adjusted with Holm's step-down method
(:func:`adjust`), which controls the family-wise error rate at ``alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.stats import norm
from statsmodels.genmod.generalized_linear_model import GLMResultsWrapper
from statsmodels.stats.proportion import proportion_confint
from threadpoolctl import threadpool_limits

#: Family-wise error rate of the hypothesis family.
ALPHA = 0.05


#: Coverage of every interval.
LEVEL = 0.95


#: Multiple-testing correction (a method name of statsmodels' ``multipletests``).
CORRECTION = "holm"


def z_value() -> float:

    return float(norm.ppf(0.5 + LEVEL / 2))


def wilson_interval(
    events: np.ndarray, n: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of proportions ``events / n`` (arrays; ``n`` may be fractional).

    Returns (low, high); NaN where ``n`` is 0.
    """

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
class Coef:
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float


def glm(
    y: np.ndarray,
    X: pd.DataFrame,
    groups: np.ndarray,
    family: str = "binomial",
) -> GLMResultsWrapper:
    """A GLM (logit link for ``"binomial"``, log link for ``"poisson"``) with an intercept and
    cluster-robust standard errors (clusters = ``groups``). Returns statsmodels' results."""

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


def ratio_of(res: GLMResultsWrapper, name: str) -> Coef:
    """exp(coefficient) of ``name`` with its interval and two-sided p-value."""
    b = float(res.params[name])
    se = float(res.bse[name])
    z = z_value()
    return Coef(
        float(np.exp(b)),
        float(np.exp(b - z * se)),
        float(np.exp(b + z * se)),
        float(res.pvalues[name]),
    )


def depth_dummies(depth: pd.Series) -> pd.DataFrame:
    """Fixed effects of page depth: one 0/1 column per depth but the smallest present."""
    return pd.get_dummies(depth.astype(int), prefix="depth", drop_first=True, dtype=float)


def testable(y: np.ndarray, exposure: np.ndarray | None = None) -> str | None:
    """Why a binary-outcome test cannot run (no variation), or None when it can."""
    if len(y) == 0:
        return "no observations"
    if np.nanmin(y) == np.nanmax(y):
        return "the outcome does not vary (no terminal flags in this log?)"
    if exposure is not None and np.nanmin(exposure) == np.nanmax(exposure):
        return "the exposure does not vary"
    return None


def bootstrap_ci(
    statistic,
    *arrays: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    random_state: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*arrays)``, resampling groups when given.

    Resampling whole sessions (``groups``) keeps the dependence between pages of one session, which
    a page-level bootstrap would ignore (intervals too narrow).

    Args:
        statistic: function of the arrays (same length n) returning a float.
        arrays: arrays of shape (n,).
        groups: shape (n,) group ids, or None to resample rows.
        n_boot: bootstrap replicates.
        level: coverage of the interval.

    Returns:
        (low, high).
    """
    rng = np.random.default_rng(random_state)
    n = len(arrays[0])
    if groups is None:
        samples = (rng.integers(0, n, n) for _ in range(n_boot))
    else:
        codes, uniq = pd.factorize(np.asarray(groups))
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(len(uniq)))
        sizes = np.bincount(codes, minlength=len(uniq))

        def draw() -> np.ndarray:
            chosen = rng.integers(0, len(uniq), len(uniq))
            k = sizes[chosen]
            # row j of the resample = start of its group + its rank within the group
            begin = np.cumsum(k) - k
            rank = np.arange(k.sum()) - np.repeat(begin, k)
            return order[np.repeat(starts[chosen], k) + rank]

        samples = (draw() for _ in range(n_boot))
    values = np.array([statistic(*(np.asarray(a)[idx] for a in arrays)) for idx in samples])
    alpha = (1 - level) / 2
    low, high = np.nanquantile(values, [alpha, 1 - alpha])
    return float(low), float(high)
