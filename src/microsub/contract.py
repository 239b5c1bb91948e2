"""The data contract: raw log layouts, lake buckets, and the schemas of the published datasets.

Everything that more than one stage must agree on lives here, and nothing else: the column
layouts of the raw text, the bucket names of the lake, and the Arrow schemas of the pages,
items and quarantine datasets. See ``DESIGN.md`` ("The pages table") for the meaning of the
public columns; ``state_purchase_power``, ``action_page_id``, ``reward`` and ``done`` are read by
outside code straight from the ``processed-data`` bucket and must keep their names.

A second source (for example the UserBehavior event log) adds a layout here and a parser in
``ingest``; the pages contract stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microsub.errors import ContractError

#: Version of the pages/items/quarantine schemas, written into every manifest.
SCHEMA_VERSION = 1

#: Items per page (one request of the Taobao feed returns 50 items).
ITEMS_PER_PAGE = 50

#: Largest page id: the platform stops a session after page 11 (12 pages).
MAX_PAGE_ID = 11

# --------------------------------------------------------------------------------------------
# Lake buckets (folders in a local lake)
# --------------------------------------------------------------------------------------------
BUCKET_RAW = "raw-data"  #: the raw text log, immutable, as received
BUCKET_PROCESSED = "processed-data"  #: the pages table, parts at the top of the bucket
BUCKET_ITEMS = "items-data"  #: item-level lists, one row per page
BUCKET_QUARANTINE = "quarantine"  #: malformed lines with their line number and reason
BUCKET_MODELS = "models"  #: trained models with metrics and training-data manifests
BUCKET_REPORTS = "reports"  #: findings.yaml, ingestion reports, benchmark tables
BUCKETS = (
    BUCKET_RAW,
    BUCKET_PROCESSED,
    BUCKET_ITEMS,
    BUCKET_QUARANTINE,
    BUCKET_MODELS,
    BUCKET_REPORTS,
)


# --------------------------------------------------------------------------------------------
# Raw text layouts
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawLayout:
    """Column positions (0-based) of one raw text layout; ``None`` where the layout has no such
    column.

    Attributes:
        name: short name used in reports.
        n_fields: number of ``;``-separated fields per line.
        page_id, hour, age_level, gender, purchase_power, terminal: scalar fields.
        position, ctr, cvr, price, click, cart, fav, amount, feature: 50-item list fields.
    """

    name: str
    n_fields: int
    page_id: int
    hour: int | None
    age_level: int
    gender: int
    purchase_power: int
    position: int
    ctr: int
    cvr: int
    price: int
    click: int
    cart: int | None
    fav: int | None
    amount: int
    feature: int | None
    terminal: int | None


#: The official 15-column layout of ``www.data`` (upstream ``data/readme``).
OFFICIAL = RawLayout(
    name="official-15",
    n_fields=15,
    page_id=0,
    hour=1,
    age_level=2,
    gender=3,
    purchase_power=4,
    position=5,
    ctr=6,
    cvr=7,
    price=8,
    click=9,
    cart=10,
    fav=11,
    amount=12,
    feature=13,
    terminal=14,
)

#: The 14-field example layout of ``rec_rl_data_small`` (upstream ``examples/rec_es``): no hour,
#: no cart/fav lists, no terminal flag.
EXAMPLE_SMALL = RawLayout(
    name="example-14",
    n_fields=14,
    page_id=4,
    hour=None,
    age_level=1,
    gender=2,
    purchase_power=3,
    position=6,
    ctr=7,
    cvr=8,
    price=9,
    click=10,
    cart=None,
    fav=None,
    amount=11,
    feature=None,
    terminal=None,
)

LAYOUTS: dict[int, RawLayout] = {OFFICIAL.n_fields: OFFICIAL, EXAMPLE_SMALL.n_fields: EXAMPLE_SMALL}


def layout_named(name: str) -> RawLayout:
    """The layout whose :attr:`RawLayout.name` is ``name`` (as recorded in ingestion reports).

    Raises:
        ContractError: naming the known layouts.
    """
    for layout in LAYOUTS.values():
        if layout.name == name:
            return layout
    known = [layout.name for layout in LAYOUTS.values()]
    raise ContractError(f"no raw layout named {name!r}; known layouts: {known}")


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------
#: The pages table, one row per page (DESIGN.md). Order is the column order on disk.
PAGES_SCHEMA = pa.schema(
    [
        pa.field("session_id", pa.int64(), nullable=False),
        pa.field("line_no", pa.int64(), nullable=False),
        pa.field("action_page_id", pa.int8(), nullable=False),
        pa.field("hour", pa.int8()),  # null where the layout has no hour
        pa.field("state_purchase_power", pa.int8(), nullable=False),
        pa.field("age_level", pa.int8(), nullable=False),
        pa.field("gender", pa.int8(), nullable=False),
        pa.field("n_clicks", pa.int16(), nullable=False),
        pa.field("n_carts", pa.int16(), nullable=False),
        pa.field("n_favs", pa.int16(), nullable=False),
        pa.field("n_purchases", pa.int16(), nullable=False),
        pa.field("engagement", pa.int16(), nullable=False),
        pa.field("page_value", pa.float64(), nullable=False),
        pa.field("reward", pa.float64(), nullable=False),
        pa.field("mean_ctr", pa.float32(), nullable=False),
        pa.field("mean_cvr", pa.float32(), nullable=False),
        pa.field("mean_log_price", pa.float32(), nullable=False),
        pa.field("n_items", pa.int8(), nullable=False),  # real items: 50 minus padded slots
        pa.field("done", pa.int8(), nullable=False),
        pa.field("truncated", pa.int8(), nullable=False),
        # --- session bookkeeping and next-state columns (microsub.sessions) ---
        pa.field("page_jump", pa.int8(), nullable=False),  # session opened by a page-id jump
        pa.field("has_next", pa.int8(), nullable=False),  # 1 if the session has a page t+1
        pa.field("next_engagement", pa.float32()),  # NaN on a session's last page
        pa.field("next_page_value", pa.float64()),
        pa.field("next_mean_ctr", pa.float32()),
        pa.field("next_mean_cvr", pa.float32()),
        pa.field("next_mean_log_price", pa.float32()),
    ]
)

#: Columns the pages contract promises to outside readers (DESIGN.md); the rest are ours.
PUBLIC_PAGE_COLUMNS = (
    "session_id",
    "line_no",
    "action_page_id",
    "hour",
    "state_purchase_power",
    "age_level",
    "gender",
    "n_clicks",
    "n_carts",
    "n_favs",
    "n_purchases",
    "engagement",
    "page_value",
    "reward",
    "mean_ctr",
    "mean_cvr",
    "mean_log_price",
    "done",
    "truncated",
)

#: Protected attributes: kept for fairness audits, never a model feature.
PROTECTED_COLUMNS = ("age_level", "gender")

#: Item-level lists, one row per page, keyed by ``line_no`` (and ``session_id``).
ITEMS_SCHEMA = pa.schema(
    [
        pa.field("session_id", pa.int64(), nullable=False),
        pa.field("line_no", pa.int64(), nullable=False),
        pa.field("position", pa.list_(pa.int16())),
        pa.field("ctr", pa.list_(pa.float32())),
        pa.field("cvr", pa.list_(pa.float32())),
        pa.field("price", pa.list_(pa.float64())),
        pa.field("click", pa.list_(pa.int8())),
        pa.field("cart", pa.list_(pa.int8())),  # null where the layout has no carts
        pa.field("fav", pa.list_(pa.int8())),  # null where the layout has no favs
        pa.field("amount", pa.list_(pa.float64())),
        pa.field("feature", pa.list_(pa.float32())),  # null where the layout has none
    ]
)

#: Malformed raw lines, kept whole so that nothing is lost.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("line_no", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.large_string(), nullable=False),
    ]
)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return ``table`` with exactly ``schema``'s columns, in order, cast to its types.

    Args:
        table: an Arrow table that holds at least every column of ``schema``.
        schema: the target schema (for example :data:`PAGES_SCHEMA`).

    Raises:
        ContractError: a column is missing, cannot be cast safely, or holds nulls where the
            schema says it may not.
    """
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ContractError(f"table lacks contract columns {missing}; it has {table.column_names}")
    columns = []
    for f in schema:
        col = table.column(f.name)
        try:
            col = col.cast(f.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ContractError(
                f"column {f.name!r} of type {col.type} cannot be cast to {f.type}: {exc}"
            ) from exc
        if not f.nullable and col.null_count:
            raise ContractError(f"column {f.name!r} holds {col.null_count} nulls; allowed: none")
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def item_matrix(items: pa.Table, name: str) -> np.ndarray:
    """The ``(pages, 50)`` matrix of the items table's list column ``name``, in the lists'
    value type (float32 CTR/CVR, float64 prices and amounts, int8 flags, int16 positions).

    Raises:
        ContractError: the column holds null lists or a list that is not 50 long.
    """
    column = items.column(name)
    values = pc.list_flatten(column)
    if column.null_count or len(values) != items.num_rows * ITEMS_PER_PAGE:
        raise ContractError(
            f"items column {name!r} holds {len(values)} values and {column.null_count} null "
            f"lists over {items.num_rows} pages; expected {ITEMS_PER_PAGE} values per page"
        )
    return values.to_numpy().reshape(items.num_rows, ITEMS_PER_PAGE)
