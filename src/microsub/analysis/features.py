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

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from microsub.contract import MAX_PAGE_ID, PROTECTED_COLUMNS
from microsub.errors import ContractError

View = Literal["post", "pre"]

#: Columns of the pages table the derived features need.
REQUIRED_COLUMNS = (
    "session_id",
    "line_no",
    "action_page_id",
    "hour",
    "state_purchase_power",
    "n_clicks",
    "n_carts",
    "n_favs",
    "n_purchases",
    "engagement",
    "page_value",
    "mean_ctr",
    "mean_cvr",
    "mean_log_price",
)


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


def add_features(pages: pd.DataFrame) -> pd.DataFrame:
    """Add the derived feature columns to a pages table.

    Args:
        pages: the pages table (contract columns), any row order; rows of one session must carry
            the same ``session_id`` and increasing ``line_no``.

    Returns:
        A copy sorted by (``session_id``, ``line_no``) with, in addition:

        * ``hour_sin`` = sin(2π·hour/24), ``hour_cos`` = cos(2π·hour/24) (0 when hour is missing,
          as in the 14-field example layout);
        * ``purchased`` = 1 if the page had a purchase;
        * ``cum_value`` = Σ page_value over pages 0..t of the session (Yuan);
        * ``cum_engagement`` = Σ engagement over pages 0..t;
        * ``pages_since_purchase`` = t − (last page ≤ t with a purchase), or t + 1 when the
          session has no purchase yet (as if one happened just before page 0);
        * ``prev_engagement``, ``prev_cum_value``, ``prev_pages_since_purchase``: the same
          quantities at the end of page t−1 (0, 0 and 0 on a session's first page).
    """
    _check(pages)
    df = pages.sort_values(["session_id", "line_no"], kind="stable").reset_index(drop=True)
    hour = df["hour"].astype("float64")
    angle = 2.0 * np.pi * hour / 24.0
    df["hour_sin"] = np.sin(angle).fillna(0.0)
    df["hour_cos"] = np.cos(angle).fillna(0.0)
    df["purchased"] = (df["n_purchases"] > 0).astype("int8")

    session = df["session_id"].to_numpy()
    first = np.r_[True, session[1:] != session[:-1]]
    pos = np.arange(len(df)) - np.maximum.accumulate(np.where(first, np.arange(len(df)), 0))

    grouped = df.groupby("session_id", sort=False)
    df["cum_value"] = grouped["page_value"].cumsum()
    df["cum_engagement"] = grouped["engagement"].cumsum().astype("int32")

    # index (within the session) of the last purchase so far; -1 when none yet
    last_buy = pd.Series(np.where(df["purchased"].to_numpy() == 1, pos, np.nan))
    last_buy = last_buy.groupby(session, sort=False).ffill().fillna(-1).to_numpy()
    df["pages_since_purchase"] = (pos - last_buy).astype("int16")

    def previous(col: str) -> np.ndarray:
        values = df[col].to_numpy()
        shifted = np.r_[0, values[:-1]].astype(values.dtype)
        return np.where(first, 0, shifted)

    df["prev_engagement"] = previous("engagement").astype("int16")
    df["prev_cum_value"] = previous("cum_value")
    df["prev_pages_since_purchase"] = previous("pages_since_purchase").astype("int16")
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
