"""Drift between a reference and a current table: PSI and the Kolmogorov-Smirnov test.

Pure: two frames in, a :class:`DriftReport` out; :mod:`microsub.pipeline.monitor` reads the
datasets, scores them and stores the report as ``reports/drift.json``.

Population stability index (PSI) of one column, with ``k`` bins cut at the reference's
quantiles ``q_1 < ... < q_{k-1}`` (deciles by default; repeated quantiles, as on a discrete
column, merge their bins, so a column with a few values gets one bin per value)::

    PSI = sum_i (c_i - r_i) * ln(c_i / r_i)

where ``r_i`` and ``c_i`` are the shares of reference and current rows in bin ``i``
(``(-inf, q_1], (q_1, q_2], ..., (q_{k-1}, inf)``), each floored at :data:`EPS` so that an
empty bin counts as a large but finite shift. PSI is 0 for identical distributions and grows
with the shift; the usual reading, used here: below :data:`WATCH` (0.1) stable, from 0.1 to
:data:`ACT` (0.2) worth watching, 0.2 and above a shift that calls for retraining.

Beside it, the two-sample Kolmogorov-Smirnov statistic ``D = sup_x |F_ref(x) - F_cur(x)|`` and
its p-value (:func:`scipy.stats.ks_2samp`). With tens of thousands of rows even a harmless
shift is "significant", so the p-value is reported, not used for the decision: PSI decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

#: PSI from which a column is worth watching, and from which retraining is due.
WATCH = 0.1
ACT = 0.2
#: Smallest bin share (avoids log(0) for an empty bin).
EPS = 1e-4
#: Default number of quantile bins.
BINS = 10

Status = Literal["ok", "watch", "act"]


def psi(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> float:
    """Population stability index of ``current`` against ``reference`` (1-D arrays, NaNs
    dropped), with ``bins`` quantile bins of the reference (module docstring)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=edges.size + 1)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=edges.size + 1)
    r_share = np.maximum(r / max(ref.size, 1), EPS)
    c_share = np.maximum(c / max(cur.size, 1), EPS)
    return float(np.sum((c_share - r_share) * np.log(c_share / r_share)))


def status(value: float) -> Status:
    """``"ok"`` below :data:`WATCH`, ``"watch"`` below :data:`ACT`, else ``"act"``."""
    return "act" if value >= ACT else "watch" if value >= WATCH else "ok"


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column.

    Attributes:
        column: its name; psi: PSI (dimensionless); status: from :func:`status`.
        ks_statistic: the KS ``D`` (0..1); ks_pvalue: its two-sided p-value.
        reference_mean, current_mean: means, in the column's unit.
    """

    column: str
    psi: float
    status: Status
    ks_statistic: float
    ks_pvalue: float
    reference_mean: float
    current_mean: float


@dataclass(frozen=True)
class DriftReport:
    """Drift of every compared column.

    Attributes:
        columns: one :class:`ColumnDrift` per column, in the order compared.
        n_reference, n_current: rows compared.
        bins: quantile bins of the PSI.
    """

    columns: tuple[ColumnDrift, ...]
    n_reference: int
    n_current: int
    bins: int = BINS

    def named(self, level: Status) -> list[str]:
        """Columns whose status is ``level``."""
        return [c.column for c in self.columns if c.status == level]

    @property
    def status(self) -> Status:
        """The worst status of any column."""
        levels = {c.status for c in self.columns}
        return "act" if "act" in levels else "watch" if "watch" in levels else "ok"

    @property
    def retrain(self) -> bool:
        """Whether retraining is due (some column reached :data:`ACT`)."""
        return self.status == "act"

    def to_dict(self) -> dict[str, Any]:
        """JSON values: ``status``, ``retrain``, ``act`` and ``watch`` (column names),
        ``thresholds``, ``n_reference``, ``n_current``, ``bins`` and ``columns`` (one record
        per column, the fields of :class:`ColumnDrift`)."""
        return {
            "status": self.status,
            "retrain": self.retrain,
            "act": self.named("act"),
            "watch": self.named("watch"),
            "thresholds": {"watch": WATCH, "act": ACT},
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "bins": self.bins,
            "columns": [asdict(c) for c in self.columns],
        }

    def table(self) -> pd.DataFrame:
        """One row per column (the fields of :class:`ColumnDrift`)."""
        return pd.DataFrame([asdict(c) for c in self.columns])


def drift(
    reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str], bins: int = BINS
) -> DriftReport:
    """PSI and KS of each of ``columns`` (numeric) between ``reference`` and ``current``."""
    rows = []
    for column in columns:
        ref = reference[column].to_numpy(dtype=np.float64)
        cur = current[column].to_numpy(dtype=np.float64)
        value = psi(ref, cur, bins)
        ks = stats.ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)])
        rows.append(
            ColumnDrift(
                column=column,
                psi=value,
                status=status(value),
                ks_statistic=float(ks.statistic),
                ks_pvalue=float(ks.pvalue),
                reference_mean=float(np.nanmean(ref)),
                current_mean=float(np.nanmean(cur)),
            )
        )
    return DriftReport(tuple(rows), len(reference), len(current), bins)


__all__ = ["ACT", "BINS", "EPS", "WATCH", "ColumnDrift", "DriftReport", "drift", "psi", "status"]
