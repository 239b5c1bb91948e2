"""Tests of microsub.ingest: parsing, quarantine, containers, batching, reconciliation."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microsub.contract import (
    EXAMPLE_SMALL,
    ITEMS_SCHEMA,
    OFFICIAL,
    PAGES_SCHEMA,
    QUARANTINE_SCHEMA,
)
from microsub.data.containers import open_raw
from microsub.data.ingest import ingest, read_pages
from microsub.data.parse import REASONS, detect_layout, parse_lines
from microsub.errors import DataFormatError, QuarantineLimitError

REAL_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "real" / "rec_rl_data_small"
REAL_SHA256 = "f4b78d88c6a34b2498a102136287f1c2cf19d0e7d9581a4c725ab5634a31077a"

N = 50
_seq = itertools.count()


# --------------------------------------------------------------------------------------------
# Helpers: lines in the official layout, written from values
# --------------------------------------------------------------------------------------------
def item_lists(page_id: int, seed: int = 0) -> dict[str, list]:
    """Deterministic, valid 50-item lists for one page."""
    i = np.arange(N)
    k = (i + seed) % N
    return {
        "position": (50 * page_id + i).tolist(),
        "ctr": (0.01 + 0.001 * k).round(6).tolist(),
        "cvr": (0.0002 * k).round(6).tolist(),
        "price": (9.9 + 3 * k).round(2).tolist(),
        "click": (k % 7 == 0).astype(int).tolist(),
        "cart": (k % 11 == 0).astype(int).tolist(),
        "fav": (k % 13 == 0).astype(int).tolist(),
        "amount": np.where(k % 17 == 3, 12.34 + k, 0.0).round(2).tolist(),
        "feature": (0.5 * k - 3).tolist(),
    }


def official_line(
    page_id: int = 0,
    *,
    hour: object = 12,
    age: object = 2,
    gender: object = 0,
    power: object = 6,
    terminal: object = 0,
    seed: int = 0,
    **override: object,
) -> str:
    """One line of the official 15-column layout. A list given as ``str`` is written as is."""
    lists: dict[str, object] = item_lists(page_id, seed)
    lists.update(override)

    def text(value: object) -> str:
        return value if isinstance(value, str) else ",".join(str(v) for v in value)

    names = ("position", "ctr", "cvr", "price", "click", "cart", "fav", "amount", "feature")
    fields = [page_id, hour, age, gender, power, *(text(lists[n]) for n in names), terminal]
    return ";".join(str(f) for f in fields)


def example_line(page_id: int, *, age: int = 2, gender: int = 0, power: int = 6) -> str:
    """One line of the 14-field example layout."""
    lists = item_lists(page_id)
    names = ("position", "ctr", "cvr", "price", "click", "amount")
    body = [",".join(str(v) for v in lists[n]) for n in names]
    return ";".join(["0", str(age), str(gender), str(power), str(page_id), "0", *body, "0", "0"])


def session_lines(n_sessions: int = 6) -> list[str]:
    """Valid sessions of varied length, the last page of each carrying the terminal flag."""
    lines = []
    for s in range(n_sessions):
        length = 1 + (s * 5) % 12
        for p in range(length):
            lines.append(official_line(p, terminal=int(p == length - 1), seed=s, hour=s % 24))
    return lines


def write(tmp_path: Path, lines: list[str] | bytes, name: str = "log.txt") -> Path:
    path = tmp_path / name
    data = lines if isinstance(lines, bytes) else "".join(f"{x}\n" for x in lines).encode()
    path.write_bytes(data)
    return path


def collect(path: Path, **kw) -> tuple[dict[str, pa.Table], object]:
    """Ingest into memory: the three tables (concatenated) and the report."""
    parts: dict[str, list[pa.Table]] = {"pages": [], "items": [], "quarantine": []}
    report = ingest(path, sink=lambda name, table: parts[name].append(table), **kw)
    schemas = {"pages": PAGES_SCHEMA, "items": ITEMS_SCHEMA, "quarantine": QUARANTINE_SCHEMA}
    tables = {
        name: pa.concat_tables(p).combine_chunks() if p else schemas[name].empty_table()
        for name, p in parts.items()
    }
    return tables, report


def assert_same_tables(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> None:
    for name in a:
        assert a[name].schema == b[name].schema, name
        pd.testing.assert_frame_equal(a[name].to_pandas(), b[name].to_pandas(), obj=name)


# --------------------------------------------------------------------------------------------
# The real sample
# --------------------------------------------------------------------------------------------
def test_real_sample_parses_in_the_example_layout():
    tables, report = collect(REAL_SAMPLE, batch_bytes=4096)
    pages = tables["pages"]
    assert report.layout == EXAMPLE_SMALL.name
    assert report.sha256 == REAL_SHA256
    assert (report.lines_read, report.pages_written, report.lines_quarantined) == (100, 100, 0)
    assert pages.num_rows == 100
    assert pc_sum(pages, "n_clicks") == 133 == report.n_clicks
    assert report.n_purchases == 0 and report.total_value == 0.0
    # README: page id counts 0:28 1:16 2:14 3:11 4:10 5:9 6:6 7:6; purchase power 6:61 ...
    counts = pd.Series(pages.column("action_page_id").to_numpy()).value_counts().sort_index()
    assert counts.tolist() == [28, 16, 14, 11, 10, 9, 6, 6]
    power = pd.Series(pages.column("state_purchase_power").to_numpy()).value_counts()
    assert power.to_dict() == {6: 61, 1: 21, 5: 9, 4: 5, 2: 2, 7: 1, 3: 1}
    # no terminal flag in this layout: every session ends truncated, hour is null
    assert report.sessions_done == 0 and report.sessions_truncated == report.sessions > 0
    assert pages.column("hour").null_count == 100
    assert tables["items"].column("cart").null_count == 100
    assert report.reconciles
    assert json.loads(json.dumps(report.to_dict()))["reconciles"] is True
    # padded slots (price = ctr = cvr = 0) are not items: 679 of the 5,000 slots (synth's
    # calibration found the same), and the page means are over real items only
    n_items = pages.column("n_items").to_numpy()
    assert (n_items < 50).sum() == 40 and 5000 - n_items.sum() == 679
    assert pages.column("mean_log_price").to_numpy().min() > 3.0


def pc_sum(table: pa.Table, column: str) -> int:
    return int(table.column(column).to_numpy().sum())


# --------------------------------------------------------------------------------------------
# Official layout: values
# --------------------------------------------------------------------------------------------
def test_padded_slots_are_left_out_of_the_page_means(tmp_path):
    lists = item_lists(0, seed=2)
    pad = np.arange(50) >= 30  # the last 20 slots are padding
    padded = {k: np.where(pad, 0, np.asarray(v, float)).tolist() for k, v in lists.items()}
    padded["position"] = np.where(pad, 0, lists["position"]).astype(int).tolist()
    for k in ("click", "cart", "fav"):
        padded[k] = np.where(pad, 0, lists[k]).astype(int).tolist()
    empty = {k: [0] * 50 for k in lists}
    log = write(tmp_path, [official_line(0, **padded), official_line(1, **empty)])
    tables, report = collect(log, max_quarantine_share=0.5)
    got = tables["pages"].to_pylist()[0]
    real = {k: np.asarray(v, float)[:30] for k, v in lists.items()}
    assert got["n_items"] == 30
    assert got["mean_ctr"] == pytest.approx(real["ctr"].mean(), rel=1e-6)
    assert got["mean_log_price"] == pytest.approx(np.log(real["price"]).mean(), rel=1e-6)
    # a page with no item at all is quarantined, not averaged over nothing
    assert report.quarantine_reasons == {"no items: every slot is padding": 1}
    assert report.reconciles


def test_official_lines_give_the_right_aggregates_and_items(tmp_path):
    lines = [official_line(0, seed=1), official_line(1, seed=4, terminal=1), official_line(0)]
    tables, report = collect(write(tmp_path, lines))
    assert report.layout == OFFICIAL.name
    pages, items = tables["pages"], tables["items"]
    assert pages.num_rows == 3 and report.reconciles
    for row, (page_id, seed) in enumerate([(0, 1), (1, 4), (0, 0)]):
        lists = {k: np.asarray(v, float) for k, v in item_lists(page_id, seed).items()}
        got = pages.slice(row, 1).to_pylist()[0]
        assert got["n_clicks"] == lists["click"].sum()
        assert got["n_carts"] == lists["cart"].sum()
        assert got["n_favs"] == lists["fav"].sum()
        assert got["engagement"] == lists["click"].sum() + lists["cart"].sum()
        assert got["n_purchases"] == (lists["amount"] > 0).sum()
        assert got["page_value"] == pytest.approx(lists["amount"].sum(), abs=1e-9)
        assert got["reward"] == got["page_value"]
        assert got["mean_ctr"] == pytest.approx(lists["ctr"].mean(), rel=1e-6)
        assert got["mean_cvr"] == pytest.approx(lists["cvr"].mean(), rel=1e-6)
        expected_log_price = np.log(np.maximum(lists["price"], 0.01)).mean()
        assert got["mean_log_price"] == pytest.approx(expected_log_price, rel=1e-6)
        assert (got["hour"], got["age_level"], got["gender"]) == (12, 2, 0)
        assert got["state_purchase_power"] == 6 and got["action_page_id"] == page_id
        item = items.slice(row, 1).to_pylist()[0]
        assert item["line_no"] == row + 1 and item["session_id"] == got["session_id"]
        assert item["position"] == lists["position"].astype(int).tolist()
        assert item["amount"] == lists["amount"].tolist()
        np.testing.assert_allclose(item["ctr"], lists["ctr"], rtol=1e-6)
        np.testing.assert_allclose(item["feature"], lists["feature"], rtol=1e-6)
    assert pages.column("done").to_pylist() == [0, 1, 0]
    assert pages.column("truncated").to_pylist() == [0, 0, 1]  # the file ends on line 3
    assert pages.column("session_id").to_pylist() == [0, 0, 1]
    assert report.sessions == 2 and report.page_jumps == 0
    assert report.n_clicks == pc_sum(pages, "n_clicks")


def test_clicks_are_column_10_and_carts_column_11(tmp_path):
    """README pitfall: a parser that swaps them would count 3 clicks here, not 1."""
    click = [1] + [0] * 49
    cart = [1, 1, 1] + [0] * 47
    tables, _ = collect(write(tmp_path, [official_line(0, click=click, cart=cart)]))
    got = tables["pages"].to_pylist()[0]
    assert (got["n_clicks"], got["n_carts"], got["engagement"]) == (1, 3, 4)


# --------------------------------------------------------------------------------------------
# Quarantine
# --------------------------------------------------------------------------------------------
def _replace_item(name: str, value: str, index: int = 7):
    values = [str(v) for v in item_lists(2)[name]]
    values[index] = value
    return ",".join(values)


CORRUPTIONS = {
    "wrong column count": official_line(2).rsplit(";", 1)[0],  # terminal field dropped
    "wrong column count (extra field)": official_line(2) + ";0",
    "list not 50 long": official_line(2, price=item_lists(2)["price"][:49]),
    "list not 50 long (51)": official_line(2, click=item_lists(2)["click"] + [0]),
    # 99 bytes, the size of 50 flags, but a comma became a digit: 49 values
    "list not 50 long (49 flags in 99 bytes)": official_line(
        2, click="10" + ",".join(str(v) for v in item_lists(2)["click"])[2:]
    ),
    "non-numeric value": official_line(2, ctr=_replace_item("ctr", "abc")),
    "non-numeric value (empty item)": official_line(2, amount=_replace_item("amount", "")),
    "non-numeric value (hour)": official_line(2, hour="x"),
    "non-numeric value (comma in a scalar)": official_line(2, age="1,2"),
    "non-numeric value (bytes)": official_line(2, feature=_replace_item("feature", "\u00e9")),
    "page id not in 0..11": official_line(12),
    "page id not in 0..11 (fraction)": official_line(2).replace("2;", "2.5;", 1),
    "hour not in 0..23": official_line(2, hour=24),
    "terminal flag not 0/1": official_line(2, terminal=2),
    "profile value not in -128..127": official_line(2, power=300),
    "position not in 0..599": official_line(2, position=_replace_item("position", "600")),
    "ctr or cvr not in 0..1": official_line(2, ctr=_replace_item("ctr", "1.5")),
    "ctr or cvr not in 0..1 (nan cvr)": official_line(2, cvr=_replace_item("cvr", "nan")),
    "price negative, NaN or infinite": official_line(2, price=_replace_item("price", "-1.0")),
    "price negative, NaN or infinite (nan)": official_line(2, price=_replace_item("price", "nan")),
    "amount negative, NaN or infinite": official_line(2, amount=_replace_item("amount", "-5")),
    "amount negative, NaN or infinite (inf)": official_line(
        2, amount=_replace_item("amount", "inf")
    ),
    "flag not 0/1": official_line(2, click=_replace_item("click", "2")),
    "flag not 0/1 (cart)": official_line(2, cart=_replace_item("cart", "0.5")),
    "flag not 0/1 (fav)": official_line(2, fav=_replace_item("fav", "-1")),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_corrupted_line_is_quarantined_with_reason_and_line_number(tmp_path, kind):
    reason = kind.split(" (")[0]
    assert reason in REASONS
    bad = CORRUPTIONS[kind]
    lines = [official_line(0), official_line(1), bad, official_line(3), official_line(4)]
    tables, report = collect(write(tmp_path, lines), max_quarantine_share=1.0)
    quarantine = tables["quarantine"].to_pylist()
    assert quarantine == [{"line_no": 3, "reason": reason, "raw": bad}]
    assert report.quarantine_reasons == {reason: 1}
    assert (report.lines_read, report.pages_written, report.lines_quarantined) == (5, 4, 1)
    assert report.reconciles
    assert tables["pages"].column("line_no").to_pylist() == [1, 2, 4, 5]
    # the bad line broke the run 0, 1, [2], 3, 4: page 3 opens a new session, flagged as a jump
    assert tables["pages"].column("page_jump").to_pylist() == [0, 0, 1, 0]


def test_a_line_of_invalid_utf8_is_quarantined_with_its_bytes_escaped(tmp_path):
    bad = official_line(1).replace(";0.01,", ";\udcff0.01,", 1)
    data = b"".join(
        [official_line(0).encode(), b"\n", bad.encode("utf-8", "surrogateescape"), b"\n"]
    )
    tables, report = collect(write(tmp_path, data), max_quarantine_share=1.0)
    row = tables["quarantine"].to_pylist()[0]
    assert (row["line_no"], row["reason"]) == (2, "non-numeric value")
    assert row["raw"] == bad.replace("\udcff", "\\xff")
    assert report.pages_written == 1 and report.reconciles


def test_blank_lines_are_quarantined_and_counted(tmp_path):
    text = "\n".join([official_line(0), "", official_line(1), "  \t", official_line(2)]) + "\n"
    tables, report = collect(write(tmp_path, text.encode()), max_quarantine_share=1.0)
    assert tables["quarantine"].column("line_no").to_pylist() == [2, 4]
    assert report.quarantine_reasons == {"blank line": 2}
    assert (report.lines_read, report.pages_written) == (5, 3)  # the final newline adds none
    assert tables["pages"].column("line_no").to_pylist() == [1, 3, 5]


def test_crlf_line_ends_are_read_like_lf(tmp_path):
    lines = session_lines(3)
    lf, _ = collect(write(tmp_path, lines, "lf.txt"))
    crlf, _ = collect(write(tmp_path, ("\r\n".join(lines) + "\r\n").encode(), "crlf.txt"))
    assert_same_tables(lf, crlf)


def test_too_many_bad_lines_raise_after_the_sink_got_the_good_pages(tmp_path):
    lines = session_lines(2) + [official_line(40), "garbage", official_line(0, hour=99)]
    received: dict[str, int] = {}

    def sink(name: str, table: pa.Table) -> None:
        received[name] = received.get(name, 0) + table.num_rows

    with pytest.raises(QuarantineLimitError, match=r"quarantined 3 of .* lines") as info:
        ingest(write(tmp_path, lines), sink=sink, max_quarantine_share=0.01)
    report = info.value.report
    assert report.lines_quarantined == 3 and report.reconciles
    assert received == {
        "pages": report.pages_written,
        "items": report.pages_written,
        "quarantine": 3,
    }
    assert "do not commit" in str(info.value)
    # the same input passes when the limit allows it
    assert ingest(write(tmp_path, lines), max_quarantine_share=0.5).lines_quarantined == 3


# --------------------------------------------------------------------------------------------
# Not this format
# --------------------------------------------------------------------------------------------
def test_a_file_of_another_format_raises_a_clear_error(tmp_path):
    path = write(tmp_path, ["user_id,item_id,category_id,behavior,ts", "1,2,3,pv,1511544070"])
    with pytest.raises(DataFormatError) as info:
        ingest(path)
    message = str(info.value)
    assert "expected 15 `;`-separated fields (official layout) or 14 (example layout)" in message
    assert "line 1 has 1: 'user_id,item_id,category_id,behavior,ts'" in message


def test_an_empty_file_raises(tmp_path):
    with pytest.raises(DataFormatError, match="empty"):
        ingest(write(tmp_path, b""))


def test_a_missing_file_raises_data_format_error(tmp_path):
    with pytest.raises(DataFormatError, match="cannot open the raw log"):
        ingest(tmp_path / "nope.txt")


def test_detect_layout_from_first_lines():
    assert detect_layout([official_line(0), official_line(1)]) is OFFICIAL
    assert detect_layout([example_line(0).encode(), b"", example_line(3).encode()]) is (
        EXAMPLE_SMALL
    )
    # one bad first line among good ones does not hide the layout
    assert detect_layout(["oops", official_line(0), official_line(1)]) is OFFICIAL
    with pytest.raises(DataFormatError, match="line 1 has 3"):
        detect_layout(["a;b;c"])


def test_the_example_layout_is_parsed_when_given_or_detected(tmp_path):
    lines = [example_line(0), example_line(1), example_line(0)]
    tables, report = collect(write(tmp_path, lines))
    assert report.layout == EXAMPLE_SMALL.name
    pages = tables["pages"]
    assert pages.column("n_carts").to_pylist() == [0, 0, 0]
    assert pages.column("truncated").to_pylist() == [0, 1, 1]
    lists = item_lists(0)
    assert pages.column("n_clicks")[0].as_py() == sum(lists["click"])


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------
def make_tar(text: bytes, path: Path, *, mode: str = "w", name: str = "www.data") -> Path:
    with tarfile.open(path, mode) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(text)
        archive.addfile(info, io.BytesIO(text))
    return path


def test_containers_give_identical_pages(tmp_path):
    text = ("\n".join(session_lines(5)) + "\n").encode()
    plain = write(tmp_path, text, "plain.txt")
    gz = tmp_path / "log.txt.gz"
    gz.write_bytes(gzip.compress(text))
    tar = make_tar(text, tmp_path / "wwwdata.tar")
    renamed = tmp_path / "wwwdata.txt"
    renamed.write_bytes(tar.read_bytes())
    targz = make_tar(text, tmp_path / "wwwdata.tar.gz", mode="w:gz")
    half = text.index(b"\n", len(text) // 2) + 1
    two_members = tmp_path / "two.gz"  # gzip -d reads concatenated members as one text
    two_members.write_bytes(gzip.compress(text[:half]) + gzip.compress(text[half:]))
    # a long member name needs a GNU/pax extension header before the file's own header
    long_name = make_tar(text, tmp_path / "long.tar", name="d/" + "x" * 150 + "/www.data")

    reference, ref_report = collect(plain, batch_bytes=5000)
    assert ref_report.container == "plain" and ref_report.text_bytes == len(text)
    for path, container in [
        (gz, "gzip"),
        (two_members, "gzip"),
        (tar, "tar"),
        (renamed, "tar"),
        (targz, "tar.gz"),
        (long_name, "tar"),
    ]:
        tables, report = collect(path, batch_bytes=5000)
        assert report.container == container, path.name
        assert_same_tables(reference, tables)
        assert report.text_bytes == len(text)
        assert report.bytes_read == path.stat().st_size
        assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    stream, container = open_raw(renamed)
    with stream:
        assert container == "tar" and stream.read(len(text) + 10) == text


def test_a_tar_with_a_damaged_header_is_read_as_text(tmp_path):
    """A tar renamed to .txt whose header tarfile rejects: header stripped, NULs dropped."""
    text = ("\n".join(session_lines(4)) + "\n").encode()
    raw = bytearray(make_tar(text, tmp_path / "w.tar").read_bytes())
    raw[148:156] = b"0000000\x00"  # wrong header checksum
    damaged = write(tmp_path, bytes(raw), "wwwdata.txt")
    reference, _ = collect(write(tmp_path, text, "plain.txt"))
    tables, report = collect(damaged, batch_bytes=3000)
    assert report.container == "plain"
    assert any("tar header" in note for note in report.notes)
    assert any("NUL" in note for note in report.notes)
    assert_same_tables(reference, tables)


@pytest.mark.parametrize("final_newline", [True, False])
def test_nul_padding_at_the_end_is_dropped(tmp_path, final_newline):
    text = "\n".join(session_lines(3)) + ("\n" if final_newline else "")
    reference, ref_report = collect(write(tmp_path, text.encode(), "plain.txt"))
    padded = write(tmp_path, text.encode() + b"\x00" * 11_000, "padded.txt")
    tables, report = collect(padded, batch_bytes=2048)
    assert_same_tables(reference, tables)
    assert report.lines_read == ref_report.lines_read and report.lines_quarantined == 0


def test_a_cut_gzip_keeps_all_it_holds_and_quarantines_its_partial_last_line(tmp_path):
    text = ("\n".join(session_lines(8)) + "\n").encode()
    packed = gzip.compress(text, compresslevel=1)
    cut_bytes = packed[: int(len(packed) * 0.6)]
    readable = zlib.decompressobj(wbits=31).decompress(cut_bytes)  # what the cut file holds
    assert 0 < len(readable) < len(text) and not readable.endswith(b"\n")
    tables, report = collect(write(tmp_path, cut_bytes, "cut.gz"), max_quarantine_share=1.0)
    n_whole = readable.count(b"\n")
    assert (report.pages_written, report.lines_read) == (n_whole, n_whole + 1)
    assert tables["quarantine"].to_pylist() == [
        {
            "line_no": n_whole + 1,
            "reason": "truncated at end of input",
            "raw": readable.rsplit(b"\n", 1)[1].decode(),
        }
    ]
    assert any("ends early" in note for note in report.notes) and report.reconciles


def test_a_file_that_starts_like_gzip_but_is_not_raises(tmp_path):
    with pytest.raises(DataFormatError, match="does not decompress"):
        ingest(write(tmp_path, b"\x1f\x8b" + b"not really gzip" * 10, "fake.gz"))


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_a_cut_tar_keeps_all_it_holds_and_quarantines_its_partial_last_line(tmp_path, mode):
    text = ("\n".join(session_lines(8)) + "\n").encode()
    raw = make_tar(text, tmp_path / "w.tar", mode=mode).read_bytes()
    cut_bytes = raw[: int(len(raw) * 0.6)]
    tar_bytes = cut_bytes if mode == "w" else zlib.decompressobj(wbits=31).decompress(cut_bytes)
    readable = tar_bytes[512 : 512 + len(text)]  # the member's data that the cut file holds
    assert 0 < len(readable) < len(text) and not readable.endswith(b"\n")
    tables, report = collect(write(tmp_path, cut_bytes, "cut.tar"), max_quarantine_share=1.0)
    n_whole = readable.count(b"\n")
    assert (report.pages_written, report.lines_read) == (n_whole, n_whole + 1)
    assert report.quarantine_reasons == {"truncated at end of input": 1}
    assert tables["quarantine"].column("raw").to_pylist() == [readable.rsplit(b"\n", 1)[1].decode()]
    assert report.reconciles


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------
def test_results_do_not_depend_on_batch_size(tmp_path):
    lines = session_lines(6)
    lines[7] = "broken"
    lines[12] = official_line(3, hour=77)
    lines.insert(20, "")
    path = write(tmp_path, lines)
    reference, ref_report = collect(path, max_quarantine_share=1.0)
    assert ref_report.lines_quarantined == 3
    for batch_bytes in (1, 7, 333, 2_000, 10_000):
        tables, report = collect(path, batch_bytes=batch_bytes, max_quarantine_share=1.0)
        assert_same_tables(reference, tables)
        assert report.to_dict() == ref_report.to_dict()


@pytest.mark.parametrize("container", ["gzip", "tar"])
def test_containers_without_readinto_give_the_same_batches(tmp_path, container):
    """Plain files are read into the batch buffer in place; gzip and tar streams are read and
    copied: the same tables at every batch size."""
    lines = session_lines(6)
    lines[9] = "broken"
    plain = write(tmp_path, lines)
    data = plain.read_bytes()
    if container == "gzip":
        packed = write(tmp_path, gzip.compress(data), "log.gz")
    else:
        packed = make_tar(data, tmp_path / "log.tar")
    reference, _ = collect(plain, max_quarantine_share=1.0)
    for batch_bytes in (5, 4_000):
        tables, report = collect(packed, batch_bytes=batch_bytes, max_quarantine_share=1.0)
        assert_same_tables(reference, tables)
        assert report.reconciles and report.lines_quarantined == 1


def test_the_garbage_collector_is_left_as_it_was(tmp_path):
    """Ingestion freezes the objects alive at its start (gc.freeze) and unfreezes them."""
    import gc

    before = gc.get_freeze_count()
    collect(write(tmp_path, session_lines(3)))
    assert gc.get_freeze_count() == before
    with pytest.raises(DataFormatError):
        collect(write(tmp_path, ["not a page log"] * 3, "other.txt"))
    assert gc.get_freeze_count() == before


def test_progress_reports_every_file_byte(tmp_path):
    path = make_tar(("\n".join(session_lines(3)) + "\n").encode(), tmp_path / "w.tar")
    seen: list[int] = []
    ingest(path, progress=seen.append, batch_bytes=1000)
    assert sum(seen) == path.stat().st_size


def test_read_pages_returns_the_pages_table(tmp_path):
    pages = read_pages(write(tmp_path, session_lines(2)), batch_bytes=500)
    assert pages.schema == PAGES_SCHEMA
    assert pages.num_rows == len(session_lines(2))


def _python_float(token: str) -> float | None:
    """Python's float(), without its tolerance of surrounding whitespace (" 1" is no number)."""
    if token != token.strip():
        return None
    try:
        return float(token)
    except ValueError:
        return None


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="0123456789.-+e", min_size=0, max_size=8))
def test_a_price_is_a_number_when_python_reads_one(token):
    """The float cast's verdict on the characters of numbers, against Python's float()."""
    line = official_line(2, price=_replace_item("price", token))
    parsed = parse_lines((line + "\n").encode(), OFFICIAL)
    value = _python_float(token)
    if value is None:
        assert parsed.quarantine.column("reason").to_pylist() == ["non-numeric value"]
    elif not (value >= 0 and np.isfinite(value)):
        assert parsed.quarantine.column("reason").to_pylist() == ["price negative, NaN or infinite"]
    else:
        assert parsed.pages.column("price")[0].as_py()[7] == pytest.approx(value)


