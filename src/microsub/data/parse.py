"""Parsing whole lines of the raw log into pages (and item lists) and quarantined lines.

:func:`detect_layout` names the layout of a log from its first lines. :func:`parse_lines` (a
batch of raw bytes) and :func:`parse_frame` (a frame of lines) sort every line into a valid page
or a quarantined line with the first reason of :data:`REASONS` that applies. Both engines use
them: the single-machine driver (:mod:`microsub.data.ingest`) on batches of the file, the Spark
engine (:mod:`microsub.data.spark`) on each partition.

Two parsers, one result:

- the *scanner* (:mod:`microsub.data.scan`, compiled) reads every line whose tokens all have a
  plain form (``-?[0-9]+``, ``-?[0-9]+\\.[0-9]+`` with an exact mantissa, flags ``0``/``1``,
  the layout's field and list counts) straight into value matrices; these are almost all the
  lines of a log, and the range checks below then apply to their values;
- the *exact parser* (:func:`_parse_exact`, Polars's string kernels) parses the other lines and
  names their fault. It is the reference: a scanned value is bit for bit the value it gives
  (the tests check both on the same lines).

What the exact parser parses and what it only checks:

- the ``;``-separated fields come from one ``str.splitn`` per line; a line is *shaped* when it
  has the layout's field count and every list field holds 49 commas (50 values);
- number lists (ctr, cvr, price, amount, feature) and positions: ``str.split`` + cast, run on
  every list column at once (one thread per column);
- 0/1 flag lists (click, cart, fav) are not cast: a valid flag list is exactly 50 digits ``0`` or
  ``1`` separated by commas (99 bytes), checked and read from its bytes with NumPy
  (the digit at byte ``2k`` is flag ``k``);
- only lines that fail one of these fast checks are cast again as floats, to name the reason.

Numbers: a value is numeric when Polars's string-to-float cast parses it (``1e3``, ``nan`` and
``inf`` are numbers; the range checks then decide; ``""``, ``" 1"``, ``0x10`` are not).
Integer fields (page id, hour, profile, terminal flag, positions, flags) must be written as
integers, as the log writes them: ``2.0`` as a page id is numeric but not an integer, so the line
is quarantined as ``"page id not in 0..11"``; a flag other than ``0`` or ``1`` (``2``, ``0.5``,
``1.0``) is ``"flag not 0/1"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from microsub.contract import (
    EXAMPLE_SMALL,
    ITEMS_PER_PAGE,
    LAYOUTS,
    MAX_PAGE_ID,
    OFFICIAL,
    QUARANTINE_SCHEMA,
    RawLayout,
)
from microsub.data.pages import LIST_FIELDS, pages_table, real_items
from microsub.data.scan import Scan, scan_lines, scan_text
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


_DETECT_LINES = 50  # lines of the head used to detect the layout


_N_POSITIONS = (MAX_PAGE_ID + 1) * ITEMS_PER_PAGE  # positions 0..599


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


_BLANK = " \t\n\r\x0b\x0c"  # what bytes.strip() strips: a line of only these is blank


_FLAG_BYTES = 2 * ITEMS_PER_PAGE - 1  # a valid flag list: 50 digits 0/1 and 49 commas


#: Integer scalar fields: (lowest, highest, reason when not an integer in that range).
_SCALARS: dict[str, tuple[int, int, str]] = {
    "page_id": (0, MAX_PAGE_ID, "page id not in 0..11"),
    "hour": (0, 23, "hour not in 0..23"),
    "terminal": (0, 1, "terminal flag not 0/1"),
    "age_level": (-128, 127, "profile value not in -128..127"),
    "gender": (-128, 127, "profile value not in -128..127"),
    "purchase_power": (-128, 127, "profile value not in -128..127"),
}


_NUMBERS = ("ctr", "cvr", "price", "amount", "feature")  # float lists, cast
_FLAGS = ("click", "cart", "fav")  # 0/1 lists, read from their bytes


@dataclass(frozen=True)
class ParsedBatch:
    """Result of :func:`parse_lines`.

    Attributes:
        pages: one row per valid line, in file order: ``line_no``, the scalar and aggregate
            columns of the pages contract, ``done`` (the terminal flag, 0 where the layout has
            none), and the item lists of :data:`LIST_FIELDS` (null where the layout lacks
            them) when asked for. Sessions are not assigned yet.
        quarantine: :data:`~microsub.contract.QUARANTINE_SCHEMA` rows of the invalid lines.
        n_lines: lines in the batch (valid + quarantined).
    """

    pages: pa.Table
    quarantine: pa.Table
    n_lines: int


def _whole_lines(data: bytes) -> bytes:
    """``data`` with ``\\r\\n`` read as ``\\n``.

    Raises:
        ValueError: ``data`` does not end with a newline.
    """
    if data and not data.endswith(b"\n"):
        raise ValueError("parse_lines needs whole lines: data must end with a newline")
    return data.replace(b"\r\n", b"\n") if b"\r" in data else data


def lines_frame(data: bytes, first_line_no: int = 1) -> pl.DataFrame:
    """Cut whole lines into a frame of ``line_no`` (Int64, from ``first_line_no``) and ``raw``.

    ``\\r\\n`` is read as ``\\n``; bytes that are not UTF-8 become ``\\xNN`` escapes (such a
    value is no number, so its line is quarantined with its bytes shown). The lines are cut with
    one NumPy pass over the newlines and handed to Polars as one Arrow buffer (no Python loop).

    Raises:
        ValueError: ``data`` does not end with a newline.
    """
    data = _whole_lines(data)
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
    n = len(ends)
    text = data.replace(b"\n", b"")
    offsets = np.zeros(n + 1, np.int64)
    offsets[1:] = ends - np.arange(n)  # line i ends at its newline, less the i removed before
    array = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))
    try:
        array.validate(full=True)  # UTF-8
    except pa.ArrowInvalid:
        return lines_frame(data.decode("utf-8", "backslashreplace").encode(), first_line_no)
    line_no = np.arange(first_line_no, first_line_no + n, dtype=np.int64)
    return pl.DataFrame({"line_no": line_no, "raw": pl.from_arrow(array)})


def parse_lines(
    data: bytes,
    layout: RawLayout,
    *,
    first_line_no: int = 1,
    with_items: bool = True,
) -> ParsedBatch:
    """Parse complete lines of the raw log (each ending in ``\\n``).

    The same pages and quarantine as :func:`parse_frame` of :func:`lines_frame`, without
    making a frame of the lines first: well-formed lines are scanned straight from the bytes
    (:func:`microsub.data.scan.scan_text`), and only the others are cut into a frame.

    Args:
        data: whole lines, each ending in ``\\n`` (the last one included).
        layout: the raw layout of the lines.
        first_line_no: 1-based line number of the first line in the raw text.
        with_items: build the item-list columns (skip them when only pages are needed).

    Raises:
        ValueError: ``data`` does not end with a newline.
    """
    data = _whole_lines(data)
    scanned = scan_text(data, layout)
    n = len(scanned.ok)
    line_no = np.arange(first_line_no, first_line_no + n, dtype=np.int64)

    def rows(picked: np.ndarray) -> pl.DataFrame:
        starts, ends = scanned.starts[picked], scanned.ends[picked]
        text = b"".join(data[a : b + 1] for a, b in zip(starts, ends, strict=True))
        return lines_frame(text).with_columns(line_no=pl.Series(line_no[picked]))

    pages, quarantine = _sort_out(scanned, line_no, rows, layout, with_items)
    return ParsedBatch(pages=pages, quarantine=quarantine, n_lines=n)


def parse_frame(
    lines: pl.DataFrame, layout: RawLayout, *, with_items: bool = True
) -> tuple[pa.Table, pa.Table]:
    """Sort lines into pages and quarantined lines, with the first reason of :data:`REASONS`.

    Well-formed lines are scanned from the bytes of the ``raw`` column
    (:func:`microsub.data.scan.scan_lines`); the others are parsed by Polars's string kernels,
    which name their fault (:func:`_parse_exact`). Both give the same values for a line.

    Args:
        lines: ``line_no`` (Int64) and ``raw`` (String, without the newline), in file order.
        layout: the raw layout of the lines.
        with_items: add the item-list columns to the pages.

    Returns:
        ``(pages, quarantine)``: the pages (:func:`microsub.data.pages.pages_table`; sessions
        not assigned) and :data:`~microsub.contract.QUARANTINE_SCHEMA` rows, both in line order.
    """
    array = lines.get_column("raw").to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    n = len(array)
    offsets = np.frombuffer(array.buffers()[1], np.int64)[array.offset : array.offset + n + 1]
    data = array.buffers()[2]
    buffer = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    scanned = scan_lines(buffer, offsets[:-1], offsets[1:], layout)
    line_no = lines.get_column("line_no").to_numpy()
    return _sort_out(scanned, line_no, lambda picked: lines[picked], layout, with_items)


def _sort_out(
    scanned: Scan,
    line_no: np.ndarray,
    rows: Callable[[np.ndarray], pl.DataFrame],
    layout: RawLayout,
    with_items: bool,
) -> tuple[pa.Table, pa.Table]:
    """Pages and quarantine of scanned lines (see :func:`parse_frame`).

    Args:
        scanned: the scan of ``n`` lines.
        line_no: ``(n,)`` their line numbers.
        rows: the lines of the given indices as a frame of ``line_no`` and ``raw`` (what
            :func:`lines_frame` makes), for the lines that need their text.
    """
    ok = scanned.ok
    fast = np.flatnonzero(ok)
    values = scanned.values
    if len(fast) < len(ok):
        values = {k: v[fast] for k, v in values.items()}
    code = _reason_codes(values, np.zeros(len(fast), bool), {}, len(fast))
    good = code == 0
    if not good.all():
        values = {k: v[good] for k, v in values.items()}
    pages = pages_table(values, line_no[fast[good]], layout, with_items)
    quarantines = []
    if not good.all():  # numbers out of range: the checks of the exact parser
        bad = fast[~good]
        quarantines.append(_quarantine(rows(bad), code[~good]))
    if len(fast) < len(ok):  # the exact parser names the faults of the other lines
        slow = rows(np.flatnonzero(~ok))
        exact_pages, exact_quarantine = _parse_exact(slow, layout, with_items=with_items)
        pages = _in_line_order(pa.concat_tables([pages, exact_pages]))
        quarantines.append(exact_quarantine)
    if not quarantines:
        return pages, QUARANTINE_SCHEMA.empty_table()
    return pages, _in_line_order(pa.concat_tables(quarantines))


def _in_line_order(table: pa.Table) -> pa.Table:
    order = np.argsort(table.column("line_no").to_numpy(), kind="stable")
    return table.take(order)


def _quarantine(lines: pl.DataFrame, code: np.ndarray) -> pa.Table:
    """Quarantine rows of ``lines`` (``line_no``, ``raw``) with reason codes ``code``."""
    return pa.table(
        {
            "line_no": pa.array(lines.get_column("line_no").to_numpy(), pa.int64()),
            "reason": pa.array(np.asarray(REASONS, object)[code - 1], pa.string()),
            "raw": lines.get_column("raw").to_arrow().cast(pa.large_string()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def _parse_exact(
    lines: pl.DataFrame, layout: RawLayout, *, with_items: bool = True
) -> tuple[pa.Table, pa.Table]:
    """:func:`parse_frame` with Polars's string kernels alone: the parser of lines that are not
    well formed, which names the first fault of each (arguments and result as there)."""
    names = [f"f{k}" for k in range(layout.n_fields)]
    fields = lines.select(
        pl.col("raw").str.splitn(";", layout.n_fields).struct.rename_fields(names).struct.unnest(),
    )
    cast = _cast(fields, layout)
    shaped = _shaped(fields, cast, layout)
    code = np.zeros(lines.height, np.int8)
    if not shaped.all():
        code[~shaped] = _shape_codes(lines.filter(~shaped), fields.filter(~shaped), layout)
        fields, cast = fields.filter(shaped), cast.filter(shaped)
    rows = np.flatnonzero(shaped)
    values, code[rows] = _parse_shaped(fields, cast, layout)
    good = code[rows] == 0
    if not good.all():
        values = {k: v[good] for k, v in values.items()}
    line_no = lines.get_column("line_no").to_numpy()
    pages = pages_table(values, line_no[rows[good]], layout, with_items)
    bad = np.flatnonzero(code)
    return pages, _quarantine(lines[bad], code[bad])


def _shape_codes(lines: pl.DataFrame, fields: pl.DataFrame, layout: RawLayout) -> np.ndarray:
    """Reason codes of lines that are not shaped: blank, wrong column count or a short list."""
    raw = lines.get_column("raw")
    blank = raw.str.strip_chars(_BLANK).str.len_bytes().to_numpy() == 0
    wrong = raw.str.count_matches(";", literal=True).to_numpy() != layout.n_fields - 1
    return np.where(
        blank,
        _CODE["blank line"],
        np.where(wrong, _CODE["wrong column count"], _CODE["list not 50 long"]),
    ).astype(np.int8)


def _block(series: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """A list column of 50-value lists as an ``(n, 50)`` matrix and its rows holding a null."""
    array = series.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    flat = array.flatten()
    matrix = flat.to_numpy(zero_copy_only=False).reshape(-1, ITEMS_PER_PAGE)
    if flat.null_count == 0:
        return matrix, np.zeros(len(series), bool)
    nulls = np.asarray(flat.is_null()).reshape(-1, ITEMS_PER_PAGE).any(axis=1)
    return matrix, nulls


def _numeric(texts: pl.Series, *, is_list: bool) -> np.ndarray:
    """Rows of ``texts`` whose every value is a number (Polars's float cast parses it)."""
    if not is_list:
        return texts.cast(pl.Float64, strict=False).is_not_null().to_numpy()
    as_floats = texts.str.split(",").cast(pl.List(pl.Float64), strict=False)
    return ~_block(as_floats)[1]


def _flag_block(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """0/1 flag lists read from their bytes: an ``(n, 50)`` int8 matrix and the valid rows.

    A valid list is 99 bytes: digit ``0`` or ``1`` at the even bytes, commas at the odd ones;
    invalid rows get zeros.
    """
    n = len(texts)
    array = texts.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    if n == 0:
        return np.zeros((0, ITEMS_PER_PAGE), np.int8), np.zeros(0, bool)
    offsets = np.frombuffer(array.buffers()[1], np.int64)[array.offset : array.offset + n + 1]
    data = np.frombuffer(array.buffers()[2], np.uint8)
    ok = np.diff(offsets) == _FLAG_BYTES
    if ok.all() and offsets[-1] - offsets[0] == n * _FLAG_BYTES:
        text = data[offsets[0] : offsets[-1]].reshape(n, _FLAG_BYTES)
    else:
        text = np.full((n, _FLAG_BYTES), ord("x"), np.uint8)
        text[ok] = data[offsets[:-1][ok, None] + np.arange(_FLAG_BYTES)]
    digits = text[:, ::2]
    ok &= ((digits == ord("0")) | (digits == ord("1"))).all(axis=1)
    ok &= (text[:, 1::2] == ord(",")).all(axis=1)
    flags = (digits == ord("1")).astype(np.int8)
    flags[~ok] = 0
    return flags, ok


def _present(layout: RawLayout) -> list[str]:
    """Names of the scalar and list fields the layout has."""
    return [f for f in (*_SCALARS, *LIST_FIELDS) if getattr(layout, f) is not None]


def _cast(fields: pl.DataFrame, layout: RawLayout) -> pl.DataFrame:
    """The scalars cast to Int64 and the number lists split and cast (Int64 positions,
    Float64 values), one column per field, computed in parallel; null where a value does not
    parse. Flag lists are not cast (see :func:`_flag_block`)."""
    present = _present(layout)

    def text(name: str) -> pl.Expr:
        return pl.col(f"f{getattr(layout, name)}")

    return fields.select(
        *(text(s).cast(pl.Int64, strict=False).alias(s) for s in present if s in _SCALARS),
        text("position").str.split(",").cast(pl.List(pl.Int64), strict=False).alias("position"),
        *(
            text(f).str.split(",").cast(pl.List(pl.Float64), strict=False).alias(f)
            for f in present
            if f in _NUMBERS
        ),
    )


def _shaped(fields: pl.DataFrame, cast: pl.DataFrame, layout: RawLayout) -> np.ndarray:
    """Lines with the layout's field count and 50 values in every list field, shape ``(n,)``.

    ``splitn`` leaves the last field null when fields are missing and puts the rest of the line,
    with its ``;``, in it when there are more.

    Cast lists are measured by their length, flag lists (not cast) by their commas: a flag list
    of the right length in bytes may still hold 49 values (``1,00,1,...``).
    """
    present = _present(layout)
    lists = [f for f in present if f in LIST_FIELDS and f not in _FLAGS]
    flags = [f for f in present if f in _FLAGS]
    last = pl.col(f"f{layout.n_fields - 1}")  # null if fields are missing; holds ';' if extra
    checks = pl.concat(
        [
            fields.select(
                (last.is_not_null() & ~last.str.contains(";", literal=True)).alias("fields"),
                *(
                    pl.col(f"f{getattr(layout, f)}").str.count_matches(",", literal=True)
                    == ITEMS_PER_PAGE - 1
                    for f in flags
                ),
            ),
            cast.select(*(pl.col(f).list.len() == ITEMS_PER_PAGE for f in lists)),
        ],
        how="horizontal",
    )
    shaped = np.ones(fields.height, bool)
    for column in checks.iter_columns():
        shaped &= column.fill_null(False).to_numpy()
    return shaped


def _parse_shaped(
    fields: pl.DataFrame, cast: pl.DataFrame, layout: RawLayout
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Values and reason codes (0: valid) of shaped lines (see :func:`parse_frame`).

    Args:
        fields: the text of each field (``f0``, ``f1``, ...) of the shaped lines.
        cast: :func:`_cast` of them.

    Returns:
        ``(values, code)``: scalars as ``(n,)`` int64 arrays and lists as ``(n, 50)`` matrices
        (float64; int64 positions; int8 flags), keyed by the names of the layout's fields; and
        the int8 reason code per line.
    """
    present = _present(layout)
    n = fields.height
    values: dict[str, np.ndarray] = {}
    non_numeric = np.zeros(n, bool)
    not_valid: dict[str, np.ndarray] = {}  # numeric, but not an integer (or flag) as required
    for name in present:
        raw = fields.get_column(f"f{getattr(layout, name)}")
        if name in _FLAGS:
            values[name], suspect = _flag_block(raw)
            suspect = ~suspect
        elif name in _SCALARS:
            ints = cast.get_column(name)
            suspect = ints.is_null().to_numpy()
            values[name] = ints.fill_null(0).to_numpy()
        else:
            values[name], suspect = _block(cast.get_column(name))
        if name in _NUMBERS or not suspect.any():
            non_numeric |= suspect
            continue
        numeric = np.ones(n, bool)
        numeric[suspect] = _numeric(raw.filter(suspect), is_list=name not in _SCALARS)
        non_numeric |= ~numeric
        not_valid[name] = suspect & numeric
    return values, _reason_codes(values, non_numeric, not_valid, n)


def _reason_codes(
    values: dict[str, np.ndarray],
    non_numeric: np.ndarray,
    not_valid: dict[str, np.ndarray],
    n: int,
) -> np.ndarray:
    """Reason code per shaped line (0: valid): the first check of :data:`REASONS` that fails."""
    code = np.zeros(n, np.int8)
    none = np.zeros(n, bool)

    def flag(mask: np.ndarray, reason: str) -> None:
        code[mask & (code == 0)] = _CODE[reason]

    flag(non_numeric, "non-numeric value")
    for name, (lo, hi, reason) in _SCALARS.items():
        if name in values:
            v = values[name]
            flag(not_valid.get(name, none) | (v < lo) | (v > hi), reason)
    with np.errstate(invalid="ignore"):
        pos = values["position"]
        in_range = ((pos >= 0) & (pos < _N_POSITIONS)).all(axis=1)
        flag(not_valid.get("position", none) | ~in_range, "position not in 0..599")
        for name in ("ctr", "cvr"):
            flag(~((values[name] >= 0) & (values[name] <= 1)).all(axis=1), "ctr or cvr not in 0..1")
        for name, reason in (
            ("price", "price negative, NaN or infinite"),
            ("amount", "amount negative, NaN or infinite"),
        ):
            ok = (np.isfinite(values[name]) & (values[name] >= 0)).all(axis=1)
            flag(~ok, reason)
        for name in _FLAGS:
            flag(not_valid.get(name, none), "flag not 0/1")
        flag(~real_items(values).any(axis=1), "no items: every slot is padding")
    return code
