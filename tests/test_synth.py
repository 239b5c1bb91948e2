"""Tests of microsub.synth: format invariants, determinism, calibration, and model structure."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from microsub.analysis import calibration, features
from microsub.contract import ITEMS_PER_PAGE, MAX_PAGE_ID, OFFICIAL
from microsub.data import ingest, parse, synth
from microsub.errors import ConfigError, ContractError
from microsub.sim import params

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = ROOT / "data" / "real" / "rec_rl_data_small"

SEED = 20190513
SMALL = 3_000  # pages: format and determinism tests
CALIBRATION = 20_000  # pages: calibration and structure tests (the `ci` profile's size)


def ingested(path: Path) -> tuple[pa.Table, pa.Table]:
    """The pages and items tables :func:`microsub.ingest.ingest` makes of a raw log."""
    parts: dict[str, list[pa.Table]] = {"pages": [], "items": []}
    ingest.ingest(path, sink=lambda name, table: parts.get(name, []).append(table))
    return pa.concat_tables(parts["pages"]), pa.concat_tables(parts["items"])


def log_arrays(path: Path) -> dict[str, np.ndarray]:
    """A raw log's fields as arrays, from the tables :func:`microsub.ingest.ingest` makes of it.

    Scalars ``page_id, hour, age_level, gender, purchase_power, terminal`` (int64, shape (n,))
    come from the pages table (``terminal`` is ``done``, the raw terminal flag in the official
    layout); lists ``position, ctr, cvr, price, click, cart, fav, amount, feature`` (float64,
    shape (n, 50)) from the items table; ``real`` (n, 50) is False on padding slots (ingest's
    rule: price = ctr = cvr = 0).
    """
    pages, items = ingested(path)
    scalars = {
        "page_id": "action_page_id",
        "hour": "hour",
        "age_level": "age_level",
        "gender": "gender",
        "purchase_power": "state_purchase_power",
        "terminal": "done",
    }
    out = {name: pages.column(col).to_numpy().astype(np.int64) for name, col in scalars.items()}
    for name in parse.LIST_FIELDS:
        flat = pc.list_flatten(items.column(name)).to_numpy().astype(np.float64)
        out[name] = flat.reshape(items.num_rows, ITEMS_PER_PAGE)
    out["real"] = ~((out["price"] == 0) & (out["ctr"] == 0) & (out["cvr"] == 0))
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.SynthSummary]:
    path = tmp_path_factory.mktemp("synth") / "small.txt"
    return path, synth.generate(path, n_pages=SMALL, seed=SEED)


@pytest.fixture(scope="module")
def small_lines(small: tuple[Path, synth.SynthSummary]) -> list[list[str]]:
    return [line.split(";") for line in small[0].read_text().splitlines()]


@pytest.fixture(scope="module")
def ci_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "ci.txt"
    synth.generate(path, n_pages=CALIBRATION, seed=SEED)
    return path


@pytest.fixture(scope="module")
def ci_pages(ci_file: Path) -> pd.DataFrame:
    """Pages of the ci file (ingested, with features) without its last (possibly cut) session.

    ``session``: ingest's ``session_id``. Ingest also opens a session at a page-id jump or after
    the page cap; a synthetic log has no jumps and follows the cap with page 0, so that is the
    same as a session starting at page 0 or after a terminal line (checked here).
    ``since_purchase``: pages since the session's last purchase, the page index before any;
    features' ``pages_since_purchase`` counts t + 1 before any, hence the minimum with t.
    """
    pages = features.add_features(ingest.read_pages(ci_file).to_pandas())
    page_id = pages.action_page_id.to_numpy().astype(np.int64)
    done = pages.done.to_numpy().astype(np.int64)
    start = (page_id == 0) | np.r_[True, done[:-1] == 1]
    assert (np.cumsum(start) - 1 == pages.session_id.to_numpy()).all()
    t = pages.groupby("session_id").cumcount().to_numpy()
    df = pd.DataFrame(
        {
            "session": pages.session_id,
            "page_id": page_id,
            "hour": pages.hour.astype(np.int64),
            "purchase_power": pages.state_purchase_power.astype(np.int64),
            "n_purchases": pages.n_purchases,
            "engagement": pages.engagement,
            "page_value": pages.page_value,
            "mean_ctr": pages.mean_ctr,
            "since_purchase": np.minimum(pages.pages_since_purchase.to_numpy(), t),
            "done": done,
        }
    )
    return df[df.session < df.session.max()]


# --------------------------------------------------------------------------------------------
# Determinism and the file as a whole
# --------------------------------------------------------------------------------------------
def test_same_seed_same_bytes_and_summary(tmp_path: Path, small) -> None:
    path, summary = small
    again = synth.generate(tmp_path / "again.txt", n_pages=SMALL, seed=SEED)
    assert (tmp_path / "again.txt").read_bytes() == path.read_bytes()
    assert again.sha256 == summary.sha256
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary.bytes == path.stat().st_size
    assert summary.params_digest == params.params_digest(params.DEFAULT_PARAMS)


def test_different_seed_or_params_differ(tmp_path: Path, small) -> None:
    path, summary = small
    other = synth.generate(tmp_path / "other.txt", n_pages=SMALL, seed=SEED + 1)
    assert other.sha256 != summary.sha256
    changed_params = params.DEFAULT_PARAMS.replace(leave_bounce=0.0)
    changed = synth.generate(tmp_path / "p.txt", n_pages=SMALL, seed=SEED, params=changed_params)
    assert changed.sha256 != summary.sha256
    assert changed.params_digest != summary.params_digest


def test_shorter_file_is_a_prefix(tmp_path: Path, small) -> None:
    """Cutting at n_pages does not change what comes before, within a block or across blocks
    (a block holds about 8k pages)."""
    path, _ = small
    synth.generate(tmp_path / "long.txt", n_pages=12_000, seed=SEED)
    synth.generate(tmp_path / "mid.txt", n_pages=10_000, seed=SEED)
    long, mid = (tmp_path / "long.txt").read_bytes(), (tmp_path / "mid.txt").read_bytes()
    assert long.startswith(mid)
    assert mid.startswith(path.read_bytes())
    assert mid.count(b"\n") == 10_000


def test_exactly_n_pages_lines_of_15_fields(small_lines, small) -> None:
    path, summary = small
    assert path.read_bytes().endswith(b"\n")
    assert len(small_lines) == SMALL == summary.n_pages
    assert {len(f) for f in small_lines} == {OFFICIAL.n_fields}
    for col in range(OFFICIAL.position, OFFICIAL.feature + 1):
        assert {len(f[col].split(",")) for f in small_lines} == {ITEMS_PER_PAGE}


def test_summary_counts_match_the_file(small) -> None:
    path, summary = small
    a = log_arrays(path)
    page_id, terminal = a["page_id"], a["terminal"]
    assert summary.n_sessions == int((page_id == 0).sum())
    assert summary.n_terminal == int(terminal.sum())
    last_of_session = np.append(page_id[1:] == 0, True)
    assert summary.n_truncated == int((last_of_session & (terminal == 0)).sum())
    assert summary.n_purchases == int((a["amount"] > 0).sum())
    assert summary.total_value == pytest.approx(a["amount"].sum(), abs=0.005)
    assert summary.n_purchases > 0


def test_progress_reports_every_page(tmp_path: Path) -> None:
    calls: list[int] = []
    synth.generate(tmp_path / "p.txt", n_pages=20_000, seed=3, progress=calls.append)
    assert sum(calls) == 20_000
    assert len(calls) >= 2  # more than one block


def test_failed_generation_leaves_nothing(tmp_path: Path) -> None:
    def boom(_: int) -> None:
        raise RuntimeError("stop")

    out = tmp_path / "x.txt"
    with pytest.raises(RuntimeError, match="stop"):
        synth.generate(out, n_pages=20_000, seed=3, progress=boom)
    assert list(tmp_path.iterdir()) == []


def test_gzip_round_trips_and_is_reproducible(tmp_path: Path, small) -> None:
    path, _ = small
    gz = synth.generate(tmp_path / "small.txt.gz", n_pages=SMALL, seed=SEED)
    data = (tmp_path / "small.txt.gz").read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert gzip.decompress(data) == path.read_bytes()
    assert gz.bytes == len(data) < path.stat().st_size
    again = synth.generate(tmp_path / "again.txt.gz", n_pages=SMALL, seed=SEED)
    assert again.sha256 == gz.sha256
    assert ingest.read_pages(tmp_path / "small.txt.gz").num_rows == SMALL


def test_invalid_arguments_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_pages"):
        synth.generate(tmp_path / "x.txt", n_pages=0, seed=1)
    with pytest.raises(ConfigError, match="seed"):
        synth.generate(tmp_path / "x.txt", n_pages=10, seed=-1)
    with pytest.raises(ConfigError, match="purchase_power_probs"):
        params.DEFAULT_PARAMS.replace(purchase_power_probs=(0.5, 0.5))
    with pytest.raises(ConfigError, match="corr"):
        params.DEFAULT_PARAMS.replace(corr_ctr_cvr=0.99, corr_cvr_price=0.99, corr_ctr_price=-0.99)
    with pytest.raises(ValidationError, match="no_such_coefficient"):
        params.SynthParams(no_such_coefficient=1.0)
    assert not (tmp_path / "x.txt").exists()


# --------------------------------------------------------------------------------------------
# Line-level invariants
# --------------------------------------------------------------------------------------------
def test_sessions_are_consecutive_and_end_properly(small) -> None:
    a = log_arrays(small[0])
    page_id, terminal = a["page_id"], a["terminal"]
    assert page_id[0] == 0
    assert set(np.unique(terminal)) <= {0, 1}
    prev_id, prev_term = page_id[:-1], terminal[:-1]
    starts = page_id[1:] == 0
    # a new session starts exactly after a terminal line or after the page cap
    np.testing.assert_array_equal(starts, (prev_term == 1) | (prev_id == MAX_PAGE_ID))
    # otherwise the page id goes up by one
    np.testing.assert_array_equal(page_id[1:][~starts], prev_id[~starts] + 1)
    assert page_id.max() <= MAX_PAGE_ID
    assert (page_id == MAX_PAGE_ID).any()  # the cap is reached in 3000 pages


def test_scalar_fields_in_range(small) -> None:
    a = log_arrays(small[0])
    assert set(np.unique(a["hour"])) <= set(range(24))
    assert len(np.unique(a["hour"])) == 24
    assert set(np.unique(a["age_level"])) <= set(range(7))
    assert set(np.unique(a["gender"])) == {0, 1}
    assert set(np.unique(a["purchase_power"])) <= set(range(1, 8))


def test_item_lists(small) -> None:
    a = log_arrays(small[0])
    expected = a["page_id"][:, None] * ITEMS_PER_PAGE + np.arange(ITEMS_PER_PAGE)
    np.testing.assert_array_equal(np.sort(a["position"], axis=1), expected)
    assert not (np.diff(a["position"], axis=1) == 1).all(axis=1).all()  # a permutation, not sorted
    for name in ("click", "cart", "fav"):
        assert set(np.unique(a[name])) == {0, 1}
    clicked = a["click"] == 1
    assert not (a["cart"] == 1)[~clicked].any()
    assert not (a["fav"] == 1)[~clicked].any()
    assert not (a["amount"] > 0)[~clicked].any()
    assert (a["amount"] >= 0).all()
    assert ((a["ctr"] > 0) & (a["ctr"] < 1)).all()
    assert ((a["cvr"] > 0) & (a["cvr"] < 1)).all()
    assert (a["price"] > 0).all()
    assert ((a["feature"] > 0) & (a["feature"] < 1)).all()
    # an amount is the price times a whole quantity, to the cent
    bought = a["amount"] > 0
    qty = a["amount"][bought] / a["price"][bought]
    np.testing.assert_allclose(qty, np.rint(qty), atol=1e-6)
    assert (np.rint(qty) >= 1).all()


def test_number_formats(small_lines) -> None:
    six = re.compile(r"^0\.\d{1,6}$")
    money = re.compile(r"^\d+\.\d{1,2}$")
    feature = re.compile(r"^0\.\d{1,4}$")
    flag = re.compile(r"^[01]$")
    checks = {
        OFFICIAL.ctr: six,
        OFFICIAL.cvr: six,
        OFFICIAL.price: money,
        OFFICIAL.amount: money,
        OFFICIAL.feature: feature,
        OFFICIAL.click: flag,
        OFFICIAL.cart: flag,
        OFFICIAL.fav: flag,
        OFFICIAL.position: re.compile(r"^\d{1,3}$"),
    }
    for col, pattern in checks.items():
        tokens = {t for f in small_lines[:500] for t in f[col].split(",")}
        bad = [t for t in tokens if not pattern.match(t)]
        assert not bad, (col, bad[:5])
    prices = {t for f in small_lines for t in f[OFFICIAL.price].split(",")}
    assert {"29.0", "29.9", "49.0"} <= prices  # realistic endings
    assert any(re.match(r"^\d+\.\d[1-9]$", t) for t in prices)  # and some with two decimals
    assert {f[OFFICIAL.terminal] for f in small_lines} == {"0", "1"}


def test_padding_option(tmp_path: Path) -> None:
    padded = params.DEFAULT_PARAMS.replace(pad_page_share=0.5)
    synth.generate(tmp_path / "pad.txt", n_pages=600, seed=2, params=padded)
    a = log_arrays(tmp_path / "pad.txt")
    real = a["real"]
    padded_pages = ~real.all(axis=1)
    assert 0.4 < padded_pages.mean() < 0.6
    assert real.any(axis=1).all()  # at least one real item per page
    # padding fills the end of each list, with every value 0
    assert (np.diff(real.astype(int), axis=1) <= 0).all()
    for name in ("position", "ctr", "cvr", "price", "click", "cart", "fav", "amount", "feature"):
        assert (a[name][~real] == 0).all(), name
    # the real items of page k hold positions 50k .. 50k + n_real - 1
    n_real = real.sum(axis=1)
    lo = a["page_id"] * ITEMS_PER_PAGE
    for i in np.flatnonzero(padded_pages)[:50]:
        np.testing.assert_array_equal(
            np.sort(a["position"][i, : n_real[i]]), lo[i] + np.arange(n_real[i])
        )
    tokens = (tmp_path / "pad.txt").read_text().splitlines()[int(np.argmax(padded_pages))]
    assert tokens.split(";")[OFFICIAL.ctr].endswith(",0")


# --------------------------------------------------------------------------------------------
# Calibration helper and calibration against the real sample
# --------------------------------------------------------------------------------------------
def test_sample_statistics_of_the_real_sample() -> None:
    """The helper reproduces the README's facts about rec_rl_data_small."""
    s = calibration.sample_statistics(ingest.read_tables(REAL_SAMPLE))
    assert s["pages"] == 100
    assert s["page_id_share_0"] == pytest.approx(0.28)
    assert s["page_id_share_7"] == pytest.approx(0.06)
    assert s["clicks_per_page_mean"] == pytest.approx(1.33)
    assert s["clicks_per_page_share_0"] == pytest.approx(0.40)
    assert s["purchase_power_share_6"] == pytest.approx(0.61)
    assert s["gender_1_share"] == pytest.approx(0.29)
    assert s["pages_with_purchase_share"] == 0.0
    assert np.isnan(s["leave_rate"])  # the example layout has no terminal flag
    # 679 of the 5,000 item slots are zero padding; quantiles are over the 4,321 real items
    assert s["padded_item_share"] == pytest.approx(679 / 5000)
    assert s["price_p50"] == pytest.approx(63.0)
    assert s["price_max"] == pytest.approx(10240.0)