flag_tokens = st.sampled_from(["0", "1", "0", "1", "2", "00", "1.0", "-1", "x", "", " 1"])


@settings(max_examples=80, deadline=None)
@given(st.lists(flag_tokens, min_size=50, max_size=50), st.sampled_from(["click", "cart", "fav"]))
def test_flags_are_counted_from_their_bytes_and_checked(tokens, name):
    """A flag list is valid iff every value is written 0 or 1; its count is the number of 1s;
    a value that is no number is "non-numeric value", any other number "flag not 0/1"."""
    line = official_line(2, **{name: ",".join(tokens)})
    parsed = parse_lines((line + "\n").encode(), OFFICIAL)
    reasons = parsed.quarantine.column("reason").to_pylist()
    if set(tokens) <= {"0", "1"}:
        column = {"click": "n_clicks", "cart": "n_carts", "fav": "n_favs"}[name]
        assert reasons == [] and parsed.pages.column(column).to_pylist() == [tokens.count("1")]
        assert parsed.pages.column(name)[0].as_py() == [int(t) for t in tokens]
    elif any(_python_float(t) is None for t in tokens):
        assert reasons == ["non-numeric value"]
    else:
        assert reasons == ["flag not 0/1"]


def test_integer_fields_must_be_written_as_integers():
    """2.0 is a number but the page id is an integer field: not a page id in 0..11."""
    lines = [official_line(2).replace("2;", "2.0;", 1), official_line(2, hour="7.0")]
    parsed = parse_lines("".join(x + "\n" for x in lines).encode(), OFFICIAL)
    assert parsed.quarantine.column("reason").to_pylist() == [
        "page id not in 0..11",
        "hour not in 0..23",
    ]


