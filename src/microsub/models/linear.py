"""Linear and logistic regression fitted by gradient descent, with scikit-learn's estimator API.

Both estimators minimise a penalised mean loss (formulas in :mod:`microsub.models.losses`)::

    LinearRegressionGD:    f(w, b) = 1/(2n) sum_i (y_i - x_i^T w - b)^2            + alpha/2 ||w||^2
    LogisticRegressionGD:  f(w, b) = 1/n sum_i [log(1 + exp(z_i)) - y_i z_i]       + alpha/2 ||w||^2

with ``z_i = x_i^T w + b``; the intercept ``b`` is not penalised. They therefore reach the same
solution as scikit-learn's ``Ridge(alpha=n * alpha)`` (``LinearRegression`` when ``alpha=0``) and
``LogisticRegression(C=1 / (n * alpha))``.

How the descent is made fast (every trick keeps the objective on the original ``X``):

* **Preconditioning (internal standardisation, optionally whitening).** The descent runs on
  parameters ``theta = (v, c)`` with ``w = T v`` and ``b = c - mu^T w``, where ``mu`` are the
  column means. Because ``X w + b = (X - mu) T v + c``, this is gradient descent on centred,
  transformed features ``(X - mu) T``, but the penalty stays ``alpha/2 ||T v||^2``: the objective
  is exactly the one on the original scale, and the map back to ``(w, b)`` is exact. Equivalently
  it is the preconditioned gradient method ``w <- w - step * T T^T grad_w f`` (plus the centring
  of the intercept). ``kappa`` bounds the curvature of the loss (1 for squared loss, 1/4 for
  log-loss), so ``kappa * (C + alpha / kappa * I)`` bounds the Hessian in ``w`` (``C`` the
  covariance of ``X``), and ``T`` is built from that bound (:func:`make_preconditioner`):

  - ``preconditioner="diagonal"`` (Jacobi, i.e. standardisation): ``T = diag(1/s)`` with
    ``s_j = sqrt(var_j + alpha / kappa)``; every diagonal entry of the bound becomes ``kappa``.
  - ``preconditioner="full"`` (whitening): ``T T^T = (C + alpha / kappa * I)^-1``, computed once
    from the ``d x d`` covariance; the bound becomes ``kappa * I``. For the log-loss this is
    Bohning's (1992) bound: the preconditioner is fixed, it never sees the curvature
    ``p (1 - p)`` of the current iterate, so this is not Newton's method, and the remaining
    condition number is the spread of ``p (1 - p)`` over the rows. For the squared loss the
    bound is the exact Hessian, so the first step lands on the solution (the normal
    equations): that is why ``LinearRegressionGD`` defaults to ``"diagonal"``. The whitening
    costs one ``d x d`` eigendecomposition (``O(d^3)``) and ``O(d^2)`` per iteration, negligible
    next to the ``O(n d)`` gradient for the tens to hundreds of features of this project.

  Constant features (scikit-learn's ``_is_constant_feature`` test) keep ``w_j = 0``.
* **Step from the Lipschitz constant.** ``L`` is the largest eigenvalue of that Hessian bound in
  ``theta`` (the intercept block is ``kappa``, decoupled because the features are centred); the
  step is ``1 / L`` (``learning_rate="auto"``) or the given float.
* **Nesterov acceleration with adaptive restart** (O'Donoghue & Candes, 2015): momentum is reset
  whenever the gradient makes an acute angle with the last step.
* **Sufficient statistics for least squares.** The full-batch gradient of the squared loss is
  computed from the centred moments ``X^T X / n`` and ``X^T y / n`` (one pass over the data); it
  is identical to the gradient on the rows and each iteration costs ``O(d^2)``.

Stopping:

* full batch (``batch_size=None``): stop at the first iterate whose gradient with respect to
  ``theta`` satisfies ``max|grad| <= tol * max|grad at start|``; the start is the
  intercept-only model (``w = 0`` and the optimal intercept), so the criterion is relative to the
  signal the features can explain. ``max_iter`` counts gradient evaluations.
* mini-batch (``batch_size`` an int): stochastic gradient descent with momentum 0.9 on shuffled
  batches (``random_state``), step ``learning_rate / sqrt(epoch)``, and the estimate averaged
  over the later half of the iterates (:func:`minibatch_descent`); after every epoch the full
  training objective is evaluated at the estimate and the fit stops when it changed by at most
  ``tol`` relative to the previous epoch. ``max_iter`` counts epochs.

Polynomial features belong in a pipeline, not in the estimator::

    make_pipeline(PolynomialFeatures(2), StandardScaler(), LogisticRegressionGD(alpha=1e-4))
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from microsub.errors import ModelError
from microsub.models.losses import (
    Moments,
    log_loss_grad,
    moments,
    sigmoid,
    squared_loss_grad,
    squared_loss_grad_moments,
)

Progress = Callable[[int], None]
#: (loss, grad_w, grad_b) of the objective at (w, b).
LossGrad = Callable[[np.ndarray, float], tuple[float, np.ndarray, float]]

#: Momentum of the mini-batch mode (exponential average of the gradients).
MOMENTUM = 0.9
#: Curvature bounds of the losses: second derivative of the loss in the score.
CURVATURE_SQUARED = 1.0
CURVATURE_LOG = 0.25


# --------------------------------------------------------------------------------------------
# Preconditioned parametrisation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preconditioner:
    """The affine reparametrisation ``w = T v``, ``b = c - mu^T w`` (see the module docstring).

    Descent runs on ``theta = (v, c)`` of length ``k + 1``; the objective is unchanged.

    Attributes:
        mean: ``(d,)`` column means ``mu``.
        transform: ``(d, k)`` matrix ``T``; rows of constant features are zero, so their
            ``w_j`` stays 0.
        lipschitz: ``L``, largest eigenvalue of the Hessian bound in ``theta``.
    """

    mean: np.ndarray
    transform: np.ndarray
    lipschitz: float

    @property
    def size(self) -> int:
        """Length of ``theta``."""
        return self.transform.shape[1] + 1

    def to_original(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        """``theta = (v, c)`` -> ``(w, b)``."""
        w = self.transform @ theta[:-1]
        return w, float(theta[-1] - self.mean @ w)

    def gradient(self, grad_w: np.ndarray, grad_b: float) -> np.ndarray:
        """Chain rule: the gradient in ``(w, b)`` -> the gradient in ``theta``.

        ``df/dv = T^T (df/dw - mu * df/db)`` and ``df/dc = df/db``.
        """
        return np.append(self.transform.T @ (grad_w - self.mean * grad_b), grad_b)


#: Eigenvalues of the scaled Hessian bound below this share of the largest are treated as 0
#: by the full preconditioner (directions along which the centred features do not vary).
EIGEN_CUTOFF = 1e-12


def make_preconditioner(
    m: Moments, alpha: float, curvature: float, kind: str = "diagonal"
) -> Preconditioner:
    """Preconditioner and Lipschitz constant for a loss of curvature at most ``curvature``.

    With ``C`` the covariance of ``X`` and ``kappa = curvature``, the Hessian of the objective in
    ``(X - mu) w`` and ``c`` is bounded by ``diag(kappa * (C + alpha / kappa * I), kappa)``.
    ``D = diag(s)``, ``s_j = sqrt(C_jj + alpha / kappa)``, and the scaled bound
    ``A = D^-1 (C + alpha / kappa * I) D^-1`` has a unit diagonal. Then:

    * ``"diagonal"`` (Jacobi): ``T = D^-1``, ``L = kappa * lambda_max(A)``;
    * ``"full"``: ``A = V diag(lambda) V^T`` and ``T = D^-1 V diag(lambda)^(-1/2)``, so the bound
      becomes ``kappa * I`` and ``L = kappa``: gradient descent on whitened features, i.e. the
      fixed preconditioner ``(C + alpha / kappa * I)^-1`` (Bohning's bound for the log-loss).
      Directions with ``lambda <= EIGEN_CUTOFF * lambda_max`` are left out.

    Constant features (scikit-learn's ``_is_constant_feature`` test) are left out of both.
    """
    var = np.diag(m.cov_xx).copy()
    eps = np.finfo(np.float64).eps
    active = np.flatnonzero(var > m.n * eps * var + (m.n * m.mean_x * eps) ** 2)
    d = m.mean_x.size
    s = np.sqrt(var[active] + alpha / curvature)
    A = m.cov_xx[np.ix_(active, active)] / np.outer(s, s)
    A[np.diag_indices_from(A)] += alpha / curvature / s**2
    if kind == "diagonal":
        columns = np.diag(1.0 / s)
        top = float(np.linalg.eigvalsh(A)[-1]) if active.size else 0.0
    elif kind == "full":
        lam, V = np.linalg.eigh(A) if active.size else (np.zeros(0), np.zeros((0, 0)))
        keep = lam > EIGEN_CUTOFF * (lam[-1] if lam.size else 0.0)
        columns = (V[:, keep] / np.sqrt(lam[keep])) / s[:, np.newaxis]
        top = 1.0
    else:
        raise ModelError(f"preconditioner must be 'diagonal' or 'full', got {kind!r}.")
    transform = np.zeros((d, columns.shape[1]))
    transform[active] = columns
    return Preconditioner(mean=m.mean_x, transform=transform, lipschitz=curvature * max(top, 1.0))


# --------------------------------------------------------------------------------------------
# Optimisers on theta
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DescentResult:
    """Outcome of a descent: final parameters, objective per iteration, iterations, convergence."""

    theta: np.ndarray
    loss_curve: list[float]
    n_iter: int
    converged: bool


def _check_finite(loss: float, where: str, step: float) -> None:
    if not np.isfinite(loss):
        raise ModelError(
            f"The training objective became {loss} at {where} with step {step:.3g}: the descent "
            "diverged. Use learning_rate='auto' or a smaller learning_rate."
        )


def nesterov_descent(
    fun_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    theta0: np.ndarray,
    *,
    step: float,
    tol: float,
    max_iter: int,
    accelerate: bool = True,
    progress: Progress | None = None,
) -> DescentResult:
    """Accelerated gradient descent with gradient-based adaptive restart.

    Iteration ``k`` evaluates ``f`` and ``g = grad f`` at the extrapolated point ``y_k``, then::

        x_{k+1} = y_k - step * g
        restart (t_k = 1) if g^T (x_{k+1} - x_k) > 0
        t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2
        y_{k+1} = x_{k+1} + (t_k - 1) / t_{k+1} * (x_{k+1} - x_k)

    With ``accelerate=False`` the momentum stays off (``t_k = 1`` always, so ``y_k = x_k``): plain
    gradient descent ``x_{k+1} = x_k - step * grad f(x_k)``, kept to show what acceleration buys.

    It stops at the first ``y_k`` with ``max|g| <= tol * max|g(theta0)|`` and returns that point
    (its gradient is the certified one). ``loss_curve`` holds ``f(y_k)`` per iteration.

    Args:
        fun_grad: ``theta -> (f, grad)``, ``grad`` of the shape of ``theta``.
        theta0: starting point.
        step: step size, ``1 / L`` for a gradient that is ``L``-Lipschitz.
        tol: relative tolerance on the largest gradient component.
        max_iter: largest number of gradient evaluations (>= 1).
        accelerate: Nesterov's momentum with restart (True) or plain gradient descent.
        progress: called with 1 after every iteration.
    """
    x = theta0.copy()
    y = theta0.copy()
    t = 1.0
    curve: list[float] = []
    g_start = 0.0
    # overflow on a diverging run is reported by _check_finite, not by NumPy warnings
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, max_iter + 1):
            loss, g = fun_grad(y)
            _check_finite(loss, f"iteration {k}", step)
            curve.append(loss)
            if progress is not None:
                progress(1)
            g_max = float(np.abs(g).max())
            if k == 1:
                g_start = g_max
            if g_max <= tol * g_start:
                return DescentResult(theta=y, loss_curve=curve, n_iter=k, converged=True)
            x_new = y - step * g
            if not accelerate or float(g @ (x_new - x)) > 0.0:
                t = 1.0
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            y = x_new + ((t - 1.0) / t_new) * (x_new - x)
            x, t = x_new, t_new
    return DescentResult(theta=x, loss_curve=curve, n_iter=max_iter, converged=False)


def minibatch_descent(
    batch_grad: Callable[[np.ndarray, np.ndarray], np.ndarray],
    full_loss: Callable[[np.ndarray], float],
    theta0: np.ndarray,
    *,
    n_samples: int,
    batch_size: int,
    step: float,
    tol: float,
    max_iter: int,
    rng: np.random.Generator,
    progress: Progress | None = None,
) -> DescentResult:
    """Stochastic gradient descent with momentum on shuffled mini-batches.

    In epoch ``e = 1, 2, ...`` the rows are permuted with ``rng`` and, for every batch ``B``::

        m     <- 0.9 m + 0.1 grad f_B(theta)
        theta <- theta - step / sqrt(e) * m

    The estimate after epoch ``e`` is a suffix average (Polyak-Ruppert averaging over the later
    half of the run, Rakhlin et al. 2012): the mean, over epochs ``floor(e/2) + 1 .. e``, of each
    epoch's mean iterate. Averaging cancels most of the gradient noise that a decaying step
    alone leaves (about ten times closer to the optimum in our tests); the descent itself
    continues from the last iterate. After each epoch ``full_loss`` of the estimate is recorded,
    and the descent stops when it changed by at most ``tol`` times its previous value; the last
    estimate is returned.

    Args:
        batch_grad: ``(theta, rows) -> gradient`` of the objective on the rows ``rows``.
        full_loss: ``theta -> f(theta)`` on all the training rows.
        theta0: starting point.
        n_samples: number of training rows.
        batch_size: rows per batch (the last batch of an epoch may be smaller).
        step: initial step size.
        tol: relative tolerance on the change of the objective between epochs.
        max_iter: largest number of epochs (>= 1).
        rng: source of the permutations.
        progress: called with 1 after every epoch.
    """
    theta = theta0.copy()
    velocity = np.zeros_like(theta)
    previous = full_loss(theta)
    curve: list[float] = []
    epoch_means: list[np.ndarray] = []
    with np.errstate(over="ignore", invalid="ignore"):  # as in nesterov_descent
        for epoch in range(1, max_iter + 1):
            eta = step / np.sqrt(epoch)
            order = rng.permutation(n_samples)
            average = np.zeros_like(theta)
            for k, start in enumerate(range(0, n_samples, batch_size), start=1):
                g = batch_grad(theta, order[start : start + batch_size])
                velocity *= MOMENTUM
                velocity += (1.0 - MOMENTUM) * g
                theta -= eta * velocity
                average += (theta - average) / k
            epoch_means.append(average)
            estimate = np.mean(epoch_means[len(epoch_means) // 2 :], axis=0)
            loss = full_loss(estimate)
            _check_finite(loss, f"epoch {epoch}", eta)
            curve.append(loss)
            if progress is not None:
                progress(1)
            if abs(previous - loss) <= tol * abs(previous):
                return DescentResult(theta=estimate, loss_curve=curve, n_iter=epoch, converged=True)
            previous = loss
    return DescentResult(theta=estimate, loss_curve=curve, n_iter=max_iter, converged=False)


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------
class _LinearGD(BaseEstimator):
    """Shared parameters and fitting loop of the two gradient-descent estimators."""

    _curvature: float = CURVATURE_SQUARED

    def __init__(
        self,
        *,
        alpha: float = 0.0,
        learning_rate: str | float = "auto",
        max_iter: int = 1000,
        tol: float = 1e-6,
        batch_size: int | None = None,
        preconditioner: str = "diagonal",
        accelerate: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.preconditioner = preconditioner
        self.accelerate = accelerate
        self.random_state = random_state

    def _check_params(self) -> None:
        name = type(self).__name__
        if not isinstance(self.alpha, Real) or not self.alpha >= 0:
            raise ModelError(f"{name}: alpha must be a real number >= 0, got {self.alpha!r}.")
        lr = self.learning_rate
        if not (lr == "auto" if isinstance(lr, str) else isinstance(lr, Real) and lr > 0):
            raise ModelError(f"{name}: learning_rate must be 'auto' or a float > 0, got {lr!r}.")
        if not isinstance(self.max_iter, Integral) or self.max_iter < 1:
            raise ModelError(f"{name}: max_iter must be an int >= 1, got {self.max_iter!r}.")
        if not isinstance(self.tol, Real) or not self.tol >= 0:
            raise ModelError(f"{name}: tol must be a real number >= 0, got {self.tol!r}.")
        bs = self.batch_size
        if bs is not None and (not isinstance(bs, Integral) or bs < 1):
            raise ModelError(f"{name}: batch_size must be None or an int >= 1, got {bs!r}.")
        if self.preconditioner not in ("diagonal", "full"):
            raise ModelError(
                f"{name}: preconditioner must be 'diagonal' or 'full', got {self.preconditioner!r}."
            )
        if not isinstance(self.accelerate, bool | np.bool_):
            raise ModelError(f"{name}: accelerate must be True or False, got {self.accelerate!r}.")

    # Subclasses define the loss on rows and the intercept of the model with w = 0.
    def _row_loss_grad(
        self, w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray, alpha: float
    ) -> tuple[float, np.ndarray, float]:
        raise NotImplementedError

    def _start(self, m: Moments, y: np.ndarray) -> float:
        """The optimal intercept of the model with ``w = 0``."""
        raise NotImplementedError

    def _fit_theta(
        self, X: np.ndarray, y: np.ndarray, m: Moments, progress: Progress | None
    ) -> tuple[np.ndarray, float]:
        """Run the descent on validated ``X`` and encoded ``y``; set the learned attributes."""
        self._check_params()
        alpha = float(self.alpha)
        precond = make_preconditioner(m, alpha, self._curvature, self.preconditioner)
        theta0 = np.zeros(precond.size)
        theta0[-1] = self._start(m, y)
        step = 1.0 / precond.lipschitz if self.learning_rate == "auto" else self.learning_rate

        full = self._full_loss_grad(X, y, m, alpha)
        if self.batch_size is None:

            def fun_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
                w, b = precond.to_original(theta)
                loss, gw, gb = full(w, b)
                return loss, precond.gradient(gw, gb)

            result = nesterov_descent(
                fun_grad, theta0, step=step, tol=self.tol, max_iter=self.max_iter,
                accelerate=bool(self.accelerate), progress=progress,
            )  # fmt: skip
        else:

            def batch_grad(theta: np.ndarray, rows: np.ndarray) -> np.ndarray:
                w, b = precond.to_original(theta)
                _, gw, gb = self._row_loss_grad(w, b, X[rows], y[rows], alpha)
                return precond.gradient(gw, gb)

            def full_loss(theta: np.ndarray) -> float:
                return full(*precond.to_original(theta))[0]

            result = minibatch_descent(
                batch_grad, full_loss, theta0, n_samples=X.shape[0],
                batch_size=int(self.batch_size), step=step, tol=self.tol,
                max_iter=self.max_iter, rng=np.random.default_rng(self.random_state),
                progress=progress,
            )  # fmt: skip
        if not result.converged:
            unit = "iterations" if self.batch_size is None else "epochs"
            warnings.warn(
                f"{type(self).__name__} did not reach tol={self.tol:g} in max_iter="
                f"{self.max_iter} {unit}; increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        w, b = precond.to_original(result.theta)
        self.loss_curve_ = np.asarray(result.loss_curve)
        self.n_iter_ = result.n_iter
        return w, b

    def _full_loss_grad(self, X: np.ndarray, y: np.ndarray, m: Moments, alpha: float) -> LossGrad:
        """The full-batch objective and gradient in ``(w, b)`` (on the rows by default)."""

        def full(w: np.ndarray, b: float) -> tuple[float, np.ndarray, float]:
            return self._row_loss_grad(w, b, X, y, alpha)

        return full


class LinearRegressionGD(RegressorMixin, _LinearGD):
    """Ridge least squares by preconditioned, accelerated gradient descent.

    Minimises ``1/(2n) sum_i (y_i - x_i^T w - b)^2 + alpha/2 ||w||^2`` (intercept unpenalised),
    the solution of scikit-learn's ``Ridge(alpha=n * alpha)``, or ``LinearRegression`` when
    ``alpha=0``. See the module docstring for the descent, the preconditioning and the stopping
    rules; full-batch gradients come from the data's moments, so an iteration costs ``O(d^2)``.

    Args:
        alpha: ridge penalty (>= 0) on the mean-loss scale.
        learning_rate: ``"auto"`` (``1/L`` from the Lipschitz constant) or a float step, in the
            preconditioned parametrisation; in mini-batch mode the initial step.
        max_iter: most iterations (full batch) or epochs (mini-batch).
        tol: relative gradient tolerance (full batch) or relative objective change per epoch
            (mini-batch).
        batch_size: ``None`` for full-batch descent, else rows per mini-batch.
        preconditioner: ``"diagonal"`` (standardisation, the default here) or ``"full"``
            (whitening; for least squares its first step is the exact solution).
        accelerate: Nesterov's momentum with adaptive restart (full batch; the default) or
            plain gradient descent (``False``, to show what the momentum buys).
        random_state: seed or Generator for the mini-batch shuffling.

    Attributes:
        coef_: ``(d,)`` weights ``w``.
        intercept_: the intercept ``b`` (float).
        loss_curve_: training objective per iteration (full batch) or epoch (mini-batch).
        n_iter_: iterations or epochs run.
        n_features_in_: number of features seen in ``fit``.
    """

    _curvature = CURVATURE_SQUARED

    def _row_loss_grad(
        self, w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray, alpha: float
    ) -> tuple[float, np.ndarray, float]:
        return squared_loss_grad(w, b, X, y, alpha)

    def _full_loss_grad(self, X: np.ndarray, y: np.ndarray, m: Moments, alpha: float) -> LossGrad:
        """From the moments: ``O(d^2)`` per call, same value and gradient as on the rows."""

        def full(w: np.ndarray, b: float) -> tuple[float, np.ndarray, float]:
            return squared_loss_grad_moments(w, b, m, alpha)

        return full

    def _start(self, m: Moments, y: np.ndarray) -> float:
        return m.mean_y

    def fit(
        self, X: ArrayLike, y: ArrayLike, *, progress: Progress | None = None
    ) -> LinearRegressionGD:
        """Fit on ``X`` ``(n, d)`` and ``y`` ``(n,)``; ``progress`` gets 1 per iteration/epoch."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        m = moments(X, y)
        self.coef_, self.intercept_ = self._fit_theta(X, y, m, progress)
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions ``X w + b``, shape ``(n,)``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_


class LogisticRegressionGD(ClassifierMixin, _LinearGD):
    """Binary logistic regression by preconditioned, accelerated gradient descent.

    Minimises ``1/n sum_i [log(1 + exp(z_i)) - y_i z_i] + alpha/2 ||w||^2`` with
    ``z_i = x_i^T w + b`` and ``y_i = 1`` for ``classes_[1]``, the solution of scikit-learn's
    ``LogisticRegression(C=1 / (n * alpha))``. The classes may be any two labels. See the module
    docstring for the descent, the preconditioning and the stopping rules.

    Args:
        alpha: ridge penalty (>= 0) on the mean-loss scale; the default ``1e-4`` keeps the
            solution finite on separable data.
        preconditioner: ``"full"`` (whitening with Bohning's bound, the default here: 3-5 times
            fewer iterations than ``"diagonal"`` on correlated features) or ``"diagonal"``
            (standardisation).
        learning_rate, max_iter, tol, batch_size, accelerate, random_state: as in
            :class:`LinearRegressionGD`.

    Attributes:
        classes_: the two labels, sorted.
        coef_: ``(1, d)`` weights (scikit-learn's shape for a binary linear classifier).
        intercept_: ``(1,)`` intercept.
        loss_curve_, n_iter_, n_features_in_: as in :class:`LinearRegressionGD`.
    """

    _curvature = CURVATURE_LOG

    def __init__(
        self,
        *,
        alpha: float = 1e-4,
        learning_rate: str | float = "auto",
        max_iter: int = 1000,
        tol: float = 1e-6,
        batch_size: int | None = None,
        preconditioner: str = "full",
        accelerate: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(
            alpha=alpha, learning_rate=learning_rate, max_iter=max_iter, tol=tol,
            batch_size=batch_size, preconditioner=preconditioner, accelerate=accelerate,
            random_state=random_state,
        )  # fmt: skip

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _row_loss_grad(
        self, w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray, alpha: float
    ) -> tuple[float, np.ndarray, float]:
        return log_loss_grad(w, b, X, y, alpha)

    def _start(self, m: Moments, y: np.ndarray) -> float:
        p = float(y.mean())
        return float(np.log(p / (1.0 - p)))

    def fit(
        self, X: ArrayLike, y: ArrayLike, *, progress: Progress | None = None
    ) -> LogisticRegressionGD:
        """Fit on ``X`` ``(n, d)`` and two-label ``y`` ``(n,)``; ``progress`` as in ``fit`` of
        :class:`LinearRegressionGD`."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y01 = np.unique(y, return_inverse=True)
        check_two_classes(type(self).__name__, self.classes_)
        y01 = y01.astype(np.float64)
        m = moments(X)
        w, b = self._fit_theta(X, y01, m, progress)
        self.coef_, self.intercept_ = w[np.newaxis, :], np.array([b])
        return self

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Scores ``z = X w + b`` (log-odds of ``classes_[1]``), shape ``(n,)``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probabilities ``(n, 2)`` of ``classes_[0]`` and ``classes_[1]``."""
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The label with the larger probability (``classes_[1]`` when ``z > 0``)."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(np.intp)]


def check_two_classes(name: str, classes: np.ndarray) -> None:
    """Raise :class:`ModelError` unless ``classes`` holds exactly two labels (binary models)."""
    if len(classes) != 2:
        found = "only one class" if len(classes) == 1 else f"{len(classes)} classes"
        # scikit-learn's estimator checks match the first sentence.
        raise ModelError(
            f"Only binary classification is supported. {name} needs exactly 2 classes in y; "
            f"found {found}: {classes[:10].tolist()}. For several classes wrap it in "
            "sklearn.multiclass.OneVsRestClassifier."
        )
