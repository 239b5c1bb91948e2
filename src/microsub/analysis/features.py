"""Features of a page, from the pages table; named feature sets for the models.

Two moments of a page matter, as in the reinforcement-learning view of the log (state, action,
reward, next state):

* **end of page t** (``view="post"``): everything known once the user has scrolled page t: the
  profile, the hour, the depth, what page t showed and what the user did on it. The churn model
  uses this view: will the user ask for page t+1?  (target ``done``)
* **start of page t** (``view="pre"``): what is known when page t is requested: the profile, the
  hour, the depth, the history up to page t-1, and the mix of items the platform chose to show
  (the action). The value model uses this view: what will page t be worth? (target ``reward``)

Using the post view to predict the same page's reward would leak the answer (page value is a
feature of it), so each target has its own view.

The five golden features (the book's chapter 03): purchase power, hour of day (as sin/cos of the
angle 2π·hour/24 so 23 h and 0 h are neighbours), engagement = clicks + carts on the page, page
depth (``action_page_id``), and page value (Yuan). Protected attributes (``age_level``,
``gender``) are never part of any feature set; :func:`feature_matrix` refuses them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numba import njit

from microsub.contract import MAX_PAGE_ID, PROTECTED_COLUMNS
from microsub.errors import ContractError

View = Literal["post", "pre"]

#: What a client knows of each page of a session so far: the columns of a session table
#: (:func:`session_rows`), in order (contract names and units).
SESSION_FIELDS = (
    "action_page_id",
    "hour",
    "state_purchase_power",
    "n_clicks",
    "n_carts",
    "n_favs",
    "n_purchases",
    "page_value",
    "mean_ctr",
    "mean_cvr",
    "mean_log_price",
)
#: Columns of the pages table the derived features need.
REQUIRED_COLUMNS = ("session_id", "line_no", *SESSION_FIELDS, "engagement")


@dataclass(frozen=True)
class FeatureSet:
    """A named list of feature columns and the moment they are known.

    Attributes:
        name: key in :data:`FEATURE_SETS`.
        view: ``"post"`` (end of page t) or ``"pre"`` (start of page t).
        columns: feature column names, in the order of the design matrix.
        description: one line for tables in the book.
    """

    name: str
    view: View
    columns: tuple[str, ...]
    description: str


GOLDEN = (
    "state_purchase_power",
    "hour_sin",
    "hour_cos",
    "engagement",
    "action_page_id",
    "page_value",
)

FEATURE_SETS: dict[str, FeatureSet] = {
    "golden": FeatureSet(
        "golden",
        "post",
        GOLDEN,
        "the five golden features at the end of page t",
    ),
    "churn": FeatureSet(
        "churn",
        "post",
        GOLDEN
        + (
            "n_favs",
            "purchased",
            "mean_ctr",
            "mean_cvr",
            "mean_log_price",
            "cum_value",
            "cum_engagement",
            "pages_since_purchase",
        ),
        "golden features plus the item mix, favs and the session so far (end of page t)",
    ),
    "value": FeatureSet(
        "value",
        "pre",
        (
            "state_purchase_power",
            "hour_sin",
            "hour_cos",
            "action_page_id",
            "mean_ctr",
            "mean_cvr",
            "mean_log_price",
            "prev_engagement",
            "prev_cum_value",
            "prev_pages_since_purchase",
        ),
        "profile, hour, depth, the items shown and the session before page t (start of page t)",
    ),
}


def _check(pages: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in pages.columns]
    if missing:
        raise ContractError(
            f"pages table lacks {missing} needed for features; it has {list(pages.columns)}"
        )


#: Columns :func:`derive` computes, in the order :func:`add_features` appends them.
DERIVED_COLUMNS = (
    "hour_sin",
    "hour_cos",
    "purchased",
    "cum_value",
    "cum_engagement",
    "pages_since_purchase",
    "prev_engagement",
    "prev_cum_value",
    "prev_pages_since_purchase",
)


#: Columns :func:`session_rows` can return: the fields, ``engagement`` (clicks + carts, the
#: contract's definition) and :data:`DERIVED_COLUMNS`.
SESSION_COLUMNS = (*SESSION_FIELDS, "engagement", *DERIVED_COLUMNS)
#: sin and cos of 2π·hour/24 for hour = 0..23: :func:`derive`'s formula, tabulated (the same
#: NumPy evaluation, so a page scored online gets the batch path's numbers).
HOUR_SIN = np.sin(2.0 * np.pi * np.arange(24.0) / 24.0)
HOUR_COS = np.cos(2.0 * np.pi * np.arange(24.0) / 24.0)

_HOUR, _CLICKS, _CARTS, _PURCHASES, _VALUE = (
    SESSION_FIELDS.index(c) for c in ("hour", "n_clicks", "n_carts", "n_purchases", "page_value")
)
_ENGAGEMENT = len(SESSION_FIELDS)  # then DERIVED_COLUMNS, in order (as _session_rows reads them)


def session_starts(session_id: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: True on the first row of each session of ``session_id`` ``(n,)``, whose
    rows of one session are contiguous (sorted by session, then line)."""
    session_id = np.asarray(session_id)
    first = np.ones(len(session_id), dtype=bool)
    first[1:] = session_id[1:] != session_id[:-1]
    return first


