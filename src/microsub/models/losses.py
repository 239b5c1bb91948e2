"""Objectives and gradients of the linear models, apart from the estimators that minimise them.

Pure functions of the parameters ``(w, b)`` and the data, in the manner of scikit-learn's
``sklearn/linear_model/_linear_loss.py``: each returns the value of the *training objective*
(mean loss plus ridge penalty; the intercept ``b`` is never penalised) together with its gradient,
so that an optimiser only needs one call per iteration.

Shapes: ``X`` is ``(n, d)`` float64, ``y`` is ``(n,)``, ``w`` is ``(d,)`` and ``b`` a float.

The least-squares objective can also be evaluated from the centred second moments of the data
(:class:`Moments`), computed once in one pass over ``X``; its gradient is then *identical* to the
one on the rows (the algebra is in :func:`squared_loss_grad_moments`) and costs ``O(d^2)`` instead
of ``O(n d)`` per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows per block when accumulating moments (bounds the temporary copy to ~ block * d floats).
_BLOCK_ROWS = 65_536


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-z))`` without overflow, elementwise."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def squared_loss_grad(
    w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray, alpha: float
) -> tuple[float, np.ndarray, float]:
    """Ridge least-squares objective and its gradient on the rows of ``X``.

    With residuals ``r = y - X w - b``::

        f(w, b)   = 1/(2n) * sum_i r_i^2 + alpha/2 * ||w||^2
        df/dw     = -1/n * X^T r + alpha * w
        df/db     = -1/n * sum_i r_i

    Returns:
        ``(f, grad_w, grad_b)``: float, ``(d,)`` array, float.
    """
    n = X.shape[0]
    r = y - X @ w - b
    loss = 0.5 * float(r @ r) / n + 0.5 * alpha * float(w @ w)
    grad_w = -(X.T @ r) / n + alpha * w
    grad_b = -float(r.sum()) / n
    return loss, grad_w, grad_b


def log_loss_grad(
    w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray, alpha: float
) -> tuple[float, np.ndarray, float]:
    """Penalised binary log-loss (cross-entropy) and its gradient; ``y`` holds 0/1.

    With scores ``z = X w + b`` and ``p = sigmoid(z)``::

        f(w, b)   = 1/n * sum_i [ log(1 + exp(z_i)) - y_i z_i ] + alpha/2 * ||w||^2
        df/dw     = 1/n * X^T (p - y) + alpha * w
        df/db     = 1/n * sum_i (p_i - y_i)

    ``log(1 + exp(z))`` is evaluated as ``max(z, 0) + log1p(exp(-|z|))``, which never overflows;
    the same ``exp(-|z|)`` gives ``p``. This is scikit-learn's ``LogisticRegression`` objective
    divided by ``n C`` when ``alpha = 1 / (n C)``.

    Returns:
        ``(f, grad_w, grad_b)``: float, ``(d,)`` array, float.
    """
    n = X.shape[0]
    z = X @ w
    z += b
    e = np.exp(-np.abs(z))
    softplus = np.maximum(z, 0.0) + np.log1p(e)
    loss = float(softplus.sum() - y @ z) / n + 0.5 * alpha * float(w @ w)
    r = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    r -= y
    grad_w = (X.T @ r) / n + alpha * w
    grad_b = float(r.sum()) / n
    return loss, grad_w, grad_b


@dataclass(frozen=True)
class Moments:
    """Centred first and second moments of ``(X, y)`` (population normalisation, ``1/n``).

    Attributes:
        n: number of rows.
        mean_x: ``(d,)`` column means ``mu``.
        cov_xx: ``(d, d)`` ``(X - mu)^T (X - mu) / n``.
        mean_y: mean of ``y`` (0 when no ``y`` was given).
        cov_xy: ``(d,)`` ``(X - mu)^T (y - ybar) / n`` (zeros when no ``y``).
        var_y: ``||y - ybar||^2 / n`` (0 when no ``y``).
    """

    n: int
    mean_x: np.ndarray
    cov_xx: np.ndarray
    mean_y: float
    cov_xy: np.ndarray
    var_y: float


def moments(X: np.ndarray, y: np.ndarray | None = None) -> Moments:
    """Centred moments of ``X`` (``(n, d)``) and optionally ``y`` (``(n,)``), in two passes.

    The data are centred before the products (block by block, so the extra memory is bounded):
    ``X^T X / n - mu mu^T`` would lose the variance of a feature whose mean is large compared with
    its spread.
    """
    n, d = X.shape
    mu = X.mean(axis=0)
    ybar = float(y.mean()) if y is not None else 0.0
    cov_xx = np.zeros((d, d))
    cov_xy = np.zeros(d)
    var_y = 0.0
    for start in range(0, n, _BLOCK_ROWS):
        xc = X[start : start + _BLOCK_ROWS] - mu
        cov_xx += xc.T @ xc
        if y is not None:
            yc = y[start : start + _BLOCK_ROWS] - ybar
            cov_xy += xc.T @ yc
            var_y += float(yc @ yc)
    return Moments(
        n=n, mean_x=mu, cov_xx=cov_xx / n, mean_y=ybar, cov_xy=cov_xy / n, var_y=var_y / n
    )


def squared_loss_grad_moments(
    w: np.ndarray, b: float, m: Moments, alpha: float
) -> tuple[float, np.ndarray, float]:
    """The objective and gradient of :func:`squared_loss_grad`, from the moments of the data.

    Writing ``C = cov_xx``, ``c = cov_xy``, ``mu = mean_x`` and the mean residual
    ``e = ybar - mu^T w - b``, the residuals split into a centred part and the constant ``e``,
    which are orthogonal, so exactly::

        f(w, b) = 1/2 * (var_y - 2 c^T w + w^T C w + e^2) + alpha/2 * ||w||^2
        df/dw   = C w - c - e * mu + alpha * w
        df/db   = -e

    Each call costs ``O(d^2)``, whatever the number of rows.

    Returns:
        ``(f, grad_w, grad_b)``: float, ``(d,)`` array, float.
    """
    cw = m.cov_xx @ w
    e = m.mean_y - float(m.mean_x @ w) - b
    loss = 0.5 * (m.var_y - 2.0 * float(m.cov_xy @ w) + float(w @ cw) + e * e)
    loss += 0.5 * alpha * float(w @ w)
    grad_w = cw - m.cov_xy - e * m.mean_x + alpha * w
    return loss, grad_w, -e
