"""One rounding rule for every number the package shows (microsub.fmt)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microsub import fmt


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.00042, "0.000420"),
        (0.0123, "0.0123"),
        (0.877, "0.877"),
        (1.203, "1.20"),
        (2.7904, "2.79"),
        (9.996, "10.0"),
        (99.96, "100"),
        (0.09996, "0.100"),
        (2412.4, "2,412"),
        (-123456.7, "-123,457"),
        (1e-9, "< 0.000001"),
        (float("nan"), "n/a"),
        (None, "n/a"),
        (float("inf"), "n/a"),
    ],
)
def test_three_significant_digits_in_fixed_point(value: float, text: str) -> None:
    assert fmt.format_number(value) == text


def _significant(text: str) -> int:
    digits = text.lstrip("-").replace(",", "").replace(".", "").lstrip("0")
    return len(digits)


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False).filter(lambda v: abs(v) >= 1e-6))
def test_any_number_reads_close_to_itself_without_scientific_notation(value: float) -> None:
    text = fmt.format_number(value)
    assert "e" not in text.lower(), text
    parsed = float(text.replace(",", ""))
    if abs(value) >= 100:
        assert abs(parsed - value) <= 0.5 + 1e-9 * abs(value), (value, text)
    else:
        assert _significant(text) <= 3, (value, text)
        # rounding to three significant digits: a relative error of at most half a unit in
        # the third digit (5e-3 of the leading power of ten)
        assert abs(parsed - value) <= 5e-3 * 10 ** math.floor(math.log10(abs(value))) * 1.0001


def test_percentages_money_and_p_values() -> None:
    assert fmt.format_percent(0.2516) == "25.2 %"
    assert fmt.format_percent(0.0042) == "0.420 %"
    assert fmt.format_percent(1) == "100 %"
    assert fmt.format_percent(0.031, signed=True) == "+3.10 %"
    assert fmt.format_percent(-0.031, signed=True) == "-3.10 %"
    assert fmt.format_money(50_000, "$") == "$50,000"
    assert fmt.format_money(-1_234_567, "$") == "-$1.23M"
    assert fmt.format_money(39.95) == "40.0 Yuan"
    assert fmt.format_money(200_000, "$", compact=True) == "$200k"
    assert fmt.format_p(0.0004) == "< 0.001"
    assert fmt.format_p(0.01234) == "0.0123"
    assert fmt.format_interval(1.134, 1.121, 1.142) == "1.13 (95 % CI 1.12 to 1.14)"
    assert fmt.format_count(20_000.4) == "20,000"


def test_settings_read_exactly_in_fixed_point() -> None:
    assert fmt.format_setting(1e-6) == "0.000001"
    assert fmt.format_setting(1e-4) == "0.0001"
    assert fmt.format_setting(0.1) == "0.1"
    assert fmt.format_setting(0.25) == "0.25"
    assert fmt.format_setting(255) == "255"
    assert fmt.format_setting(1e4) == "10,000"
    assert fmt.format_setting(0.0) == "0"
    assert fmt.format_setting(float("nan")) == fmt.MISSING
    assert fmt.format_setting(0.25, percent=True) == "25 %"
    assert fmt.format_setting(0.07, percent=True) == "7 %"  # not 7.000000000000001
    assert fmt.format_setting(0.125, percent=True) == "12.5 %"


def test_points_are_differences_of_shares() -> None:
    assert fmt.format_points(0.03, setting=True) == "3 percentage points"
    assert fmt.format_points(0.0314) == "3.14 percentage points"