@njit(cache=True)
def _session_kernel(first, bought, engagement, page_value):  # noqa: ANN001, ANN202 - numba
    """The history columns of :func:`derive`, one pass over the rows in session order.

    ``cum_value`` is Kahan-compensated (``y = v - c; t = s + y; c = (t - s) - y; s = t``), the
    summation pandas' grouped ``cumsum`` performs, so the numbers are those of
    ``groupby(session).cumsum()``; a NaN value gives NaN and leaves the sum as it was.
    """
    n = first.shape[0]
    cum_value = np.empty(n)
    cum_engagement = np.empty(n, np.int64)
    since = np.empty(n, np.int64)
    prev_engagement = np.empty(n, np.int64)
    prev_cum_value = np.empty(n)
    prev_since = np.empty(n, np.int64)
    total = 0.0
    carry = 0.0
    engaged = 0
    pos = 0
    last_buy = -1
    for i in range(n):
        if first[i]:
            total, carry, engaged, pos, last_buy = 0.0, 0.0, 0, 0, -1
            prev_engagement[i], prev_cum_value[i], prev_since[i] = 0, 0.0, 0
        else:
            pos += 1
            prev_engagement[i] = engagement[i - 1]
            prev_cum_value[i] = cum_value[i - 1]
            prev_since[i] = since[i - 1]
        v = page_value[i]
        if v == v:
            y = v - carry
            t = total + y
            carry = t - total - y
            total = t
            cum_value[i] = t
        else:
            cum_value[i] = np.nan
        engaged += engagement[i]
        cum_engagement[i] = engaged
        if bought[i]:
            last_buy = pos
        since[i] = pos - last_buy
    return cum_value, cum_engagement, since, prev_engagement, prev_cum_value, prev_since


def derive(
    first: np.ndarray,
    hour: np.ndarray,
    n_purchases: np.ndarray,
    engagement: np.ndarray,
    page_value: np.ndarray,
) -> dict[str, np.ndarray]:
    """The derived feature columns of pages in session order (:func:`add_features` stores them).

    The session history (running sums, pages since a purchase, the previous page's values) is
    computed by one compiled kernel that :func:`session_rows`, the online path, runs too; the
    hour's sin and cos by the formula that :data:`HOUR_SIN` / :data:`HOUR_COS` tabulate.

    Args:
        first: ``(n,)`` bool, True on each session's first row (:func:`session_starts`); rows
            of a session are contiguous and in page order.
        hour: ``(n,)`` hour of day 0..23 (float; NaN when missing).
        n_purchases: ``(n,)`` purchases on the page (count).
        engagement: ``(n,)`` clicks + carts on the page (integer count).
        page_value: ``(n,)`` Yuan spent on the page.

    Returns:
        :data:`DERIVED_COLUMNS` -> ``(n,)`` array (definitions in :func:`add_features`), with
        the dtypes :func:`add_features` stores: float64 for the angles and the Yuan, int8
        ``purchased``, int32 ``cum_engagement``, int16 for the page counts.
    """
    hour = np.asarray(hour, dtype=np.float64)
    angle = 2.0 * np.pi * hour / 24.0
    missing = np.isnan(angle)
    bought = np.asarray(n_purchases) > 0
    cum_value, cum_eng, since, prev_eng, prev_value, prev_since = _session_kernel(
        np.ascontiguousarray(first, dtype=np.bool_),
        bought,
        np.ascontiguousarray(engagement, dtype=np.int64),
        np.ascontiguousarray(page_value, dtype=np.float64),
    )
    return {
        "hour_sin": np.where(missing, 0.0, np.sin(angle)),
        "hour_cos": np.where(missing, 0.0, np.cos(angle)),
        "purchased": bought.astype(np.int8),
        "cum_value": cum_value,
        "cum_engagement": cum_eng.astype(np.int32),
        "pages_since_purchase": since.astype(np.int16),
        "prev_engagement": prev_eng.astype(np.int16),
        "prev_cum_value": prev_value,
        "prev_pages_since_purchase": prev_since.astype(np.int16),
    }


