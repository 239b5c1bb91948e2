"""The generative model of a shopping session: the truth behind the synthetic log.

One model, two users: :mod:`microsub.data.synth` runs it to write a raw log in the official
format, and the true environment of the simulator (:mod:`microsub.sim.env`) steps it one page
at a time, so that a policy can be run in the process that generated the data. The steps are
separate functions (users, a page's candidate items, what the user does on a page in a given
slot order, the leave decision), drawn from one :class:`numpy.random.Generator` in a fixed
order; :func:`simulate_sessions` chains them into whole sessions exactly as the log writer
needs (the same seed gives the same bytes, see ``GENERATOR_VERSION``).

The generative model
====================

Everything below is drawn from one seeded :class:`numpy.random.Generator` per block of
sessions; the symbols are the fields of :class:`~microsub.sim.params.SynthParams`.

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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from microsub.contract import ITEMS_PER_PAGE, MAX_PAGE_ID
from microsub.sim.params import DEFAULT_PARAMS, SynthParams, item_corr

#: Sessions simulated per block (about 8k pages): bounds memory (peak RSS under 300 MB,
#: see ``benchmarks/synth.py``) whatever the number of pages is. Part of the output's identity:
#: changing it changes the bytes written for a seed, so it is a constant, not an option.
SESSIONS_PER_BLOCK = 2048

N_PAGES_MAX = MAX_PAGE_ID + 1


# ============================================================================================
# The model's pieces (pure: a generator and parameters in, arrays out)
# ============================================================================================
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


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, elementwise."""
    return 1 / (1 + np.exp(-x))


