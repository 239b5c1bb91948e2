"""One conversion of Python, NumPy and pandas values into plain JSON values.

Reports, manifests, model cards and the findings document are stored as JSON or YAML. What the
code computes holds NumPy scalars and arrays, pandas frames, paths, dates, sets and NaN;
:func:`plain` turns all of them into dicts, lists, strings, finite numbers, booleans and None,
with one set of rules, so that what a reader gets back equals what the writer meant.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Literal

import numpy as np
import pandas as pd

from microsub.errors import ContractError


def plain(
    obj: Any,
    *,
    nonfinite: Literal["none", "error"] = "none",
    fallback: Callable[[Any], Any] | None = None,
    sort_keys: bool = False,
    what: str = "value",
) -> Any:
    """``obj`` as plain JSON values, recursively.

    Rules: mappings become dicts with string keys (in their order, or sorted with
    ``sort_keys`` so that the same content always gives the same text); lists, tuples and
    NumPy arrays become lists; sets become sorted lists; NumPy
    scalars become Python numbers; a pandas ``DataFrame`` becomes a list of row dicts (its
    records) and a ``Series`` a list; paths become text; dates and timestamps ISO text;
    dataclass instances their fields. NaN and infinities become ``None``
    (``nonfinite="none"``) or raise (``nonfinite="error"``: a manifest must not silently lose
    a number).

    Args:
        obj: the value to convert.
        nonfinite: what to do with NaN and infinite floats.
        fallback: called on any other object (for example ``repr``); ``None`` raises.
        sort_keys: sort every mapping's keys.
        what: what ``obj`` is, for error messages.

    Raises:
        ContractError: a non-finite number with ``nonfinite="error"``, or an object that has
            no JSON form and no ``fallback``; the message names ``what`` and the path inside it.
    """
    return _plain(obj, nonfinite, fallback, sort_keys, what, "")


def _plain(
    obj: Any,
    nonfinite: str,
    fallback: Callable[[Any], Any] | None,
    sort_keys: bool,
    what: str,
    path: str,
) -> Any:
    def inner(value: Any, key: object) -> Any:
        return _plain(value, nonfinite, fallback, sort_keys, what, f"{path}/{key}")

    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, np.generic):
        obj = obj.item()
        if isinstance(obj, bool | str | bytes):
            return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return float(obj)
        if nonfinite == "none":
            return None
        raise ContractError(f"{what} must hold finite numbers only; found {obj} at {path or '/'}")
    if isinstance(obj, Mapping):
        items = sorted(obj.items(), key=lambda kv: str(kv[0])) if sort_keys else obj.items()
        return {str(k): inner(v, k) for k, v in items}
    if isinstance(obj, pd.DataFrame):
        return [inner(row, i) for i, row in enumerate(obj.to_dict(orient="records"))]
    if isinstance(obj, pd.Series | np.ndarray | list | tuple):
        return [inner(v, i) for i, v in enumerate(list(obj))]
    if isinstance(obj, set | frozenset):
        return [inner(v, i) for i, v in enumerate(sorted(obj))]
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, datetime | date | pd.Timestamp):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return inner({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, "")
    if fallback is not None:
        return fallback(obj)
    raise ContractError(
        f"{what} must be plain JSON (dicts, lists, strings, finite numbers); "
        f"{type(obj).__name__} at {path or '/'} has no JSON form"
    )
