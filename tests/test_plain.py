"""One conversion to plain JSON values (microsub.plain)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from microsub.errors import ContractError
from microsub.plain import plain


@dataclass
class Point:
    x: float
    tags: tuple[str, ...]


def test_numpy_pandas_paths_dates_sets_and_dataclasses_become_json() -> None:
    value = {
        "b": np.float32(0.5),
        "a": [np.int64(3), np.bool_(True), (1, 2)],
        "frame": pd.DataFrame({"k": ["x", "y"], "v": [1.0, np.nan]}),
        "series": pd.Series([1, 2]),
        "path": Path("/tmp/x"),
        "day": date(2026, 12, 2),
        "set": {3, 1},
        "point": Point(1.5, ("p",)),
        "array": np.arange(3),
    }
    out = plain(value)
    assert out == {
        "b": 0.5,
        "a": [3, True, [1, 2]],
        "frame": [{"k": "x", "v": 1.0}, {"k": "y", "v": None}],
        "series": [1, 2],
        "path": "/tmp/x",
        "day": "2026-12-02",
        "set": [1, 3],
        "point": {"x": 1.5, "tags": ["p"]},
        "array": [0, 1, 2],
    }
    assert list(out) == list(value)  # document order kept
    json.dumps(out, allow_nan=False)  # plain JSON, nothing left over
    assert type(out["a"][0]) is int and type(out["b"]) is float


def test_sort_keys_makes_equal_content_equal_text() -> None:
    a = plain({"b": 1, "a": {"d": 2, "c": 3}}, sort_keys=True)
    assert list(a) == ["a", "b"] and list(a["a"]) == ["c", "d"]


def test_non_finite_numbers_become_none_or_raise() -> None:
    assert plain([math.nan, math.inf, np.float64(-np.inf)]) == [None, None, None]
    with pytest.raises(
        ContractError, match=r"meta must hold finite numbers only; found nan at /x/1"
    ):
        plain({"x": [1.0, math.nan]}, nonfinite="error", what="meta")


def test_unknown_objects_raise_or_use_the_fallback() -> None:
    with pytest.raises(ContractError, match="object at /k has no JSON form"):
        plain({"k": object()})
    assert plain({"k": 1j}, fallback=repr) == {"k": "1j"}
