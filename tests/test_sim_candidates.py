"""What an action chooses: items ranked by ctr * cvr^a * price^b from pools of logged pages."""

from __future__ import annotations

import numpy as np
import pytest

from microsub.contract import MAX_PAGE_ID, item_matrix
from microsub.models.chain import page_mix as logged_page_mix
from microsub.sim import candidates as C


def _pool(rng: np.random.Generator, n: int = 5, k: int = 100) -> tuple[np.ndarray, np.ndarray]:
    ctr = np.exp(rng.normal(-3.4, 0.7, (n, k)))
    cvr = np.exp(rng.normal(-6.0, 1.0, (n, k)))
    price = np.exp(rng.normal(4.0, 1.2, (n, k)))
    return C.log_items(ctr, cvr, price), np.ones((n, k), bool)


def test_choose_shows_the_fifty_best_scores_in_order() -> None:
    logs, real = _pool(np.random.default_rng(0))
    a, b = np.full(5, 1.0), np.full(5, 0.5)
    shown = C.choose(logs, real, a, b)
    score = logs[..., 0] + logs[..., 1] + 0.5 * logs[..., 2]
    for i in range(5):
        expected = np.argsort(-score[i], kind="stable")[: C.PAGE_SIZE]
        assert shown[i].tolist() == expected.tolist()
    mask = C.top_mask(logs, real, a, b)
    assert (mask.sum(axis=1) == C.PAGE_SIZE).all()
    assert all(set(np.flatnonzero(mask[i])) == set(shown[i]) for i in range(5))


def test_padding_never_shows() -> None:
    logs, real = _pool(np.random.default_rng(1), n=2)
    real[:, :70] = False  # only 30 real candidates
    logs[:, :70, 0] = 10.0  # and the padding would score best
    mask = C.top_mask(logs, real, np.zeros(2), np.zeros(2))
    assert (mask.sum(axis=1) == 30).all() and not mask[:, :70].any()


def test_mix_is_the_log_of_mean_rates_and_mean_log_price() -> None:
    logs, real = _pool(np.random.default_rng(2), n=1, k=100)
    mask = np.zeros((1, 100), bool)
    mask[0, :50] = True
    mix = C.mask_mix(C.item_values(logs), mask)[0]
    assert mix[0] == pytest.approx(np.log(np.exp(logs[0, :50, 0]).mean()))
    assert mix[1] == pytest.approx(np.log(np.exp(logs[0, :50, 1]).mean()))
    assert mix[2] == pytest.approx(logs[0, :50, 2].mean())


def test_actions_move_the_mix_the_way_their_weights_say() -> None:
    logs, real = _pool(np.random.default_rng(3), n=400)
    mix = C.action_mixes(logs, real)  # (n, 10, 3)
    names = C.action_names()
    by = {name: mix[:, k].mean(axis=0) for k, name in enumerate(names)}
    assert by["a=0 b=0"][0] > by["logged"][0] + 0.2  # ranking by CTR: more clickable pages
    assert by["a=2 b=0"][1] > by["a=0 b=0"][1]  # weight on CVR: more convertible pages
    assert by["a=0 b=1"][2] > by["a=0 b=0"][2] > by["a=0 b=-1"][2]  # price exponent
    assert len(names) == C.N_ACTIONS == 10


def test_pools_of_logged_pages_keep_the_logged_page_as_action_zero(session_tables) -> None:
    pages, items = session_tables.pages, session_tables.items
    ctr, cvr, price = (item_matrix(items, c).astype(float) for c in ("ctr", "cvr", "price"))
    depth = pages["action_page_id"].to_numpy()
    pools = C.build_pools(ctr, cvr, price, depth, np.random.default_rng(0), 64, MAX_PAGE_ID)
    assert len(pools) == MAX_PAGE_ID + 1 and all(len(p) == 64 for p in pools)
    assert pools[0].logs.shape == (64, 100, 3)
    # action 0 shows a logged page of that depth: its mix is one of the logged pages' mixes
    logged = logged_page_mix(pages[depth == 3])
    shown = pools[3].mix[:, 0]
    nearest = np.abs(shown[:, None, :] - logged[None, :, :]).max(axis=2).min(axis=1)
    assert nearest.max() < 1e-3
    box = pools[3].box_mix(np.arange(64), np.full(64, 1.0), np.full(64, 1.0))
    assert np.allclose(box, pools[3].mix[:, C.ACTION_GRID.index((1.0, 1.0)) + 1])


def test_slot_curve_shows_the_generators_position_bias(session_tables) -> None:
    items, pages = session_tables.items, session_tables.pages
    curve = C.slot_click_curve(
        item_matrix(items, "position"), item_matrix(items, "click"),
        item_matrix(items, "price"), pages["action_page_id"].to_numpy(),
    )  # fmt: skip
    assert curve["slot"].tolist() == list(range(50))
    assert curve["items"].sum() == len(pages) * 50
    top, bottom = curve["click_rate"][:10].mean(), curve["click_rate"][-10:].mean()
    # the generator's slot decay: exp(-0.2 * r / 49), about 16 % from the first to the last
    # ten slots
    assert 1.05 < top / bottom < 1.35
    assert curve["relative"].mean() == pytest.approx(1.0)


def test_support_share_counts_mixes_inside_the_logged_range() -> None:
    logged = np.random.default_rng(4).normal(size=(10_000, 3))
    inside = np.zeros((10, 3))
    outside = np.full((10, 3), 5.0)
    assert C.support_share(inside, logged) == 1.0
    assert C.support_share(outside, logged) == 0.0
    assert C.support_share(np.vstack([inside, outside]), logged) == 0.5