@dataclass(frozen=True)
class Users:
    """Shoppers of ``n`` sessions, shape ``(n,)`` each.

    Attributes:
        age_level, gender: protected attributes (affect nothing in the model).
        purchase_power: level 1..7.
        hour: hour of day 0..23 of the session.
        z: unobserved propensity to leave (standard normal).
        theta: log click propensity.
    """

    age_level: np.ndarray
    gender: np.ndarray
    purchase_power: np.ndarray
    hour: np.ndarray
    z: np.ndarray
    theta: np.ndarray

    def __len__(self) -> int:
        return len(self.hour)

    def take(self, index: np.ndarray) -> Users:
        """The users at ``index`` (an int array or a boolean mask)."""
        return Users(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def leave_base(self, p: SynthParams) -> np.ndarray:
        """The session's constant part of the leave log-odds:
        ``leave_intercept - leave_hour c(h) - leave_power (pp - 4) + leave_user_sd z``."""
        return (
            p.leave_intercept
            - p.leave_hour * hour_log_traffic(p)[self.hour]
            - p.leave_power * (self.purchase_power - 4)
            + p.leave_user_sd * self.z
        )

    def depth_slope(self, p: SynthParams) -> np.ndarray:
        """Fatigue per page: ``leave_depth (1 + leave_night_fatigue night(h))``."""
        return p.leave_depth * (1 + p.leave_night_fatigue * is_night(self.hour))

    def buy_scale(self, p: SynthParams) -> np.ndarray:
        """``buy_scale exp(buy_power (pp - 4))``: the user's multiplier of CVR in P(buy)."""
        return p.buy_scale * np.exp(p.buy_power * (self.purchase_power - 4))


def draw_users(rng: np.random.Generator, n: int, p: SynthParams) -> Users:
    """Draw the shoppers of ``n`` sessions (profile, hour, the two latent propensities)."""
    age = rng.choice(7, size=n, p=np.asarray(p.age_level_probs) / sum(p.age_level_probs))
    gender = (rng.random(n) < p.gender_1_prob).astype(np.int64)
    pp_probs = np.asarray(p.purchase_power_probs)
    power = rng.choice(7, size=n, p=pp_probs / pp_probs.sum()) + 1
    w = np.asarray(p.hour_weights, dtype=float)
    hour = rng.choice(24, size=n, p=w / w.sum())
    z = rng.standard_normal(n)
    xi = rng.standard_normal(n)
    rho = p.click_user_corr
    theta = p.click_user_sd * (-rho * z + np.sqrt(1 - rho**2) * xi) - p.click_user_sd**2 / 2
    return Users(age, gender, power, hour, z, theta)


@dataclass(frozen=True)
class Items:
    """Candidate items of ``n`` pages, shape ``(n, k)`` each, in list order.

    Attributes:
        ctr_u: predicted CTR in units of 1e-6 (as logged, 6 decimals).
        cvr_u: predicted CVR in units of 1e-6.
        price_c: price in integer cents.
        appeal: the true log click multiplier the CTR misses.
        feature_u: the optional item feature in units of 1e-4.
    """

    ctr_u: np.ndarray
    cvr_u: np.ndarray
    price_c: np.ndarray
    appeal: np.ndarray
    feature_u: np.ndarray

    @property
    def ctr(self) -> np.ndarray:
        """Predicted CTR as a probability."""
        return self.ctr_u / 1e6

    @property
    def cvr(self) -> np.ndarray:
        """Predicted CVR as a probability."""
        return self.cvr_u / 1e6

    @property
    def price(self) -> np.ndarray:
        """Price in Yuan."""
        return self.price_c / 100

    def take(self, order: np.ndarray) -> Items:
        """The items picked by ``order`` ``(n, m)`` (indices into each page's list)."""
        return Items(
            **{
                f.name: np.take_along_axis(getattr(self, f.name), order, axis=1)
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


def draw_items(
    rng: np.random.Generator,
    purchase_power: np.ndarray,
    p: SynthParams,
    n_items: int = ITEMS_PER_PAGE,
) -> Items:
    """Draw the candidate items of one page for each of ``len(purchase_power)`` shoppers:
    page mix plus item deviation, correlated by R; ``n_items`` per page (50 on a logged page;
    more for a candidate pool a policy chooses from)."""
    n = len(purchase_power)
    chol = np.linalg.cholesky(item_corr(p))
    share = np.array([p.mix_share_ctr, p.mix_share_cvr, p.mix_share_price])
    page_z = rng.standard_normal((n, 1, 3)) @ chol.T
    item_z = rng.standard_normal((n, n_items, 3)) @ chol.T
    zs = np.sqrt(share) * page_z + np.sqrt(1 - share) * item_z
    ctr_u = np.rint(
        np.clip(np.exp(p.log_ctr_mean + p.log_ctr_sd * zs[..., 0]), p.ctr_min, p.ctr_max) * 1e6
    ).astype(np.int64)
    cvr_u = np.rint(_knot_quantile(zs[..., 1], p.cvr_knots) * 1e6).astype(np.int64)
    price_score = zs[..., 2] + p.price_power_shift * (np.asarray(purchase_power)[:, None] - 5)
    price_c = _quantize_price(rng, _knot_quantile(price_score, p.price_knots), p)
    appeal = p.appeal_sd * rng.standard_normal((n, n_items)) - p.appeal_sd**2 / 2
    feat_logit = (
        p.feature_ctr_weight * zs[..., 0]
        + p.feature_appeal_weight * (appeal / p.appeal_sd + p.appeal_sd / 2)
        + p.feature_noise * rng.standard_normal((n, n_items))
    )
    feature_u = np.clip(np.rint(1e4 / (1 + np.exp(-feat_logit))), 1, 9999).astype(np.int64)
    return Items(ctr_u, cvr_u, price_c, appeal, feature_u)


def logged_slots(
    rng: np.random.Generator, n: int, p: SynthParams, n_items: int = ITEMS_PER_PAGE
) -> tuple[np.ndarray, np.ndarray | None]:
    """The on-page slot of each listed item as the log shows it: a random permutation per page.

    With ``pad_page_share > 0`` a share of pages holds fewer real items, which fill the first
    list places and slots.

    Returns:
        ``(slot, real)``: int ``(n, n_items)`` slots, and the ``(n, n_items)`` mask of real items
        (``None`` when there is no padding).
    """
    keys = rng.random((n, n_items))
    if p.pad_page_share > 0:
        n_real = np.where(
            rng.random(n) < p.pad_page_share,
            rng.integers(1, n_items, size=n),
            n_items,
        )
        real = np.arange(n_items)[None, :] < n_real[:, None]
        keys[~real] = 2.0  # padding goes after the real items
        return np.argsort(np.argsort(keys, axis=1), axis=1), real
    return np.argsort(keys, axis=1), None


def click_log_probability(
    p: SynthParams,
    items: Items,
    slot: np.ndarray,
    theta: np.ndarray,
    depth: int | np.ndarray,
    attention: np.ndarray | float = 0.0,
) -> np.ndarray:
    """``ln P(click)`` before the cap (the position-bias model)::

        ln(click_scale ctr) + appeal + theta + attention - click_depth_decay d
                            - click_slot_decay r / (k - 1)

    for the item at slot ``r`` of a page of ``k`` slots. Shapes: items and ``slot`` ``(n, k)``,
    ``theta`` and ``attention`` ``(n,)``.
    """
    k = slot.shape[1]
    shift = np.asarray(theta) + attention - p.click_depth_decay * np.asarray(depth)
    return (
        np.log(p.click_scale * items.ctr)
        + items.appeal
        + shift[:, None]
        - p.click_slot_decay * slot / (k - 1)
    )


@dataclass(frozen=True)
class Behaviour:
    """What the shoppers did on their pages, ``(n, k)`` 0/1 flags and money in cents."""

    click: np.ndarray
    cart: np.ndarray
    fav: np.ndarray
    buy: np.ndarray
    amount_c: np.ndarray

    @property
    def engagement(self) -> np.ndarray:
        """``clicks + carts`` per page, shape ``(n,)``."""
        return self.click.sum(axis=1) + self.cart.sum(axis=1)

    @property
    def value(self) -> np.ndarray:
        """Yuan spent per page, shape ``(n,)``."""
        return self.amount_c.sum(axis=1) / 100


def page_behaviour(
    rng: np.random.Generator,
    p: SynthParams,
    items: Items,
    slot: np.ndarray,
    users: Users,
    depth: int | np.ndarray,
    real: np.ndarray | None = None,
) -> Behaviour:
    """Draw clicks, carts, favourites and purchases on ``n`` pages whose items sit at ``slot``.

    ``P(click) = min(click_max, exp(click_log_probability))`` with a page attention shock;
    carts and favourites follow clicks; ``P(buy | click) = min(buy_max, buy_scale_u cvr
    (buy_cart_boost if carted))``; a bought item's amount is price x quantity (cents).
    """
    n, k = slot.shape
    attention = p.attention_sd * rng.standard_normal(n) - p.attention_sd**2 / 2
    log_p = click_log_probability(p, items, slot, users.theta, depth, attention)
    p_click = np.minimum(p.click_max, np.exp(log_p))
    click = rng.random((n, k)) < p_click
    cart = click & (rng.random((n, k)) < p.cart_given_click)
    fav = click & (rng.random((n, k)) < p.fav_given_click)
    p_buy = np.minimum(
        p.buy_max,
        users.buy_scale(p)[:, None] * items.cvr * np.where(cart, p.buy_cart_boost, 1.0),
    )
    buy = click & (rng.random((n, k)) < p_buy)
    if real is not None:
        click &= real
        cart &= real
        fav &= real
        buy &= real
    q_probs = np.asarray(p.quantity_probs) / np.sum(p.quantity_probs)
    qty = np.zeros((n, k), dtype=np.int64)
    qty[buy] = rng.choice(len(q_probs), size=int(buy.sum()), p=q_probs) + 1
    return Behaviour(click, cart, fav, buy, items.price_c * qty)


def mean_log_ctr(items: Items, real: np.ndarray | None = None) -> np.ndarray:
    """The page's mean ln CTR over its real items, shape ``(n,)``."""
    if real is None:
        return np.log(items.ctr).mean(axis=1)
    return np.where(real, np.log(items.ctr), 0.0).sum(axis=1) / real.sum(axis=1)


def leave_logit(
    p: SynthParams,
    users: Users,
    depth: int | np.ndarray,
    since_purchase: np.ndarray,
    engagement: np.ndarray,
    page_log_ctr: np.ndarray,
) -> np.ndarray:
    """``eta``, the log-odds of leaving after page ``d`` (the module docstring's formula)."""
    d = np.asarray(depth)
    return (
        users.leave_base(p)
        + p.leave_bounce * (d == 0)
        + users.depth_slope(p) * d
        + p.leave_since_purchase * since_purchase
        - p.leave_engagement * np.log1p(engagement)
        - p.leave_mix * (page_log_ctr - p.log_ctr_mean)
    )


# ============================================================================================
# Whole sessions, as the log writer needs them
# ============================================================================================
@dataclass
class Block:
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

    def head(self, k: int) -> Block:
        """The first ``k`` pages."""
        return Block(
            **{
                f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[:k])
                for f in dataclasses.fields(self)
            }
        )


def block_rng(seed: int, block: int) -> np.random.Generator:
    """The generator of block ``block``: independent streams, stable whatever the size is."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))


def simulate_sessions(rng: np.random.Generator, n_sessions: int, p: SynthParams) -> Block:
    """Simulate ``n_sessions`` whole sessions; return their pages in file order.

    One vectorised step per page depth d = 0..11 over the sessions still browsing: the page's
    items (:func:`draw_items`), their logged slots (:func:`logged_slots`), the behaviour
    (:func:`page_behaviour`) and the leave decision (:func:`leave_logit`).
    """
    n_items = ITEMS_PER_PAGE
    users = draw_users(rng, n_sessions, p)
    alive = np.ones(n_sessions, dtype=bool)
    last_buy = np.full(n_sessions, -1, dtype=np.int64)
    parts: list[dict[str, np.ndarray]] = []
    for d in range(N_PAGES_MAX):
        idx = np.flatnonzero(alive)
        n = idx.size
        if n == 0:
            break
        here = users.take(idx)
        items = draw_items(rng, here.purchase_power, p, n_items)
        slot, real = logged_slots(rng, n, p, n_items)
        act = page_behaviour(rng, p, items, slot, here, d, real)

        bought = act.buy.any(axis=1)
        last_buy[idx[bought]] = d
        since = np.where(last_buy[idx] >= 0, d - last_buy[idx], d)
        eta = leave_logit(p, here, d, since, act.engagement, mean_log_ctr(items, real))
        leave = rng.random(n) < sigmoid(eta)
        alive[idx[leave]] = False

        part = {
            "session": idx,
            "page_id": np.full(n, d, dtype=np.int64),
            "terminal": leave.astype(np.int64),
            "position": (n_items * d + slot).astype(np.int16),
            "ctr_u": items.ctr_u.astype(np.int32),
            "cvr_u": items.cvr_u.astype(np.int32),
            "price_c": items.price_c,
            "click": act.click.astype(np.int8),
            "cart": act.cart.astype(np.int8),
            "fav": act.fav.astype(np.int8),
            "amount_c": act.amount_c,
            "feature_u": items.feature_u.astype(np.int16),
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
    return Block(
        hour=users.hour[s],
        age_level=users.age_level[s],
        gender=users.gender[s],
        purchase_power=users.purchase_power[s],
        pad=pad,
        **cat,
    )