def test_sample_statistics_of_the_tables_equal_those_of_the_file(small, small_lines) -> None:
    path, _ = small
    pages, items = ingested(path)
    s = calibration.sample_statistics(ingest.read_tables(path))
    # any row order, pandas pages: exactly the same numbers
    shuffled = pages.to_pandas().sample(frac=1.0, random_state=0)
    assert calibration.sample_statistics_of(shuffled, items.take(np.arange(SMALL)[::-1])) == s
    head = calibration.sample_statistics(ingest.read_tables(path), max_pages=1000)
    assert head == calibration.sample_statistics_of(pages.slice(0, 1000), items.slice(0, 1000))
    assert head["pages"] == 1000 and s["pages"] == SMALL
    # CTR/CVR are the logged decimals (items stores float32), as a float64 parser reads them
    for name, col in (("ctr", OFFICIAL.ctr), ("cvr", OFFICIAL.cvr)):
        logged = np.array([float(v) for f in small_lines for v in f[col].split(",")])
        for q in (0.05, 0.50, 0.95):
            assert s[f"{name}_p{round(q * 100):02d}"] == np.quantile(logged, q), (name, q)
    with pytest.raises(ContractError, match="same lines"):
        calibration.sample_statistics_of(pages, items.slice(1))


def test_calibration_against_the_real_sample(ci_file: Path) -> None:
    """Synthetic statistics (20k pages) within tolerances of the real sample's.

    The sample is 100 pages (4,321 real items, 28 session starts, 14 distinct users), so its
    statistics are noisy: a page-level share has a standard error of about 0.05, the mean clicks
    per page about 12 %, and item quantiles are clustered by page (effective size a few hundred
    items, about 6 % on the median price). Tolerances are about 2.5-4 standard errors; profile
    shares (14 users) are not compared.
    """
    table = calibration.calibration_comparison(
        calibration.sample_statistics(ingest.read_tables(REAL_SAMPLE)),
        calibration.sample_statistics(ingest.read_tables(ci_file)),
        rows=None,
    ).set_index("statistic")
    real, syn = table["real"], table["synthetic"]

    def rel(name: str) -> float:
        return abs(syn[name] / real[name] - 1)

    for name in ("price_p50", "price_p75", "price_p90", "ctr_p50"):
        assert rel(name) < 0.25, (name, real[name], syn[name])
    assert rel("price_p99") < 0.5
    assert rel("cvr_p50") < 0.5
    assert rel("clicks_per_page_mean") < 0.30
    assert rel("page_mean_log_price_sd") < 0.30
    assert rel("page_mean_log_ctr_sd") < 0.30
    assert abs(syn["clicks_per_page_share_0"] - real["clicks_per_page_share_0"]) < 0.12
    assert abs(syn["sessions_per_page"] - real["sessions_per_page"]) < 0.10
    for k in range(4):
        assert abs(syn[f"page_id_share_{k}"] - real[f"page_id_share_{k}"]) < 0.10
    assert abs(syn["price_whole_yuan_share"] - real["price_whole_yuan_share"]) < 0.10
    assert abs(syn["gender_1_share"] - real["gender_1_share"]) < 0.10
    assert syn["clicked_ctr_ratio"] > 1.3 and real["clicked_ctr_ratio"] > 1.3
    assert list(table.columns) == ["real", "synthetic"]