@njit(cache=True)
def _session_rows(table, lengths, take, hour_sin, hour_cos):  # noqa: ANN001, ANN202 - numba
    """:func:`session_rows` in one compiled pass (``take``: indices into SESSION_COLUMNS).
    Returns ``(rows, ok)``; ``ok`` False when an hour is neither missing nor an integer 0..23."""
    n, k = table.shape[0], lengths.shape[0]
    first = np.zeros(n, np.bool_)
    bought = np.empty(n, np.bool_)
    engagement = np.empty(n, np.int64)
    page_value = np.empty(n)
    start = 0
    for s in range(k):
        first[start] = True
        start += lengths[s]
    for i in range(n):
        bought[i] = table[i, _PURCHASES] > 0
        engagement[i] = np.int64(table[i, _CLICKS] + table[i, _CARTS])
        page_value[i] = table[i, _VALUE]
    cum_value, cum_eng, since, prev_eng, prev_value, prev_since = _session_kernel(
        first, bought, engagement, page_value
    )
    out = np.empty((k, take.shape[0]))
    ok = True
    last = -1
    for s in range(k):
        last += lengths[s]
        hour = table[last, _HOUR]
        if np.isnan(hour):
            sin, cos = 0.0, 0.0
        elif 0.0 <= hour <= 23.0 and hour == np.floor(hour):
            sin, cos = hour_sin[int(hour)], hour_cos[int(hour)]
        else:
            ok, sin, cos = False, np.nan, np.nan
        for j in range(take.shape[0]):
            c = take[j]
            if c < _ENGAGEMENT:
                out[s, j] = table[last, c]
            elif c == _ENGAGEMENT:
                out[s, j] = engagement[last]
            elif c == _ENGAGEMENT + 1:
                out[s, j] = sin
            elif c == _ENGAGEMENT + 2:
                out[s, j] = cos
            elif c == _ENGAGEMENT + 3:
                out[s, j] = 1.0 if bought[last] else 0.0
            elif c == _ENGAGEMENT + 4:
                out[s, j] = cum_value[last]
            elif c == _ENGAGEMENT + 5:
                out[s, j] = cum_eng[last]
            elif c == _ENGAGEMENT + 6:
                out[s, j] = since[last]
            elif c == _ENGAGEMENT + 7:
                out[s, j] = prev_eng[last]
            elif c == _ENGAGEMENT + 8:
                out[s, j] = prev_value[last]
            else:
                out[s, j] = prev_since[last]
    return out, ok


@functools.lru_cache(maxsize=64)
def _take(columns: tuple[str, ...]) -> np.ndarray:
    unknown = [c for c in columns if c not in SESSION_COLUMNS]
    if unknown:
        raise ContractError(f"session_rows computes {list(SESSION_COLUMNS)}; not {unknown}")
    protected = sorted(set(columns) & set(PROTECTED_COLUMNS))
    if protected:  # unreachable today (no session field is protected); kept as the rule
        raise ContractError(f"protected attributes {protected} may not be model features")
    return np.array([SESSION_COLUMNS.index(c) for c in columns], dtype=np.intp)


def session_rows(table: np.ndarray, lengths: np.ndarray, columns: tuple[str, ...]) -> np.ndarray:
    """Feature rows of the last page of each of ``k`` sessions: the online path's features.

    One compiled pass that runs the same history kernel as :func:`derive` (so
    :func:`add_features` on the same pages gives the same numbers; ``tests/test_features.py``
    and ``tests/test_scoring.py`` check it) and reads sin/cos of the hour from
    :data:`HOUR_SIN` / :data:`HOUR_COS`. No DataFrame, no per-column NumPy call: one page costs
    microseconds.

    Args:
        table: ``(n, len(SESSION_FIELDS))`` float64, the sessions' pages one after the other,
            each session's in page order, columns in :data:`SESSION_FIELDS` order (hour an
            integer 0..23, or NaN when missing).
        lengths: ``(k,)`` pages of each session (>= 1), summing to ``n``.
        columns: names in :data:`SESSION_COLUMNS`, e.g. a feature set's ``columns``.

    Returns:
        ``(k, len(columns))`` float64: row ``s`` holds ``columns`` at session ``s``'s last page.

    Raises:
        ContractError: a column it does not compute, an hour that is not an integer 0..23,
            a table of the wrong shape or lengths that do not add up.
    """
    table = np.ascontiguousarray(table, dtype=np.float64)
    lengths = np.ascontiguousarray(lengths, dtype=np.intp)
    if (
        table.ndim != 2
        or table.shape[1] != len(SESSION_FIELDS)
        or lengths.ndim != 1
        or lengths.size == 0
        or lengths.min() < 1
        or lengths.sum() != table.shape[0]
    ):
        raise ContractError(
            f"expected an (n, {len(SESSION_FIELDS)}) session table and session lengths >= 1 "
            f"summing to n; got a table of shape {table.shape} and lengths {lengths.tolist()}"
        )  # fmt: skip
    rows, ok = _session_rows(table, lengths, _take(tuple(columns)), HOUR_SIN, HOUR_COS)
    if not ok:
        hours = table[np.cumsum(lengths) - 1, _HOUR].tolist()
        raise ContractError(f"hour must be an integer 0..23 (or missing); last pages have {hours}")
    return rows


