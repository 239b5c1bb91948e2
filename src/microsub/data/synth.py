"""Seeded synthetic raw log in the official 15-column format: the pipeline's default input.

The real Taobao page log of Pei et al. (WWW 2019) is not reachable from here. This module writes a
log in the *same* text format (``;``-separated, 15 columns, 50 comma-separated values per list
column; layout :data:`microsub.contract.OFFICIAL`) from the documented generative model of
:mod:`microsub.sim.dynamics`, whose coefficients live in
:class:`~microsub.sim.dynamics.SynthParams`. The model is calibrated to the only real sample we
have, ``data/real/rec_rl_data_small`` (100 pages in the 14-field example layout), and
:mod:`microsub.analysis.calibration` shows how close it comes.

Writing the file
================

Sessions are simulated in blocks of :data:`~microsub.sim.dynamics.SESSIONS_PER_BLOCK`, all in
NumPy (vectorised over the block's live sessions, one step per page depth), and formatted with
Arrow string kernels (CTR and CVR with up to 6 decimals, feature up to 4, money up to 2, trailing
zeros dropped as Python prints floats: ``0.05492``, ``29.0``, ``49.97``). Generation stops after
exactly ``n_pages`` lines: the last session may be cut mid-way, which is the end-of-file
truncation an ingester must handle. Block ``b`` draws from ``SeedSequence(seed, spawn_key=(b,))``,
so a file is a prefix of any longer file with the same seed and parameters.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microsub.contract import (
    ITEMS_PER_PAGE,
)
from microsub.errors import ConfigError
from microsub.sim.dynamics import SESSIONS_PER_BLOCK, Block, block_rng, simulate_sessions
from microsub.sim.params import DEFAULT_PARAMS, SynthParams, params_digest

#: gzip level of ``.gz`` output: about 3x faster than zlib's default (6) for a file ~10 % larger.
GZIP_LEVEL = 3


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote.

    Attributes:
        path: the file written.
        n_pages: lines written.
        n_sessions: sessions started in the file (lines with page id 0).
        n_terminal: lines with terminal flag 1 (sessions that ended by leaving).
        n_truncated: sessions whose last line has terminal flag 0 (page cap or end of file).
        n_purchases: items bought (non-zero amounts) over the whole file.
        total_value: sum of all purchase amounts, Yuan.
        seed: the seed used.
        params_digest: :func:`params_digest` of the parameters used.
        sha256: SHA-256 of the file's bytes as written (compressed bytes for ``.gz``).
        bytes: size of the file in bytes.
    """

    path: Path
    n_pages: int
    n_sessions: int
    n_terminal: int
    n_truncated: int
    n_purchases: int
    total_value: float
    seed: int
    params_digest: str
    sha256: str
    bytes: int


def _ints(values: np.ndarray) -> pa.Array:
    """Integers -> their decimal strings."""
    return pc.cast(pa.array(np.ascontiguousarray(values, dtype=np.int64)), pa.string())


def _strip_zeros(units: np.ndarray, digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Split fractions given in units of ``10**-digits`` (0 <= units < 10**digits) into the
    significant part ``v`` and its width ``w`` once trailing zeros are dropped (0 -> v 0, w 1),
    so the fraction reads ``str(v + 10**w)[1:]``."""
    v = units.astype(np.int64, copy=True)
    w = np.full(v.shape, digits, dtype=np.int64)
    for _ in range(digits - 1):
        strip = (v % 10 == 0) & (w > 1)
        v = np.where(strip, v // 10, v)
        w -= strip
    return v, w


def _fraction_strings(units: np.ndarray, digits: int) -> pa.Array:
    """Values in [0, 1) given in units of ``10**-digits`` -> ``"0.054926"``, ``"0.0"`` style
    (trailing zeros dropped, as Python prints floats; never scientific notation)."""
    v, w = _strip_zeros(units.ravel(), digits)
    s = _ints(v + 10**w)  # leading "1" marks the width: 105492 -> "0.05492"
    return pc.utf8_replace_slice(s, start=0, stop=1, replacement="0.")


def _money_strings(cents: np.ndarray) -> pa.Array:
    """Non-negative integer cents -> ``"29.0"``, ``"29.9"``, ``"49.97"`` (Python float style)."""
    c = cents.ravel()
    v, w = _strip_zeros(c % 100, 2)
    whole = _ints(c // 100)
    frac = pc.utf8_slice_codeunits(_ints(v + 10**w), start=1)
    return pc.binary_join_element_wise(whole, frac, ".")


def _list_column(strings: pa.Array, n_rows: int) -> pa.Array:
    """Flat strings, 50 per row -> one comma-joined string per row."""
    offsets = pa.array(np.arange(n_rows + 1, dtype=np.int32) * ITEMS_PER_PAGE)
    return pc.binary_join(pa.ListArray.from_arrays(offsets, strings), ",")


def _flag_lists(flags: np.ndarray) -> pa.Array:
    """(n, 50) 0/1 flags -> one ``"0,1,0,..."`` string per row, built as fixed-width bytes."""
    n = flags.shape[0]
    width = 2 * ITEMS_PER_PAGE - 1
    text = np.full((n, width), ord(","), dtype=np.uint8)
    text[:, ::2] = flags.astype(np.uint8) + ord("0")
    offsets = np.arange(n + 1, dtype=np.int32) * width
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def _padded(strings: pa.Array, pad: np.ndarray | None) -> pa.Array:
    """Padding slots read ``"0"``, as in the real sample."""
    if pad is None:
        return strings
    return pc.if_else(pa.array(pad.ravel()), pa.scalar("0"), strings)


def _format_block(b: Block) -> pa.Buffer:
    """The block's lines as one buffer of ASCII text, each line ending in a newline."""
    n = len(b)
    pad = b.pad
    cols = [
        _ints(b.page_id),
        _ints(b.hour),
        _ints(b.age_level),
        _ints(b.gender),
        _ints(b.purchase_power),
        _list_column(_ints(b.position.ravel()), n),
        _list_column(_padded(_fraction_strings(b.ctr_u, 6), pad), n),
        _list_column(_padded(_fraction_strings(b.cvr_u, 6), pad), n),
        _list_column(_padded(_money_strings(b.price_c), pad), n),
        _flag_lists(b.click),
        _flag_lists(b.cart),
        _flag_lists(b.fav),
        _list_column(_padded(_money_strings(b.amount_c), pad), n),
        _list_column(_padded(_fraction_strings(b.feature_u, 4), pad), n),
        _ints(b.terminal),
    ]
    lines = pc.binary_join_element_wise(*cols, ";")
    lines = pc.binary_join_element_wise(lines, pa.scalar(""), "\n")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + n + 1]
    return lines.buffers()[2][int(offsets[0]) : int(offsets[-1])]


