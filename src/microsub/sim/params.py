"""The generative model's coefficients: :class:`SynthParams`, validated (pydantic), and their
digest, which identifies a synthetic log together with its seed.

The formulas the coefficients enter are in :mod:`microsub.sim.dynamics`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from microsub.errors import ConfigError

#: Version of the generative model and its text format; part of :func:`params_digest`. Bump it
#: whenever a change to :mod:`microsub.sim.dynamics` or :mod:`microsub.data.synth` changes the
#: bytes written for the same seed and parameters (a test holds a golden digest of a small log).
GENERATOR_VERSION = 1

#: A probability, in [0, 1].
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
#: A standard deviation, >= 0.
StandardDeviation = Annotated[float, Field(ge=0.0)]


def _distribution(value: tuple[float, ...]) -> tuple[float, ...]:
    """``value`` when it is a non-empty list of non-negative probabilities summing to 1."""
    if not value or min(value) < 0 or abs(sum(value) - 1.0) > 1e-6:
        raise ValueError(f"expected non-negative probabilities summing to 1, found {value!r}")
    return value


def item_corr(p: SynthParams) -> np.ndarray:
    """The 3x3 correlation matrix R of the item scores (ctr, cvr, price)."""
    return np.array(
        [
            [1.0, p.corr_ctr_cvr, p.corr_ctr_price],
            [p.corr_ctr_cvr, 1.0, p.corr_cvr_price],
            [p.corr_ctr_price, p.corr_cvr_price, 1.0],
        ]
    )


class SynthParams(BaseModel):
    """Every coefficient of the generative model (see the module docstring for the formulas).

    Logit coefficients are additive on the log-odds of leaving; "sd" fields are standard
    deviations of normal draws; money is in Yuan.

    Attributes:
        age_level_probs: P(age_level = 0..6); 7 probabilities summing to 1.
        gender_1_prob: P(gender = 1).
        purchase_power_probs: P(purchase-power level = 1..7); 7 probabilities summing to 1.
        hour_weights: relative traffic of each hour 0..23 (sessions start at hour h with
            probability proportional to ``hour_weights[h]``); any positive scale.
        click_user_sd: sd of the user's log click propensity ``theta``.
        click_user_corr: correlation of ``theta`` with ``-z`` (users who click more stay
            longer), in [0, 1].
        mix_share_ctr, mix_share_cvr, mix_share_price: share of the variance of Z_ctr, Z_cvr,
            Z_price that lies between pages (the page's "mix"), in [0, 1].
        corr_ctr_cvr, corr_ctr_price, corr_cvr_price: correlations of the item scores Z (the
            sample's correlations of log CTR, log CVR and log price).
        log_ctr_mean, log_ctr_sd: mean and sd of ln(predicted CTR).
        ctr_min, ctr_max: clip range of the predicted CTR (probability).
        cvr_knots: ``(normal score, CVR)`` pairs, increasing; the CVR quantile function is
            linear in ln(CVR) between knots and flat beyond the end knots (>= 1e-6, so that no
            CVR prints as 0 with 6 decimals).
        price_knots: ``(normal score, price in Yuan)`` pairs, increasing; the price quantile
            function is linear in ln(price) between knots and flat beyond the end knots.
        price_power_shift: shift of the price score per purchase-power level above 5 (normal
            score units; richer users are shown slightly pricier items).
        price_endings: ``(cents, probability)`` pairs for the price's cents; cents ``-1`` means
            "any of 1..99, uniformly". Probabilities sum to 1.
        appeal_sd: sd of the item's true appeal (log click multiplier the CTR misses).
        feature_ctr_weight, feature_appeal_weight, feature_noise: weights of Z_ctr, the
            standardised appeal and noise in the logit of the item feature (column 14).
        pad_page_share: share of pages with fewer than 50 real items (zero padding), in [0, 1).
        click_scale: multiplier of CTR in the click probability (dimensionless).
        click_max: cap of the click probability.
        attention_sd: sd of the page-level log attention shock.
        click_depth_decay: drop of the log click probability per page of depth.
        click_slot_decay: drop of the log click probability from the first to the last slot of
            a page.
        cart_given_click, fav_given_click: P(cart | click), P(fav | click).
        buy_scale: multiplier of CVR in P(buy | click).
        buy_power: log multiplier of P(buy | click) per purchase-power level above 4.
        buy_cart_boost: multiplier of P(buy | click) when the item was carted.
        buy_max: cap of P(buy | click).
        quantity_probs: P(quantity = 1, 2, ...) of a bought item; sums to 1.
        leave_intercept: log-odds of leaving at the reference point (d = 0 without bounce,
            pp = 4, average hour, no engagement, average mix, z = 0).
        leave_bounce: extra log-odds of leaving after page 0.
        leave_depth: log-odds per page of depth (fatigue that a purchase does not reset).
        leave_night_fatigue: relative increase of ``leave_depth`` at night (hours 0..5).
        leave_since_purchase: log-odds per page since the last purchase (reset by a purchase).
        leave_hour: log-odds per unit of the hour's relative log traffic ``c(h)`` (subtracted).
        leave_power: log-odds per purchase-power level above 4 (subtracted).
        leave_engagement: log-odds per unit of ln(1 + clicks + carts) (subtracted).
        leave_mix: log-odds per unit of the page's mean ln CTR above ``log_ctr_mean``
            (subtracted).
        leave_user_sd: sd of the unobserved propensity's contribution to the log-odds.

    Validated on construction (pydantic; frozen): a bad value raises
    :class:`~microsub.errors.ConfigError` from :meth:`replace`, or pydantic's
    ``ValidationError`` from the constructor, naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- users ---
    age_level_probs: tuple[float, ...] = (
        13.5 / 31.5,
        1.5 / 31.5,
        13.5 / 31.5,
        1.5 / 31.5,
        0.5 / 31.5,
        0.5 / 31.5,
        0.5 / 31.5,
    )
    gender_1_prob: Probability = 0.29
    purchase_power_probs: tuple[float, ...] = (
        4.5 / 31.5,
        1.5 / 31.5,
        1.5 / 31.5,
        4.5 / 31.5,
        7.5 / 31.5,
        10.5 / 31.5,
        1.5 / 31.5,
    )
    hour_weights: tuple[float, ...] = (
        3.0, 1.8, 1.0, 0.6, 0.5, 0.6, 1.0, 1.8, 2.8, 3.4, 3.8, 4.0,
        4.4, 4.2, 3.8, 3.7, 3.8, 4.0, 4.3, 5.0, 5.8, 6.2, 5.6, 4.4,
    )  # fmt: skip
    click_user_sd: StandardDeviation = 0.5
    click_user_corr: Probability = 0.5
    # --- items ---
    mix_share_ctr: Probability = 0.47
    mix_share_cvr: Probability = 0.39
    mix_share_price: Probability = 0.18
    corr_ctr_cvr: float = -0.35
    corr_ctr_price: float = -0.05
    corr_cvr_price: float = -0.41
    log_ctr_mean: float = -3.42
    log_ctr_sd: StandardDeviation = 0.72
    ctr_min: float = 0.001
    ctr_max: float = 0.6
    cvr_knots: tuple[tuple[float, float], ...] = (
        (-4.5, 0.000001),
        (-3.09, 0.000003),
        (-2.326, 0.0000161),
        (-1.645, 0.000096),
        (-1.2816, 0.00024),
        (-0.674, 0.00075),
        (0.0, 0.00209),
        (0.674, 0.00558),
        (1.2816, 0.0144),
        (1.645, 0.0226),
        (2.326, 0.0522),
        (3.09, 0.1),
        (4.5, 0.2),
    )
    price_knots: tuple[tuple[float, float], ...] = (
        (-4.5, 0.5),
        (-3.09, 2.3),
        (-2.326, 15.8),
        (-1.645, 17.0),
        (-1.2816, 19.8),
        (-0.674, 29.0),
        (0.0, 63.0),
        (0.674, 139.0),
        (1.2816, 299.0),
        (1.645, 560.0),
        (2.326, 2410.0),
        (3.09, 8388.0),
        (4.5, 12000.0),
    )
    price_power_shift: float = 0.05
    price_endings: tuple[tuple[int, float], ...] = (
        (0, 0.637),
        (90, 0.134),
        (80, 0.109),
        (50, 0.031),
        (99, 0.016),
        (60, 0.011),
        (20, 0.009),
        (10, 0.006),
        (40, 0.005),
        (30, 0.004),
        (70, 0.004),
        (98, 0.004),
        (88, 0.003),
        (-1, 0.027),
    )
    appeal_sd: PositiveFloat = 0.5
    feature_ctr_weight: float = 0.8
    feature_appeal_weight: float = 0.8
    feature_noise: StandardDeviation = 0.6
    pad_page_share: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    # --- clicks and purchases ---
    click_scale: float = 0.71
    click_max: Probability = 0.95
    attention_sd: StandardDeviation = 0.6
    click_depth_decay: float = 0.05
    click_slot_decay: float = 0.2
    cart_given_click: Probability = 0.06
    fav_given_click: Probability = 0.03
    buy_scale: float = 5.0
    buy_power: float = 0.15
    buy_cart_boost: float = 3.0
    buy_max: Probability = 0.9
    quantity_probs: tuple[float, ...] = (0.88, 0.08, 0.02, 0.01, 0.01)
    # --- leaving ---
    leave_intercept: float = -1.45
    leave_bounce: float = 1.8
    leave_depth: float = 0.2
    leave_night_fatigue: float = 1.0
    leave_since_purchase: float = 0.1
    leave_hour: float = 0.5
    leave_power: float = 0.2
    leave_engagement: float = 1.5
    leave_mix: float = 1.2
    leave_user_sd: StandardDeviation = 0.5

    @field_validator("age_level_probs", "purchase_power_probs")
    @classmethod
    def _seven_levels(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 7:
            raise ValueError(f"expected 7 probabilities (levels), found {len(value)}")
        return _distribution(value)

    @field_validator("quantity_probs")
    @classmethod
    def _quantities(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return _distribution(value)

    @field_validator("price_endings")
    @classmethod
    def _endings(cls, value: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
        if any(not -1 <= cents <= 99 for cents, _ in value):
            raise ValueError("expected (cents in -1..99, probability) pairs")
        _distribution(tuple(p for _, p in value))
        return value

    @field_validator("hour_weights")
    @classmethod
    def _hours(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 24 or min(value) <= 0:
            raise ValueError(f"expected 24 positive weights, found {value!r}")
        return value

    @field_validator("price_knots", "cvr_knots")
    @classmethod
    def _knots(
        cls, value: tuple[tuple[float, float], ...], info: ValidationInfo
    ) -> tuple[tuple[float, float], ...]:
        low, high = (0.01, 1e5) if info.field_name == "price_knots" else (1e-6, 1.0)
        knots = np.asarray(value, dtype=float)
        if (
            knots.ndim != 2
            or knots.shape[0] < 2
            or knots.shape[1] != 2
            or (np.diff(knots[:, 0]) <= 0).any()
            or (np.diff(knots[:, 1]) < 0).any()
            or knots[0, 1] < low
            or knots[-1, 1] >= high
        ):
            raise ValueError(
                f"expected (score, value) pairs, increasing, values in [{low}, {high})"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SynthParams:
        if not 0.0 < self.ctr_min < self.ctr_max < 1.0:
            raise ValueError(
                f"ctr_min/ctr_max: expected 0 < ctr_min < ctr_max < 1, found "
                f"{(self.ctr_min, self.ctr_max)}"
            )
        try:
            np.linalg.cholesky(item_corr(self))
        except np.linalg.LinAlgError:
            raise ValueError(
                "corr_*: expected a positive-definite correlation matrix, found "
                f"{(self.corr_ctr_cvr, self.corr_ctr_price, self.corr_cvr_price)}"
            ) from None
        return self

    def replace(self, **changes: Any) -> SynthParams:
        """A validated copy with ``changes`` applied.

        Raises:
            ConfigError: a changed value is not valid (the message names the field).
        """
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'parameters'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise ConfigError(
                f"invalid generator parameters: {problems}; fix them in DEFAULT_PARAMS.replace(...)"
            ) from None


#: The calibrated default model (see the module docstring and
#: :func:`microsub.analysis.calibration.sample_statistics_of`).
DEFAULT_PARAMS = SynthParams()


def params_digest(params: SynthParams) -> str:
    """A 16-hex-digit digest of the parameters and :data:`GENERATOR_VERSION` (cache key)."""
    payload = {"version": GENERATOR_VERSION, "params": params.model_dump()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
