"""Parsing whole lines of the raw log into pages (and item lists) and quarantined lines.

:func:`detect_layout` names the layout of a log from its first lines; :func:`parse_lines` parses
a batch of whole lines, vectorised, and sorts every line into a valid page or a quarantined line
with the first reason of :data:`REASONS` that applies. The aggregates of a page are documented on
:func:`parse_lines`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microsub.contract import (
    EXAMPLE_SMALL,
    ITEMS_PER_PAGE,
    ITEMS_SCHEMA,
    LAYOUTS,
    MAX_PAGE_ID,
    OFFICIAL,
    QUARANTINE_SCHEMA,
    RawLayout,
)
from microsub.errors import DataFormatError

#: Why a line was quarantined. When a line has several faults, the first in this order wins.
REASONS: tuple[str, ...] = (
    "blank line",
    "wrong column count",
    "list not 50 long",
    "non-numeric value",
    "page id not in 0..11",
    "hour not in 0..23",
    "terminal flag not 0/1",
    "profile value not in -128..127",
    "position not in 0..599",
    "ctr or cvr not in 0..1",
    "price negative, NaN or infinite",
    "amount negative, NaN or infinite",
    "flag not 0/1",
    "no items: every slot is padding",
    "truncated at end of input",
)


_CODE = {reason: code for code, reason in enumerate(REASONS, start=1)}


#: List columns of a layout, in the order of :data:`~microsub.contract.ITEMS_SCHEMA`.
LIST_FIELDS = ("position", "ctr", "cvr", "price", "click", "cart", "fav", "amount", "feature")


_LIST_TYPES = {f.name: f.type.value_type for f in ITEMS_SCHEMA if f.name in LIST_FIELDS}


# numpy types of the item lists (DataType.to_pandas_dtype would need pandas for this)
_NUMPY_TYPES = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


_DETECT_LINES = 50  # lines of the head used to detect the layout


_N_POSITIONS = (MAX_PAGE_ID + 1) * ITEMS_PER_PAGE  # positions 0..599


_STRICT_NUMBER = r"^-?[0-9]{1,15}(\.[0-9]{0,15})?$"  # surely parseable: no per-token check


def _as_text(line: str | bytes) -> str:
    return line.decode("utf-8", "replace") if isinstance(line, bytes | bytearray) else line


def detect_layout(first_lines: Iterable[str | bytes]) -> RawLayout:
    """The raw layout of a log from its first lines (blank lines ignored).

    The layout is the one of :data:`~microsub.contract.LAYOUTS` whose field count (``;`` + 1)
    most of the first lines have, provided their page-id field is an integer; at least half of
    the (up to 50) lines looked at must agree.

    Raises:
        DataFormatError: no lines, or too few lines of either layout: the file is not the page
            log. The message quotes the first line that matches no layout.
    """
    lines = [_as_text(x).rstrip("\r\n") for x in first_lines]
    lines = [x for x in lines if x.strip()][:_DETECT_LINES]
    expected = (
        f"expected {OFFICIAL.n_fields} `;`-separated fields (official layout) or "
        f"{EXAMPLE_SMALL.n_fields} (example layout)"
    )
    if not lines:
        raise DataFormatError(f"{expected}; found no non-blank line: the input is empty")

    def fits(line: str, layout: RawLayout) -> bool:
        fields = line.split(";")
        return (
            len(fields) == layout.n_fields
            and re.fullmatch(r"[0-9]{1,2}", fields[layout.page_id].strip()) is not None
        )

    votes = {layout.name: sum(fits(x, layout) for x in lines) for layout in LAYOUTS.values()}
    best = max(LAYOUTS.values(), key=lambda layout: votes[layout.name])
    if 2 * votes[best.name] >= len(lines) and votes[best.name] > 0:
        return best
    unfit = (
        (i, x) for i, x in enumerate(lines, 1) if not any(fits(x, lay) for lay in LAYOUTS.values())
    )
    number, bad = next(unfit, (1, lines[0]))
    shown = bad if len(bad) <= 60 else bad[:57] + "..."
    raise DataFormatError(
        f"{expected}, with an integer page id; non-blank line {number} has "
        f"{bad.count(';') + 1}: {shown!r} ({votes[best.name]} of the first {len(lines)} lines "
        "fit a layout). Check that the path points to the Taobao page log (www.data or "
        "wwwdata.tar), or pass layout= explicitly"
    )


@dataclass(frozen=True)
class _Plan:
    """Token positions of one layout: a valid line has exactly ``n_tokens`` numeric tokens."""

    layout: RawLayout
    lengths: np.ndarray  # tokens per field: 50 for a list, 1 for a scalar
    offsets: np.ndarray  # index of each field's first token within the line
    n_tokens: int
    list_fields: np.ndarray  # field indices of the lists
    scalar_fields: np.ndarray

    @classmethod
    def of(cls, layout: RawLayout) -> _Plan:
        lists = sorted(
            getattr(layout, name) for name in LIST_FIELDS if getattr(layout, name) is not None
        )
        lengths = np.ones(layout.n_fields, np.int64)
        lengths[lists] = ITEMS_PER_PAGE
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        scalars = np.setdiff1d(np.arange(layout.n_fields), lists)
        return cls(layout, lengths, offsets, int(lengths.sum()), np.array(lists), scalars)

    def scalar(self, matrix: np.ndarray, field: int) -> np.ndarray:
        """Column of scalar ``field`` in the ``(n, n_tokens)`` value matrix, shape ``(n,)``."""
        return matrix[:, self.offsets[field]]

    def block(self, matrix: np.ndarray, field: int) -> np.ndarray:
        """Columns of list ``field`` in the value matrix (a view), shape ``(n, 50)``."""
        start = self.offsets[field]
        return matrix[:, start : start + ITEMS_PER_PAGE]


@dataclass(frozen=True)
class ParsedBatch:
    """Result of :func:`parse_lines`.

    Attributes:
        pages: one row per valid line, in file order: ``line_no``, the scalar and aggregate
            columns of the pages contract, ``done`` (the terminal flag, 0 where the layout has
            none), and the item lists of :data:`LIST_FIELDS` (null where the layout lacks
            them). Sessions are not assigned yet.
        quarantine: :data:`~microsub.contract.QUARANTINE_SCHEMA` rows of the invalid lines.
        n_lines: lines in the batch (valid + quarantined).
    """

    pages: pa.Table
    quarantine: pa.Table
    n_lines: int


def _cast_numbers(tokens: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse byte tokens as float64; a token is numeric iff Arrow's cast parses it.

    Fast path: one cast of the whole array. If any token fails, tokens that surely parse
    (plain decimals) are set aside by a regex and the rest are bisected with casts to find the
    failing ones, so the verdict per token is the cast's, whatever the batch holds.

    Returns:
        ``(values, valid)``: values (NaN where invalid) and a boolean mask, ``None`` if all valid.
    """
    try:
        return pc.cast(tokens, pa.float64()).to_numpy(), None
    except pa.ArrowInvalid:
        pass
    plain = pc.match_substring_regex(tokens, _STRICT_NUMBER).to_numpy(zero_copy_only=False)
    todo = [np.flatnonzero(~plain)]
    bad: list[int] = []
    while todo:  # bisection: O(k log n) casts for k bad tokens
        part = todo.pop()
        if len(part) == 0:
            continue
        try:
            pc.cast(tokens.take(part), pa.float64())
        except pa.ArrowInvalid:
            if len(part) == 1:
                bad.append(int(part[0]))
            else:
                todo += [part[: len(part) // 2], part[len(part) // 2 :]]
    valid = np.ones(len(tokens), bool)
    valid[bad] = False
    masked = pc.if_else(pa.array(valid), tokens, pa.scalar(None, tokens.type))
    values = pc.cast(masked, pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
    return values, valid


def _tokenize(buf: np.ndarray, piece: int = 2**20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split text at ``,``, ``;`` and newlines into tokens, by pieces of ``piece`` bytes.

    Every separator ends one token; the separators are dropped.

    Returns:
        ``(offsets, kinds, values)``: Arrow-style offsets of the tokens into ``values`` (int32,
        or int64 for 2 GiB and more), the separator byte that ends each token, and the token
        bytes without separators. Token ``k`` ends at byte ``offsets[k + 1] + k`` of ``buf``.
    """
    index_type = np.int32 if len(buf) < 2**31 - 1 else np.int64

    def separators(part: np.ndarray) -> np.ndarray:
        is_sep = part == ord(",")
        is_sep |= part == ord(";")
        is_sep |= part == ord("\n")
        return is_sep

    # Two passes (count, then fill) keep every temporary piece-sized (cache-friendly, and no
    # int64 index of the whole batch, no concatenation).
    starts = range(0, len(buf), piece)
    n_seps = sum(int(np.count_nonzero(separators(buf[s : s + piece]))) for s in starts)
    offsets = np.empty(n_seps + 1, index_type)
    offsets[0] = 0
    kinds = np.empty(n_seps, np.uint8)
    values = np.empty(len(buf) - n_seps, np.uint8)
    ramp = np.arange(min(piece, len(buf)), dtype=np.int64)
    k = v = 0
    for s in starts:
        part = buf[s : s + piece]
        is_sep = separators(part)
        hits = np.flatnonzero(is_sep)
        n = len(hits)
        kinds[k : k + n] = part[hits]
        hits -= ramp[:n]  # separator k sits at byte offsets[k + 1] + k
        hits += s - k
        offsets[k + 1 : k + 1 + n] = hits
        np.logical_not(is_sep, out=is_sep)
        text = part[is_sep]
        values[v : v + len(text)] = text
        k += n
        v += len(text)
    return offsets, kinds, values


def _int_in(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """True where ``x`` is a whole number in ``lo..hi`` (False for NaN)."""
    with np.errstate(invalid="ignore"):
        return (x >= lo) & (x <= hi) & (x == np.floor(x))


def _list_array(block: np.ndarray, dtype: pa.DataType) -> pa.Array:
    """Rows of a ``(n, 50)`` matrix as an Arrow list array of ``dtype``."""
    n = block.shape[0]
    offsets = pa.array(np.arange(0, n * ITEMS_PER_PAGE + 1, ITEMS_PER_PAGE, dtype=np.int32))
    values = block.astype(_NUMPY_TYPES[dtype]).reshape(-1)  # one copy, in the final type
    return pa.ListArray.from_arrays(offsets, pa.array(values, dtype))


def parse_lines(
    data: bytes,
    layout: RawLayout,
    *,
    first_line_no: int = 1,
    with_items: bool = True,
) -> ParsedBatch:
    """Parse complete lines of the raw log, vectorised (no Python loop over valid lines).

    The batch is tokenised at byte level with numpy: every ``,``, ``;`` and newline ends a
    token; the separators are removed and the tokens become one Arrow binary array, cast to
    float64 in one call (:func:`_cast_numbers`). A line is structurally valid when it has the
    layout's field count and each list field has 50 tokens and each scalar field one; its tokens
    then sit at fixed positions, and the values of the valid lines form an ``(n, T)`` matrix
    whose column blocks are the fields. Checks run in the order of :data:`REASONS`.

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

    Args:
        data: whole lines, each ending in ``\\n`` (the last one included).
        layout: the raw layout of the lines.
        first_line_no: 1-based line number of the first line in the raw text.
        with_items: build the item-list columns (skip them when only pages are needed).

    Returns:
        A :class:`ParsedBatch`.
    """
    if data and not data.endswith(b"\n"):
        raise ValueError("parse_lines needs whole lines: data must end with a newline")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    plan = _Plan.of(layout)
    if not data:
        empty = _pages_table(
            np.zeros((0, plan.n_tokens)), plan, np.zeros(0, np.int64), with_items=with_items
        )
        return ParsedBatch(empty, QUARANTINE_SCHEMA.empty_table(), 0)
    buf = np.frombuffer(data, np.uint8)
    token_offsets, kinds, token_bytes = _tokenize(buf)
    binary_type = pa.binary() if token_offsets.dtype == np.int32 else pa.large_binary()
    tokens = pa.Array.from_buffers(
        binary_type,
        len(kinds),
        [None, pa.py_buffer(token_offsets), pa.py_buffer(token_bytes)],
    )

    # Lines and fields, in token space.
    line_last_tok = np.flatnonzero(kinds == ord("\n"))
    n_lines = len(line_last_tok)
    # token k ends at separator byte offsets[k + 1] + k (k separators removed before it)
    line_end_byte = token_offsets[line_last_tok + 1].astype(np.int64) + line_last_tok
    line_start_byte = np.concatenate([[0], line_end_byte[:-1] + 1]).astype(np.int64)
    line_first_tok = np.concatenate([[0], line_last_tok[:-1] + 1]).astype(np.int64)
    n_tok = line_last_tok + 1 - line_first_tok
    field_last_tok = np.flatnonzero(kinds != ord(","))
    field_len = np.diff(field_last_tok, prepend=-1)
    line_fields_end = np.searchsorted(field_last_tok, line_last_tok, side="right")
    line_first_field = np.concatenate([[0], line_fields_end[:-1]]).astype(np.int64)
    n_fields = line_fields_end - line_first_field
    del kinds, field_last_tok

    code = np.zeros(n_lines, np.int8)

    def flag(rows: np.ndarray, mask: np.ndarray, reason: str) -> None:
        hit = rows[mask]
        hit = hit[code[hit] == 0]
        code[hit] = _CODE[reason]

    all_rows = np.arange(n_lines)
    single = np.flatnonzero(n_tok == 1)  # only a line without separators can be blank
    blank = np.array([not data[line_start_byte[i] : line_end_byte[i]].strip() for i in single])
    if len(single):
        flag(single, blank, "blank line")
    flag(all_rows, n_fields != layout.n_fields, "wrong column count")

    shaped = np.flatnonzero(code == 0)
    lengths = field_len[line_first_field[shaped][:, None] + np.arange(layout.n_fields)]
    flag(shaped, (lengths[:, plan.list_fields] != ITEMS_PER_PAGE).any(axis=1), "list not 50 long")
    flag(shaped, (lengths[:, plan.scalar_fields] != 1).any(axis=1), "non-numeric value")
    del lengths, field_len

    # Tokens of the structurally valid lines form an (n, T) matrix.
    rows = np.flatnonzero(code == 0)
    if len(rows) == n_lines:
        line_tokens = tokens
    else:
        keep = np.zeros(n_lines, bool)
        keep[rows] = True
        line_tokens = tokens.filter(pa.array(np.repeat(keep, n_tok)))
    del tokens, token_bytes, token_offsets
    values, valid = _cast_numbers(line_tokens)
    del line_tokens
    matrix = values.reshape(len(rows), plan.n_tokens)
    if valid is not None:
        flag(rows, ~valid.reshape(len(rows), plan.n_tokens).all(axis=1), "non-numeric value")

    def scalar(field: int) -> np.ndarray:
        return plan.scalar(matrix, field)

    def block(field: int) -> np.ndarray:
        return plan.block(matrix, field)

    with np.errstate(invalid="ignore"):
        flag(rows, ~_int_in(scalar(layout.page_id), 0, MAX_PAGE_ID), "page id not in 0..11")
        if layout.hour is not None:
            flag(rows, ~_int_in(scalar(layout.hour), 0, 23), "hour not in 0..23")
        if layout.terminal is not None:
            flag(rows, ~_int_in(scalar(layout.terminal), 0, 1), "terminal flag not 0/1")
        for index in (layout.age_level, layout.gender, layout.purchase_power):
            flag(rows, ~_int_in(scalar(index), -128, 127), "profile value not in -128..127")
        pos_ok = _int_in(block(layout.position), 0, _N_POSITIONS - 1).all(axis=1)
        flag(rows, ~pos_ok, "position not in 0..599")
        for index in (layout.ctr, layout.cvr):
            ok = ((block(index) >= 0) & (block(index) <= 1)).all(axis=1)
            flag(rows, ~ok, "ctr or cvr not in 0..1")
        for index, reason in (
            (layout.price, "price negative, NaN or infinite"),
            (layout.amount, "amount negative, NaN or infinite"),
        ):
            ok = (np.isfinite(block(index)) & (block(index) >= 0)).all(axis=1)
            flag(rows, ~ok, reason)
        for index in (layout.click, layout.cart, layout.fav):
            if index is not None:
                flag(rows, ~_int_in(block(index), 0, 1).all(axis=1), "flag not 0/1")
        flag(rows, ~_real_items(matrix, plan).any(axis=1), "no items: every slot is padding")

    good_in_rows = code[rows] == 0
    if not good_in_rows.all():
        matrix = matrix[good_in_rows]
    good = rows[good_in_rows]
    pages = _pages_table(matrix, plan, first_line_no + good, with_items=with_items)

    bad = np.flatnonzero(code)
    quarantine = pa.table(
        {
            "line_no": pa.array(first_line_no + bad, pa.int64()),
            "reason": pa.array([REASONS[c - 1] for c in code[bad]], pa.string()),
            "raw": pa.array(
                [
                    data[line_start_byte[i] : line_end_byte[i]].decode("utf-8", "backslashreplace")
                    for i in bad
                ],
                pa.large_string(),
            ),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return ParsedBatch(pages=pages, quarantine=quarantine, n_lines=n_lines)


def _real_items(matrix: np.ndarray, plan: _Plan) -> np.ndarray:
    """``(n, 50)`` bool: the slot holds an item, not padding (price = ctr = cvr = 0)."""
    layout = plan.layout
    return ~(
        (plan.block(matrix, layout.price) == 0)
        & (plan.block(matrix, layout.ctr) == 0)
        & (plan.block(matrix, layout.cvr) == 0)
    )


def _pages_table(
    matrix: np.ndarray, plan: _Plan, line_no: np.ndarray, *, with_items: bool
) -> pa.Table:
    """Pages (before sessions) from the ``(n, T)`` value matrix of valid lines."""
    layout = plan.layout
    n = matrix.shape[0]

    def scalar(field: int) -> np.ndarray:
        return plan.scalar(matrix, field)

    def block(field: int) -> np.ndarray:
        return plan.block(matrix, field)

    def count(index: int | None) -> np.ndarray:
        if index is None:
            return np.zeros(n, np.int16)
        return block(index).sum(axis=1).astype(np.int16)

    def int8(index: int | None) -> pa.Array:
        if index is None:
            return pa.nulls(n, pa.int8())
        return pa.array(scalar(index).astype(np.int8))

    amount = block(layout.amount)
    n_clicks, n_carts = count(layout.click), count(layout.cart)
    page_value = amount.sum(axis=1)
    real = _real_items(matrix, plan)
    n_items = real.sum(axis=1)

    def item_mean(values: np.ndarray) -> pa.Array:
        return pa.array((np.where(real, values, 0.0).sum(axis=1) / n_items).astype(np.float32))

    columns: dict[str, pa.Array] = {
        "line_no": pa.array(line_no.astype(np.int64)),
        "action_page_id": int8(layout.page_id),
        "hour": int8(layout.hour),
        "state_purchase_power": int8(layout.purchase_power),
        "age_level": int8(layout.age_level),
        "gender": int8(layout.gender),
        "n_clicks": pa.array(n_clicks),
        "n_carts": pa.array(n_carts),
        "n_favs": pa.array(count(layout.fav)),
        "n_purchases": pa.array((amount > 0).sum(axis=1).astype(np.int16)),
        "engagement": pa.array((n_clicks + n_carts).astype(np.int16)),
        "page_value": pa.array(page_value),
        "reward": pa.array(page_value),
        "mean_ctr": item_mean(block(layout.ctr)),
        "mean_cvr": item_mean(block(layout.cvr)),
        "mean_log_price": item_mean(np.log(np.maximum(block(layout.price), 0.01))),
        "n_items": pa.array(n_items.astype(np.int8)),
        "done": (
            pa.array(np.zeros(n, np.int8))
            if layout.terminal is None
            else pa.array(scalar(layout.terminal).astype(np.int8))
        ),
    }
    if with_items:
        for name in LIST_FIELDS:
            index = getattr(layout, name)
            dtype = _LIST_TYPES[name]
            columns[name] = (
                pa.nulls(n, pa.list_(dtype)) if index is None else _list_array(block(index), dtype)
            )
    return pa.table(columns)
