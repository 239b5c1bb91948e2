"""The pages table (before sessions) from the parsed values of valid lines: page aggregates
and the item lists (:func:`pages_table`); used by :mod:`microsub.data.parse`."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from microsub.contract import ITEMS_PER_PAGE, ITEMS_SCHEMA, RawLayout

#: List columns of a layout, in the order of :data:`~microsub.contract.ITEMS_SCHEMA`.
LIST_FIELDS = ("position", "ctr", "cvr", "price", "click", "cart", "fav", "amount", "feature")

#: Arrow type of the values of each item list.
LIST_TYPES = {f.name: f.type.value_type for f in ITEMS_SCHEMA if f.name in LIST_FIELDS}

# numpy types of the item lists (DataType.to_pandas_dtype would need pandas for this)
_NUMPY_TYPES = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def real_items(values: dict[str, np.ndarray]) -> np.ndarray:
    """``(n, 50)`` bool: the slot holds an item, not padding (price = ctr = cvr = 0)."""
    return ~((values["price"] == 0) & (values["ctr"] == 0) & (values["cvr"] == 0))


def _list_array(block: np.ndarray, dtype: pa.DataType) -> pa.Array:
    """Rows of a ``(n, 50)`` matrix as an Arrow list array of ``dtype``."""
    n = block.shape[0]
    offsets = pa.array(np.arange(0, n * ITEMS_PER_PAGE + 1, ITEMS_PER_PAGE, dtype=np.int32))
    # always a copy: the block is a view of the batch's scan output, which must not live on
    # with the items (a part in the lake writer's buffer holds 65,536 rows)
    flat = block.astype(_NUMPY_TYPES[dtype]).reshape(-1)
    return pa.ListArray.from_arrays(offsets, pa.array(flat, dtype))


def pages_table(
    values: dict[str, np.ndarray], line_no: np.ndarray, layout: RawLayout, with_items: bool
) -> pa.Table:
    """Pages (before sessions) from the values of valid lines.

    Aggregates per page (over the 50 items; cart/fav lists count 0 where the layout lacks
    them)::

        n_clicks = sum(click)          n_carts = sum(cart)        n_favs = sum(fav)
        n_purchases = #(amount > 0)    page_value = reward = sum(amount)     (Yuan)
        engagement = n_clicks + n_carts
        n_items = #(real items)   where a slot is padding when price = ctr = cvr = 0
        mean_ctr = mean(ctr)           mean_cvr = mean(cvr)
        mean_log_price = mean(ln(max(price, 0.01)))
                                       (the three means over real items only)

    Padding: the real sample fills short pages with slots whose every value is 0; averaging
    them in would drag the item mix towards zero (``mean_log_price`` down to -3.3 instead of
    3.3 on the sample). A page with no real item at all is quarantined.
    """
    n = len(line_no)

    def count(name: str) -> np.ndarray:
        if name not in values:
            return np.zeros(n, np.int16)
        return values[name].sum(axis=1, dtype=np.int16)

    def int8(name: str) -> pa.Array:
        if name not in values:
            return pa.nulls(n, pa.int8())
        return pa.array(values[name].astype(np.int8))

    amount = values["amount"]
    n_clicks, n_carts = count("click"), count("cart")
    page_value = amount.sum(axis=1)
    real = real_items(values)
    padding = ~real
    n_items = real.sum(axis=1)
    scratch = np.empty(real.shape)  # one (n, 50) float64 buffer for the three means

    def item_mean(x: np.ndarray | None = None) -> pa.Array:
        if x is not None:
            np.copyto(scratch, x)
        np.copyto(scratch, 0.0, where=padding)
        return pa.array((scratch.sum(axis=1) / n_items).astype(np.float32))

    def mean_log_price() -> pa.Array:
        np.maximum(values["price"], 0.01, out=scratch)
        np.log(scratch, out=scratch)
        return item_mean()

    columns: dict[str, pa.Array] = {
        "line_no": pa.array(line_no.astype(np.int64)),
        "action_page_id": int8("page_id"),
        "hour": int8("hour"),
        "state_purchase_power": int8("purchase_power"),
        "age_level": int8("age_level"),
        "gender": int8("gender"),
        "n_clicks": pa.array(n_clicks),
        "n_carts": pa.array(n_carts),
        "n_favs": pa.array(count("fav")),
        "n_purchases": pa.array((amount > 0).sum(axis=1).astype(np.int16)),
        "engagement": pa.array((n_clicks + n_carts).astype(np.int16)),
        "page_value": pa.array(page_value),
        "reward": pa.array(page_value),
        "mean_ctr": item_mean(values["ctr"]),
        "mean_cvr": item_mean(values["cvr"]),
        "mean_log_price": mean_log_price(),
        "n_items": pa.array(n_items.astype(np.int8)),
        "done": pa.array(values["terminal"].astype(np.int8))
        if "terminal" in values
        else pa.array(np.zeros(n, np.int8)),
    }
    if with_items:
        for name in LIST_FIELDS:
            dtype = LIST_TYPES[name]
            columns[name] = (
                _list_array(values[name], dtype) if name in values else pa.nulls(n, pa.list_(dtype))
            )
    return pa.table(columns)
