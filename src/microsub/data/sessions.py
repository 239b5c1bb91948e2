"""Sessions of the page log: which consecutive pages belong together, and how each one ends.

The raw log has no user or session id. A session is a run of consecutive lines whose page ids
count up 0, 1, 2, ...; it ends

- with a **terminal flag** (the user left after this page: ``done = 1``), or
- at **page 11**, the platform's cap (``MAX_PAGE_ID``): the session is *truncated*, or
- at a **page-id jump** (the next line's page id is not this page id + 1): truncated too, and the
  next session's first page carries ``page_jump = 1``, or
- at the **end of the file**: truncated.

Rules, for page ``i`` with page id ``p[i]`` and terminal flag ``t[i]``::

    closes[i]   = t[i] == 1  or  p[i] == 11          # page i closes its session by itself
    start[i]    = i is the first page of the file
                  or closes[i-1]  or  p[i] != p[i-1] + 1
    page_jump[i]= start[i] and not (p[i] == 0 and (i is first or closes[i-1]))
    last[i]     = start[i+1]  or  i is the last page of the file
    done[i]     = t[i]
    truncated[i]= last[i] and t[i] == 0
    has_next[i] = not last[i]
    session_id  = (number of starts up to and including i) - 1, counted from the file start

A session opened by a jump to a page other than 0 started before the file does (or lost pages):
it is kept, flagged, and counted, never glued to the previous one. ``done`` is set only on a
session's last page and ``truncated`` exactly on the last pages without a terminal flag, so every
session ends with exactly one of the two.

For the 14-field example layout (``rec_rl_data_small``) there is no terminal flag: pass
``terminal=None`` (or zeros); sessions then come from page-id order alone and **every session ends
truncated**. Nothing closes a session there except page 11, so every later session opens with
``page_jump = 1`` (in the sample: 87 sessions, 87 jumps; 28 of them start at page 0, the others
mid-way, as the sample is a selection of pages, not whole sessions).

Streaming: :func:`assign` labels the rows whose labels are final and reports where the last,
possibly unfinished session begins; :class:`Sessionizer` holds those rows back (at most 11: an
open session has consecutive page ids below 11) and finishes them with the next batch or at the
end of the file, so the labels do not depend on how the file was cut into batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from microsub.contract import MAX_PAGE_ID

#: Columns of the pages table whose value on page t+1 becomes a ``next_*`` column on page t.
NEXT_STATE_SOURCES: dict[str, tuple[str, pa.DataType]] = {
    "next_engagement": ("engagement", pa.float32()),
    "next_page_value": ("page_value", pa.float64()),
    "next_mean_ctr": ("mean_ctr", pa.float32()),
    "next_mean_cvr": ("mean_cvr", pa.float32()),
    "next_mean_log_price": ("mean_log_price", pa.float32()),
}


@dataclass(frozen=True)
class SessionState:
    """What :func:`assign` needs to know about the rows already labelled.

    Attributes:
        next_session_id: id the next session will get (sessions numbered 0, 1, ... in file order).
        prev_page_id: page id of the last labelled row; ``None`` at the start of the file.
        prev_terminal: terminal flag (0/1) of the last labelled row.
    """

    next_session_id: int = 0
    prev_page_id: int | None = None
    prev_terminal: int = 0


@dataclass(frozen=True)
class SessionLabels:
    """Labels of the first ``n_final`` rows given to :func:`assign`.

    The rows from ``n_final`` on form a session that may continue in the next batch: give them
    again, in front of the next batch, with ``state``.

    Attributes:
        n_final: number of leading rows whose labels are final.
        session_id: int64, shape ``(n_final,)``.
        page_jump, done, truncated, has_next: int8 0/1 flags, shape ``(n_final,)``.
        state: the state after the ``n_final`` labelled rows.
    """

    n_final: int
    session_id: np.ndarray
    page_jump: np.ndarray
    done: np.ndarray
    truncated: np.ndarray
    has_next: np.ndarray
    state: SessionState


def assign(
    page_id: np.ndarray | pa.Array,
    terminal: np.ndarray | pa.Array | None,
    *,
    state: SessionState | None = None,
    final: bool = True,
) -> SessionLabels:
    """Label pages with sessions (rules in the module docstring), vectorised.

    Args:
        page_id: page ids 0..11 of consecutive pages in file order, shape ``(n,)``.
        terminal: terminal flags 0/1, shape ``(n,)``; ``None`` for a layout without the flag
            (every session then ends truncated).
        state: state after the rows labelled before (``None``: these rows start the file).
        final: ``True`` if these rows run to the end of the file; ``False`` if more may follow,
            in which case the last session is left unlabelled unless its last page closes it
            (terminal flag or page 11).

    Returns:
        The labels of the first ``n_final`` rows and the state after them.
    """
    state = state or SessionState()
    p = np.asarray(page_id, dtype=np.int64)
    n = len(p)
    t = np.zeros(n, np.int8) if terminal is None else np.asarray(terminal, dtype=np.int8)
    if len(t) != n:
        raise ValueError(f"page_id has {n} rows but terminal has {len(t)}; they must match")
    if n == 0:
        empty = np.zeros(0, np.int8)
        return SessionLabels(0, np.zeros(0, np.int64), empty, empty, empty, empty, state)

    at_file_start = state.prev_page_id is None
    prev_p = np.empty(n, np.int64)
    prev_p[0] = -2 if at_file_start else state.prev_page_id  # -2: never equal to p - 1
    prev_p[1:] = p[:-1]
    closes = (t == 1) | (p >= MAX_PAGE_ID)
    prev_closes = np.empty(n, bool)
    prev_closes[0] = at_file_start or state.prev_terminal == 1 or prev_p[0] >= MAX_PAGE_ID
    prev_closes[1:] = closes[:-1]

    start = prev_closes | (p != prev_p + 1)
    page_jump = start & ~((p == 0) & prev_closes)

    last = np.empty(n, bool)
    last[:-1] = start[1:]
    last[-1] = True
    # Unless the input ends here or its last page closes it, the last session may go on in the
    # next batch: hold it back whole (all rows, when they all continue the state's session).
    opened = np.flatnonzero(start)
    n_final = n if final or closes[-1] else int(opened[-1]) if len(opened) else 0

    starts = start[:n_final]
    session_id = state.next_session_id + np.cumsum(starts, dtype=np.int64) - 1
    last = last[:n_final]
    new_state = state
    if n_final:
        new_state = SessionState(
            next_session_id=int(session_id[-1]) + 1,
            prev_page_id=int(p[n_final - 1]),
            prev_terminal=int(t[n_final - 1]),
        )
    return SessionLabels(
        n_final=n_final,
        session_id=session_id,
        page_jump=page_jump[:n_final].astype(np.int8),
        done=t[:n_final].copy(),
        truncated=(last & (t[:n_final] == 0)).astype(np.int8),
        has_next=(~last).astype(np.int8),
        state=new_state,
    )


@dataclass(frozen=True)
class Successor:
    """The first page after a part of the file (the next part's first page), for labelling a
    part on its own (:meth:`Sessionizer.finish`).

    Attributes:
        page_id, terminal: its page id and terminal flag.
        values: its values of the sources of :data:`NEXT_STATE_SOURCES` (``page_value``, ...).
    """

    page_id: int
    terminal: int
    values: dict[str, float]

    @classmethod
    def of(cls, pages: pa.Table) -> Successor | None:
        """The first row of ``pages`` as a successor (``None`` for an empty table)."""
        if pages.num_rows == 0:
            return None
        row = pages.slice(0, 1).to_pylist()[0]
        sources = {source for source, _ in NEXT_STATE_SOURCES.values()}
        return cls(
            page_id=int(row["action_page_id"]),
            terminal=int(row["done"]),
            values={name: float(row[name]) for name in sources},
        )


def _labelled(table: pa.Table, labels: SessionLabels, tail: Successor | None = None) -> pa.Table:
    """``table`` (exactly ``labels.n_final`` rows) with the session and next-state columns set.

    ``tail`` is the page after the last row (its ``next_*`` values when the session goes on).
    """
    has_next = labels.has_next.astype(bool)
    columns = {
        "session_id": pa.array(labels.session_id, pa.int64()),
        "done": pa.array(labels.done, pa.int8()),
        "truncated": pa.array(labels.truncated, pa.int8()),
        "page_jump": pa.array(labels.page_jump, pa.int8()),
        "has_next": pa.array(labels.has_next, pa.int8()),
    }
    for name, (source, dtype) in NEXT_STATE_SOURCES.items():
        values = table.column(source).to_numpy().astype(np.float64)
        nxt = np.full(len(values), np.nan)
        nxt[:-1] = values[1:]
        if tail is not None and len(nxt):
            nxt[-1] = tail.values[source]
        nxt[~has_next] = np.nan  # the next row belongs to another session
        columns[name] = pa.array(nxt, pa.float64()).cast(dtype)
    for name, column in columns.items():
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table


class Sessionizer:
    """Adds session columns to a stream of page batches, holding back unfinished sessions.

    Each batch is a table of consecutive pages in file order with at least the columns
    ``action_page_id``, ``done`` (the terminal flag as parsed, 0 where the layout has none),
    ``engagement``, ``page_value``, ``mean_ctr``, ``mean_cvr`` and ``mean_log_price``; any other
    columns (line numbers, item lists) ride along. :meth:`push` returns the rows whose sessions
    are known to be complete, with ``session_id``, ``done``, ``truncated``, ``page_jump``,
    ``has_next`` and the ``next_*`` columns of :data:`NEXT_STATE_SOURCES` (NaN on a session's
    last page); :meth:`finish` returns the rest at the end of the file. Concatenated, the outputs
    are the same rows as the inputs, in the same order, whatever the batch boundaries were.
    """

    def __init__(self, state: SessionState | None = None) -> None:
        self.state = state or SessionState()
        self._pending: pa.Table | None = None

    @property
    def pending_rows(self) -> int:
        """Rows held back because their session may continue (at most 11)."""
        return 0 if self._pending is None else self._pending.num_rows

    def push(self, pages: pa.Table) -> pa.Table:
        """Label a batch; return the rows whose sessions are complete (possibly none)."""
        return self._run(pages, final=False)

    def finish(self, successor: Successor | None = None) -> pa.Table | None:
        """Label the rows held back (``None`` if there are none).

        Args:
            successor: the page that follows in the file, when these pages are one part of it
                (a Spark partition); ``None`` at the end of the file.
        """
        if self._pending is None:
            return None
        return self._run(None, final=True, successor=successor)

    def _run(
        self, pages: pa.Table | None, *, final: bool, successor: Successor | None = None
    ) -> pa.Table:
        parts = [t for t in (self._pending, pages) if t is not None]
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        page_id = table.column("action_page_id").to_numpy()
        terminal = table.column("done").to_numpy()
        if successor is not None:  # label as if the successor were there, then drop it
            page_id = np.append(page_id, successor.page_id)
            terminal = np.append(terminal, successor.terminal)
        labels = assign(page_id, terminal, state=self.state, final=final)
        n = table.num_rows
        if successor is not None:
            labels = _head(labels, page_id, n)
        # take() copies the held rows, so the rest of the batch's buffers can be freed.
        self._pending = table.take(np.arange(labels.n_final, n)) if labels.n_final < n else None
        self.state = labels.state
        return _labelled(table.slice(0, labels.n_final), labels, successor)


def _head(labels: SessionLabels, page_id: np.ndarray, n: int) -> SessionLabels:
    """The labels of the first ``n`` rows (the state after row ``n``, not after the rest)."""
    state = labels.state
    if n:
        state = SessionState(
            next_session_id=int(labels.session_id[n - 1]) + 1,
            prev_page_id=int(page_id[n - 1]),
            prev_terminal=int(labels.done[n - 1]),
        )
    return SessionLabels(
        n_final=n,
        session_id=labels.session_id[:n],
        page_jump=labels.page_jump[:n],
        done=labels.done[:n],
        truncated=labels.truncated[:n],
        has_next=labels.has_next[:n],
        state=state,
    )


def sessionize(pages: pa.Table) -> pa.Table:
    """Label a whole table of pages in file order at once (see :class:`Sessionizer`)."""
    sessionizer = Sessionizer()
    out = [sessionizer.push(pages)]
    rest = sessionizer.finish()
    if rest is not None:
        out.append(rest)
    return pa.concat_tables(out)


@dataclass(frozen=True)
class PartSummary:
    """One part of a file's pages (a Spark partition), as the other parts need to know it.

    Attributes:
        n_pages: pages in the part.
        sessions_alone: sessions the part would have as a file of its own (its first page then
            opens one).
        first: its first page (``None`` if the part has no page).
        last_page_id, last_terminal: page id and terminal flag of its last page.
    """

    n_pages: int
    sessions_alone: int
    first: Successor | None
    last_page_id: int = 0
    last_terminal: int = 0


def summarize(batches: Iterable[pa.Table]) -> PartSummary:
    """Summarise a part of the pages, given as consecutive batches (``action_page_id``,
    ``done`` and the sources of :data:`NEXT_STATE_SOURCES`), in one pass."""
    state, first, n = SessionState(), None, 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        first = first or Successor.of(batch)
        page_id = batch.column("action_page_id").to_numpy()
        state = assign(page_id, batch.column("done").to_numpy(), state=state).state
        n += batch.num_rows
    if first is None:
        return PartSummary(0, 0, None)
    assert state.prev_page_id is not None
    return PartSummary(n, state.next_session_id, first, state.prev_page_id, state.prev_terminal)


def part_states(parts: list[PartSummary]) -> list[tuple[SessionState, Successor | None]]:
    """The state before each part and the page after it, from the summaries of all parts in
    file order: what :class:`Sessionizer` needs to label each part on its own.

    A part's first page opens a session unless it continues the previous part's last one
    (rules of :func:`assign`), so the sessions before part ``k`` are::

        offset[k] = sum over j < k of (sessions_alone[j] - 1 + opens[j])

    where ``opens[j]`` is 1 if part ``j``'s first page opens a session. Labelling every part with
    ``Sessionizer(state[k])`` and ``finish(successor[k])`` gives the labels of the whole file,
    without moving any page between parts.
    """
    out: list[tuple[SessionState, Successor | None]] = []
    state = SessionState()
    for k, part in enumerate(parts):
        after = next((p.first for p in parts[k + 1 :] if p.first is not None), None)
        out.append((state, after))
        if part.first is None:
            continue
        opens = assign([part.first.page_id], [part.first.terminal], state=state).state
        offset = (
            state.next_session_id
            + part.sessions_alone
            - 1
            + (opens.next_session_id - state.next_session_id)
        )
        state = SessionState(offset, part.last_page_id, part.last_terminal)
    return out
