"""The simulator's models: what happens on a page, as a chain of four fitted models.

The session simulator (:mod:`microsub.sim`) needs more than a churn score and a value forecast:
it must *draw* what a shopper does on a page it has never seen, given the page's items, so that
a policy's choice of items changes what happens. The chain answers, in order, for page ``t``:

1. **engagement** (clicks + carts) -- a linear model of ``ln(1 + engagement)`` on the state at
   the start of the page and the page's item mix; a draw adds a residual resampled from the
   training residuals (so the draws keep the data's spread and its mass at zero; 2,048 evenly
   spaced quantiles stand for them):
   ``e = max(0, round(exp(x_pre w_e + b_e + r) - 1))``, ``r`` one of the residuals;
2. **purchase** -- logistic: ``P(buy) = sigmoid(x_buy w_p + b_p)`` with
   ``x_buy = [x_pre, ln(1 + e)]``;
3. **amount** (Yuan, given a purchase) -- linear model of ``ln(page value)`` on ``x_buy`` among
   the pages with a purchase, plus a residual resampled from all of them (the heavy tail of the
   amounts lives there): ``v = exp(x_buy w_a + b_a + r)``;
4. **leave** -- logistic: ``P(leave) = sigmoid(x_post w_l + b_l)``,
   ``x_post = [x_buy, bought, ln(1 + v)]``, fitted on the pages whose outcome is known.

The state and mix columns of ``x_pre`` (:data:`PRE_COLUMNS`, built by :func:`pre_design` from
arrays, the same function for training and simulation)::

    depth_1 .. depth_11     one-hot page depth (page 0 is the reference: the bounce)
    night, night_depth      1 for hours 0-5, and that times the depth (fatigue at night)
    purchase_power          the logged level
    hour_sin, hour_cos      the hour of day on the circle (0 when unknown)
    log_prev_engagement     ln(1 + engagement on page t-1) (0 on page 0)
    log_prev_value          ln(1 + Yuan spent on pages 0..t-1)
    prev_since_purchase     pages since the last purchase at the end of page t-1
    log_mean_ctr            ln(mean predicted CTR of the page's items)      } the item mix,
    log_mean_cvr            ln(mean predicted CVR)                          } what a policy
    mean_log_price          mean ln(price)                                  } chooses

Every model is linear in its design, so a step of thousands of simulated sessions is a few
matrix products (the vector environment's speed); the models are the project's own
gradient-descent estimators (:mod:`microsub.models.linear`), and the chain is stored as plain
numbers (:meth:`SessionModels.to_dict`), not pickles. Protected attributes are never inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit
from sklearn import metrics as skm

from microsub.analysis.features import add_features, known_outcome
from microsub.contract import MAX_PAGE_ID
from microsub.errors import ModelError
from microsub.models.linear import LinearRegressionGD, LogisticRegressionGD

#: Columns of ``x_pre``, in order (see the module docstring).
PRE_COLUMNS: tuple[str, ...] = (
    *(f"depth_{d}" for d in range(1, MAX_PAGE_ID + 1)),
    "night",
    "night_depth",
    "purchase_power",
    "hour_sin",
    "hour_cos",
    "log_prev_engagement",
    "log_prev_value",
    "prev_since_purchase",
    "log_mean_ctr",
    "log_mean_cvr",
    "mean_log_price",
)
#: Columns the purchase and amount models add to ``x_pre``.
BUY_EXTRA = ("log_engagement",)
#: Columns the leave model adds to ``x_buy``.
POST_EXTRA = ("bought", "log_value")
#: Engagement residuals kept for the draws (evenly spaced quantiles of the training residuals).
N_RESIDUALS = 2048
#: Most amount residuals kept (a seeded subsample when there are more): the whole set, tail
#: included, because the mean Yuan of a page depends on it.
MAX_AMOUNT_RESIDUALS = 20_000
#: Mix columns: the page features a policy's choice of items sets.
MIX_COLUMNS = ("log_mean_ctr", "log_mean_cvr", "mean_log_price")


def pre_design(
    depth: np.ndarray,
    purchase_power: np.ndarray,
    hour: np.ndarray,
    prev_engagement: np.ndarray,
    prev_value: np.ndarray,
    prev_since_purchase: np.ndarray,
    mix: np.ndarray,
) -> np.ndarray:
    """``x_pre``, shape ``(n, len(PRE_COLUMNS))`` float64, from state arrays of shape ``(n,)``.

    Args:
        depth: page depth 0..11.
        purchase_power: purchase-power level.
        hour: hour of day 0..23, NaN when the log has none.
        prev_engagement: engagement on the previous page (0 on page 0).
        prev_value: Yuan spent so far in the session, before this page.
        prev_since_purchase: pages since the last purchase at the end of the previous page.
        mix: ``(n, 3)``: the page's ``ln(mean CTR)``, ``ln(mean CVR)`` and mean ``ln(price)``.
    """
    n = len(depth)
    x = np.empty((n, len(PRE_COLUMNS)))
    d = np.asarray(depth, dtype=np.int64)
    x[:, :MAX_PAGE_ID] = d[:, None] == np.arange(1, MAX_PAGE_ID + 1)
    hour = np.asarray(hour, dtype=float)
    known = np.isfinite(hour)
    night = (known & (hour <= 5)).astype(float)
    angle = 2 * np.pi * np.where(known, hour, 0.0) / 24
    k = MAX_PAGE_ID
    x[:, k] = night
    x[:, k + 1] = night * d
    x[:, k + 2] = purchase_power
    x[:, k + 3] = np.where(known, np.sin(angle), 0.0)
    x[:, k + 4] = np.where(known, np.cos(angle), 0.0)
    x[:, k + 5] = np.log1p(prev_engagement)
    x[:, k + 6] = np.log1p(prev_value)
    x[:, k + 7] = prev_since_purchase
    x[:, k + 8 :] = mix
    return x


def page_mix(frame: pd.DataFrame) -> np.ndarray:
    """``(n, 3)`` item mix of logged pages from the pages table's means (see
    :data:`MIX_COLUMNS`); CTR and CVR means are floored at 1e-6 before the log."""
    return np.column_stack(
        [
            np.log(np.maximum(frame["mean_ctr"].to_numpy(float), 1e-6)),
            np.log(np.maximum(frame["mean_cvr"].to_numpy(float), 1e-6)),
            frame["mean_log_price"].to_numpy(float),
        ]
    )


def training_design(pages: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The pages with their features (:func:`add_features`) and their ``x_pre``."""
    frame = add_features(pages)
    x = pre_design(
        frame["action_page_id"].to_numpy(),
        frame["state_purchase_power"].to_numpy(float),
        frame["hour"].to_numpy(dtype=float, na_value=np.nan),
        frame["prev_engagement"].to_numpy(float),
        frame["prev_cum_value"].to_numpy(float),
        frame["prev_pages_since_purchase"].to_numpy(float),
        page_mix(frame),
    )
    return frame, x


