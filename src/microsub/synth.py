"""Seeded synthetic raw log in the official 15-column format: the pipeline's default input.

The real Taobao page log of Pei et al. (WWW 2019) is not reachable from here. This module writes a
log in the *same* text format (``;``-separated, 15 columns, 50 comma-separated values per list
column; layout :data:`microsub.contract.OFFICIAL`) from a documented generative model whose
coefficients live in :class:`SynthParams`. The model is calibrated to the only real sample we have,
``rec_rl_data_small`` (100 pages in the 14-field example layout; see ``data/real/README.md`` in
the shared folder), and :func:`calibration_table` shows how close it comes.

The generative model
====================

Everything below is drawn from one seeded :class:`numpy.random.Generator` per block of
sessions; the symbols are the fields of :class:`SynthParams`.

**Sessions and users.** A session is one user's visit. The user has a profile

* ``age_level`` in 0..6 with probabilities ``age_level_probs``. The sample shows only levels
  0..3 (session starts: 0:13, 1:1, 2:13, 3:1); Alibaba's other Taobao datasets use 0..6, so the
  default is the sample's session counts smoothed with a Jeffreys prior (+0.5 per level);
* ``gender`` 0/1 with ``P(1) = gender_1_prob`` = 0.29, the sample's page share (71/29);
* purchase-power level ``pp`` in 1..7 with ``purchase_power_probs``: the sample's session-start
  counts (1:4, 2:1, 3:1, 4:4, 5:7, 6:10, 7:1) smoothed the same way. The sample's *page* shares
  (6:61 of 100 pages) are tilted further towards high levels by two heavy users; in the model
  high levels browse longer, which tilts page shares the same way;
* an hour of day ``h``, the session's start, written on all its pages, drawn from the diurnal
  traffic curve ``hour_weights`` (24 relative weights: trough at 3-5 AM, lunch bump, peak at
  8-10 PM). The sample has no hour column, so the curve is an assumption modelled on the usual
  shape of mobile shopping traffic, not a fit;
* an unobserved propensity to leave ``z ~ N(0, 1)`` (a random effect, "frailty"), and a click
  propensity ``theta = click_user_sd * (-click_user_corr * z + sqrt(1 - click_user_corr^2) * xi)
  - click_user_sd^2 / 2`` with ``xi ~ N(0, 1)``: engaged users click more *and* stay longer,
  but neither is observed directly.

Age level and gender are drawn independently of everything else and affect nothing (they are
protected attributes, kept for fairness audits): an audit of a model should find no disparity
by them beyond sampling noise.

**Pages and items.** Page ``d`` (``action_page_id`` 0..11) shows 50 items at positions
``50 d .. 50 d + 49``, written in a random order (a permutation, as in the sample). Each item has
three standard-normal scores ``Z = (Z_ctr, Z_cvr, Z_price)``, the sum of a page-level "mix" and an
item-level deviation, ``Z_j = sqrt(w_j) P_j + sqrt(1 - w_j) I_j``, where ``P`` (one draw per page)
and ``I`` (one per item) are both ``N(0, R)`` with the sample's correlation matrix ``R``
(``corr_ctr_cvr``, ``corr_ctr_price``, ``corr_cvr_price``) and ``w = mix_share_*`` is the share
of variance between pages (sample: 0.47 for log CTR, 0.39 for log CVR, 0.18 for log price). So
some pages are cheaper, or more clickable, than others. Then

* predicted CTR ``= clip(exp(log_ctr_mean + log_ctr_sd Z_ctr), ctr_min, ctr_max)``,
  written with 6 decimals;
* predicted CVR ``= Q_cvr(Z_cvr)``, 6 decimals, where ``Q_cvr`` interpolates the sample's CVR
  quantiles linearly in log CVR against normal scores (knots ``cvr_knots``; the sample's log
  CVR is skewed, so a lognormal would miss its lower tail);
* price ``= Q_price(Z_price + price_power_shift (pp - 5))``, with ``Q_price`` built the same way
  from the sample's price quantiles (``price_knots``; 5 is about the page-weighted mean level,
  so the quantiles over pages stay on the knots), then the cents are replaced by a realistic
  ending (``.0`` 64 %, ``.9`` 13 %, ``.8`` 11 %, ... as counted in the sample:
  ``price_endings``), so prices read like 29.0, 29.9, 49.97;
* a true appeal ``a ~ N(-appeal_sd^2/2, appeal_sd)`` that the platform's CTR misses, and the
  optional item feature (column 14), a popularity score in (0, 1) with 4 decimals,
  ``sigmoid(feature_ctr_weight Z_ctr + feature_appeal_weight A + feature_noise e)`` with the
  standardised appeal ``A = (a + appeal_sd^2/2) / appeal_sd`` and ``e ~ N(0, 1)``: partly
  redundant with CTR, partly a noisy view of the appeal.

With ``pad_page_share > 0`` a share of pages holds only ``n`` real items (``n`` uniform on
1..49), in the first ``n`` list places and slots ``0 .. n - 1``; the other places are zero
padding (position 0, every value ``0``), as on 51 of the sample's 100 pages. The default is no
padding: the official format promises 50 items, and whether the full log pads is unknown.

**Clicks, carts, favourites, purchases.** Item at on-page slot ``r = position - 50 d``:

    P(click) = min(click_max, click_scale * ctr * exp(a + theta + eps
                   - click_depth_decay * d - click_slot_decay * r / 49))

with a page-level attention shock ``eps ~ N(-attention_sd^2/2, attention_sd)``. Carts and
favourites happen only on clicked items, with probabilities ``cart_given_click`` and
``fav_given_click`` (6 % and 3 %: in Alibaba's public UserBehavior log of Taobao, carts and
favourites are about 6 % and 3 % of item views, purchases about 2 %). A clicked item is bought
with probability

    P(buy | click) = min(buy_max, buy_scale * cvr * exp(buy_power (pp - 4))
                         * (buy_cart_boost if carted else 1))

(about 2.5 % on average, so that a few percent of pages hold a purchase), in
``quantity_probs`` units (mostly 1); the amount is price x quantity, to the cent.

**Leaving (terminal flag, column 15).** After page ``d`` the user leaves with probability
``sigmoid(eta)``:

    eta = leave_intercept
          + leave_bounce * [d = 0]                                   (bounce after page 0)
          + leave_depth * d * (1 + leave_night_fatigue * night(h))   (fatigue, steeper at night)
          + leave_since_purchase * s                                 (churn clock)
          - leave_hour * c(h)                                        (busy hours retain)
          - leave_power * (pp - 4)                                   (purchase power retains)
          - leave_engagement * ln(1 + clicks + carts)                (engagement retains)
          - leave_mix * (mean ln ctr of the page - log_ctr_mean)     (clickable pages retain)
          + leave_user_sd * z                                        (unobserved propensity)

where ``s`` is the number of pages since the last purchase (``s = d`` before any purchase,
``s = 0`` on a page with one: a purchase resets the churn clock), ``night(h) = 1`` for
``h`` in 0..5 and 0 otherwise, and ``c(h) = ln w_h - mean_h ln w_h`` is the log traffic of hour
``h`` relative to the average hour. Each user's hazard rises with depth; the population's
leave rate is nevertheless highest after page 0, because of the bounce term (and a little
because users with a high ``z`` leave first), and lowest after page 1. The bounce is the main
thing a model linear in depth cannot represent (the night-fatigue interaction and the
saturating engagement term are smaller ones); the random effect ``z`` is what no model can see
(it only leaks through clicks). The leave draw also happens after page 11; a session that does
not leave there stops anyway, without a terminal flag (the platform's cap).

Calibration and its limits
==========================

The sample constrains the page-id shares 0..7 (hence the bounce and fatigue terms, through the
session lengths), the clicks per page (mean 1.33, 40 % of pages without a click), the price
quantiles and endings, the CTR and CVR quantiles and correlations, the between-page spread of
the mix, and the profile levels. It has no hour, carts, favourites, purchases or terminal flags:
the hour curve, the purchase model and the strength of each leave term are assumptions, chosen
so that the per-page leave rate is about 0.25 (the sample: 28 session starts in 100 pages) and
the structure is learnable but not trivial. Known differences from the sample:

* the README's price quantiles (median 49, p90 280) count 679 zero padding slots; over the
  4,321 real items they are median 63, p75 139, p90 299, p99 2,412, which the knots follow;
* the sample has no page beyond 7; the model puts about 7 % of pages at 8..11 (the official
  format goes to 11, and 28 session starts are too few to rule those pages out);
* profile shares by page differ (the sample's 100 pages come from 14 users; one with purchase
  power 6 browses 61 of them);
* about 2.6 % of the sample's real items have CTR and CVR exactly 0.0; the model has none;
* the sample's lines are not whole sessions (page ids jump within a user); the model's are.

Writing the file
================

Sessions are simulated in blocks of :data:`SESSIONS_PER_BLOCK`, all in NumPy (vectorised over
the block's live sessions, one step per page depth), and formatted with Arrow string kernels
(CTR and CVR with up to 6 decimals, feature up to 4, money up to 2, trailing zeros dropped as
Python prints floats: ``0.05492``, ``29.0``, ``49.97``). Generation stops after exactly
``n_pages`` lines: the last session may be cut mid-way, which is the end-of-file truncation an
ingester must handle. Block ``b`` draws from ``SeedSequence(seed, spawn_key=(b,))``, so a file
is a prefix of any longer file with the same seed and parameters.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microsub import ingest
from microsub.contract import (
    ITEMS_PER_PAGE,
    ITEMS_SCHEMA,
    MAX_PAGE_ID,
    PAGES_SCHEMA,
    layout_named,
)
from microsub.errors import ConfigError, ContractError

if TYPE_CHECKING:
    import pandas as pd

#: Version of the generative model and its text format; part of :func:`params_digest`. Bump it
#: whenever a change to this module changes the bytes written for the same seed and parameters.
GENERATOR_VERSION = 1

#: Sessions simulated per block (about 8k pages): bounds memory (peak RSS under 300 MB,
#: see ``benchmarks/synth.py``) whatever ``n_pages`` is. Part of the output's identity: changing
#: it changes the bytes written for a seed, so it is a constant, not an option.
SESSIONS_PER_BLOCK = 2048

#: gzip level of ``.gz`` output: about 3x faster than zlib's default (6) for a file ~10 % larger.
GZIP_LEVEL = 3

_N_PAGES_MAX = MAX_PAGE_ID + 1


@dataclass(frozen=True)
class SynthParams:
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
    """

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
    gender_1_prob: float = 0.29
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
    click_user_sd: float = 0.5
    click_user_corr: float = 0.5
    # --- items ---
    mix_share_ctr: float = 0.47
    mix_share_cvr: float = 0.39
    mix_share_price: float = 0.18
    corr_ctr_cvr: float = -0.35
    corr_ctr_price: float = -0.05
    corr_cvr_price: float = -0.41
    log_ctr_mean: float = -3.42
    log_ctr_sd: float = 0.72
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
    appeal_sd: float = 0.5
    feature_ctr_weight: float = 0.8
    feature_appeal_weight: float = 0.8
    feature_noise: float = 0.6
    pad_page_share: float = 0.0
    # --- clicks and purchases ---
    click_scale: float = 0.71
    click_max: float = 0.95
    attention_sd: float = 0.6
    click_depth_decay: float = 0.05
    click_slot_decay: float = 0.2
    cart_given_click: float = 0.06
    fav_given_click: float = 0.03
    buy_scale: float = 5.0
    buy_power: float = 0.15
    buy_cart_boost: float = 3.0
    buy_max: float = 0.9
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
    leave_user_sd: float = 0.5

    def validate(self) -> None:
        """Check shapes and ranges; raise :class:`ConfigError` naming the first bad field."""

        def bad(name: str, expected: str, found: object) -> ConfigError:
            return ConfigError(
                f"SynthParams.{name}: expected {expected}, found {found!r}; "
                "fix it with dataclasses.replace(DEFAULT_PARAMS, ...)"
            )

        for name, n in (
            ("age_level_probs", 7),
            ("purchase_power_probs", 7),
            ("quantity_probs", None),
        ):
            p = np.asarray(getattr(self, name), dtype=float)
            if (n is not None and p.shape != (n,)) or p.ndim != 1 or p.size == 0:
                raise bad(name, f"{n or 'some'} probabilities", getattr(self, name))
            if (p < 0).any() or abs(p.sum() - 1.0) > 1e-6:
                raise bad(name, "non-negative probabilities summing to 1", getattr(self, name))
        ends = np.asarray([e for e, _ in self.price_endings])
        p_end = np.asarray([p for _, p in self.price_endings], dtype=float)
        if (p_end < 0).any() or abs(p_end.sum() - 1.0) > 1e-6 or ((ends < -1) | (ends > 99)).any():
            raise bad(
                "price_endings",
                "(cents in -1..99, prob) pairs, probs summing to 1",
                self.price_endings,
            )
        w = np.asarray(self.hour_weights, dtype=float)
        if w.shape != (24,) or (w <= 0).any():
            raise bad("hour_weights", "24 positive weights", self.hour_weights)
        for name, low, high in (("price_knots", 0.01, 1e5), ("cvr_knots", 1e-6, 1.0)):
            knots = np.asarray(getattr(self, name), dtype=float)
            if (
                knots.ndim != 2
                or knots.shape[0] < 2
                or knots.shape[1] != 2
                or (np.diff(knots[:, 0]) <= 0).any()
                or (np.diff(knots[:, 1]) < 0).any()
                or knots[0, 1] < low
                or knots[-1, 1] >= high
            ):
                raise bad(
                    name,
                    f"(score, value) pairs, increasing, values in [{low}, {high})",
                    getattr(self, name),
                )
        for name in (
            "gender_1_prob",
            "click_user_corr",
            "mix_share_ctr",
            "mix_share_cvr",
            "mix_share_price",
            "cart_given_click",
            "fav_given_click",
            "buy_max",
            "click_max",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise bad(name, "a value in [0, 1]", v)
        for name in (
            "click_user_sd",
            "log_ctr_sd",
            "appeal_sd",
            "attention_sd",
            "feature_noise",
            "leave_user_sd",
        ):
            v = getattr(self, name)
            if not v >= 0.0 or (name == "appeal_sd" and v == 0.0):
                raise bad(name, "a standard deviation >= 0 (appeal_sd > 0)", v)
        if not 0.0 <= self.pad_page_share < 1.0:
            raise bad("pad_page_share", "a value in [0, 1)", self.pad_page_share)
        if not 0.0 < self.ctr_min < self.ctr_max < 1.0:
            raise bad("ctr_min/ctr_max", "0 < ctr_min < ctr_max < 1", (self.ctr_min, self.ctr_max))
        try:
            np.linalg.cholesky(_item_corr(self))
        except np.linalg.LinAlgError:
            raise bad(
                "corr_*",
                "a positive-definite correlation matrix",
                (self.corr_ctr_cvr, self.corr_ctr_price, self.corr_cvr_price),
            ) from None


#: The calibrated default model (see the module docstring and :func:`calibration_table`).
DEFAULT_PARAMS = SynthParams()


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


def params_digest(params: SynthParams) -> str:
    """A 16-hex-digit digest of the parameters and :data:`GENERATOR_VERSION` (cache key)."""
    payload = {"version": GENERATOR_VERSION, "params": dataclasses.asdict(params)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ============================================================================================
# Simulation (pure: a generator and parameters in, arrays out)
# ============================================================================================
def _item_corr(p: SynthParams) -> np.ndarray:
    """The 3x3 correlation matrix R of the item scores (ctr, cvr, price)."""
    return np.array(
        [
            [1.0, p.corr_ctr_cvr, p.corr_ctr_price],
            [p.corr_ctr_cvr, 1.0, p.corr_cvr_price],
            [p.corr_ctr_price, p.corr_cvr_price, 1.0],
        ]
    )


def _knot_quantile(score: np.ndarray, knots: tuple[tuple[float, float], ...]) -> np.ndarray:
    """``Q(score)``: log-linear interpolation of ``(normal score, value)`` knots, flat beyond."""
    k = np.asarray(knots, dtype=float)
    return np.exp(np.interp(score, k[:, 0], np.log(k[:, 1])))


def hour_log_traffic(params: SynthParams = DEFAULT_PARAMS) -> np.ndarray:
    """``c(h) = ln w_h - mean_h ln w_h`` for h = 0..23: the hour term of the leave hazard."""
    lw = np.log(np.asarray(params.hour_weights, dtype=float))
    return lw - lw.mean()


def is_night(hour: np.ndarray) -> np.ndarray:
    """``night(h)``: 1.0 for hours 0..5, else 0.0 (the fatigue interaction of the hazard)."""
    return (np.asarray(hour) <= 5).astype(float)


@dataclass
class _Block:
    """Simulated pages of one block, in file order (session-major, page ids increasing).

    Per-page arrays have shape (n,); item arrays (n, 50) in the order written on the line.
    Money in integer cents; CTR/CVR in units of 1e-6; feature in units of 1e-4.
    """

    session: np.ndarray
    page_id: np.ndarray
    hour: np.ndarray
    age_level: np.ndarray
    gender: np.ndarray
    purchase_power: np.ndarray
    terminal: np.ndarray
    position: np.ndarray
    ctr_u: np.ndarray
    cvr_u: np.ndarray
    price_c: np.ndarray
    click: np.ndarray
    cart: np.ndarray
    fav: np.ndarray
    amount_c: np.ndarray
    feature_u: np.ndarray
    pad: np.ndarray | None

    def __len__(self) -> int:
        return len(self.page_id)

    def head(self, k: int) -> _Block:
        """The first ``k`` pages."""
        return _Block(
            **{
                f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[:k])
                for f in dataclasses.fields(self)
            }
        )


def _quantize_price(rng: np.random.Generator, raw: np.ndarray, p: SynthParams) -> np.ndarray:
    """Prices in Yuan -> integer cents with realistic endings (``price_endings``)."""
    ends = np.array([e for e, _ in p.price_endings], dtype=np.int64)
    probs = np.array([q for _, q in p.price_endings], dtype=float)
    cents = ends[rng.choice(len(ends), size=raw.shape, p=probs / probs.sum())]
    other = cents < 0
    cents[other] = rng.integers(1, 100, size=int(other.sum()))
    base = np.floor(raw).astype(np.int64)
    out = base * 100 + cents
    # Items under one Yuan keep their own cents (a 0.00 price would read as padding).
    small = base == 0
    out[small] = np.maximum(1, np.rint(raw[small] * 100).astype(np.int64))
    return out


def _simulate_block(rng: np.random.Generator, n_sessions: int, p: SynthParams) -> _Block:
    """Simulate ``n_sessions`` whole sessions; return their pages in file order.

    One vectorised step per page depth d = 0..11 over the sessions still browsing.
    """
    n_items = ITEMS_PER_PAGE
    age = rng.choice(7, size=n_sessions, p=np.asarray(p.age_level_probs) / sum(p.age_level_probs))
    gender = (rng.random(n_sessions) < p.gender_1_prob).astype(np.int64)
    pp_probs = np.asarray(p.purchase_power_probs)
    power = rng.choice(7, size=n_sessions, p=pp_probs / pp_probs.sum()) + 1
    w = np.asarray(p.hour_weights, dtype=float)
    hour = rng.choice(24, size=n_sessions, p=w / w.sum())
    z = rng.standard_normal(n_sessions)
    xi = rng.standard_normal(n_sessions)
    rho = p.click_user_corr
    theta = p.click_user_sd * (-rho * z + np.sqrt(1 - rho**2) * xi) - p.click_user_sd**2 / 2

    # Session-level terms of the leave hazard that do not change with depth.
    c_hour = hour_log_traffic(p)[hour]
    night = is_night(hour)
    eta_user = (
        p.leave_intercept
        - p.leave_hour * c_hour
        - p.leave_power * (power - 4)
        + p.leave_user_sd * z
    )
    depth_slope = p.leave_depth * (1 + p.leave_night_fatigue * night)
    buy_user = p.buy_scale * np.exp(p.buy_power * (power - 4))

    chol = np.linalg.cholesky(_item_corr(p))
    share = np.array([p.mix_share_ctr, p.mix_share_cvr, p.mix_share_price])
    q_probs = np.asarray(p.quantity_probs) / np.sum(p.quantity_probs)

    alive = np.ones(n_sessions, dtype=bool)
    last_buy = np.full(n_sessions, -1, dtype=np.int64)
    parts: list[dict[str, np.ndarray]] = []
    slot_ids = np.arange(n_items)
    for d in range(_N_PAGES_MAX):
        idx = np.flatnonzero(alive)
        n = idx.size
        if n == 0:
            break
        # --- the page's items: page mix + item deviation, correlated by R ---
        page_z = rng.standard_normal((n, 1, 3)) @ chol.T
        item_z = rng.standard_normal((n, n_items, 3)) @ chol.T
        zs = np.sqrt(share) * page_z + np.sqrt(1 - share) * item_z
        ctr_u = np.rint(
            np.clip(np.exp(p.log_ctr_mean + p.log_ctr_sd * zs[..., 0]), p.ctr_min, p.ctr_max) * 1e6
        ).astype(np.int64)
        cvr_u = np.rint(_knot_quantile(zs[..., 1], p.cvr_knots) * 1e6).astype(np.int64)
        price_score = zs[..., 2] + p.price_power_shift * (power[idx, None] - 5)
        price_c = _quantize_price(rng, _knot_quantile(price_score, p.price_knots), p)
        appeal = p.appeal_sd * rng.standard_normal((n, n_items)) - p.appeal_sd**2 / 2
        feat_logit = (
            p.feature_ctr_weight * zs[..., 0]
            + p.feature_appeal_weight * (appeal / p.appeal_sd + p.appeal_sd / 2)
            + p.feature_noise * rng.standard_normal((n, n_items))
        )
        feature_u = np.clip(np.rint(1e4 / (1 + np.exp(-feat_logit))), 1, 9999).astype(np.int64)
        # The on-page slot of each listed item: a random permutation per page.
        keys = rng.random((n, n_items))
        if p.pad_page_share > 0:
            n_real = np.where(
                rng.random(n) < p.pad_page_share,
                rng.integers(1, n_items, size=n),
                n_items,
            )
            real = slot_ids[None, :] < n_real[:, None]  # real items fill the first list places
            keys[~real] = 2.0  # ... and the first slots 0..n_real-1
            slot = np.argsort(np.argsort(keys, axis=1), axis=1)
        else:
            real = None
            slot = np.argsort(keys, axis=1)
        ctr = ctr_u / 1e6
        cvr = cvr_u / 1e6

        # --- behaviour on the page ---
        attention = p.attention_sd * rng.standard_normal(n) - p.attention_sd**2 / 2
        log_p_click = (
            np.log(p.click_scale * ctr)
            + appeal
            + (theta[idx] + attention - p.click_depth_decay * d)[:, None]
            - p.click_slot_decay * slot / (n_items - 1)
        )
        p_click = np.minimum(p.click_max, np.exp(log_p_click))
        click = rng.random((n, n_items)) < p_click
        cart = click & (rng.random((n, n_items)) < p.cart_given_click)
        fav = click & (rng.random((n, n_items)) < p.fav_given_click)
        p_buy = np.minimum(
            p.buy_max,
            buy_user[idx, None] * cvr * np.where(cart, p.buy_cart_boost, 1.0),
        )
        buy = click & (rng.random((n, n_items)) < p_buy)
        if real is not None:
            click &= real
            cart &= real
            fav &= real
            buy &= real
        qty = np.zeros((n, n_items), dtype=np.int64)
        n_buy = int(buy.sum())
        qty[buy] = rng.choice(len(q_probs), size=n_buy, p=q_probs) + 1
        amount_c = price_c * qty

        # --- leave decision after the page ---
        bought = buy.any(axis=1)
        last_buy[idx[bought]] = d
        since = np.where(last_buy[idx] >= 0, d - last_buy[idx], d)
        engagement = click.sum(axis=1) + cart.sum(axis=1)
        if real is not None:
            n_real_f = real.sum(axis=1)
            mean_log_ctr = np.where(real, np.log(ctr), 0.0).sum(axis=1) / n_real_f
        else:
            mean_log_ctr = np.log(ctr).mean(axis=1)
        eta = (
            eta_user[idx]
            + p.leave_bounce * (d == 0)
            + depth_slope[idx] * d
            + p.leave_since_purchase * since
            - p.leave_engagement * np.log1p(engagement)
            - p.leave_mix * (mean_log_ctr - p.log_ctr_mean)
        )
        leave = rng.random(n) < 1 / (1 + np.exp(-eta))
        alive[idx[leave]] = False

        part = {
            "session": idx,
            "page_id": np.full(n, d, dtype=np.int64),
            "terminal": leave.astype(np.int64),
            "position": (n_items * d + slot).astype(np.int16),
            "ctr_u": ctr_u.astype(np.int32),
            "cvr_u": cvr_u.astype(np.int32),
            "price_c": price_c,
            "click": click.astype(np.int8),
            "cart": cart.astype(np.int8),
            "fav": fav.astype(np.int8),
            "amount_c": amount_c,
            "feature_u": feature_u.astype(np.int16),
        }
        if real is not None:
            part["pad"] = ~real
        parts.append(part)

    # File order: session-major, depth increasing (a stable sort of the depth-major parts).
    order = np.argsort(np.concatenate([pt["session"] for pt in parts]), kind="stable")
    cat = {k: np.concatenate([pt.pop(k) for pt in parts])[order] for k in list(parts[0])}
    s = cat["session"]
    pad = cat.pop("pad", None)
    if pad is not None:
        for k in ("position", "ctr_u", "cvr_u", "price_c", "amount_c", "feature_u"):
            cat[k] = np.where(pad, 0, cat[k])
    return _Block(
        hour=hour[s],
        age_level=age[s],
        gender=gender[s],
        purchase_power=power[s],
        pad=pad,
        **cat,
    )


# ============================================================================================
# Formatting (Arrow string kernels; no per-value Python)
# ============================================================================================
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


def _format_block(b: _Block) -> pa.Buffer:
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


# ============================================================================================
# Writing (I/O edge)
# ============================================================================================
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


def _block_rng(seed: int, block: int) -> np.random.Generator:
    """The generator of block ``block``: independent streams, stable whatever n_pages is."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))


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
        ConfigError: ``n_pages`` < 1, a negative seed, or invalid ``params``.
    """
    if int(n_pages) < 1:
        raise ConfigError(f"n_pages must be >= 1, got {n_pages}; pass the number of lines wanted")
    if int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    params.validate()
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
                block = _simulate_block(_block_rng(seed, block_no), SESSIONS_PER_BLOCK, params)
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


# ============================================================================================
# Calibration statistics (of the ingested pages and items tables)
# ============================================================================================
#: Columns of the pages table (:data:`microsub.contract.PAGES_SCHEMA`) that
#: :func:`sample_statistics_of` reads; a caller reading the lake needs no others.
STATISTICS_PAGE_COLUMNS = (
    "line_no",
    "action_page_id",
    "hour",
    "done",
    "n_clicks",
    "n_purchases",
    "n_items",
    "state_purchase_power",
    "gender",
    "age_level",
)
#: Columns of the items table (:data:`microsub.contract.ITEMS_SCHEMA`) it reads.
STATISTICS_ITEM_COLUMNS = ("line_no", "ctr", "cvr", "price", "click")

_CHUNK_PAGES = 16_384  # pages per chunk of dense (pages, 50) item matrices: bounds memory


def sample_statistics(path: str | Path, *, max_pages: int | None = None) -> dict[str, float]:
    """The calibration statistics of a raw log (either layout): :func:`sample_statistics_of`
    of the tables :func:`microsub.ingest.ingest` makes of it.

    Malformed lines are quarantined by the ingestion (and it fails above its default limit
    of 1 % of the lines), so the statistics are those of the valid pages.

    Args:
        path: the raw log (plain text, gzip or tar; 15-field official or 14-field example).
        max_pages: use only the first pages, in line order (None: all). The whole file is
            ingested either way.
    """
    parts: dict[str, list[pa.Table]] = {"pages": [], "items": []}

    def keep(name: str, table: pa.Table) -> None:
        if name in parts:
            parts[name].append(table)

    report = ingest.ingest(path, sink=keep)
    pages = pa.concat_tables(parts["pages"] or [PAGES_SCHEMA.empty_table()])
    items = pa.concat_tables(parts["items"] or [ITEMS_SCHEMA.empty_table()])
    if max_pages is not None:
        pages = _by_line(pages).slice(0, max_pages)
        items = _by_line(items).slice(0, max_pages)
    terminal_flags = layout_named(report.layout).terminal is not None
    return sample_statistics_of(pages, items, terminal_flags=terminal_flags)


def sample_statistics_of(
    pages: pa.Table | pd.DataFrame, items: pa.Table, *, terminal_flags: bool = True
) -> dict[str, float]:
    """The calibration statistics of ingested pages, computed the same way for either layout.

    Item statistics use real items only. A padding slot is one that
    :mod:`microsub.ingest` leaves out of the page means (price = CTR = CVR = 0; the pages'
    ``n_items`` counts the others); the share of them is reported. Shares are fractions of
    pages unless named otherwise. CTR and CVR are read back as the decimals the log wrote
    (:func:`_logged_decimals`), so the statistics equal those of the raw text.

    Args:
        pages: pages table (:data:`~microsub.contract.PAGES_SCHEMA`; at least
            :data:`STATISTICS_PAGE_COLUMNS`), Arrow or pandas, any row order.
        items: items table of the same pages (:data:`~microsub.contract.ITEMS_SCHEMA`; at
            least :data:`STATISTICS_ITEM_COLUMNS`), any row order.
        terminal_flags: whether the source layout has a terminal flag (ingest writes
            ``done`` = 0 where it has none, so the leave rate is then reported as NaN).

    Returns:
        An ordered mapping statistic -> value: page counts and page-id shares, clicks per page
        (mean and distribution), price quantiles (Yuan) and cents, CTR/CVR quantiles, the
        between-page spread of the mix (SD over pages of the mean log CTR and log price of
        the page's real items), how much the CTR predicts clicks, purchases, profile shares
        (purchase power, gender, age level) and the leave rate (NaN without terminal flags).

    Raises:
        ContractError: a column is missing, the tables do not hold the same pages, or an item
            list is not 50 long or disagrees with the page's ``n_items``.
    """
    page = _page_columns(pages)
    _require("items", items.column_names, STATISTICS_ITEM_COLUMNS)
    items = _by_line(items)
    n = len(page["line_no"])
    item_lines = items.column("line_no").to_numpy()
    if not np.array_equal(item_lines, page["line_no"]):
        raise ContractError(
            f"pages ({n} rows) and items ({items.num_rows} rows) do not hold the same lines; "
            "pass the items table ingested with these pages"
        )
    if n == 0:
        raise ContractError("no pages; expected the tables of at least one ingested page")
    # Item-level values, a chunk of pages at a time (row-wise sums do not depend on the cut);
    # the real items' values go straight into arrays sized by the pages' n_items.
    size = int(page["n_items"].sum())
    price, ctr, cvr = np.empty(size), np.empty(size), np.empty(size)
    mean_log_ctr, mean_log_price = np.empty(n), np.empty(n)
    clicked_parts = []
    whole_yuan = two_decimals = at = 0
    for lo in range(0, n, _CHUNK_PAGES):
        chunk = items.slice(lo, _CHUNK_PAGES)
        rows = slice(lo, lo + chunk.num_rows)
        c_ctr, c_cvr = _item_matrix(chunk, "ctr"), _item_matrix(chunk, "cvr")
        c_price, c_click = _item_matrix(chunk, "price"), _item_matrix(chunk, "click")
        real = ~((c_price == 0) & (c_ctr == 0) & (c_cvr == 0))
        if not np.array_equal(real.sum(axis=1), page["n_items"][rows]):
            raise ContractError(
                "items disagree with the pages' n_items (slots other than price = CTR = CVR = 0)"
                "; pass the items table ingested with these pages"
            )
        n_real = np.maximum(page["n_items"][rows], 1)
        lctr = np.log(np.where(real & (c_ctr > 0), c_ctr, 1.0))
        lp = np.log(np.where(real, np.maximum(c_price, 0.01), 1.0))  # ingest's floor: 1 cent
        mean_log_ctr[rows] = (lctr * real).sum(axis=1) / n_real
        mean_log_price[rows] = (lp * real).sum(axis=1) / n_real
        end = at + int(real.sum())
        price[at:end], ctr[at:end], cvr[at:end] = c_price[real], c_ctr[real], c_cvr[real]
        cents = np.rint(price[at:end] * 100).astype(np.int64) % 100
        whole_yuan += int((cents == 0).sum())
        two_decimals += int((cents % 10 != 0).sum())
        clicked_parts.append(c_ctr[(c_click > 0) & real])
        at = end
    clicked_ctr = np.concatenate(clicked_parts)
    page_id, clicks = page["action_page_id"], page["n_clicks"]
    has_terminal = terminal_flags
    stats: dict[str, float] = {
        "pages": float(n),
        "sessions_per_page": float(np.mean(page_id == 0)),
        "leave_rate": float(np.mean(page["done"] == 1)) if has_terminal else float("nan"),
    }
    for k in range(8):
        stats[f"page_id_share_{k}"] = float(np.mean(page_id == k))
    stats["page_id_share_8plus"] = float(np.mean(page_id >= 8))
    stats["clicks_per_page_mean"] = float(clicks.mean())
    for k in range(4):
        stats[f"clicks_per_page_share_{k}"] = float(np.mean(clicks == k))
    stats["clicks_per_page_share_4plus"] = float(np.mean(clicks >= 4))
    stats["padded_item_share"] = float(1 - size / (n * ITEMS_PER_PAGE))
    # ctr's mean before the quantiles, which reorder the arrays in place (no copies)
    clicked_ctr_ratio = float(clicked_ctr.mean() / ctr.mean()) if clicked_ctr.size else np.nan
    levels = (0.10, 0.50, 0.75, 0.90, 0.99)
    for q, v in zip(levels, np.quantile(price, levels, overwrite_input=True), strict=True):
        stats[f"price_p{round(q * 100):02d}"] = float(v)
    stats["price_max"] = float(price.max())
    stats["price_whole_yuan_share"] = whole_yuan / size
    stats["price_two_decimals_share"] = two_decimals / size
    for name, values in (("ctr", ctr), ("cvr", cvr)):
        levels = (0.05, 0.50, 0.95)
        for q, v in zip(levels, np.quantile(values, levels, overwrite_input=True), strict=True):
            stats[f"{name}_p{round(q * 100):02d}"] = float(v)
    stats["page_mean_log_ctr_sd"] = float(np.std(mean_log_ctr))
    stats["page_mean_log_price_sd"] = float(np.std(mean_log_price))
    stats["clicked_ctr_ratio"] = float(clicked_ctr_ratio)
    stats["pages_with_purchase_share"] = float(np.mean(page["n_purchases"] > 0))
    for k in range(1, 8):
        stats[f"purchase_power_share_{k}"] = float(np.mean(page["state_purchase_power"] == k))
    stats["gender_1_share"] = float(np.mean(page["gender"] == 1))
    for k in range(7):
        stats[f"age_level_share_{k}"] = float(np.mean(page["age_level"] == k))
    return stats


def _by_line(table: pa.Table) -> pa.Table:
    """``table`` in line order (a no-op for a table ingested in one pass, the usual case)."""
    line = table.column("line_no").to_numpy()
    if (np.diff(line) > 0).all():
        return table
    return table.take(pc.sort_indices(table, [("line_no", "ascending")]))


def _page_columns(pages: pa.Table | pd.DataFrame) -> dict[str, np.ndarray]:
    """:data:`STATISTICS_PAGE_COLUMNS` of ``pages`` as numpy arrays, in line order."""
    names = list(STATISTICS_PAGE_COLUMNS)
    _require("pages", pages.column_names if isinstance(pages, pa.Table) else pages.columns, names)
    frame = pages.select(names).to_pandas() if isinstance(pages, pa.Table) else pages[names]
    frame = frame.sort_values("line_no", kind="stable")
    columns = {c: frame[c].to_numpy() for c in names}
    columns["hour"] = frame["hour"].to_numpy(dtype=np.float64, na_value=np.nan)  # null: NaN
    return columns


def _require(table: str, have: Iterable[str], names: Iterable[str]) -> None:
    """Raise ContractError unless ``have`` (a table's columns) includes every one of ``names``."""
    missing = sorted(set(names) - set(have))
    if missing:
        raise ContractError(
            f"{table} table lacks {missing} needed for the calibration statistics; "
            f"it has {list(have)}"
        )


def _item_matrix(items: pa.Table, name: str) -> np.ndarray:
    """The ``(pages, 50)`` float64 matrix of an item list column of the items table.

    CTR and CVR (stored as float32) come back as the decimals the log wrote
    (:func:`_logged_decimals`); the other columns are converted exactly.

    Raises:
        ContractError: the column holds null lists or a list is not 50 long.
    """
    column = items.column(name)
    values = pc.list_flatten(column)
    if column.null_count or len(values) != items.num_rows * ITEMS_PER_PAGE:
        raise ContractError(
            f"items column {name!r} holds {len(values)} values and {column.null_count} null "
            f"lists over {items.num_rows} pages; expected {ITEMS_PER_PAGE} values per page"
        )
    if pa.types.is_float32(values.type):
        flat = _logged_decimals(values)
    else:
        flat = values.to_numpy().astype(np.float64)
    return flat.reshape(items.num_rows, ITEMS_PER_PAGE)


def _logged_decimals(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 values of float32 numbers that were parsed from short decimals.

    The items table stores CTR and CVR as float32, which is not the float64 of the logged
    decimal. A decimal of at most 6 significant digits (FLT_DIG; rates in (0, 1) written
    with at most 6 decimals, as in both layouts) is the shortest text that reads back as its
    float32, so Arrow's shortest float32 text, read as float64, is the value a float64
    parser of the raw text gives. Longer decimals come back at float32 precision.
    """
    return values.cast(pa.string()).cast(pa.float64()).to_numpy()


def calibration_table(real_path: str | Path, synthetic_path: str | Path) -> pd.DataFrame:
    """Side-by-side :func:`sample_statistics` of the real sample and a synthetic log.

    Returns:
        A DataFrame with columns ``statistic, real, synthetic`` (one row per statistic, in the
        order of :func:`sample_statistics`).
    """
    import pandas as pd

    real = sample_statistics(real_path)
    synthetic = sample_statistics(synthetic_path)
    return pd.DataFrame(
        {
            "statistic": list(real),
            "real": [real[k] for k in real],
            "synthetic": [synthetic.get(k, float("nan")) for k in real],
        }
    )