# --------------------------------------------------------------------------------------------
# The structure the book's hypotheses look for (directions, fixed seed, 20k pages)
# --------------------------------------------------------------------------------------------
def test_rates_in_the_designed_ranges(ci_pages: pd.DataFrame) -> None:
    assert 0.2 <= ci_pages.done.mean() <= 0.3
    session_length = ci_pages.groupby("session").size().mean()
    assert 3.0 <= session_length <= 5.0
    assert 0.01 <= (ci_pages.n_purchases > 0).mean() <= 0.06


def test_leave_rate_bounces_then_rises_with_depth(ci_pages: pd.DataFrame) -> None:
    by_depth = ci_pages.groupby("page_id").done.mean()
    assert by_depth[0] > by_depth[1] + 0.1  # bounce after the first page (~0.36 vs ~0.13)
    early = ci_pages.done[ci_pages.page_id.between(1, 2)].mean()
    late = ci_pages.done[ci_pages.page_id.between(6, 9)].mean()
    assert late > early + 0.08  # fatigue (~0.32 vs ~0.15)


def test_late_night_sessions_end_faster(ci_pages: pd.DataFrame) -> None:
    hour, done = ci_pages.hour, ci_pages.done
    night = done[hour.between(2, 4)]
    evening = done[hour.between(20, 22)]
    assert len(night) > 200
    assert night.mean() > evening.mean() + 0.08  # ~0.39 vs ~0.23