@dataclass(frozen=True)
class Linear:
    """A fitted linear predictor ``x w + b`` (weights for the columns of its design)."""

    weights: np.ndarray
    intercept: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weights + self.intercept


def _quantiles(residuals: np.ndarray) -> np.ndarray:
    """:data:`N_RESIDUALS` evenly spaced quantiles: a compact stand-in for the residuals."""
    return np.quantile(residuals, (np.arange(N_RESIDUALS) + 0.5) / N_RESIDUALS)


def _subsample(residuals: np.ndarray) -> np.ndarray:
    """The residuals, or :data:`MAX_AMOUNT_RESIDUALS` of them drawn without replacement."""
    if len(residuals) <= MAX_AMOUNT_RESIDUALS:
        return residuals.copy()
    rng = np.random.default_rng(0)
    return rng.choice(residuals, MAX_AMOUNT_RESIDUALS, replace=False)


@dataclass(frozen=True)
class SessionModels:
    """The fitted chain (module docstring). Build it with :meth:`fit`.

    Attributes:
        engagement, purchase, amount, leave: the four linear predictors (``purchase`` and
            ``leave`` give log-odds).
        engagement_residuals: ``(N_RESIDUALS,)`` quantiles of the engagement residuals.
        amount_residuals: the amount residuals (up to :data:`MAX_AMOUNT_RESIDUALS`).
        alpha: ridge penalty used in the fit.
    """

    engagement: Linear
    purchase: Linear
    amount: Linear
    leave: Linear
    engagement_residuals: np.ndarray
    amount_residuals: np.ndarray
    alpha: float = 1e-4

    @classmethod
    def fit(cls, pages: pd.DataFrame, *, alpha: float = 1e-4) -> SessionModels:
        """Fit the chain on a pages table (contract columns, whole sessions).

        Raises:
            ModelError: no page with a purchase, or the leave outcome does not vary.
        """
        frame, x_pre = training_design(pages)
        eng = frame["engagement"].to_numpy(float)
        value = frame["page_value"].to_numpy(float)
        bought = value > 0
        if not bought.any() or bought.all():
            raise ModelError(
                "the simulator's purchase model needs pages with and without a purchase"
            )
        log_eng = np.log1p(eng)[:, None]
        x_buy = np.hstack([x_pre, log_eng])
        x_post = np.hstack([x_buy, bought[:, None], np.log1p(value)[:, None]])
        known = known_outcome(frame)
        done = frame["done"].to_numpy()[known]
        if done.min() == done.max():
            raise ModelError("the simulator's leave model needs pages after which shoppers left")

        e_model = LinearRegressionGD(alpha=alpha).fit(x_pre, log_eng[:, 0])
        p_model = LogisticRegressionGD(alpha=alpha).fit(x_buy, bought.astype(int))
        a_model = LinearRegressionGD(alpha=alpha).fit(x_buy[bought], np.log(value[bought]))
        l_model = LogisticRegressionGD(alpha=alpha).fit(x_post[known], done)
        e_lin = Linear(e_model.coef_, float(e_model.intercept_))
        a_lin = Linear(a_model.coef_, float(a_model.intercept_))
        return cls(
            engagement=e_lin,
            purchase=Linear(p_model.coef_[0], float(p_model.intercept_[0])),
            amount=a_lin,
            leave=Linear(l_model.coef_[0], float(l_model.intercept_[0])),
            engagement_residuals=_quantiles(log_eng[:, 0] - e_lin(x_pre)),
            amount_residuals=_subsample(np.log(value[bought]) - a_lin(x_buy[bought])),
            alpha=alpha,
        )

    # --- drawing a page ---------------------------------------------------------------------
    @property
    def pre_weights(self) -> np.ndarray:
        """``(len(PRE_COLUMNS), 4)`` weights of ``x_pre`` in the four links' linear predictors
        (engagement, purchase, amount, leave), so that ``x_pre @ pre_weights + intercepts`` is
        each link's predictor before the terms of the page's own outcomes."""
        return np.column_stack(
            [
                self.engagement.weights,
                self.purchase.weights[:-1],
                self.amount.weights[:-1],
                self.leave.weights[:-3],
            ]
        )

    @property
    def intercepts(self) -> np.ndarray:
        """``(4,)`` intercepts of the four links."""
        return np.array(
            [self.engagement.intercept, self.purchase.intercept, self.amount.intercept,
             self.leave.intercept]
        )  # fmt: skip

    def draw(
        self, rng: np.random.Generator, x_pre: np.ndarray, leave_scale: np.ndarray | float = 1.0
    ) -> PageDraw:
        """Draw what ``n`` shoppers do on their pages.

        Args:
            rng: the random generator (the environment's ``np_random``).
            x_pre: ``(n, len(PRE_COLUMNS))`` designs (:func:`pre_design`).
            leave_scale: multiplier of P(leave), shape ``(n,)`` or a scalar (an intervention
                that lowers the leave probability by 40 % passes 0.6).

        Returns:
            A :class:`PageDraw`.
        """
        return self.draw_linear(rng, x_pre @ self.pre_weights + self.intercepts, leave_scale)

    def draw_linear(
        self, rng: np.random.Generator, z: np.ndarray, leave_scale: np.ndarray | float = 1.0
    ) -> PageDraw:
        """:meth:`draw` from the four links' predictors ``z = x_pre @ pre_weights +
        intercepts``, shape ``(n, 4)`` (the simulator computes ``z`` without ``x_pre``).

        Four uniforms per page, ``rng.random((n, 4))``, drive the draws (:func:`draw_pages`)."""
        n = len(z)
        u = rng.random((n, 4))
        scale = np.broadcast_to(np.asarray(leave_scale, np.float64), (n,)).copy()
        out = draw_pages(
            np.ascontiguousarray(z, np.float64), u, self.engagement_residuals,
            self.amount_residuals, self.outcome_weights, scale,
        )  # fmt: skip
        eng, bought, value, p_leave, left = out
        return PageDraw(eng, bought, value, p_leave, left)

    @property
    def outcome_weights(self) -> np.ndarray:
        """``(5,)`` weights of the page's own outcomes: ``ln(1 + e)`` in purchase, amount and
        leave, then ``bought`` and ``ln(1 + v)`` in leave."""
        w = self.leave.weights
        return np.array([self.purchase.weights[-1], self.amount.weights[-1], w[-3], w[-2], w[-1]])

    def leave_probability(
        self, x_pre: np.ndarray, engagement: np.ndarray, bought: np.ndarray, value: np.ndarray
    ) -> np.ndarray:
        """P(leave) of pages whose outcome is known: ``sigmoid(x_post w_l + b_l)`` with
        ``x_post = [x_pre, ln(1 + e), bought, ln(1 + v)]``, shape ``(n,)``."""
        x_post = np.column_stack(
            [x_pre, np.log1p(engagement), np.asarray(bought, float), np.log1p(value)]
        )
        return _sigmoid(self.leave(x_post))

    def expected_value(self, x_pre: np.ndarray) -> np.ndarray:
        """Expected Yuan of a page, ``(n,)``: P(buy | typical engagement) x E[amount].

        The engagement enters at its draw-averaged level ``ln(1 + e) ~ x_pre w_e + b_e`` (the
        residuals have mean zero on the log scale), and ``E[amount] = exp(x w_a + b_a) *
        mean(exp(r))`` over the amount residuals.
        """
        log_eng = np.maximum(0.0, self.engagement(x_pre))
        p_buy = _sigmoid(
            x_pre @ self.purchase.weights[:-1] + self.purchase.weights[-1] * log_eng
            + self.purchase.intercept
        )  # fmt: skip
        amount = np.exp(
            x_pre @ self.amount.weights[:-1] + self.amount.weights[-1] * log_eng
            + self.amount.intercept
        ) * float(np.mean(np.exp(self.amount_residuals)))  # fmt: skip
        return p_buy * amount

    # --- evaluation and storage --------------------------------------------------------------
    def scores(self, pages: pd.DataFrame) -> dict[str, float]:
        """How well each link predicts held-out pages (same columns as training).

        Returns:
            ``engagement_r2`` (R² on ``ln(1 + engagement)``), ``purchase_auc``,
            ``amount_r2`` (R² on ``ln(value)`` of pages with a purchase), ``leave_auc``
            (ROC AUC on the pages with a known outcome), and the pages counted.
        """
        frame, x_pre = training_design(pages)
        log_eng = np.log1p(frame["engagement"].to_numpy(float))
        value = frame["page_value"].to_numpy(float)
        bought = value > 0
        x_buy = np.hstack([x_pre, log_eng[:, None]])
        x_post = np.hstack([x_buy, bought[:, None], np.log1p(value)[:, None]])
        known = known_outcome(frame)
        done = frame["done"].to_numpy()[known]
        return {
            "pages": float(len(frame)),
            "engagement_r2": float(skm.r2_score(log_eng, self.engagement(x_pre))),
            "purchase_auc": _auc(bought, self.purchase(x_buy)),
            "amount_r2": float(
                skm.r2_score(np.log(value[bought]), self.amount(x_buy[bought]))
            ) if bought.sum() > 1 else float("nan"),
            "leave_auc": _auc(done, self.leave(x_post[known])),
        }  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        """The chain as plain numbers (JSON), for the lake."""
        out: dict[str, object] = {"alpha": self.alpha, "columns": list(PRE_COLUMNS)}
        for name in ("engagement", "purchase", "amount", "leave"):
            lin: Linear = getattr(self, name)
            out[name] = {"weights": lin.weights.tolist(), "intercept": lin.intercept}
        out["engagement_residuals"] = self.engagement_residuals.tolist()
        out["amount_residuals"] = self.amount_residuals.tolist()
        return out

    @classmethod
    def from_dict(cls, doc: dict) -> SessionModels:
        """Rebuild a chain written by :meth:`to_dict`.

        Raises:
            ModelError: the stored design columns are not this version's.
        """
        if list(doc.get("columns", [])) != list(PRE_COLUMNS):
            raise ModelError(
                "the stored simulator models were fitted on other design columns "
                f"({doc.get('columns')}); rerun `microsub run` to refit them"
            )
        links = {
            name: Linear(np.asarray(doc[name]["weights"], float), float(doc[name]["intercept"]))
            for name in ("engagement", "purchase", "amount", "leave")
        }
        return cls(
            **links,
            engagement_residuals=np.asarray(doc["engagement_residuals"], float),
            amount_residuals=np.asarray(doc["amount_residuals"], float),
            alpha=float(doc["alpha"]),
        )


