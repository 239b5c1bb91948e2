"""How numbers read in prose, tables and the command line: one formatter for the package.

The book, the deck, the findings document's summaries and the CLI print numbers through these
functions, so one quantity always reads the same way: three significant digits, thousands
separators, percentages with a percent sign, money with its currency, never scientific
notation, and ``"n/a"`` for a value that does not exist (None, NaN, infinite).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

#: What a missing or non-finite number reads as.
MISSING = "n/a"


def _finite(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


#: Significant digits of every number the package shows.
SIGNIFICANT = 3

#: Below this magnitude a number reads as a bound, not as a string of zeros.
TINY = 1e-6


def format_number(x: Any, digits: int = SIGNIFICANT) -> str:
    """A number for prose and tables, by one rule: ``digits`` significant digits in fixed
    point, integers from 100 up with thousands separators, never scientific notation.

    0.000420, 0.0123, 0.877, 1.20, 39.9, 2,412; "0" for zero; "< 0.000001" below
    :data:`TINY`; :data:`MISSING` for None, NaN, inf.

    A value that is set rather than measured (a target, a tolerance) reads as written:
    :func:`format_setting`.
    """
    value = _finite(x)
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    if abs(value) < TINY:
        return f"< {TINY:.6f}" if value > 0 else f"> -{TINY:.6f}"
    if abs(value) >= 10 ** (digits - 1):
        return f"{round(value):,}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = digits - 1 - magnitude
    rounded = round(value, decimals)
    if abs(rounded) >= 10 ** (digits - 1):  # 99.96 -> 100
        return f"{round(rounded):,}"
    if math.floor(math.log10(abs(rounded))) > magnitude:  # 9.996 -> 10.0, not 10.00
        decimals -= 1
    return f"{rounded:.{decimals}f}"


def format_p(p: Any) -> str:
    """A p-value: "< 0.001" below one in a thousand, else three significant digits."""
    value = _finite(p)
    if value is None:
        return MISSING
    return "< 0.001" if value < 0.001 else format_number(value)


def format_percent(x: Any, digits: int = SIGNIFICANT, *, signed: bool = False) -> str:
    """A share as a percentage with ``digits`` significant digits: 0.2516 -> "25.2 %",
    0.0042 -> "0.420 %", 1 -> "100 %" (``signed``: "+25.2 %" / "-3.10 %"; a share that is set
    rather than measured: :func:`format_setting` with ``percent=True``)."""
    value = _finite(x)
    if value is None:
        return MISSING
    text = format_number(value * 100, digits) + " %"
    return f"+{text}" if signed and value > 0 else text


def format_points(x: Any, *, setting: bool = False) -> str:
    """A difference of two shares in percentage points: 0.0314 -> "3.14 percentage points"
    (``setting``, a value set rather than measured, as written: 0.03 -> "3 percentage
    points")."""
    value = _finite(x)
    if value is None:
        return MISSING
    points = float(f"{value * 100:.12g}")  # 0.03 * 100 is 3.0000000000000004
    return f"{format_setting(points) if setting else format_number(points)} percentage points"


def format_money(x: Any, currency: str = "Yuan", digits: int = 3, *, compact: bool = False) -> str:
    """An amount with its currency: "39.9 Yuan", "$50,000", "$1.23M" for millions.

    Dollars are written with a leading ``$``; other currencies follow the number. ``compact``
    (axis ticks) also shortens thousands: "$200k".
    """
    value = _finite(x)
    if value is None:
        return MISSING
    scaled, suffix = value, ""
    if abs(value) >= 1e9:
        scaled, suffix = value / 1e9, "B"
    elif abs(value) >= 1e6:
        scaled, suffix = value / 1e6, "M"
    elif compact and abs(value) >= 1e3:
        scaled, suffix = value / 1e3, "k"
    # axis ticks are round numbers: no trailing zeros there
    number = (f"{scaled:,.3g}" if compact else format_number(scaled, digits)) + suffix
    if currency == "$":
        return f"-${number[1:]}" if number.startswith("-") else f"${number}"
    return f"{number} {currency}"


def format_interval(
    estimate: Any, low: Any, high: Any, *, level: float = 0.95, formatter: Any = format_number
) -> str:
    """``"1.13 (95 % CI 1.12 to 1.14)"``: an estimate and its interval, for prose."""
    if _finite(estimate) is None:
        return "not estimable"
    pct = round(level * 100)
    return f"{formatter(estimate)} ({pct} % CI {formatter(low)} to {formatter(high)})"


def format_count(n: Any) -> str:
    """A count with thousands separators: 20,000."""
    value = _finite(n)
    return MISSING if value is None else f"{round(value):,}"


def format_setting(x: Any, *, percent: bool = False) -> str:
    """A configured value (a tolerance, a penalty, a learning rate, a share) exactly as set, in
    fixed point: the shortest decimal that reads back as the same float, never rounded to three
    digits and never in scientific notation: 1e-06 -> "0.000001", 0.1 -> "0.1",
    255 -> "255", 1e4 -> "10,000"; ``percent``: 0.25 -> "25 %", 0.07 -> "7 %"."""
    value = _finite(x)
    if value is None:
        return MISSING
    if percent:
        return format_setting(float(f"{value * 100:.12g}")) + " %"
    if value.is_integer():
        return f"{int(value):,}"
    return format(Decimal(repr(value)), "f")
