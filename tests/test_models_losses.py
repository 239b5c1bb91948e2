"""The objectives and gradients of microsub.models.losses against finite differences and each
other."""

from __future__ import annotations

import numpy as np
import pytest

from microsub.models.losses import (
    log_loss_grad,
    moments,
    sigmoid,
    squared_loss_grad,
    squared_loss_grad_moments,
)


def _data(rng: np.random.Generator, n: int = 200, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    # features of very different scales and non-zero means, as in the pages table
    X = rng.normal(size=(n, d)) * np.logspace(-2, 2, d) + np.linspace(-3, 50, d)
    return X, rng.normal(size=n) * 3 + 7


def _numeric_gradient(f, w: np.ndarray, b: float, h: float = 1e-6) -> np.ndarray:
    """Central differences of ``f(w, b)`` in every coordinate of ``(w, b)``."""
    theta = np.append(w, b)
    grad = np.empty_like(theta)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h * max(1.0, abs(theta[k]))
        hi, lo = theta + e, theta - e
        grad[k] = (f(hi[:-1], hi[-1]) - f(lo[:-1], lo[-1])) / (2 * e[k])
    return grad


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_squared_loss_gradient_matches_finite_differences(alpha):
    rng = np.random.default_rng(0)
    X, y = _data(rng)
    w, b = rng.normal(size=X.shape[1]) * 0.1, 0.5
    _, gw, gb = squared_loss_grad(w, b, X, y, alpha)
    numeric = _numeric_gradient(lambda w_, b_: squared_loss_grad(w_, b_, X, y, alpha)[0], w, b)
    np.testing.assert_allclose(np.append(gw, gb), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_log_loss_gradient_matches_finite_differences(alpha):
    rng = np.random.default_rng(1)
    X, _ = _data(rng)
    y = (rng.random(X.shape[0]) < 0.3).astype(float)
    w, b = rng.normal(size=X.shape[1]) * 0.05, -0.2
    _, gw, gb = log_loss_grad(w, b, X, y, alpha)
    numeric = _numeric_gradient(lambda w_, b_: log_loss_grad(w_, b_, X, y, alpha)[0], w, b)
    np.testing.assert_allclose(np.append(gw, gb), numeric, rtol=1e-6, atol=1e-8)


def test_log_loss_value_is_the_cross_entropy():
    # (1/n) sum -[y log p + (1-y) log(1-p)] + alpha/2 ||w||^2, written out directly
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 3))
    y = (rng.random(50) < 0.5).astype(float)
    w, b, alpha = np.array([0.5, -1.0, 2.0]), 0.1, 0.2
    p = 1 / (1 + np.exp(-(X @ w + b)))
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)) + 0.5 * alpha * w @ w
    assert log_loss_grad(w, b, X, y, alpha)[0] == pytest.approx(expected, rel=1e-12)


def test_log_loss_is_finite_for_huge_scores():
    X = np.array([[1.0], [1.0]])
    y = np.array([0.0, 1.0])
    loss, gw, gb = log_loss_grad(np.array([800.0]), 0.0, X, y, 0.0)
    assert loss == pytest.approx(400.0)  # (800 + 0) / 2: softplus(800) = 800, minus y z = 800
    assert np.isfinite(gw).all() and gb == pytest.approx(0.5)


def test_sigmoid_is_stable_and_symmetric():
    z = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    p = sigmoid(z)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p + sigmoid(-z), 1.0, rtol=0, atol=1e-15)
    assert p[2] == 0.5


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_moments_give_the_same_objective_and_gradient_as_the_rows(alpha):
    rng = np.random.default_rng(3)
    X, y = _data(rng, n=1000)
    m = moments(X, y)
    w, b = rng.normal(size=X.shape[1]), 4.0
    rows = squared_loss_grad(w, b, X, y, alpha)
    from_moments = squared_loss_grad_moments(w, b, m, alpha)
    assert from_moments[0] == pytest.approx(rows[0], rel=1e-12)
    np.testing.assert_allclose(from_moments[1], rows[1], rtol=1e-10, atol=1e-12)
    assert from_moments[2] == pytest.approx(rows[2], rel=1e-12)


def test_moments_are_centred_blockwise_and_keep_small_variances():
    # mean 1e8, spread 1: X^T X / n - mu^2 would lose the variance entirely in float64
    rng = np.random.default_rng(4)
    X = 1e8 + rng.normal(size=(150_000, 2))  # more rows than one block
    y = X[:, 0] - 1e8 + rng.normal(size=150_000)
    m = moments(X, y)
    Xc = X - X.mean(axis=0)
    np.testing.assert_allclose(m.cov_xx, Xc.T @ Xc / len(X), rtol=1e-9)
    np.testing.assert_allclose(m.cov_xy, Xc.T @ (y - y.mean()) / len(X), rtol=1e-9)
    assert m.var_y == pytest.approx(np.var(y), rel=1e-9)
    assert m.cov_xx[0, 0] == pytest.approx(1.0, rel=0.02)