@njit(cache=True)
def draw_page(
    z: np.ndarray,
    u: np.ndarray,
    e_res: np.ndarray,
    a_res: np.ndarray,
    w: np.ndarray,
    leave_scale: float,
) -> tuple[float, bool, float, float, bool]:
    """One page's draw from its predictors ``z`` ``(4,)`` and uniforms ``u`` ``(4,)`` in [0, 1).

    With ``r_e = e_res[floor(u0 * N)]``, ``r_a = a_res[floor(u1 * N)]`` and ``w`` the
    :attr:`SessionModels.outcome_weights`::

        e      = max(0, floor(exp(z0 + r_e) - 1 + 1/2))       engagement (clicks + carts)
        bought = u2 < sigmoid(z1 + w0 ln(1 + e))
        v      = bought * round(exp(z2 + w1 ln(1 + e) + r_a), 2)        Yuan
        p      = leave_scale * sigmoid(z3 + w2 ln(1 + e) + w3 bought + w4 ln(1 + v))
        left   = u3 < p

    Returns:
        ``(e, bought, v, p, left)``.
    """
    n_e, n_a = len(e_res), len(a_res)
    eng = max(0.0, np.floor(np.expm1(z[0] + e_res[int(u[0] * n_e)]) + 0.5))
    log_eng = np.log1p(eng)
    bought = u[2] < 1.0 / (1.0 + np.exp(-(z[1] + w[0] * log_eng)))
    value = 0.0
    if bought:
        value = np.floor(np.exp(z[2] + w[1] * log_eng + a_res[int(u[1] * n_a)]) * 100 + 0.5) / 100
    logit = z[3] + w[2] * log_eng + w[3] * bought + w[4] * np.log1p(value)
    p_leave = leave_scale / (1.0 + np.exp(-logit))
    return eng, bought, value, p_leave, u[3] < p_leave


