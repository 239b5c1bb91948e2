"""The data-constraint audit: what the columns and values of the pages table allow and forbid
(identifiers, protected attributes and their proxies, dates, freshness, user identity, hour)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from microsub.analysis.describe import pages_frame
from microsub.analysis.features import FEATURE_SETS, FeatureSet
from microsub.contract import PROTECTED_COLUMNS
from microsub.fmt import format_number, format_percent


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
    frame = pages_frame(pages)
    features = sorted({c for fs in feature_sets.values() for c in fs.columns})
    return (
        _identifiers(frame, features, feature_sets),
        _protected(feature_sets),
        _proxies(frame, features),
        *_calendar(frame),
        _hour(frame),
    )


def _identifiers(
    frame: pd.DataFrame, features: list[str], feature_sets: Mapping[str, FeatureSet]
) -> AuditCheck:
    """Check 1: no feature is named like an identifier, non-numeric, or an id in disguise."""
    named = [c for c in features if _tokens(c) & PII_TOKENS or c in ROW_IDENTIFIERS]
    present = [c for c in features if c in frame.columns]
    non_numeric = [c for c in present if not pd.api.types.is_numeric_dtype(frame[c])]
    disguised = []
    n_sessions = frame["session_id"].nunique()
    for c in present:
        per_session = frame.groupby("session_id")[c].nunique()
        if (per_session <= 1).all() and frame[c].nunique() > 0.5 * n_sessions > 1:
            disguised.append(c)
    bad = sorted(set(named) | set(non_numeric) | set(disguised))
    return AuditCheck(
        "no direct identifier among the features",
        "fail" if bad else "pass",
        (
            f"offending columns: {bad}"
            if bad
            else f"{len(features)} feature columns in {len(feature_sets)} sets: none is "
            "named like a personal identifier or row id, all numeric, none constant within "
            "sessions and distinct across most of them"
        ),
    )


def _protected(feature_sets: Mapping[str, FeatureSet]) -> AuditCheck:
    """Check 2: protected attributes in no feature set."""
    leaks = {
        name: sorted(set(fs.columns) & set(PROTECTED_COLUMNS))
        for name, fs in feature_sets.items()
        if set(fs.columns) & set(PROTECTED_COLUMNS)
    }
    return AuditCheck(
        "protected attributes excluded from every feature set",
        "fail" if leaks else "pass",
        (
            f"feature sets with protected attributes: {leaks}"
            if leaks
            else f"{', '.join(PROTECTED_COLUMNS)} appear in none of the sets "
            f"{', '.join(sorted(feature_sets))}"
        ),
    )


def _proxies(frame: pd.DataFrame, features: list[str]) -> AuditCheck:
    """Check 3: the largest absolute Spearman correlation of a feature with a protected
    attribute stays below :data:`PROXY_LIMIT`."""
    present = [c for c in features if c in frame.columns]
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
    return AuditCheck(
        "no feature is a strong proxy of a protected attribute",
        "review" if worst >= PROXY_LIMIT else "pass",
        f"largest absolute Spearman correlation of a feature with a protected attribute: "
        f"{format_number(worst)} "
        f"({worst_pair[0]} vs {worst_pair[1]}); limit {PROXY_LIMIT}",
    )


def _calendar(frame: pd.DataFrame) -> tuple[AuditCheck, AuditCheck, AuditCheck]:
    """Checks 4-6: what calendar dates and user identifiers would give, if the columns had them."""
    n_sessions = frame["session_id"].nunique()
    found: list[AuditCheck] = []
    date_cols = [c for c in frame.columns if _tokens(c) & DATE_TOKENS]
    user_cols = [c for c in frame.columns if _tokens(c) & {"user", "userid", "uid", "customer"}]
    found.append(
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
    found.append(
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
    found.append(
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
    return found[0], found[1], found[2]


def _hour(frame: pd.DataFrame) -> AuditCheck:
    """Check 7: the hour of day is recorded."""
    has_hour = "hour" in frame.columns and frame["hour"].notna().any()
    return AuditCheck(
        "hour of day recorded",
        "pass" if has_hour else "cannot meet",
        (
            f"hour present on {format_percent(frame['hour'].notna().mean())} of pages"
            if has_hour
            else "the log's layout has no hour: the hour hypothesis cannot be tested"
        ),
    )
