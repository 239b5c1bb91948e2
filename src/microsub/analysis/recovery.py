"""Does the analysis recover the truth? The generator's leave model, refitted on its own log.

On synthetic data the hazard of leaving is known: :func:`microsub.sim.dynamics.leave_logit`
writes the terminal flag with the log-odds

    eta = a + bounce·[d = 0] + depth·d + night_depth·d·night(h) + since_purchase·s
          − hour·c(h) − power·(pp − 4) − engagement·ln(1 + clicks + carts)
          − mix·(ln CTR of the page − log_ctr_mean) + leave_user_sd·z

(the coefficients are fields of :class:`microsub.sim.params.SynthParams`; night_depth is
``leave_depth · leave_night_fatigue``). :func:`recover_leave_model` fits this logit, term by
term, on what the pages table records (pages with a known outcome, standard errors clustered by
session) and sets each estimate, with its interval, beside the true coefficient. Terms that the
generator subtracts enter the design with a minus sign, so every estimate reads on the scale and
with the sign of its :class:`SynthParams` field.

Why a true value can fall outside its interval
==============================================

* The unobserved propensity ``z`` is in the generator, not in any model fitted on the log. A
  logit without it estimates population-averaged coefficients, which are pulled towards zero,
  and the pages at depth d are those of the sessions that survived to d, a group selected for a
  low ``z`` (survivor bias): the depth terms suffer most.
* ``z`` is correlated with the user's click propensity (``click_user_corr``), so the
  engagement term also carries part of ``z``: its estimate is pushed away from zero.
* The pages table holds the page's mean CTR, not the mean of the items' log CTR that the
  generator uses: ln(mean CTR) stands in for it, a proxy (the two differ by a Jensen term that
  varies little between pages).

With many pages the intervals are narrow, so these biases, small as they are, show; the
comparison says how far each estimate is from the truth rather than assuming it is close. The
control that isolates the first two causes is a log written by the same generator without the
propensity (:func:`without_propensity`): there the same fit should cover the truth, and
:func:`with_control` sets its estimates beside the run's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from microsub.analysis.describe import pages_frame
from microsub.analysis.stats import glm, testable, z_value
from microsub.sim.dynamics import hour_log_traffic, is_night
from microsub.sim.params import SynthParams


@dataclass(frozen=True)
class LeaveTerm:
    """One term of the generator's leave logit.

    Attributes:
        key: the column of the design (:func:`leave_design`).
        meaning: what the coefficient measures, in words, with its unit (the coefficient is
            in log-odds of leaving per that unit).
        parameters: the :class:`SynthParams` fields that set it.
        truth: the true coefficient from the parameters (log-odds, the generator's sign).
    """

    key: str
    meaning: str
    parameters: tuple[str, ...]
    truth: Callable[[SynthParams], float]


#: The terms of the leave logit, in the order of the module docstring's formula (the intercept
#: is left out: it is a baseline level, not an effect any hypothesis is about).
LEAVE_TERMS: tuple[LeaveTerm, ...] = (
    LeaveTerm(
        "bounce",
        "bounce after the first page",
        ("leave_bounce",),
        lambda p: p.leave_bounce,
    ),
    LeaveTerm(
        "depth",
        "fatigue per page of depth (daytime)",
        ("leave_depth",),
        lambda p: p.leave_depth,
    ),
    LeaveTerm(
        "night_depth",
        "extra fatigue per page at night (0-5 h)",
        ("leave_depth", "leave_night_fatigue"),
        lambda p: p.leave_depth * p.leave_night_fatigue,
    ),
    LeaveTerm(
        "since_purchase",
        "churn clock, per page since the last purchase",
        ("leave_since_purchase",),
        lambda p: p.leave_since_purchase,
    ),
    LeaveTerm(
        "hour",
        "retention per unit of the hour's log traffic",
        ("leave_hour",),
        lambda p: p.leave_hour,
    ),
    LeaveTerm(
        "power",
        "retention per purchase-power level",
        ("leave_power",),
        lambda p: p.leave_power,
    ),
    LeaveTerm(
        "engagement",
        "retention per unit of ln(1 + clicks + carts)",
        ("leave_engagement",),
        lambda p: p.leave_engagement,
    ),
    LeaveTerm(
        "mix",
        "retention per unit of the page's log CTR",
        ("leave_mix",),
        lambda p: p.leave_mix,
    ),
)


def generator_since_purchase(frame: pd.DataFrame) -> np.ndarray:
    """The generator's churn clock ``s`` per page, shape (n,): pages since the last purchase
    (0 on a page with one), or the depth d while the session has none yet.

    Args:
        frame: pages with the derived features (:func:`microsub.analysis.describe.pages_frame`),
            sorted by session and line (its ``pages_since_purchase`` counts t + 1 before any
            purchase; the generator counts d).
    """
    bought_yet = frame.groupby("session_id", sort=False)["purchased"].cumsum().to_numpy() > 0
    return np.where(
        bought_yet,
        frame["pages_since_purchase"].to_numpy(dtype=float),
        frame["action_page_id"].to_numpy(dtype=float),
    )


def leave_design(frame: pd.DataFrame, params: SynthParams) -> pd.DataFrame:
    """The design of the generator's leave logit on the pages, one column per
    :data:`LEAVE_TERMS` key (float64, indexed like ``frame``; subtracted terms negated).

    Args:
        frame: pages with the derived features, sorted by session and line.
        params: the generator's parameters (for ``c(h)`` and ``log_ctr_mean``).
    """
    d = frame["action_page_id"].to_numpy(dtype=float)
    hour = frame["hour"].to_numpy(dtype=float)
    known_hour = np.isfinite(hour)
    h = np.where(known_hour, hour, 0).astype(int)
    traffic = np.where(known_hour, hour_log_traffic(params)[h], 0.0)
    night = np.where(known_hour, is_night(h), 0.0)
    with np.errstate(divide="ignore"):
        log_ctr = np.log(frame["mean_ctr"].to_numpy(dtype=float))
    return pd.DataFrame(
        {
            "bounce": (d == 0).astype(float),
            "depth": d,
            "night_depth": d * night,
            "since_purchase": generator_since_purchase(frame),
            "hour": -traffic,
            "power": -(frame["state_purchase_power"].to_numpy(dtype=float) - 4.0),
            "engagement": -np.log1p(frame["engagement"].to_numpy(dtype=float)),
            "mix": -(
                np.where(np.isfinite(log_ctr), log_ctr, params.log_ctr_mean) - params.log_ctr_mean
            ),
        },
        index=frame.index,
    )


def recover_leave_model(pages: pd.DataFrame, params: SynthParams) -> pd.DataFrame:
    """Each coefficient of the generator's leave logit beside its estimate on the pages.

    Logistic regression of ``done`` on :func:`leave_design` (with an intercept) over the pages
    with a known outcome, standard errors clustered by session, 95 % Wald intervals (the level
    of :mod:`microsub.analysis.stats`). Columns that do not vary in the data are left out of
    the fit and get no estimate.

    Args:
        pages: the pages table (contract columns) of a log written by the generator.
        params: the parameters the generator ran with.

    Returns:
        One row per :data:`LEAVE_TERMS` entry: ``term``, ``meaning``, ``parameters``
        (comma-separated field names), ``truth``, ``estimate``, ``ci_low``, ``ci_high``
        (log-odds, the generator's sign), ``covered`` (the truth lies in the interval; False
        without an estimate) and ``relative`` (estimate / truth). Empty when the outcome does
        not vary.
    """
    frame = pages_frame(pages).sort_values(["session_id", "line_no"], kind="stable")
    design = leave_design(frame, params)
    known = frame["known"].to_numpy()
    rows, X = frame[known], design[known]
    y = rows["done"].to_numpy()
    if testable(y) is not None:
        return pd.DataFrame(
            columns=[
                "term",
                "meaning",
                "parameters",
                "truth",
                "estimate",
                "ci_low",
                "ci_high",
                "covered",
                "relative",
            ]
        )
    X = X.loc[:, X.nunique() > 1]
    res = glm(y, X, rows["session_id"].to_numpy())
    z = z_value()
    out = []
    for term in LEAVE_TERMS:
        truth = float(term.truth(params))
        if term.key in res.params.index:
            b, se = float(res.params[term.key]), float(res.bse[term.key])
            low, high = b - z * se, b + z * se
        else:
            b = low = high = math.nan
        out.append(
            {
                "term": term.key,
                "meaning": term.meaning,
                "parameters": ", ".join(term.parameters),
                "truth": truth,
                "estimate": b,
                "ci_low": low,
                "ci_high": high,
                "covered": bool(low <= truth <= high),
                "relative": b / truth if truth else math.nan,
            }
        )
    return pd.DataFrame(out)


def without_propensity(params: SynthParams) -> SynthParams:
    """``params`` with the unobserved propensity to leave switched off
    (``leave_user_sd = 0``) and the user's click propensity made independent of it
    (``click_user_corr = 0``): the generator of the control log, whose leave model a logit
    on the pages table specifies exactly (up to the CTR proxy)."""
    return params.replace(leave_user_sd=0.0, click_user_corr=0.0)


def with_control(table: pd.DataFrame, control: pd.DataFrame) -> pd.DataFrame:
    """``table`` (:func:`recover_leave_model` on the run's log) with the same fit on the
    control log (:func:`without_propensity`) as ``control_estimate``, ``control_ci_low``,
    ``control_ci_high``, ``control_covered`` and ``control_relative`` (matched by ``term``;
    NaN, and False for the coverage, for a term the control lacks)."""
    cols = {
        "estimate": "control_estimate",
        "ci_low": "control_ci_low",
        "ci_high": "control_ci_high",
        "covered": "control_covered",
        "relative": "control_relative",
    }
    part = control.set_index("term")[list(cols)].rename(columns=cols)
    out = table.join(part, on="term")
    out["control_covered"] = out["control_covered"].eq(True)
    return out
