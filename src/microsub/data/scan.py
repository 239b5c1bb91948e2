"""The fast path of the parser: a compiled scanner of well-formed lines of the raw log.

Almost every line of the log is well formed: the layout's ``;``-separated fields, 50
comma-separated values in every list, plain decimal numbers. :func:`scan_text` (a batch of
whole lines) and :func:`scan_lines` (lines given by their byte ranges, as Arrow stores a string
column) read such lines in one pass over their bytes, straight into the value matrices the
pages and items tables are built from (Numba kernels, compiled once and cached on disk, run on
every core: the lines are cut into one run of lines per thread, and the kernels release the GIL).

A line is *scanned* (``ok``) only if every token has the plain form below; any other line (a
blank line, a wrong field count, a short list, ``1e3``, ``nan``, ``+1``, ``.5``, a non-ASCII
byte in a parsed field, ...) is left to the exact parser of :mod:`microsub.data.parse`, which
names its fault. The forms are chosen so that a scanned value is bit for bit the value the exact
parser (Polars's string casts) gives:

- integer fields (page id, hour, profile, terminal flag) and positions: ``-?[0-9]{1,18}``;
- numbers (ctr, cvr, price, amount, feature): ``-?[0-9]+(\\.[0-9]+)?`` with at most 18 digits,
  which, read as an integer ``m`` (the point dropped, ``k`` digits after it), make at most
  2**53. Then ``m`` and ``10**k`` are exact doubles and one IEEE division ``m / 10**k`` is the
  correctly rounded value of the decimal (Clinger's fast path): what a correctly rounding parser
  such as Polars's returns;
- flags (click, cart, fav): one digit ``0`` or ``1``;
- fields the layout does not use: anything but ``;``.

Speed: about 1.5 ns a byte on one core, against 7 for the exact parser (``benchmarks/ingest.py``
measures the whole ingestion).

Range checks (a page id of 12, a ctr of 1.5, a negative price) are not the scanner's business:
a scanned line holds numbers, and :func:`microsub.data.parse.parse_lines` applies the same
checks to them as to the lines parsed exactly.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

from microsub.contract import ITEMS_PER_PAGE, RawLayout

# Field kinds of the kernels.
_SKIP, _INT, _INT_LIST, _FLOAT_LIST, _FLAG_LIST = 0, 1, 2, 3, 4

_INTS = ("page_id", "hour", "age_level", "gender", "purchase_power", "terminal")
_INT_LISTS = ("position",)
_FLOAT_LISTS = ("ctr", "cvr", "price", "amount", "feature")
_FLAG_LISTS = ("click", "cart", "fav")

_POW10 = np.array([10.0**k for k in range(23)])  # 1e0 .. 1e22: exact doubles

_MIN_LINES_PER_THREAD = 256  # fewer lines are not worth a thread


@njit(nogil=True, cache=True)
def _count_newlines(data):  # noqa: ANN001, ANN202 - a numba kernel
    """Number of newlines in ``data`` (uint8)."""
    n = 0
    for p in range(len(data)):
        n += data[p] == 10
    return n


@njit(nogil=True, cache=True)
def _newlines(data, out):  # noqa: ANN001, ANN202 - a numba kernel
    """Positions of the newlines of ``data`` into ``out`` (sized to their count)."""
    k = 0
    for p in range(len(data)):
        if data[p] == 10:
            out[k] = p
            k += 1
    return k


@njit(nogil=True, cache=True)
def _scan(data, starts, ends, lo, hi, kinds, slots, ints, ilists, flists, flags, ok, pow10):  # noqa: ANN001, ANN202, C901, E501, PLR0912, PLR0915
    """Scan lines ``lo .. hi-1``, line ``i`` being ``data[starts[i]:ends[i]]``, into row ``i``
    of the outputs; ``ok[i]`` says whether every token had its plain form (module docstring).

    One loop with the token grammar written out in it: Numba compiles helper functions that
    return tuples into code several times slower.
    """
    n_fields = len(kinds)
    for i in range(lo, hi):
        p = starts[i]
        end = ends[i]
        good = True
        for f in range(n_fields):
            kind = kinds[f]
            slot = slots[f]
            if kind == 0:  # unused field: anything but ';'
                while p < end and data[p] != 59:
                    p += 1
            else:
                count = 1 if kind == 1 else 50
                for j in range(count):
                    if j:
                        if p >= end or data[p] != 44:  # ','
                            good = False
                            break
                        p += 1
                    if kind == 4:  # flag: '0' or '1'
                        if p < end and (data[p] == 48 or data[p] == 49):
                            flags[slot, i, j] = data[p] - 48
                            p += 1
                            continue
                        good = False
                        break
                    neg = p < end and data[p] == 45  # '-'
                    if neg:
                        p += 1
                    first = p
                    m = 0
                    while p < end:
                        d = np.int64(data[p]) - 48
                        if d < 0 or d > 9:
                            break
                        m = m * 10 + d
                        p += 1
                    digits = p - first
                    if digits == 0:
                        good = False
                        break
                    if kind == 3:  # number: m / 10**k, exact (module docstring)
                        k = 0
                        if p < end and data[p] == 46:  # '.'
                            p += 1
                            first = p
                            while p < end:
                                d = np.int64(data[p]) - 48
                                if d < 0 or d > 9:
                                    break
                                m = m * 10 + d
                                p += 1
                            k = p - first
                            if k == 0:
                                good = False
                                break
                        if digits + k > 18 or m > 9007199254740992:  # 2**53
                            good = False
                            break
                        x = np.float64(m) / pow10[k]
                        flists[slot, i, j] = -x if neg else x
                    else:
                        if digits > 18:
                            good = False
                            break
                        if kind == 1:
                            ints[slot, i] = -m if neg else m
                        else:
                            ilists[slot, i, j] = -m if neg else m
                if not good:
                    break
            if f < n_fields - 1:
                if p >= end or data[p] != 59:  # ';'
                    good = False
                    break
                p += 1
        ok[i] = good and p == end


@dataclass(frozen=True)
class Scan:
    """What :func:`scan_text` or :func:`scan_lines` read.

    Attributes:
        ok: ``(n,)`` bool, the line was scanned (the values of other lines are meaningless).
        starts, ends: ``(n,)`` int64, byte range of each line in the text (newline excluded).
        values: the layout's fields by name (as :func:`microsub.data.parse._present` names
            them): integer fields ``(n,)`` int64, positions ``(n, 50)`` int64, numbers
            ``(n, 50)`` float64, flags ``(n, 50)`` int8.
    """

    ok: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    values: dict[str, np.ndarray]


class _Plan:
    """The kernels' description of a layout (kind and output slot of every field) and the
    output arrays for ``n`` lines."""

    def __init__(self, layout: RawLayout, n: int) -> None:
        self.kinds = np.full(layout.n_fields, _SKIP, np.int64)
        self.slots = np.zeros(layout.n_fields, np.int64)
        groups = (
            (_INTS, _INT),
            (_INT_LISTS, _INT_LIST),
            (_FLOAT_LISTS, _FLOAT_LIST),
            (_FLAG_LISTS, _FLAG_LIST),
        )
        self.names: dict[int, list[str]] = {}
        for names, kind in groups:
            present = [name for name in names if getattr(layout, name) is not None]
            self.names[kind] = present
            for slot, name in enumerate(present):
                self.kinds[getattr(layout, name)] = kind
                self.slots[getattr(layout, name)] = slot
        m = ITEMS_PER_PAGE
        self.ints = np.empty((len(self.names[_INT]), n), np.int64)
        self.ilists = np.empty((len(self.names[_INT_LIST]), n, m), np.int64)
        self.flists = np.empty((len(self.names[_FLOAT_LIST]), n, m), np.float64)
        self.flags = np.empty((len(self.names[_FLAG_LIST]), n, m), np.int8)
        self.ok = np.zeros(n, np.bool_)

    def outputs(self) -> tuple[np.ndarray, ...]:
        return (self.kinds, self.slots, self.ints, self.ilists, self.flists, self.flags)

    def values(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for kind, block in (
            (_INT, self.ints),
            (_INT_LIST, self.ilists),
            (_FLOAT_LIST, self.flists),
            (_FLAG_LIST, self.flags),
        ):
            for slot, name in enumerate(self.names[kind]):
                out[name] = block[slot]
        return out


def _threads(n_lines: int, threads: int | None) -> int:
    wanted = pl.thread_pool_size() if threads is None else threads
    return max(1, min(wanted, n_lines // _MIN_LINES_PER_THREAD))


def _run(jobs: list[tuple]) -> None:
    """Run :func:`_scan` on every job, the first in this thread, the others beside it."""
    if len(jobs) == 1:
        _scan(*jobs[0])
        return
    with ThreadPoolExecutor(len(jobs) - 1, thread_name_prefix="microsub-scan") as pool:
        futures = [pool.submit(_scan, *job) for job in jobs[1:]]
        _scan(*jobs[0])
        for future in futures:
            future.result()


def scan_lines(
    buffer: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    layout: RawLayout,
    *,
    threads: int | None = None,
) -> Scan:
    """Scan lines given by their byte ranges in ``buffer`` (uint8): line ``i`` is
    ``buffer[starts[i]:ends[i]]``, without its newline (an Arrow string column's data and
    offsets), one run of lines per thread (``threads``: Polars's thread pool size if ``None``).
    """
    n = len(starts)
    starts = np.ascontiguousarray(starts, np.int64)
    ends = np.ascontiguousarray(ends, np.int64)
    plan = _Plan(layout, n)
    k = _threads(n, threads)
    bounds = [n * j // k for j in range(k + 1)]
    _run(
        [
            (buffer, starts, ends, bounds[j], bounds[j + 1], *plan.outputs(), plan.ok, _POW10)
            for j in range(k)
        ]
    )
    return Scan(plan.ok, starts, ends, plan.values())


def scan_text(data: bytes | bytearray, layout: RawLayout, *, threads: int | None = None) -> Scan:
    """Scan a batch of whole lines (``data`` ends with a newline; ``\\r\\n`` already made
    ``\\n``): :func:`scan_lines` of the lines between its newlines.

    Raises:
        ValueError: ``data`` does not end with a newline.
    """
    if data and not data.endswith(b"\n"):
        raise ValueError("scan_text needs whole lines: data must end with a newline")
    buffer = np.frombuffer(data, np.uint8)
    ends = np.empty(_count_newlines(buffer), np.int64)
    _newlines(buffer, ends)
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return scan_lines(buffer, starts, ends, layout, threads=threads)
