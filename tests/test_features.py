"""Features: values on a hand-built session, no leakage of the future, no protected attributes;
the NumPy kernel equals the pandas reference on random sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        columns=[
            "session_id",
            "line_no",
            "action_page_id",
            "hour",
            "state_purchase_power",
            "n_clicks",
            "n_carts",
            "n_favs",
            "n_purchases",
            "page_value",
        ],
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
        9,
        9,
        500.0,
        2,
    ]
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


def _pandas_reference(pages: pd.DataFrame) -> pd.DataFrame:
    """The derived columns as add_features computed them with pandas before the kernel
    (kept verbatim as the reference the kernel must reproduce exactly)."""
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


#: Yuan amounts that make a plain running sum and pandas' compensated one differ.
_AMOUNTS = st.one_of(
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 29.9, 1e16, -5e15, 97.0, 1e-3, 123456.789]),
    st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False),
)


@st.composite
def _random_pages(draw) -> pd.DataFrame:
    """Sessions of 1 to 14 pages (longer than the cap, too), rows shuffled, with hours that
    may be missing and amounts chosen to expose summation order."""
    lengths = draw(st.lists(st.integers(1, 14), min_size=1, max_size=12))
    rows = []
    line = 0
    for session, length in enumerate(lengths):
        sid = draw(st.integers(0, 10**6)) * 100 + session  # unique, any order
        hour = draw(st.one_of(st.none(), st.integers(0, 23)))
        for t in range(length):
            clicks, carts = draw(st.integers(0, 50)), draw(st.integers(0, 50))
            buys = draw(st.sampled_from([0, 0, 0, 1, 2]))
            rows.append({
                "session_id": sid, "line_no": line, "action_page_id": min(t, 11),
                "hour": np.nan if hour is None else hour, "state_purchase_power": 3,
                "n_clicks": clicks, "n_carts": carts, "n_favs": 0, "n_purchases": buys,
                "engagement": clicks + carts, "page_value": draw(_AMOUNTS) if buys else 0.0,
                "mean_ctr": 0.03, "mean_cvr": 0.01, "mean_log_price": 4.0,
            })  # fmt: skip
            line += 1
    frame = pd.DataFrame(rows).astype({"engagement": "int16", "n_purchases": "int16"})
    order = draw(st.permutations(range(len(frame))))
    return frame.iloc[list(order)].reset_index(drop=True)


@given(pages=_random_pages())
@settings(max_examples=200, deadline=None)
def test_the_feature_kernel_equals_the_pandas_reference_on_random_sessions(pages):
    expected = _pandas_reference(pages)
    got = features.add_features(pages)
    # equal, not close: same values, dtypes and column order
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def _prefix_tables(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Every prefix of every session of ``frame`` (add_features output, sorted) as one session
    table: (table, lengths, the frame's row of each prefix's last page)."""
    tables, lengths, rows = [], [], []
    for _, session in frame.groupby("session_id", sort=False):
        fields = session[list(features.SESSION_FIELDS)].to_numpy(dtype=np.float64)
        for t in range(len(session)):
            tables.append(fields[: t + 1])
            lengths.append(t + 1)
            rows.append(session.index[t])
    return np.concatenate(tables), np.array(lengths), frame.loc[rows]


@given(pages=_random_pages())
@settings(max_examples=150, deadline=None)
def test_online_rows_equal_the_batch_features_on_random_sessions(pages):
    """session_rows (one session so far, as scored online) gives add_features' numbers for
    every page of every session: equal, not close."""
    frame = features.add_features(pages)
    table, lengths, expected = _prefix_tables(frame)
    got = features.session_rows(table, lengths, features.SESSION_COLUMNS)
    want = expected[list(features.SESSION_COLUMNS)].astype("float64").to_numpy()
    np.testing.assert_array_equal(got, want)
    for name in ("churn", "value"):  # a feature set's columns, in its order
        columns = features.FEATURE_SETS[name].columns
        np.testing.assert_array_equal(
            features.session_rows(table, lengths, columns),
            features.feature_matrix(expected, name).to_numpy(),
        )


def test_session_columns_are_the_fields_engagement_and_the_derived_columns():
    assert features.SESSION_COLUMNS[-len(features.DERIVED_COLUMNS) :] == features.DERIVED_COLUMNS
    derived = features.derive(np.array([True]), np.array([3.0]), np.array([0]), np.array([1]),
                              np.array([0.0]))  # fmt: skip
    assert tuple(derived) == features.DERIVED_COLUMNS
    assert features.HOUR_SIN.shape == features.HOUR_COS.shape == (24,)


def test_session_rows_refuses_what_it_cannot_compute():
    table = features.add_features(_pages())[list(features.SESSION_FIELDS)].to_numpy(np.float64)
    with pytest.raises(ContractError, match=r"not \['gender'\]"):
        features.session_rows(table, [6], ("engagement", "gender"))
    with pytest.raises(ContractError, match="lengths >= 1 summing to n"):
        features.session_rows(table, [4, 1], ("engagement",))
    with pytest.raises(ContractError, match="lengths >= 1 summing to n"):
        features.session_rows(table, [6, 0], ("engagement",))
    with pytest.raises(ContractError, match="session table"):
        features.session_rows(table[:, :5], [6], ("engagement",))
    for hour in (24.0, 3.5, -1.0):
        bad = table.copy()
        bad[-1, features.SESSION_FIELDS.index("hour")] = hour
        with pytest.raises(ContractError, match="hour must be an integer 0..23"):
            features.session_rows(bad, [6], ("hour_sin",))
