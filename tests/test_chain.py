"""The simulator's chain of models: design, fit, draws, storage."""

from __future__ import annotations

import numpy as np
import pytest

from microsub.errors import ModelError
from microsub.models import chain
from microsub.models.chain import PRE_COLUMNS, SessionModels, draw_pages, pre_design


@pytest.fixture(scope="module")
def models(session_tables) -> SessionModels:
    return SessionModels.fit(session_tables.pages)


def test_pre_design_holds_the_documented_columns() -> None:
    x = pre_design(
        depth=np.array([0, 3, 11]),
        purchase_power=np.array([4.0, 6.0, 1.0]),
        hour=np.array([2.0, 18.0, np.nan]),
        prev_engagement=np.array([0.0, 3.0, 1.0]),
        prev_value=np.array([0.0, 99.0, 0.0]),
        prev_since_purchase=np.array([0.0, 1.0, 11.0]),
        mix=np.array([[-3.0, -6.0, 4.0], [-3.5, -5.5, 3.9], [-2.9, -6.1, 4.2]]),
    )
    col = {name: x[:, i] for i, name in enumerate(PRE_COLUMNS)}
    assert x.shape == (3, len(PRE_COLUMNS)) == (3, 22)
    assert col["depth_3"].tolist() == [0, 1, 0] and col["depth_11"].tolist() == [0, 0, 1]
    assert sum(col[f"depth_{d}"][0] for d in range(1, 12)) == 0  # page 0: the reference
    assert col["night"].tolist() == [1, 0, 0]  # 2 AM; an unknown hour is not night
    assert col["night_depth"].tolist() == [0, 0, 0]
    assert col["hour_sin"][0] == pytest.approx(np.sin(2 * np.pi * 2 / 24))
    assert col["hour_cos"][2] == 0 and col["hour_sin"][2] == 0
    assert col["log_prev_engagement"][1] == pytest.approx(np.log(4))
    assert col["log_prev_value"][1] == pytest.approx(np.log(100))
    assert col["prev_since_purchase"].tolist() == [0, 1, 11]
    assert col["mean_log_price"].tolist() == [4.0, 3.9, 4.2]


def test_fitted_links_predict_held_out_pages(session_tables, models) -> None:
    pages = session_tables.pages
    held_out = pages[pages["session_id"] % 5 == 0]
    fitted = SessionModels.fit(pages[pages["session_id"] % 5 != 0])
    scores = fitted.scores(held_out)
    assert scores["pages"] == len(held_out)
    # the generator's leave hazard is logistic in what the chain sees (plus a latent user
    # effect), and clicks drive purchases: both links rank held-out pages well
    assert scores["leave_auc"] > 0.75
    assert scores["purchase_auc"] > 0.75
    assert 0.05 < scores["engagement_r2"] < 0.6
    # page 0 carries the bounce: its weight in the leave link is the largest depth effect
    w = models.leave.weights[:11]  # depth_1 .. depth_11, against page 0
    assert (w < 0)[:3].all()


def test_draws_follow_the_probabilities(models) -> None:
    rng = np.random.default_rng(0)
    n = 40_000
    z = np.tile([0.5, -2.0, 3.5, -1.0], (n, 1))
    draw = models.draw_linear(rng, z)
    w = models.outcome_weights
    p_buy = 1 / (1 + np.exp(-(z[:, 1] + w[0] * np.log1p(draw.engagement))))
    assert draw.bought.mean() == pytest.approx(p_buy.mean(), abs=0.01)
    assert draw.left.mean() == pytest.approx(draw.p_leave.mean(), abs=0.01)
    assert (draw.value[~draw.bought] == 0).all() and (draw.value[draw.bought] > 0).all()
    assert (draw.engagement >= 0).all() and (draw.engagement == np.floor(draw.engagement)).all()
    # an intervention scales the leave probability; no leaving at all with a scale of 0
    halved = models.draw_linear(np.random.default_rng(0), z, leave_scale=0.5)
    assert halved.p_leave == pytest.approx(draw.p_leave * 0.5)
    assert not models.draw_linear(rng, z, leave_scale=0.0).left.any()


def test_draw_pages_is_the_documented_formula() -> None:
    e_res, a_res = np.array([0.0, 0.1]), np.array([0.2, -0.2])
    w = np.array([0.3, 0.1, -0.5, 0.2, -0.1])
    z = np.array([[1.0, 0.0, 3.0, -0.5]])
    u = np.array([[0.75, 0.25, 0.0, 0.99]])  # residuals 0.1 and 0.2; buys; does not leave
    eng, bought, value, p, left = draw_pages(z, u, e_res, a_res, w, np.array([1.0]))
    e = max(0.0, np.floor(np.expm1(1.1) + 0.5))
    assert eng[0] == e == 2.0
    assert bought[0]
    v = np.floor(np.exp(3.0 + 0.1 * np.log1p(e) + 0.2) * 100 + 0.5) / 100
    assert value[0] == pytest.approx(v)
    logit = -0.5 - 0.5 * np.log1p(e) + 0.2 * 1 - 0.1 * np.log1p(v)
    assert p[0] == pytest.approx(1 / (1 + np.exp(-logit)))
    assert not left[0]


def test_draw_from_designs_equals_draw_from_predictors(models) -> None:
    x = np.random.default_rng(1).normal(size=(50, len(PRE_COLUMNS)))
    a = models.draw(np.random.default_rng(3), x)
    b = models.draw_linear(np.random.default_rng(3), x @ models.pre_weights + models.intercepts)
    assert np.array_equal(a.value, b.value) and np.array_equal(a.left, b.left)


def test_expected_value_ranks_pricier_and_more_convertible_pages_higher(models) -> None:
    base = dict(depth=np.zeros(2), purchase_power=np.full(2, 5.0), hour=np.full(2, 20.0),
                prev_engagement=np.zeros(2), prev_value=np.zeros(2),
                prev_since_purchase=np.zeros(2))  # fmt: skip
    cheap = np.array([[-3.4, -6.2, 3.5], [-3.4, -4.5, 3.5]])  # same page, higher mean CVR
    ev = models.expected_value(pre_design(**base, mix=cheap))
    assert ev[1] > ev[0] > 0


def test_round_trip_through_plain_numbers(models) -> None:
    doc = models.to_dict()
    again = SessionModels.from_dict(doc)
    x = np.random.default_rng(2).normal(size=(20, len(PRE_COLUMNS)))
    a, b = models.draw(np.random.default_rng(5), x), again.draw(np.random.default_rng(5), x)
    assert np.array_equal(a.engagement, b.engagement) and np.array_equal(a.value, b.value)
    assert len(again.engagement_residuals) == chain.N_RESIDUALS
    doc["columns"] = doc["columns"][:-1]
    with pytest.raises(ModelError, match="rerun `microsub run`"):
        SessionModels.from_dict(doc)


def test_fit_refuses_data_without_purchases(session_tables) -> None:
    pages = session_tables.pages.copy()
    pages["page_value"] = 0.0
    with pytest.raises(ModelError, match="pages with and without a purchase"):
        SessionModels.fit(pages)