def test_engagement_and_mix_retain(ci_pages: pd.DataFrame) -> None:
    done = ci_pages.done
    assert done[ci_pages.engagement == 0].mean() > done[ci_pages.engagement > 0].mean() + 0.15
    low, high = ci_pages.mean_ctr.quantile([0.25, 0.75])
    assert done[ci_pages.mean_ctr <= low].mean() > done[ci_pages.mean_ctr >= high].mean() + 0.15


def test_purchase_power_lengthens_sessions_and_spend(ci_pages: pd.DataFrame) -> None:
    sessions = ci_pages.groupby("session").agg(
        power=("purchase_power", "first"), pages=("page_id", "size"), value=("page_value", "sum")
    )
    rich, poor = sessions[sessions.power >= 6], sessions[sessions.power <= 2]
    assert rich.pages.mean() > poor.pages.mean() + 0.8  # ~4.5 vs ~3.0 pages
    assert rich.value.mean() > 1.5 * poor.value.mean()


def test_purchase_lowers_the_next_leave_rate(ci_pages: pd.DataFrame) -> None:
    """At the same depth, pages after a purchase are left less often (the churn clock resets;
    purchasers are also more engaged users, which adds to the gap)."""
    deep = ci_pages[ci_pages.page_id.between(2, 8)]
    after = deep.since_purchase < deep.page_id
    gap = deep[~after].groupby("page_id").done.mean() - deep[after].groupby("page_id").done.mean()
    weights = deep[after].groupby("page_id").size()
    assert weights.sum() > 1000
    assert (gap * weights).sum() / weights.sum() > 0.03  # ~0.09
