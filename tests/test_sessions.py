"""Tests of microsub.sessions: session ids, done/truncated, page jumps, next-state columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microsub.contract import MAX_PAGE_ID
from microsub.data.sessions import (
    Sessionizer,
    SessionState,
    assign,
    part_states,
    sessionize,
    summarize,
)


def pages_table(page_id: list[int], terminal: list[int]) -> pa.Table:
    """A minimal pages table for the sessionizer; values derived from the row number."""
    n = len(page_id)
    row = np.arange(n)
    return pa.table(
        {
            "line_no": pa.array(row + 1, pa.int64()),
            "action_page_id": pa.array(page_id, pa.int8()),
            "done": pa.array(terminal, pa.int8()),
            "engagement": pa.array(row % 7, pa.int16()),
            "page_value": pa.array(row * 1.25, pa.float64()),
            "mean_ctr": pa.array(row / 1000, pa.float32()),
            "mean_cvr": pa.array(row / 10000, pa.float32()),
            "mean_log_price": pa.array(row / 10, pa.float32()),
        }
    )


def test_assign_labels_a_hand_made_sequence():
    # sessions: [0 1 2*]  [0 1] jump->[3 4]  [0..11 cap]  [0* ] [5 (eof)]     (* = terminal)
    page_id = [0, 1, 2, 0, 1, 3, 4, *range(12), 0, 5]
    terminal = [0, 0, 1, 0, 0, 0, 0, *[0] * 12, 1, 0]
    labels = assign(page_id, terminal)
    assert labels.n_final == len(page_id)
    expected_ids = [0, 0, 0, 1, 1, 2, 2, *[3] * 12, 4, 5]
    assert labels.session_id.tolist() == expected_ids
    jump = np.zeros(len(page_id), int)
    # 3 after 1; 0 after 4 without a terminal flag; 5 after a terminal page (starts mid-way)
    jump[[5, 7, 20]] = 1
    assert labels.page_jump.tolist() == jump.tolist()
    assert labels.done.tolist() == terminal
    truncated = np.zeros(len(page_id), int)
    truncated[[4, 6, 18, 20]] = 1  # before the jump, at the jump's end, at the cap, at EOF
    assert labels.truncated.tolist() == truncated.tolist()
    last = truncated | np.array(terminal)
    assert labels.has_next.tolist() == (1 - last).tolist()
    assert labels.state == SessionState(next_session_id=6, prev_page_id=5, prev_terminal=0)


def test_first_page_of_file_not_zero_is_a_jump():
    labels = assign([4, 5, 0], [0, 0, 1])
    assert labels.page_jump.tolist() == [1, 0, 1]
    assert labels.truncated.tolist() == [0, 1, 0]


def test_no_terminal_flag_means_every_session_ends_truncated():
    labels = assign([0, 1, 0, 2, 3, 0], None)
    assert labels.done.tolist() == [0] * 6
    assert labels.truncated.tolist() == [0, 1, 1, 0, 1, 1]
    assert labels.session_id.tolist() == [0, 0, 1, 2, 2, 3]


def test_assign_holds_back_an_open_session_and_resumes_it():
    page_id, terminal = [0, 1, 2, 0, 1], [0, 0, 1, 0, 0]
    first = assign(page_id, terminal, final=False)
    assert first.n_final == 3  # pages 0 and 1 of the second session may go on
    resumed = assign([0, 1, 2, 3], [0, 0, 0, 1], state=first.state, final=True)
    whole = assign([0, 1, 2, 0, 1, 2, 3], [0, 0, 1, 0, 0, 0, 1])
    assert np.concatenate([first.session_id, resumed.session_id]).tolist() == (
        whole.session_id.tolist()
    )
    assert resumed.page_jump.tolist() == [0, 0, 0, 0]


def test_a_closing_last_page_is_final_without_waiting():
    labels = assign([0, 1, 11], [0, 0, 0], final=False)  # page 11 closes (cap)
    assert labels.n_final == 3  # 11 after 1 is a jump: [0 1] then [11], both complete
    assert labels.session_id.tolist() == [0, 0, 1]
    assert assign([0, 1], [0, 1], final=False).n_final == 2
    assert assign([0, 1, 2], [0, 0, 0], final=False).n_final == 0


def test_a_part_that_opens_with_the_previous_parts_session_is_held_then_continued():
    """A Spark partition may start mid-session: rows that all continue the state's session are
    held back (no session opens in them), then finished with the right ids and no jump."""
    sessionizer = Sessionizer(SessionState(next_session_id=5, prev_page_id=0, prev_terminal=0))
    assert sessionizer.push(pages_table([1, 2], [0, 0])).num_rows == 0
    rest = sessionizer.finish()
    assert rest.column("session_id").to_pylist() == [4, 4]
    assert rest.column("page_jump").to_pylist() == [0, 0]
    assert rest.column("truncated").to_pylist() == [0, 1]


def test_next_state_columns_are_the_next_page_of_the_same_session():
    table = sessionize(pages_table([0, 1, 2, 0, 1], [0, 0, 1, 0, 0]))
    nxt = table.column("next_page_value").to_numpy()
    value = table.column("page_value").to_numpy()
    np.testing.assert_allclose(nxt[[0, 1, 3]], value[[1, 2, 4]], rtol=0, atol=0)
    assert np.isnan(nxt[[2, 4]]).all()
    np.testing.assert_allclose(
        table.column("next_mean_log_price").to_numpy()[[0, 1, 3]],
        table.column("mean_log_price").to_numpy()[[1, 2, 4]],
        rtol=0,
        atol=0,
    )
    assert table.column("next_engagement").type == pa.float32()


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="must match"):
        assign([0, 1], [0])


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------
def page_log(max_size: int = 80):
    """Plausible logs: mostly runs 0, 1, 2, ... with terminal flags, some jumps and caps."""
    page = st.integers(0, MAX_PAGE_ID)
    return st.lists(st.tuples(page, st.integers(0, 1), st.booleans()), max_size=max_size).map(
        _as_log
    )


def _as_log(steps: list[tuple[int, int, bool]]) -> tuple[list[int], list[int]]:
    page_id, terminal, current = [], [], -1
    for jump_to, term, jump in steps:
        current = jump_to if jump or current >= MAX_PAGE_ID else current + 1
        page_id.append(current)
        terminal.append(term if not jump else 0)
        if terminal[-1]:
            current = -1
    return page_id, terminal


def check_session_invariants(page_id, terminal, table: pa.Table) -> None:
    sid = table.column("session_id").to_numpy()
    pid = table.column("action_page_id").to_numpy().astype(int)
    done = table.column("done").to_numpy()
    truncated = table.column("truncated").to_numpy()
    has_next = table.column("has_next").to_numpy()
    jump = table.column("page_jump").to_numpy()
    n = len(page_id)
    # a partition in file order: same rows, same order, ids 0, 1, ... increasing by 0 or 1
    assert table.column("line_no").to_numpy().tolist() == list(range(1, n + 1))
    assert pid.tolist() == list(page_id)
    if n:
        assert sid[0] == 0
        assert set(np.diff(sid).tolist()) <= {0, 1}
    last = np.ones(n, bool)
    last[:-1] = sid[1:] != sid[:-1]
    # consecutive page ids within a session, at most 12 pages
    assert (np.diff(pid)[~last[:-1]] == 1).all()
    assert np.bincount(sid).max(initial=0) <= MAX_PAGE_ID + 1
    # done only (and exactly) where the terminal flag is, and only on a last page
    assert done.tolist() == list(terminal)
    assert not (done.astype(bool) & ~last).any()
    # truncated exactly on last pages without a terminal flag; one ending per session
    assert truncated.astype(bool).tolist() == (last & (done == 0)).tolist()
    assert int(done.sum() + truncated.sum()) == len(np.unique(sid))
    assert has_next.astype(bool).tolist() == (~last).tolist()
    # a session that does not start cleanly (page 0 after a closed one) is flagged
    first = np.ones(n, bool)
    first[1:] = sid[1:] != sid[:-1]
    prev_closed = np.ones(n, bool)
    prev_closed[1:] = (done[:-1] == 1) | (pid[:-1] == MAX_PAGE_ID)
    assert jump.astype(bool).tolist() == (first & ~((pid == 0) & prev_closed)).tolist()
    assert np.isnan(table.column("next_mean_ctr").to_numpy()[last]).all()


@settings(max_examples=80, deadline=None)
@given(page_log())
def test_sessions_partition_pages(log):
    page_id, terminal = log
    table = sessionize(pages_table(page_id, terminal))
    check_session_invariants(page_id, terminal, table)


@settings(max_examples=80, deadline=None)
@given(page_log(), st.lists(st.integers(1, 6), min_size=1, max_size=40))
def test_labels_do_not_depend_on_batch_boundaries(log, cuts):
    page_id, terminal = log
    table = pages_table(page_id, terminal)
    whole = sessionize(table)
    sessionizer, parts, start = Sessionizer(), [], 0
    for size in cuts * (len(page_id) + 1):
        if start >= len(page_id):
            break
        parts.append(sessionizer.push(table.slice(start, size)))
        parts.append(sessionizer.push(table.slice(start, 0)))  # an empty batch changes nothing
        assert sessionizer.pending_rows <= MAX_PAGE_ID  # an open session has at most 11 pages
        start += size
    rest = sessionizer.finish()
    parts.extend([rest] if rest is not None else [])
    streamed = pa.concat_tables([p for p in parts if p.num_rows] or [whole.slice(0, 0)])
    assert streamed.schema == whole.schema
    pd.testing.assert_frame_equal(streamed.to_pandas(), whole.to_pandas())
    check_session_invariants(page_id, terminal, streamed)


@settings(max_examples=80, deadline=None)
@given(page_log(), st.lists(st.integers(0, 9), min_size=1, max_size=12), st.integers(1, 5))
def test_parts_labelled_on_their_own_give_the_labels_of_the_whole_file(log, sizes, batch):
    """Spark's fix-up: each part is labelled from the summaries of the others (a state before
    it, the page after it), without moving pages between parts, and equals the whole file."""
    page_id, terminal = log
    table = pages_table(page_id, terminal)
    whole = sessionize(table)
    bounds, start = [], 0
    for size in sizes:  # parts of 0..9 pages (empty parts too), the rest in the last part
        bounds.append((start, min(start + size, len(page_id))))
        start = bounds[-1][1]
    bounds.append((start, len(page_id)))
    parts = [table.slice(a, b - a) for a, b in bounds]

    def batches(part: pa.Table) -> list[pa.Table]:
        return [part.slice(i, batch) for i in range(0, part.num_rows, batch)]

    states = part_states([summarize(batches(part)) for part in parts])
    labelled = []
    for part, (state, successor) in zip(parts, states, strict=True):
        sessionizer = Sessionizer(state)
        labelled += [sessionizer.push(b) for b in batches(part)]
        rest = sessionizer.finish(successor)
        labelled += [rest] if rest is not None else []
    got = pa.concat_tables([t for t in labelled if t.num_rows] or [whole.slice(0, 0)])
    pd.testing.assert_frame_equal(got.to_pandas(), whole.to_pandas())
