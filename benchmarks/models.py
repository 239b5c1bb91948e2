"""Fit time of the from-scratch linear models against scikit-learn, at equal training loss.

Rows of the table:

- ``logistic raw``: :class:`~microsub.models.LogisticRegressionGD` (one row per preconditioner:
  ``full``, the default, and ``diagonal``) vs ``LogisticRegression`` (lbfgs) with
  ``C = 1 / (n * alpha)``, on the design matrix as given (features on their own scales, as in
  the pages table);
- ``logistic std``: the same on the standardised matrix (scaled once, outside the timing): the
  fair case for lbfgs, which does not precondition (the penalty then acts on standardised
  weights, so the optimum differs from the raw case);
- ``linear raw``: :class:`~microsub.models.LinearRegressionGD` (``alpha=0``) vs the closed form,
  ``LinearRegression`` (SciPy ``lstsq`` on centred data).

Equal training loss: the optimum ``f*`` is the training objective of scikit-learn's exact Newton
solver (``newton-cholesky``, ``tol=1e-10``) for the log-loss and the lower of the closed form
and GD at ``tol=1e-8`` for the squared loss (not timed). Each method climbs a ladder of
``(tol, max_iter)`` settings, loosest first (lbfgs: its default ``(1e-4, 100)``, then
``(1e-4, 1e3)``, ``(1e-4, 1e4)``, ``(1e-6, 1e5)``, ``(1e-8, 1e5)``; GD: tol 1e-4, 1e-6, 1e-8 with
``max_iter=1e5``) and is timed at the first setting whose objective is within ``5e-5`` of ``f*``
for the log-loss (so the two methods differ by less than 1e-4) and within ``1e-8`` relative for
the squared loss. A ladder stops early, with ``reached=False``, when a single fit takes longer
than ``--budget`` seconds; the time shown is then that fit's, a lower bound of what the method
needs. Times are medians over ``--repeats`` fits, each call of ``fit`` from start to end (input
validation included); repeats stop once a method has used ``--budget`` seconds on a case
(``runs`` says how many were made). ``ratio`` is GD time over scikit-learn time; ``pass`` means
GD reached ``f*`` with ``ratio <= 2``, at equal loss or against a baseline that never reached
it.

``--source matrix`` draws a synthetic design matrix that resembles the pages features (counts of
clicks/carts/favs, zero-inflated Yuan amounts and their running sums, page depth, purchase power,
hour on the circle, item-mix rates and log prices), a churn label and a page-value target::

    .venv/bin/python benchmarks/models.py --source matrix --rows 1500000 --features 20

``--source lake`` measures the same on the real feature matrices of a pipeline profile (default
``full``, 1.5M pages): the synthetic log is generated and ingested into ``--workdir`` (reused
when up to date), and the pages are turned into the ``churn`` feature set (pages with a known
outcome, target ``done``: the logistic rows) and the ``value`` set (every page, target
``reward``: the ``linear raw (value set)`` row), as :mod:`microsub.models.benchmark` does::

    .venv/bin/python benchmarks/models.py --source lake --profile full --workdir /tmp/fullprofile
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression

from microsub.models import LinearRegressionGD, LogisticRegressionGD
from microsub.models.losses import log_loss_grad, squared_loss_grad

#: (tol, max_iter) ladders, loosest first; scikit-learn's defaults are tol=1e-4, max_iter=100.
SKLEARN_SETTINGS = ((1e-4, 100), (1e-4, 1_000), (1e-4, 10_000), (1e-6, 100_000), (1e-8, 100_000))
GD_SETTINGS = ((1e-4, 100_000), (1e-6, 100_000), (1e-8, 100_000))
PRECONDITIONERS = ("full", "diagonal")
#: Each method must reach f* + LOG_LOSS_GAP, so that the two differ by < 2 * LOG_LOSS_GAP.
LOG_LOSS_GAP = 5e-5
#: Relative gap to f* allowed for the squared loss (both solvers are near exact).
SQUARED_LOSS_GAP = 1e-8
TARGET_RATIO = 2.0


# --------------------------------------------------------------------------------------------
# Synthetic design matrix
# --------------------------------------------------------------------------------------------
def synthetic_design(
    rows: int, features: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """A design matrix like the pages features, a churn label and a page-value target.

    A latent interest ``u`` per row drives the counts, purchases and amounts, so the columns are
    correlated as on the real feed; scales run from 1e-3 (conversion rates) to 1e3 (Yuan).

    Returns:
        ``X`` ``(rows, features)`` float64, ``churn`` ``(rows,)`` 0/1 (about 25 % ones),
        ``value`` ``(rows,)`` Yuan (mostly 0), and the column names.
    """
    rng = np.random.default_rng(seed)
    n = rows
    u = rng.standard_normal(n)
    depth = np.minimum(rng.geometric(0.25, n) - 1, 11).astype(float)
    power = rng.integers(0, 8, n).astype(float)
    hour = rng.integers(0, 24, n)
    clicks = np.minimum(rng.poisson(np.exp(0.5 + 0.4 * u)), 50).astype(float)
    carts = rng.poisson(0.3 * np.exp(0.5 * u)).astype(float)
    favs = rng.poisson(0.2 * np.exp(0.4 * u)).astype(float)
    purchases = rng.poisson(0.05 * np.exp(0.8 * u + 0.1 * power)).astype(float)
    value = (purchases > 0) * rng.lognormal(4.0 + 0.1 * power, 1.0, n)
    prev_value = depth * (rng.random(n) < 0.1) * rng.lognormal(4.0, 1.0, n)
    since = np.minimum(rng.geometric(0.3, n) - 1, depth + 1).astype(float)
    prev_engagement = rng.poisson(np.exp(0.5 + 0.4 * u)).astype(float) * (depth > 0)
    cols = {
        "state_purchase_power": power,
        "hour_sin": np.sin(2 * np.pi * hour / 24),
        "hour_cos": np.cos(2 * np.pi * hour / 24),
        "engagement": clicks + carts,
        "action_page_id": depth,
        "page_value": value,
        "n_favs": favs,
        "purchased": (purchases > 0).astype(float),
        "mean_ctr": np.clip(0.03 + 0.01 * rng.standard_normal(n) + 0.003 * u, 1e-3, None),
        "mean_cvr": 0.005 * rng.lognormal(0.0, 0.5, n),
        "mean_log_price": 4.0 + 0.05 * power + 0.5 * rng.standard_normal(n),
        "cum_value": value + prev_value,
        "cum_engagement": clicks + carts + depth * prev_engagement,
        "pages_since_purchase": since,
        "n_clicks": clicks,
        "n_carts": carts,
        "n_purchases": purchases,
        "prev_engagement": prev_engagement,
        "prev_cum_value": prev_value,
        "prev_pages_since_purchase": np.maximum(since - 1, 0),
    }
    names = list(cols)
    X = np.column_stack(list(cols.values()))
    k = 0
    while X.shape[1] < features:  # more columns: noisy copies of the existing kinds
        j = k % len(names)
        extra = X[:, j] * rng.lognormal(0.0, 0.3, n)
        X = np.column_stack([X, extra])
        names.append(f"{names[j]}_{k // len(names) + 1}")
        k += 1
    X, names = X[:, :features], names[:features]

    z = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    beta = rng.normal(0.0, 0.4, X.shape[1])
    logit = -1.3 + z @ beta - 0.5 * u
    churn = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    target = (rng.random(n) < 0.1 + 0.05 * (u > 0)) * rng.lognormal(4.0 + 0.2 * u, 1.0, n)
    return X, churn, target, names


def log(message: str) -> None:
    """Progress of a long run, on stderr (the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Timing at equal loss
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timed:
    """The setting found for one method, its median fit time and whether it reached f*."""

    tol: float
    max_iter: int
    seconds: float
    loss: float
    n_iter: int
    runs: int
    reached: bool


def _time_at_target(
    fit: Callable[[float, int], tuple[float, int]],
    settings: tuple[tuple[float, int], ...],
    reached: Callable[[float], bool],
    repeats: int,
    budget: float,
) -> Timed:
    """Time ``fit(tol, max_iter) -> (loss, n_iter)`` at the first setting whose loss is
    ``reached``: median of ``repeats`` runs, fewer once ``budget`` s are used. The ladder stops
    early, unreached, when one fit alone took longer than ``budget``."""
    for k, (tol, max_iter) in enumerate(settings):
        start = time.perf_counter()
        loss, n_iter = fit(tol, max_iter)
        times = [time.perf_counter() - start]
        ok = reached(loss)
        log(f"  tol={tol:g} max_iter={max_iter}: {times[0]:.2f} s, {n_iter} iterations, "
            f"loss {loss:.8f}, reached={ok}")  # fmt: skip
        last = k == len(settings) - 1 or times[0] > budget
        if ok or last:
            while len(times) < repeats and sum(times) < budget:
                start = time.perf_counter()
                fit(tol, max_iter)
                times.append(time.perf_counter() - start)
            return Timed(tol, max_iter, statistics.median(times), loss, n_iter, len(times), ok)
    raise AssertionError("unreachable: the last setting always returns")


def _logistic_rows(
    case: str, X: np.ndarray, y: np.ndarray, alpha: float, repeats: int, budget: float
) -> list[dict]:
    """One row per GD preconditioner against lbfgs (timed once) on ``X``."""
    n = X.shape[0]

    def objective(w: np.ndarray, b: float) -> float:
        return log_loss_grad(w, b, X, y, alpha)[0]

    def fit_sklearn(tol: float, max_iter: int) -> tuple[float, int]:
        model = LogisticRegression(C=1.0 / (n * alpha), tol=tol, max_iter=max_iter).fit(X, y)
        return objective(model.coef_[0], model.intercept_[0]), int(model.n_iter_[0])

    def fit_gd(tol: float, max_iter: int, preconditioner: str) -> tuple[float, int]:
        model = LogisticRegressionGD(
            alpha=alpha, tol=tol, max_iter=max_iter, preconditioner=preconditioner
        ).fit(X, y)
        return objective(model.coef_[0], model.intercept_[0]), model.n_iter_

    newton = LogisticRegression(C=1.0 / (n * alpha), tol=1e-10, solver="newton-cholesky")
    newton.fit(X, y)
    best = objective(newton.coef_[0], newton.intercept_[0])

    def reached(loss: float) -> bool:
        return loss - best < LOG_LOSS_GAP

    log(f"{case}: f* = {best:.8f} (newton-cholesky); lbfgs")
    sk = _time_at_target(fit_sklearn, SKLEARN_SETTINGS, reached, repeats, budget)
    rows = []
    for kind in PRECONDITIONERS:
        log(f"{case}: GD {kind}")
        gd = _time_at_target(
            lambda tol, max_iter, kind=kind: fit_gd(tol, max_iter, kind),
            GD_SETTINGS, reached, repeats, budget,
        )  # fmt: skip
        rows.append(_row(case, kind, "LogisticRegression lbfgs", sk, gd, best, 1e-4))
    return rows


def _linear_row(case: str, X: np.ndarray, y: np.ndarray, repeats: int, budget: float) -> dict:
    def objective(w: np.ndarray, b: float) -> float:
        return squared_loss_grad(w, b, X, y, 0.0)[0]

    def fit_closed(tol: float, max_iter: int) -> tuple[float, int]:
        model = LinearRegression().fit(X, y)
        return objective(model.coef_, model.intercept_), 1

    def fit_gd(tol: float, max_iter: int) -> tuple[float, int]:
        model = LinearRegressionGD(alpha=0.0, tol=tol, max_iter=max_iter).fit(X, y)
        return objective(model.coef_, model.intercept_), model.n_iter_

    best = min(fit_gd(1e-8, 100_000)[0], fit_closed(0.0, 1)[0])

    def reached(loss: float) -> bool:
        return (loss - best) <= SQUARED_LOSS_GAP * abs(best)

    log(f"{case}: f* = {best:.8f}; LinearRegression, then GD")
    closed = _time_at_target(fit_closed, ((0.0, 1),), reached, repeats, budget)
    gd = _time_at_target(fit_gd, GD_SETTINGS, reached, repeats, budget)
    gap = 2 * SQUARED_LOSS_GAP * abs(best)
    return _row(case, "diagonal", "LinearRegression (lstsq)", closed, gd, best, gap)


def _row(
    case: str, kind: str, baseline: str, ref: Timed, gd: Timed, best: float, gap: float
) -> dict:
    """One table row; ``gap`` is the largest loss difference that counts as equal.

    ``pass``: GD reached ``f*`` and took at most 2x the baseline's time, and either the two
    losses are equal or the baseline never reached ``f*`` (its time is then a lower bound of
    what it needs, so the ratio is an upper bound)."""
    ratio = gd.seconds / ref.seconds
    equal = abs(gd.loss - ref.loss) < gap
    return {
        "case": case,
        "gd_preconditioner": kind,
        "baseline": baseline,
        "baseline_s": ref.seconds,
        "baseline_tol": ref.tol,
        "baseline_max_iter": ref.max_iter,
        "baseline_iter": ref.n_iter,
        "baseline_runs": ref.runs,
        "baseline_reached": ref.reached,
        "gd_s": gd.seconds,
        "gd_tol": gd.tol,
        "gd_iter": gd.n_iter,
        "gd_runs": gd.runs,
        "gd_reached": gd.reached,
        "ratio": ratio,
        "loss_baseline": ref.loss,
        "loss_gd": gd.loss,
        "loss_diff": gd.loss - ref.loss,
        "loss_best": best,
        "pass": bool(gd.reached and ratio <= TARGET_RATIO and (equal or not ref.reached)),
    }


def bench(
    X: np.ndarray,
    y: np.ndarray,
    y_value: np.ndarray | None = None,
    *,
    alpha: float | None = None,
    repeats: int = 5,
    budget: float = 120.0,
    standardised: bool = True,
) -> pd.DataFrame:
    """Time the GD estimators against scikit-learn on the design matrix ``X`` ``(n, d)``.

    Args:
        X: the design matrix, features on their own scales.
        y: ``(n,)`` binary label (churn) for the logistic rows.
        y_value: ``(n,)`` continuous target for the least-squares row (None: no such row).
        alpha: penalty of the logistic rows; default ``1 / n`` (scikit-learn's default ``C=1``).
        repeats: fits per method and setting; the median time is reported.
        budget: seconds after which a method stops repeating on a case (at least one fit).
        standardised: also run the logistic comparison on the standardised ``X``.

    Returns:
        One row per case with the median times, tolerances used, iterations, training losses,
        ``ratio`` (GD / scikit-learn) and ``pass`` (``ratio <= 2`` at equal loss).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    alpha = 1.0 / X.shape[0] if alpha is None else alpha
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rows += _logistic_rows("logistic raw", X, y, alpha, repeats, budget)
        if standardised:
            sd = X.std(axis=0)
            Xs = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
            rows += _logistic_rows("logistic std", Xs, y, alpha, repeats, budget)
            del Xs
        if y_value is not None:
            y_value = np.asarray(y_value, dtype=np.float64)
            rows.append(_linear_row("linear raw", X, y_value, repeats, budget))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# --source lake: the feature matrices of a pipeline profile
# --------------------------------------------------------------------------------------------
def lake_design(
    profile: str, workdir: str, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """The churn and value design matrices of a profile's pages, built through the pipeline.

    The synthetic log of ``profile`` is generated and ingested into a local lake under
    ``workdir`` (``data/`` and ``lake/``; both are reused when up to date), then the pages are
    read through their manifest and turned into the feature sets of
    :mod:`microsub.analysis.features`, as :mod:`microsub.models.benchmark` does: churn on the
    ``"churn"`` set for the pages whose outcome is known (target ``done``), value on the
    ``"value"`` set for every page (target ``reward``).

    Returns:
        ``X_churn`` ``(n_c, d_c)``, ``done`` ``(n_c,)``, ``X_value`` ``(n, d_v)``, ``reward``
        ``(n,)``, and a description (rows, digest, seconds to prepare).
    """
    from pathlib import Path

    from microsub import pipeline
    from microsub.analysis import features
    from microsub.config import Settings

    base = Path(workdir)
    kwargs = {} if seed is None else {"seed": seed}
    settings = Settings(profile=profile, data_dir=base / "data", lake=str(base / "lake"), **kwargs)
    start = time.perf_counter()
    log(f"preparing the {profile} profile in {base} (generation and ingestion when missing)")
    ctx = pipeline.run(settings, stages=())
    frame = features.add_features(pipeline.read_pages(ctx).to_pandas())
    known = features.known_outcome(frame)
    X_churn = np.ascontiguousarray(features.feature_matrix(frame[known], "churn").to_numpy())
    done = frame.loc[known, "done"].to_numpy(dtype=np.float64)
    X_value = np.ascontiguousarray(features.feature_matrix(frame, "value").to_numpy())
    reward = frame["reward"].to_numpy(dtype=np.float64)
    about = {
        "profile": profile,
        "pages": ctx.manifest.rows,
        "digest": ctx.data_digest,
        "prepare_s": time.perf_counter() - start,
    }
    return X_churn, done, X_value, reward, about


def lake_table(
    profile: str, workdir: str, *, alpha: float | None, repeats: int, budget: float,
    seed: int | None = None,
) -> pd.DataFrame:  # fmt: skip
    """:func:`bench` on the churn matrix of :func:`lake_design` (logistic rows) and the linear
    row on its value matrix (the least-squares case of :func:`bench`, on the value features)."""
    X_churn, done, X_value, reward, about = lake_design(profile, workdir, seed)
    print(
        f"models benchmark: source=lake profile={about['profile']} pages={about['pages']} "
        f"(digest {about['digest']}) churn rows={X_churn.shape[0]} features={X_churn.shape[1]} "
        f"churn rate={done.mean():.3f}; value rows={X_value.shape[0]} "
        f"features={X_value.shape[1]}; repeats={repeats} (median seconds)"
    )
    table = bench(X_churn, done, None, alpha=alpha, repeats=repeats, budget=budget)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        linear = _linear_row("linear raw (value set)", X_value, reward, repeats, budget)
    return pd.concat([table, pd.DataFrame([linear])], ignore_index=True)


def _print_lake_table(table: pd.DataFrame) -> None:
    floats = {c: "{:.3f}".format for c in ("baseline_s", "gd_s")}
    losses = {c: "{:.7f}".format for c in ("loss_baseline", "loss_gd", "loss_best")}
    formatters = {**floats, **losses, "ratio": "{:.2f}".format, "loss_diff": "{:+.1e}".format}
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False, formatters=formatters))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["matrix", "lake"], default="matrix")
    parser.add_argument("--profile", default="full", help="--source lake: data profile")
    parser.add_argument(
        "--workdir", default="/tmp/fullprofile", help="--source lake: data and lake folder"
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per method and case")
    parser.add_argument("--alpha", type=float, default=None, help="default 1/rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.source == "lake":
        table = lake_table(args.profile, args.workdir, alpha=args.alpha, repeats=args.repeats,
                           budget=args.budget)  # fmt: skip
        _print_lake_table(table)
        return

    X, churn, value, _ = synthetic_design(args.rows, args.features, args.seed)
    print(
        f"models benchmark: source={args.source} rows={X.shape[0]} features={X.shape[1]} "
        f"churn rate={churn.mean():.3f} repeats={args.repeats} (median seconds)"
    )
    table = bench(X, churn, value, alpha=args.alpha, repeats=args.repeats, budget=args.budget)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(
            table.to_string(
                index=False,
                formatters={
                    "baseline_s": "{:.3f}".format,
                    "gd_s": "{:.3f}".format,
                    "ratio": "{:.2f}".format,
                    "loss_baseline": "{:.7f}".format,
                    "loss_gd": "{:.7f}".format,
                    "loss_diff": "{:+.1e}".format,
                    "loss_best": "{:.7f}".format,
                },
            )
        )


if __name__ == "__main__":
    main()
