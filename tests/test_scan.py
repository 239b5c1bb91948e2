"""Tests of microsub.data.scan: the compiled scanner gives the exact parser's values, bit for bit,
and leaves every line it does not read to the exact parser."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microsub.contract import EXAMPLE_SMALL, OFFICIAL
from microsub.data.parse import _parse_exact, lines_frame, parse_frame, parse_lines
from microsub.data.scan import scan_lines, scan_text
from test_ingest import CORRUPTIONS, REAL_SAMPLE, _replace_item, official_line, session_lines


def _text(lines: list[str]) -> bytes:
    return "".join(f"{x}\n" for x in lines).encode("utf-8", "surrogateescape")


def assert_same(a: pa.Table, b: pa.Table) -> None:
    """Tables equal value for value (NaN equal to NaN: the ``next_*`` columns hold some)."""
    assert a.schema == b.schema
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name).combine_chunks(), b.column(name).combine_chunks()
        if pa.types.is_list(x.type):
            assert x.offsets.equals(y.offsets) and x.is_null().equals(y.is_null()), name
            x, y = x.flatten(), y.flatten()
        if pa.types.is_floating(x.type):  # bit for bit, NaN and -0.0 included
            width = np.uint64 if x.type == pa.float64() else np.uint32
            x = x.to_numpy(zero_copy_only=False).view(width)
            y = y.to_numpy(zero_copy_only=False).view(width)
            assert np.array_equal(x, y), name
        else:
            assert x.equals(y), name


def assert_parsed_as_exact(data: bytes, layout=OFFICIAL, first_line_no: int = 1) -> None:
    """parse_lines and parse_frame give what the exact parser alone gives."""
    lines = lines_frame(data, first_line_no)
    pages, quarantine = _parse_exact(lines, layout)
    parsed = parse_lines(data, layout, first_line_no=first_line_no)
    assert parsed.n_lines == lines.height
    assert_same(parsed.pages, pages)
    assert_same(parsed.quarantine, quarantine)
    frame_pages, frame_quarantine = parse_frame(lines, layout)
    assert_same(frame_pages, pages)
    assert_same(frame_quarantine, quarantine)


def test_valid_lines_are_all_scanned_with_the_exact_values():
    data = _text(session_lines(8))
    scanned = scan_text(data, OFFICIAL)
    assert scanned.ok.all()
    assert_parsed_as_exact(data, first_line_no=11)


def test_the_real_sample_is_scanned_in_the_example_layout():
    data = REAL_SAMPLE.read_bytes()
    assert scan_text(data, EXAMPLE_SMALL).ok.all()
    assert_parsed_as_exact(data, EXAMPLE_SMALL)


def test_every_corruption_is_left_to_the_exact_parser_or_fails_its_range_check():
    lines = [official_line(0), *CORRUPTIONS.values(), official_line(1)]
    data = _text(lines)
    assert_parsed_as_exact(data)
    parsed = parse_lines(data, OFFICIAL)
    assert parsed.quarantine.num_rows == len(CORRUPTIONS)
    assert parsed.pages.column("line_no").to_pylist() == [1, len(lines)]


@pytest.mark.parametrize(
    ("token", "scanned"),
    [
        ("12.5", True),
        ("0.000001", True),
        ("7", True),
        ("-0", True),  # a number (-0.0); the range check accepts it as a price
        ("-0.0", True),
        ("007.50", True),
        ("9007199254740992", True),  # 2**53: exact
        ("9007199254740993", False),  # 2**53 + 1: not an exact double, left to Polars
        ("0.1234567890123456789", False),  # 19 digits
        ("1e3", False),
        ("+1", False),
        (".5", False),
        ("5.", False),
        ("nan", False),
        ("inf", False),
        ("", False),
        (" 1", False),
        ("1,5", False),  # 51 values
    ],
)
def test_only_plain_numbers_are_scanned(token, scanned):
    line = official_line(2, price=_replace_item("price", token))
    assert scan_text(_text([line]), OFFICIAL).ok.tolist() == [scanned]
    assert_parsed_as_exact(_text([line]))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 10**15),
    st.integers(0, 15),
    st.booleans(),
)
def test_a_scanned_number_is_the_correctly_rounded_double(digits, point, negative):
    """m / 10**k with an exact m is what Python's float() (correctly rounded) reads."""
    text = str(digits).rjust(point + 1, "0")
    token = ("-" if negative else "") + (f"{text[:-point]}.{text[-point:]}" if point else text)
    line = official_line(2, feature=_replace_item("feature", token))  # feature: any number
    data = _text([line])
    scanned = scan_text(data, OFFICIAL)
    assert scanned.ok.all()
    value = scanned.values["feature"][0, 7]
    assert np.float64(value).tobytes() == np.float64(float(token)).tobytes()
    assert_parsed_as_exact(data)


# Bytes a corrupted log is made of: separators, signs, exponents, words, non-ASCII, CR, blanks.
_PIECES = [
    ",",
    ";",
    ".",
    "-",
    "+",
    "e",
    "E",
    " ",
    "\t",
    "\r",
    "a",
    "nan",
    "inf",
    "1e3",
    "0",
    "1",
    "2",
    "9",
    "00",
    "-0",
    "12345678901234567890",
    "0.1234567890123456789012",
    "9007199254740993",
    "\u00e9",
    "\udcff",
    "",
]


@st.composite
def corrupted_lines(draw):
    """Valid official lines, some with a few bytes deleted, inserted or replaced."""
    lines = []
    for k in range(draw(st.integers(1, 12))):
        chars = list(official_line(k % 12, seed=k, terminal=k % 3 == 0))
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(chars)))
            action = draw(st.sampled_from(["delete", "insert", "replace"]))
            piece = list(draw(st.sampled_from(_PIECES)))
            if action == "delete":
                del chars[at : at + draw(st.integers(1, 3))]
            elif action == "insert":
                chars[at:at] = piece
            else:
                chars[at : at + 1] = piece
        lines.append("".join(chars))
    return lines


@settings(max_examples=150, deadline=None)
@given(corrupted_lines(), st.integers(1, 50))
def test_any_line_is_parsed_as_the_exact_parser_parses_it(lines, first_line_no):
    assert_parsed_as_exact(_text(lines), first_line_no=first_line_no)


def test_results_do_not_depend_on_the_threads():
    lines = [*session_lines(40), *CORRUPTIONS.values()] * 3
    data = _text(lines)
    one = scan_text(data, OFFICIAL, threads=1)
    for threads in (2, 3, 7):
        other = scan_text(data, OFFICIAL, threads=threads)
        assert np.array_equal(one.ok, other.ok)
        assert np.array_equal(one.starts, other.starts) and np.array_equal(one.ends, other.ends)
        for name, values in one.values.items():
            assert np.array_equal(values[one.ok], other.values[name][one.ok]), name


def test_scan_lines_reads_ranges_of_a_buffer():
    lines = [official_line(0), "junk", official_line(1)]
    data = "".join(lines).encode()
    ends = np.cumsum([len(x) for x in lines])
    starts = np.concatenate([[0], ends[:-1]])
    scanned = scan_lines(np.frombuffer(data, np.uint8), starts, ends, OFFICIAL)
    assert scanned.ok.tolist() == [True, False, True]
    assert scanned.values["page_id"][[0, 2]].tolist() == [0, 1]


def test_scan_text_needs_whole_lines():
    with pytest.raises(ValueError, match="end with a newline"):
        scan_text(official_line(0).encode(), OFFICIAL)