class _HashingSink:
    """A binary sink that hashes and counts what it passes on to ``raw``."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.n_bytes = 0

    def write(self, data: bytes | memoryview | pa.Buffer) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.n_bytes += view.nbytes
        return self.raw.write(view)

    def flush(self) -> None:
        self.raw.flush()


def generate(
    out: str | Path,
    *,
    n_pages: int,
    seed: int,
    params: SynthParams = DEFAULT_PARAMS,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic raw log of exactly ``n_pages`` lines to ``out``.

    The text follows the official 15-column layout (:data:`microsub.contract.OFFICIAL`); the
    model is the module docstring's. A ``.gz`` suffix writes gzip (level :data:`GZIP_LEVEL`,
    no timestamp, so the bytes are reproducible); any other suffix writes plain text. The file
    is written to a temporary name beside ``out`` and renamed when complete, so ``out`` is
    either the whole log or absent/untouched. The same seed and parameters give byte-identical
    files, and a shorter file is a prefix of a longer one.

    Args:
        out: destination path; parent folders are created.
        n_pages: number of lines (pages) to write, >= 1.
        seed: non-negative seed.
        params: model coefficients.
        progress: called with the number of pages written after each block (units advanced).

    Returns:
        A :class:`SynthSummary` of the file.

    Raises:
        ConfigError: ``n_pages`` < 1 or a negative seed.
    """
    if int(n_pages) < 1:
        raise ConfigError(f"n_pages must be >= 1, got {n_pages}; pass the number of lines wanted")
    if int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    written = n_sessions = n_terminal = n_truncated = n_purchases = 0
    value_cents = 0
    try:
        with open(tmp, "wb") as raw:
            sink = _HashingSink(raw)
            stream = (
                gzip.GzipFile(
                    filename="", mode="wb", fileobj=sink, compresslevel=GZIP_LEVEL, mtime=0
                )
                if out.suffix == ".gz"
                else sink
            )
            block_no = 0
            last_terminal = 1
            while written < n_pages:
                block = simulate_sessions(block_rng(seed, block_no), SESSIONS_PER_BLOCK, params)
                block = block.head(min(len(block), n_pages - written))
                starts = block.page_id == 0
                n_sessions += int(starts.sum())
                n_terminal += int(block.terminal.sum())
                # A session is truncated when the line before a page-0 line is not terminal.
                prev_terminal = np.concatenate([[last_terminal], block.terminal[:-1]])
                n_truncated += int((starts & (prev_terminal == 0)).sum())
                last_terminal = int(block.terminal[-1])
                n_purchases += int((block.amount_c > 0).sum())
                value_cents += int(block.amount_c.sum())
                stream.write(_format_block(block))
                written += len(block)
                block_no += 1
                if progress is not None:
                    progress(len(block))
            n_truncated += int(last_terminal == 0)
            if stream is not sink:
                stream.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return SynthSummary(
        path=out,
        n_pages=written,
        n_sessions=n_sessions,
        n_terminal=n_terminal,
        n_truncated=n_truncated,
        n_purchases=n_purchases,
        total_value=value_cents / 100,
        seed=int(seed),
        params_digest=params_digest(params),
        sha256=sink.sha.hexdigest(),
        bytes=sink.n_bytes,
    )