def test_parse_lines_needs_whole_lines():
    with pytest.raises(ValueError, match="end with a newline"):
        parse_lines(official_line(0).encode(), OFFICIAL)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------
cents = st.integers(min_value=0, max_value=10**7)  # up to 100,000.00 Yuan per item


@st.composite
def pages_with_amounts(draw):
    n = draw(st.integers(1, 6))
    pages = []
    for _ in range(n):
        amounts = draw(st.lists(st.one_of(st.just(0), cents), min_size=N, max_size=N))
        page_id = draw(st.integers(0, 11))
        terminal = draw(st.integers(0, 1))
        pages.append((page_id, terminal, amounts))
    return pages


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pages_with_amounts(), st.integers(1, 6000))
def test_each_valid_line_is_one_page_and_amounts_keep_their_cents(tmp_path, pages, batch):
    lines = [
        official_line(p, terminal=t, amount=",".join(f"{c / 100:.2f}" for c in amounts))
        for p, t, amounts in pages
    ]
    path = write(tmp_path, lines, f"prop-{next(_seq)}.txt")
    tables, report = collect(path, batch_bytes=batch)
    got = tables["pages"]
    assert got.num_rows == len(lines) == report.lines_read and report.lines_quarantined == 0
    assert got.column("line_no").to_pylist() == list(range(1, len(lines) + 1))
    for row, (_, _, amounts) in enumerate(pages):
        expected = sum(amounts) / 100
        value = got.column("page_value")[row].as_py()
        assert abs(round(value, 2) - expected) <= 1e-9
        assert got.column("n_purchases")[row].as_py() == sum(a > 0 for a in amounts)
        items = tables["items"].column("amount")[row].as_py()
        assert [round(a * 100) for a in items] == amounts


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(st.integers(0, 11), st.integers(0, 1), st.booleans()), max_size=30),
    st.integers(1, 8000),
)
def test_sessions_partition_the_pages_of_a_file(tmp_path, steps, batch):
    lines, current = [], -1
    for jump_to, terminal, bad in steps:
        if bad and jump_to % 3 == 0:
            lines.append("not a page")
            continue
        current = jump_to if bad or current >= 11 else current + 1
        lines.append(official_line(current, terminal=terminal))
        current = -1 if terminal else current
    path = write(tmp_path, lines, f"sess-{next(_seq)}.txt")
    tables, report = collect(path, batch_bytes=batch, max_quarantine_share=1.0, layout=OFFICIAL)
    pages = tables["pages"].to_pandas()
    assert report.reconciles and report.lines_read == len(lines)
    sid, pid = pages["session_id"].to_numpy(), pages["action_page_id"].to_numpy().astype(int)
    if len(pages):
        assert sid[0] == 0 and set(np.diff(sid)) <= {0, 1}
    same = sid[1:] == sid[:-1]
    assert (np.diff(pid)[same] == 1).all()
    last = np.append(~same, True)
    assert not (pages["done"].to_numpy().astype(bool) & ~last).any()
    assert (pages["truncated"].to_numpy() == (last & (pages["done"].to_numpy() == 0))).all()
    n_sessions = len(np.unique(sid))
    assert report.sessions == n_sessions == report.sessions_done + report.sessions_truncated
