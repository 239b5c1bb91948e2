"""Features: values on a hand-built session, no leakage of the future, no protected attributes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microsub.analysis import features
from microsub.contract import PROTECTED_COLUMNS
from microsub.errors import ContractError


def _pages() -> pd.DataFrame:
    # session 7: 4 pages, a purchase on page 1; session 3: 2 pages (rows given out of order)
    rows = [
        # session, line, page, hour, pp, clicks, carts, favs, purchases, value
        (7, 10, 0, 23, 5, 2, 1, 0, 0, 0.0),
        (7, 11, 1, 23, 5, 1, 0, 1, 1, 29.9),
        (7, 12, 2, 23, 5, 0, 0, 0, 0, 0.0),
        (7, 13, 3, 23, 5, 3, 0, 0, 0, 0.0),
        (3, 2, 1, 6, 2, 0, 0, 0, 0, 0.0),
        (3, 1, 0, 6, 2, 1, 1, 0, 1, 10.5),
    ]
    df = pd.DataFrame(
        rows,
        columns=["session_id", "line_no", "action_page_id", "hour", "state_purchase_power",
                 "n_clicks", "n_carts", "n_favs", "n_purchases", "page_value"],
    )
    df["engagement"] = df["n_clicks"] + df["n_carts"]
    df["mean_ctr"] = 0.03
    df["mean_cvr"] = 0.005
    df["mean_log_price"] = 4.0
    df["age_level"] = 2
    df["gender"] = 1
    return df


def test_derived_features_on_a_hand_built_session():
    f = features.add_features(_pages())
    s7 = f[f.session_id == 7]
    assert list(s7["cum_value"]) == pytest.approx([0.0, 29.9, 29.9, 29.9])
    assert list(s7["cum_engagement"]) == [3, 4, 4, 7]
    assert list(s7["purchased"]) == [0, 1, 0, 0]
    # no purchase yet on page 0 -> t + 1; purchase on page 1 resets the clock
    assert list(s7["pages_since_purchase"]) == [1, 0, 1, 2]
    assert list(s7["prev_engagement"]) == [0, 3, 1, 0]
    assert list(s7["prev_cum_value"]) == pytest.approx([0.0, 0.0, 29.9, 29.9])
    assert list(s7["prev_pages_since_purchase"]) == [0, 1, 0, 1]
    s3 = f[f.session_id == 3]
    assert list(s3["line_no"]) == [1, 2]  # sorted back into file order
    assert list(s3["pages_since_purchase"]) == [0, 1]
    # 23 h and 0 h are neighbours on the circle
    assert np.hypot(s7["hour_sin"].iloc[0], s7["hour_cos"].iloc[0]) == pytest.approx(1.0)
    assert s7["hour_cos"].iloc[0] == pytest.approx(np.cos(2 * np.pi * 23 / 24))


def test_pre_view_uses_nothing_from_the_page_itself():
    """Changing what the user did on page t must not change the value features of page t."""
    base = features.add_features(_pages())
    changed = _pages()
    changed.loc[changed.line_no == 12, ["n_clicks", "engagement", "page_value", "n_purchases"]] = [
        9, 9, 500.0, 2]
    after = features.add_features(changed)
    cols = list(features.FEATURE_SETS["value"].columns)
    row = base.line_no == 12
    pd.testing.assert_frame_equal(base.loc[row, cols], after.loc[row, cols])
    # ... while the post view of page t does see it
    assert not base.loc[row, "engagement"].equals(after.loc[row, "engagement"])


@pytest.mark.parametrize("name", sorted(features.FEATURE_SETS))
def test_no_feature_set_holds_a_protected_attribute(name):
    f = features.add_features(_pages())
    X = features.feature_matrix(f, name)
    assert not set(X.columns) & set(PROTECTED_COLUMNS)
    assert X.shape == (len(f), len(features.FEATURE_SETS[name].columns))
    assert X.dtypes.eq("float64").all()


def test_feature_matrix_refuses_protected_attributes():
    f = features.add_features(_pages())
    bad = features.FeatureSet("bad", "post", ("engagement", "gender"), "")
    with pytest.raises(ContractError, match="protected"):
        features.feature_matrix(f, bad)


def test_missing_columns_are_named():
    with pytest.raises(ContractError, match="mean_ctr"):
        features.add_features(_pages().drop(columns=["mean_ctr"]))


def test_known_outcome_excludes_only_pages_truncated_below_the_cap():
    pages = pd.DataFrame(
        {"action_page_id": [0, 3, 3, 11, 11], "truncated": [0, 1, 0, 1, 0], "done": [1, 0, 0, 0, 1]}
    )
    assert features.known_outcome(pages).tolist() == [True, False, True, True, True]