@njit(cache=True)
def draw_pages(
    z: np.ndarray,
    u: np.ndarray,
    e_res: np.ndarray,
    a_res: np.ndarray,
    w: np.ndarray,
    leave_scale: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`draw_page` for ``n`` pages: ``z`` and ``u`` ``(n, 4)``, ``leave_scale`` ``(n,)``."""
    n = z.shape[0]
    eng, value, p_leave = np.empty(n), np.empty(n), np.empty(n)
    bought, left = np.empty(n, np.bool_), np.empty(n, np.bool_)
    for i in range(n):
        eng[i], bought[i], value[i], p_leave[i], left[i] = draw_page(
            z[i], u[i], e_res, a_res, w, leave_scale[i]
        )
    return eng, bought, value, p_leave, left


@dataclass(frozen=True)
class PageDraw:
    """What :meth:`SessionModels.draw` drew for ``n`` pages, arrays of shape ``(n,)``.

    Attributes:
        engagement: clicks + carts.
        bought: whether the page had a purchase.
        value: Yuan spent (0 without a purchase).
        p_leave: the leave probability the draw used.
        left: whether the shopper left after the page.
    """

    engagement: np.ndarray
    bought: np.ndarray
    value: np.ndarray
    p_leave: np.ndarray
    left: np.ndarray


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")
