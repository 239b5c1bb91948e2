"""Calibration statistics: how a synthetic log compares with the real sample.

:func:`sample_statistics_of` computes the same statistics from the ingested pages and items of
either layout (the real 100-page sample in the 14-field example layout, a synthetic log in the
official layout); :func:`calibration_comparison` sets the real sample beside a synthetic log.
Pure: tables in, numbers out (:func:`microsub.data.ingest.read_tables` reads a raw file into
tables).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from microsub.contract import (
    ITEMS_PER_PAGE,
    item_matrix,
)
from microsub.data.ingest import Tables
from microsub.errors import ContractError

#: Columns of the pages table (:data:`microsub.contract.PAGES_SCHEMA`) that
#: :func:`sample_statistics_of` reads; a caller reading the lake needs no others.
STATISTICS_PAGE_COLUMNS = (
    "line_no",
    "action_page_id",
    "hour",
    "done",
    "n_clicks",
    "n_purchases",
    "n_items",
    "state_purchase_power",
    "gender",
    "age_level",
)


#: Columns of the items table (:data:`microsub.contract.ITEMS_SCHEMA`) it reads.
STATISTICS_ITEM_COLUMNS = ("line_no", "ctr", "cvr", "price", "click")


_CHUNK_PAGES = 16_384  # pages per chunk of dense (pages, 50) item matrices: bounds memory


def sample_statistics_of(
    pages: pa.Table | pd.DataFrame, items: pa.Table, *, terminal_flags: bool = True
) -> dict[str, float]:
    """The calibration statistics of ingested pages, computed the same way for either layout.

    Item statistics use real items only. A padding slot is one that
    :mod:`microsub.ingest` leaves out of the page means (price = CTR = CVR = 0; the pages'
    ``n_items`` counts the others); the share of them is reported. Shares are fractions of
    pages unless named otherwise. CTR and CVR are read back as the decimals the log wrote
    (:func:`_logged_decimals`), so the statistics equal those of the raw text.

    Args:
        pages: pages table (:data:`~microsub.contract.PAGES_SCHEMA`; at least
            :data:`STATISTICS_PAGE_COLUMNS`), Arrow or pandas, any row order.
        items: items table of the same pages (:data:`~microsub.contract.ITEMS_SCHEMA`; at
            least :data:`STATISTICS_ITEM_COLUMNS`), any row order.
        terminal_flags: whether the source layout has a terminal flag (ingest writes
            ``done`` = 0 where it has none, so the leave rate is then reported as NaN).

    Returns:
        An ordered mapping statistic -> value: page counts and page-id shares, clicks per page
        (mean and distribution), price quantiles (Yuan) and cents, CTR/CVR quantiles, the
        between-page spread of the mix (SD over pages of the mean log CTR and log price of
        the page's real items), how much the CTR predicts clicks, purchases, profile shares
        (purchase power, gender, age level) and the leave rate (NaN without terminal flags).

    Raises:
        ContractError: a column is missing, the tables do not hold the same pages, or an item
            list is not 50 long or disagrees with the page's ``n_items``.
    """
    page = _page_columns(pages)
    _require("items", items.column_names, STATISTICS_ITEM_COLUMNS)
    items = _by_line(items)
    n = len(page["line_no"])
    item_lines = items.column("line_no").to_numpy()
    if not np.array_equal(item_lines, page["line_no"]):
        raise ContractError(
            f"pages ({n} rows) and items ({items.num_rows} rows) do not hold the same lines; "
            "pass the items table ingested with these pages"
        )
    if n == 0:
        raise ContractError("no pages; expected the tables of at least one ingested page")
    items_seen = _item_values(items, page["n_items"])
    return {
        **_page_statistics(page, terminal_flags),
        **_item_statistics(items_seen, n),
        **_profile_statistics(page),
    }


@dataclass
class _ItemValues:
    """The real items' values of a pages table, and page-level means of their logs."""

    price: np.ndarray
    ctr: np.ndarray
    cvr: np.ndarray
    clicked_ctr: np.ndarray
    mean_log_ctr: np.ndarray
    mean_log_price: np.ndarray
    whole_yuan: int
    two_decimals: int


def _item_values(items: pa.Table, n_items: np.ndarray) -> _ItemValues:
    """Item-level values, a chunk of pages at a time (row-wise sums do not depend on the cut);
    the real items' values go straight into arrays sized by the pages' ``n_items``."""
    n = len(n_items)
    size = int(n_items.sum())
    price, ctr, cvr = np.empty(size), np.empty(size), np.empty(size)
    mean_log_ctr, mean_log_price = np.empty(n), np.empty(n)
    clicked_parts = []
    whole_yuan = two_decimals = at = 0
    for lo in range(0, n, _CHUNK_PAGES):
        chunk = items.slice(lo, _CHUNK_PAGES)
        rows = slice(lo, lo + chunk.num_rows)
        c_ctr, c_cvr = _item_matrix(chunk, "ctr"), _item_matrix(chunk, "cvr")
        c_price, c_click = _item_matrix(chunk, "price"), _item_matrix(chunk, "click")
        real = ~((c_price == 0) & (c_ctr == 0) & (c_cvr == 0))
        if not np.array_equal(real.sum(axis=1), n_items[rows]):
            raise ContractError(
                "items disagree with the pages' n_items (slots other than price = CTR = CVR = 0)"
                "; pass the items table ingested with these pages"
            )
        n_real = np.maximum(n_items[rows], 1)
        lctr = np.log(np.where(real & (c_ctr > 0), c_ctr, 1.0))
        lp = np.log(np.where(real, np.maximum(c_price, 0.01), 1.0))  # ingest's floor: 1 cent
        mean_log_ctr[rows] = (lctr * real).sum(axis=1) / n_real
        mean_log_price[rows] = (lp * real).sum(axis=1) / n_real
        end = at + int(real.sum())
        price[at:end], ctr[at:end], cvr[at:end] = c_price[real], c_ctr[real], c_cvr[real]
        cents = np.rint(price[at:end] * 100).astype(np.int64) % 100
        whole_yuan += int((cents == 0).sum())
        two_decimals += int((cents % 10 != 0).sum())
        clicked_parts.append(c_ctr[(c_click > 0) & real])
        at = end
    return _ItemValues(
        price, ctr, cvr, np.concatenate(clicked_parts), mean_log_ctr, mean_log_price,
        whole_yuan, two_decimals,
    )  # fmt: skip


def _page_statistics(page: dict[str, np.ndarray], terminal_flags: bool) -> dict[str, float]:
    """Page counts, depth shares, clicks per page and the leave rate."""
    page_id, clicks = page["action_page_id"], page["n_clicks"]
    stats: dict[str, float] = {
        "pages": float(len(page_id)),
        "sessions_per_page": float(np.mean(page_id == 0)),
        "leave_rate": float(np.mean(page["done"] == 1)) if terminal_flags else float("nan"),
    }
    for k in range(8):
        stats[f"page_id_share_{k}"] = float(np.mean(page_id == k))
    stats["page_id_share_8plus"] = float(np.mean(page_id >= 8))
    stats["clicks_per_page_mean"] = float(clicks.mean())
    for k in range(4):
        stats[f"clicks_per_page_share_{k}"] = float(np.mean(clicks == k))
    stats["clicks_per_page_share_4plus"] = float(np.mean(clicks >= 4))
    return stats


def _item_statistics(v: _ItemValues, n_pages: int) -> dict[str, float]:
    """Padding share, price and rate quantiles, the spread of the mix, what CTR predicts.

    The quantiles reorder ``v``'s arrays in place (no copies).
    """
    size = len(v.price)
    stats = {"padded_item_share": float(1 - size / (n_pages * ITEMS_PER_PAGE))}
    # ctr's mean before the quantiles reorder the arrays
    clicked_ctr_ratio = float(v.clicked_ctr.mean() / v.ctr.mean()) if v.clicked_ctr.size else np.nan
    levels = (0.10, 0.50, 0.75, 0.90, 0.99)
    for q, x in zip(levels, np.quantile(v.price, levels, overwrite_input=True), strict=True):
        stats[f"price_p{round(q * 100):02d}"] = float(x)
    stats["price_max"] = float(v.price.max())
    stats["price_whole_yuan_share"] = v.whole_yuan / size
    stats["price_two_decimals_share"] = v.two_decimals / size
    for name, values in (("ctr", v.ctr), ("cvr", v.cvr)):
        levels = (0.05, 0.50, 0.95)
        for q, x in zip(levels, np.quantile(values, levels, overwrite_input=True), strict=True):
            stats[f"{name}_p{round(q * 100):02d}"] = float(x)
    stats["page_mean_log_ctr_sd"] = float(np.std(v.mean_log_ctr))
    stats["page_mean_log_price_sd"] = float(np.std(v.mean_log_price))
    stats["clicked_ctr_ratio"] = float(clicked_ctr_ratio)
    return stats


def _profile_statistics(page: dict[str, np.ndarray]) -> dict[str, float]:
    """Purchases and the profile shares (purchase power, gender, age level)."""
    stats = {"pages_with_purchase_share": float(np.mean(page["n_purchases"] > 0))}
    for k in range(1, 8):
        stats[f"purchase_power_share_{k}"] = float(np.mean(page["state_purchase_power"] == k))
    stats["gender_1_share"] = float(np.mean(page["gender"] == 1))
    for k in range(7):
        stats[f"age_level_share_{k}"] = float(np.mean(page["age_level"] == k))
    return stats


def _by_line(table: pa.Table) -> pa.Table:
    """``table`` in line order (a no-op for a table ingested in one pass, the usual case)."""
    line = table.column("line_no").to_numpy()
    if (np.diff(line) > 0).all():
        return table
    return table.take(pc.sort_indices(table, [("line_no", "ascending")]))


def _page_columns(pages: pa.Table | pd.DataFrame) -> dict[str, np.ndarray]:
    """:data:`STATISTICS_PAGE_COLUMNS` of ``pages`` as numpy arrays, in line order."""
    names = list(STATISTICS_PAGE_COLUMNS)
    _require("pages", pages.column_names if isinstance(pages, pa.Table) else pages.columns, names)
    frame = pages.select(names).to_pandas() if isinstance(pages, pa.Table) else pages[names]
    frame = frame.sort_values("line_no", kind="stable")
    columns = {c: frame[c].to_numpy() for c in names}
    columns["hour"] = frame["hour"].to_numpy(dtype=np.float64, na_value=np.nan)  # null: NaN
    return columns


def _require(table: str, have: Iterable[str], names: Iterable[str]) -> None:
    """Raise ContractError unless ``have`` (a table's columns) includes every one of ``names``."""
    missing = sorted(set(names) - set(have))
    if missing:
        raise ContractError(
            f"{table} table lacks {missing} needed for the calibration statistics; "
            f"it has {list(have)}"
        )


def _item_matrix(items: pa.Table, name: str) -> np.ndarray:
    """The ``(pages, 50)`` float64 matrix of an item list column of the items table.

    CTR and CVR (stored as float32) come back as the decimals the log wrote
    (:func:`_logged_decimals`); the other columns are converted exactly.

    Raises:
        ContractError: the column holds null lists or a list is not 50 long.
    """
    matrix = item_matrix(items, name)
    if matrix.dtype == np.float32:
        return _logged_decimals(pa.array(matrix.ravel())).reshape(matrix.shape)
    return matrix.astype(np.float64)


def _logged_decimals(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 values of float32 numbers that were parsed from short decimals.

    The items table stores CTR and CVR as float32, which is not the float64 of the logged
    decimal. A decimal of at most 6 significant digits (FLT_DIG; rates in (0, 1) written
    with at most 6 decimals, as in both layouts) is the shortest text that reads back as its
    float32, so Arrow's shortest float32 text, read as float64, is the value a float64
    parser of the raw text gives. Longer decimals come back at float32 precision.
    """
    return values.cast(pa.string()).cast(pa.float64()).to_numpy()


def sample_statistics(tables: Tables, *, max_pages: int | None = None) -> dict[str, float]:
    """:func:`sample_statistics_of` of a log read into memory
    (:func:`microsub.data.ingest.read_tables`), optionally of its first ``max_pages`` pages in
    line order. Malformed lines were quarantined by the ingestion, so the statistics are those
    of the valid pages."""
    pages, items = tables.pages, tables.items
    if max_pages is not None:
        pages = _by_line(pages).slice(0, max_pages)
        items = _by_line(items).slice(0, max_pages)
    return sample_statistics_of(pages, items, terminal_flags=tables.terminal_flags)


#: Statistics of the book's calibration table, in its order.
CALIBRATION_ROWS = (
    "pages",
    "sessions_per_page",
    "page_id_share_0",
    "page_id_share_3",
    "page_id_share_7",
    "page_id_share_8plus",
    "clicks_per_page_mean",
    "clicks_per_page_share_0",
    "price_p50",
    "price_p90",
    "price_p99",
    "price_whole_yuan_share",
    "ctr_p50",
    "cvr_p50",
    "page_mean_log_ctr_sd",
    "clicked_ctr_ratio",
    "pages_with_purchase_share",
    "purchase_power_share_6",
    "gender_1_share",
)


def calibration_comparison(
    real: Mapping[str, float],
    synthetic: Mapping[str, float],
    *,
    rows: tuple[str, ...] | None = CALIBRATION_ROWS,
) -> pd.DataFrame:
    """The generator's calibration: statistics of the real sample beside the synthetic data's.

    Args:
        real: :func:`sample_statistics` of the real sample.
        synthetic: :func:`sample_statistics_of` of the synthetic data's ingested tables.
        rows: statistics to keep, in this order (None: all of ``real``).

    Returns:
        ``statistic``, ``real``, ``synthetic`` rows.
    """
    keys = [k for k in (rows or tuple(real)) if k in real]
    return pd.DataFrame(
        {
            "statistic": keys,
            "real": [real[k] for k in keys],
            "synthetic": [synthetic.get(k, float("nan")) for k in keys],
        }
    )