def add_features(pages: pd.DataFrame) -> pd.DataFrame:
    """Add the derived feature columns to a pages table.

    Args:
        pages: the pages table (contract columns), any row order; rows of one session must carry
            the same ``session_id`` and increasing ``line_no``.

    Returns:
        A copy sorted by (``session_id``, ``line_no``) with, in addition (:func:`derive`
        computes them, for this table and for a session scored online alike):

        * ``hour_sin`` = sin(2π·hour/24), ``hour_cos`` = cos(2π·hour/24) (0 when hour is missing,
          as in the 14-field example layout);
        * ``purchased`` = 1 if the page had a purchase;
        * ``cum_value`` = Σ page_value over pages 0..t of the session (Yuan, Kahan-compensated
          as pandas' grouped cumulative sum);
        * ``cum_engagement`` = Σ engagement over pages 0..t;
        * ``pages_since_purchase`` = t − (last page ≤ t with a purchase), or t + 1 when the
          session has no purchase yet (as if one happened just before page 0);
        * ``prev_engagement``, ``prev_cum_value``, ``prev_pages_since_purchase``: the same
          quantities at the end of page t−1 (0, 0 and 0 on a session's first page).
    """
    _check(pages)
    df = pages.sort_values(["session_id", "line_no"], kind="stable").reset_index(drop=True)
    derived = derive(
        session_starts(df["session_id"].to_numpy()),
        df["hour"].astype("float64").to_numpy(),
        df["n_purchases"].to_numpy(),
        df["engagement"].to_numpy(),
        df["page_value"].to_numpy(),
    )
    for name, values in derived.items():
        df[name] = values
    return df


def known_outcome(pages: pd.DataFrame) -> np.ndarray:
    """Boolean mask ``(n,)`` of the pages whose churn outcome (``done``) is known.

    A page truncated below the page cap (end of file, page-id jump) stops before we learn
    whether the user would have asked for the next page: its ``done`` = 0 is not an outcome. A
    page truncated at the cap (page 11) did not end by leaving, so it counts as "stayed".
    """
    truncated = pages["truncated"].to_numpy() == 1
    return ~(truncated & (pages["action_page_id"].to_numpy() < MAX_PAGE_ID))


def feature_matrix(frame: pd.DataFrame, feature_set: str | FeatureSet) -> pd.DataFrame:
    """The design matrix of a feature set.

    Args:
        frame: output of :func:`add_features`.
        feature_set: a name in :data:`FEATURE_SETS` or a :class:`FeatureSet`.

    Returns:
        DataFrame of shape (n_pages, len(columns)), float64, columns in the set's order.

    Raises:
        ContractError: the set names a protected attribute or a column the frame lacks.
        KeyError: unknown set name.
    """
    fs = FEATURE_SETS[feature_set] if isinstance(feature_set, str) else feature_set
    protected = sorted(set(fs.columns) & set(PROTECTED_COLUMNS))
    if protected:
        raise ContractError(
            f"feature set {fs.name!r} includes protected attributes {protected}; they are kept "
            "for fairness audits only and may not be model features"
        )
    missing = [c for c in fs.columns if c not in frame.columns]
    if missing:
        raise ContractError(
            f"frame lacks {missing} for feature set {fs.name!r}; call add_features(pages) first"
        )
    return frame.loc[:, list(fs.columns)].astype("float64")


TARGETS: dict[str, tuple[str, str]] = {
    "churn": ("done", "classification: 1 if the user left after page t"),
    "value": ("reward", "regression: Yuan spent on page t (zero-inflated)"),
}
