"""LinearRegressionGD and LogisticRegressionGD against scikit-learn's solvers.

Tolerances (relative, on the whole vector): ``||w - w_ref|| / ||w_ref||`` and the same for the
intercept. Full batch: <= 1e-3 against the reference named in the brief (Ridge / LinearRegression,
LogisticRegression lbfgs with tol 1e-10), and <= 1e-5 against the exact Newton solution
(``newton-cholesky``), which shows the descent reaches the optimum itself. Mini-batch (64 rows,
50 epochs, averaged iterates): <= 2e-2 on the weights, <= 2e-2 on the intercept and <= 1e-4
relative excess of the training objective.

Data: a few thousand rows from make_classification / make_regression, with the columns put on
scales from 1e-2 to 1e3 and shifted away from zero, as raw page features are.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from microsub.errors import MicrosubError, ModelError
from microsub.models import LinearRegressionGD, LogisticRegressionGD
from microsub.models.linear import make_preconditioner, nesterov_descent
from microsub.models.losses import log_loss_grad, moments, squared_loss_grad

N = 3000


def _unscale(X: np.ndarray) -> np.ndarray:
    """Columns on scales 1e-2 .. 1e3 with offsets of a few scales."""
    scales = np.logspace(-2, 3, X.shape[1])
    offsets = np.linspace(-4.0, 5.0, X.shape[1]) * scales
    return X * scales + offsets


def _rel(a, b) -> float:
    a, b = np.ravel(a), np.ravel(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def classification() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=N, n_features=8, n_informative=5, n_redundant=2, flip_y=0.05, random_state=0
    )
    return _unscale(X), y


@pytest.fixture(scope="module")
def regression() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(
        n_samples=N, n_features=8, n_informative=6, noise=10.0, bias=50.0, random_state=0
    )
    return _unscale(X), y


# ------------------------------------------------------------------------------ regression
@pytest.mark.parametrize("kind", ["diagonal", "full"])
@pytest.mark.parametrize("alpha", [0.0, 1e-3, 1e-1])
def test_linear_full_batch_matches_ridge(regression, alpha, kind):
    X, y = regression
    ref = Ridge(alpha=N * alpha).fit(X, y) if alpha else LinearRegression().fit(X, y)
    model = LinearRegressionGD(alpha=alpha, preconditioner=kind).fit(X, y)
    assert _rel(model.coef_, ref.coef_) <= 1e-3
    assert _rel(model.intercept_, ref.intercept_) <= 1e-3


def test_linear_mini_batch_gets_close(regression):
    X, y = regression
    alpha = 1e-3
    ref = Ridge(alpha=N * alpha).fit(X, y)
    model = LinearRegressionGD(alpha=alpha, batch_size=64, max_iter=50, tol=0.0, random_state=0)
    with pytest.warns(ConvergenceWarning):  # tol=0: runs all 50 epochs
        model.fit(X, y)
    assert model.n_iter_ == 50 and model.loss_curve_.shape == (50,)
    assert _rel(model.coef_, ref.coef_) <= 2e-2
    assert _rel(model.intercept_, ref.intercept_) <= 2e-2
    f_ref = squared_loss_grad(ref.coef_, ref.intercept_, X, y, alpha)[0]
    f_gd = squared_loss_grad(model.coef_, model.intercept_, X, y, alpha)[0]
    assert 0 <= (f_gd - f_ref) / f_ref <= 1e-4


def test_linear_mini_batch_is_reproducible_and_seed_dependent(regression):
    X, y = regression
    kw = dict(alpha=1e-3, batch_size=64, max_iter=5, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = LinearRegressionGD(**kw, random_state=1).fit(X, y).coef_
        b = LinearRegressionGD(**kw, random_state=1).fit(X, y).coef_
        c = LinearRegressionGD(**kw, random_state=2).fit(X, y).coef_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_linear_loss_curve_is_the_training_objective(regression):
    X, y = regression
    model = LinearRegressionGD(alpha=1e-2).fit(X, y)
    final = squared_loss_grad(model.coef_, model.intercept_, X, y, 1e-2)[0]
    assert model.loss_curve_[-1] == pytest.approx(final, rel=1e-10)
    assert len(model.loss_curve_) == model.n_iter_
    # accelerated descent is not monotone, but it ends at the lowest value it visited
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    assert model.loss_curve_[-1] <= model.loss_curve_.min() * (1 + 1e-9)


def test_constant_feature_gets_zero_weight(regression):
    X, y = regression
    X = np.column_stack([X, np.full(N, 7.0)])
    model = LinearRegressionGD(alpha=1e-3).fit(X, y)
    assert model.coef_[-1] == 0.0
    ref = Ridge(alpha=N * 1e-3).fit(X[:, :-1], y)
    assert _rel(model.coef_[:-1], ref.coef_) <= 1e-3


def test_progress_gets_one_unit_per_iteration(regression):
    X, y = regression
    seen: list[int] = []
    model = LinearRegressionGD().fit(X, y, progress=seen.append)
    assert seen == [1] * model.n_iter_


# ------------------------------------------------------------------------------ classification
@pytest.mark.parametrize("kind", ["full", "diagonal"])
@pytest.mark.parametrize("alpha", [1e-2, 1e-3, 1e-4])
def test_logistic_full_batch_matches_lbfgs_and_newton(classification, alpha, kind):
    X, y = classification
    model = LogisticRegressionGD(alpha=alpha, preconditioner=kind).fit(X, y)
    lbfgs = LogisticRegression(C=1 / (N * alpha), tol=1e-10, max_iter=100_000).fit(X, y)
    assert _rel(model.coef_, lbfgs.coef_) <= 1e-3
    assert _rel(model.intercept_, lbfgs.intercept_) <= 1e-3
    newton = LogisticRegression(C=1 / (N * alpha), tol=1e-10, solver="newton-cholesky")
    newton.fit(X, y)
    assert _rel(model.coef_, newton.coef_) <= 2e-4
    assert _rel(model.intercept_, newton.intercept_) <= 2e-4
    np.testing.assert_allclose(model.predict_proba(X), newton.predict_proba(X), atol=1e-4)


def test_logistic_tight_tol_reaches_the_newton_solution(classification):
    X, y = classification
    alpha = 1e-4
    model = LogisticRegressionGD(alpha=alpha, tol=1e-10).fit(X, y)
    newton = LogisticRegression(C=1 / (N * alpha), tol=1e-12, solver="newton-cholesky")
    newton.fit(X, y)
    assert _rel(model.coef_, newton.coef_) <= 1e-5
    assert _rel(model.intercept_, newton.intercept_) <= 1e-5


def test_logistic_mini_batch_gets_close(classification):
    X, y = classification
    alpha = 1e-3
    ref = LogisticRegression(C=1 / (N * alpha), tol=1e-12, solver="newton-cholesky").fit(X, y)
    model = LogisticRegressionGD(alpha=alpha, batch_size=64, max_iter=50, tol=0.0, random_state=0)
    with pytest.warns(ConvergenceWarning):
        model.fit(X, y)
    assert _rel(model.coef_, ref.coef_) <= 2e-2
    assert _rel(model.intercept_, ref.intercept_) <= 2e-2
    f_ref = log_loss_grad(ref.coef_[0], ref.intercept_[0], X, y, alpha)[0]
    f_gd = log_loss_grad(model.coef_[0], model.intercept_[0], X, y, alpha)[0]
    assert 0 <= (f_gd - f_ref) / f_ref <= 1e-4


def test_logistic_any_two_labels_and_consistent_outputs(classification):
    X, y = classification
    labels = np.where(y == 1, "stays", "leaves")
    model = LogisticRegressionGD(alpha=1e-3).fit(X, labels)
    assert list(model.classes_) == ["leaves", "stays"]
    z = model.decision_function(X)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), np.where(z > 0, "stays", "leaves"))
    numeric = LogisticRegressionGD(alpha=1e-3).fit(X, y)
    np.testing.assert_allclose(model.coef_, numeric.coef_)


def test_polynomial_pipeline_fits_a_circle():
    # a circular boundary: linear in the degree-2 features, not in the raw ones
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(2000, 2)) * [1.0, 100.0]
    y = ((X[:, 0] ** 2 + (X[:, 1] / 100) ** 2) < 0.5).astype(int)
    poly = make_pipeline(
        PolynomialFeatures(2), StandardScaler(), LogisticRegressionGD(alpha=1e-4)
    ).fit(X, y)
    plain = LogisticRegressionGD(alpha=1e-4).fit(X, y)
    assert poly.score(X, y) >= 0.97
    assert plain.score(X, y) <= 0.75


@pytest.mark.parametrize("kind", ["diagonal", "full"])
def test_preconditioner_normalises_the_hessian_bound(classification, kind):
    X, _ = classification
    m = moments(X)
    alpha, kappa = 1e-3, 0.25
    p = make_preconditioner(m, alpha, curvature=kappa, kind=kind)
    bound = p.transform.T @ (kappa * m.cov_xx + alpha * np.eye(X.shape[1])) @ p.transform
    if kind == "diagonal":
        np.testing.assert_allclose(np.diag(bound), kappa, rtol=1e-12)
        assert p.lipschitz == pytest.approx(np.linalg.eigvalsh(bound)[-1], rel=1e-12)
    else:
        np.testing.assert_allclose(bound, kappa * np.eye(X.shape[1]), atol=1e-9)
        assert p.lipschitz == kappa


def test_full_preconditioner_needs_fewer_iterations(classification):
    X, y = classification
    diagonal = LogisticRegressionGD(alpha=1e-4, preconditioner="diagonal").fit(X, y)
    full = LogisticRegressionGD(alpha=1e-4, preconditioner="full").fit(X, y)
    assert full.n_iter_ < diagonal.n_iter_ / 2
    assert _rel(full.coef_, diagonal.coef_) <= 1e-3


@pytest.mark.parametrize("kind", ["diagonal", "full"])
def test_duplicated_feature_gets_the_minimum_norm_split(regression, kind):
    # with alpha = 0 the weights of two equal columns are only determined in sum; descent from
    # zero in the preconditioned coordinates splits it evenly, as lstsq's minimum-norm solution
    X, y = regression
    X2 = np.column_stack([X, X[:, 0]])
    model = LinearRegressionGD(preconditioner=kind).fit(X2, y)
    ref = LinearRegression().fit(X, y)
    assert model.coef_[0] == pytest.approx(model.coef_[-1], rel=1e-6)
    assert model.coef_[0] + model.coef_[-1] == pytest.approx(ref.coef_[0], rel=1e-4)


def test_nesterov_descent_solves_an_ill_conditioned_quadratic():
    # f = 1/2 x^T A x - c^T x with condition number 1e4: plain descent at step 1/L needs about
    # 1e4 * log(1e10) ~ 2e5 iterations; acceleration about sqrt(1e4) * log(1e10) ~ 2.3e3.
    A = np.diag(np.logspace(0, -4, 10))
    c = np.ones(10)
    result = nesterov_descent(
        lambda x: (0.5 * x @ A @ x - c @ x, A @ x - c), np.zeros(10),
        step=1.0, tol=1e-10, max_iter=5000,
    )  # fmt: skip
    assert result.converged and result.n_iter < 4000
    np.testing.assert_allclose(result.theta, c / np.diag(A), rtol=1e-5)


def test_without_acceleration_the_descent_is_plain_and_slower():
    # f = 1/2 x^T A x - c^T x: with accelerate=False every step is x - step * grad f(x)
    A = np.diag([1.0, 0.1])
    c = np.array([1.0, 1.0])
    seen = []

    def fun_grad(x):
        seen.append(x.copy())
        return 0.5 * x @ A @ x - c @ x, A @ x - c

    nesterov_descent(fun_grad, np.zeros(2), step=1.0, tol=1e-12, max_iter=4, accelerate=False)
    for before, after in zip(seen, seen[1:], strict=False):
        np.testing.assert_allclose(after, before - (A @ before - c), atol=1e-15)

    X, y = make_classification(n_samples=400, n_features=6, random_state=1)
    fast = LogisticRegressionGD(alpha=1e-3).fit(X, y)
    slow = LogisticRegressionGD(alpha=1e-3, accelerate=False, max_iter=5000).fit(X, y)
    assert fast.n_iter_ < slow.n_iter_
    assert _rel(slow.coef_, fast.coef_) <= 1e-3


def test_not_converging_warns():
    X, y = make_classification(n_samples=200, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        LogisticRegressionGD(max_iter=3).fit(X, y)


@pytest.mark.parametrize(
    ("param", "value"),
    [("alpha", -1.0), ("learning_rate", "fast"), ("learning_rate", 0.0), ("max_iter", 0),
     ("tol", -1e-3), ("batch_size", 0), ("batch_size", 2.5), ("preconditioner", "newton"),
     ("accelerate", "yes")],
)  # fmt: skip
def test_invalid_parameters_are_rejected(param, value):
    X, y = make_regression(n_samples=50, n_features=3, random_state=0)
    with pytest.raises(ModelError, match=param) as info:
        LinearRegressionGD(**{param: value}).fit(X, y)
    assert isinstance(info.value, MicrosubError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("batch_size", [None, 20])
def test_divergence_with_too_large_a_step_is_reported(batch_size):
    X, y = make_regression(n_samples=200, n_features=3, random_state=0)
    with pytest.raises(ModelError, match="diverged"):
        LinearRegressionGD(learning_rate=1e3, max_iter=500, batch_size=batch_size).fit(X, y)


def test_more_than_two_classes_are_refused():
    X, y = make_classification(n_samples=90, n_classes=3, n_informative=3, random_state=0)
    with pytest.raises(ModelError, match="3 classes.*OneVsRestClassifier"):
        LogisticRegressionGD().fit(X, y)
