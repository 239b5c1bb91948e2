"""Drift statistics: PSI on quantile bins of the reference (checked by hand), the KS test, the
thresholds and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from microsub.serve import drift


def test_psi_matches_the_formula_on_shares_computed_by_hand() -> None:
    reference = np.repeat([1.0, 2.0, 3.0, 4.0], 25)  # four values, a quarter each
    current = np.repeat([1.0, 2.0, 3.0, 4.0], [10, 20, 30, 40])
    r, c = np.full(4, 0.25), np.array([0.1, 0.2, 0.3, 0.4])
    assert drift.psi(reference, current) == pytest.approx(np.sum((c - r) * np.log(c / r)))
    assert drift.psi(reference, reference) == 0.0


def test_a_binary_column_gets_one_bin_per_value() -> None:
    reference = np.r_[np.zeros(90), np.ones(10)]
    current = np.r_[np.zeros(70), np.ones(30)]
    expected = (0.7 - 0.9) * np.log(0.7 / 0.9) + (0.3 - 0.1) * np.log(0.3 / 0.1)
    assert drift.psi(reference, current) == pytest.approx(expected)


def test_values_outside_the_reference_and_empty_bins_stay_finite() -> None:
    reference = np.linspace(0, 1, 1000)
    current = np.full(500, 5.0)  # all above the reference: one bin, the others empty
    value = drift.psi(reference, current)
    expected = (1 - 0.1) * np.log(1 / 0.1) + 9 * (drift.EPS - 0.1) * np.log(drift.EPS / 0.1)
    assert value == pytest.approx(expected)
    assert drift.psi(reference, np.r_[current, np.nan]) == pytest.approx(expected)  # NaN dropped


LEVELS = [(0.0, "ok"), (0.0999, "ok"), (0.1, "watch"), (0.1999, "watch"), (0.2, "act"), (3, "act")]


@pytest.mark.parametrize(("value", "status"), LEVELS)
def test_thresholds(value, status) -> None:
    assert drift.status(value) == status


def test_report_names_the_shifted_columns_with_ks_beside_psi() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=5000), "b": rng.normal(size=5000),
                              "c": rng.normal(size=5000)})  # fmt: skip
    current = pd.DataFrame({"a": rng.normal(size=4000), "b": rng.normal(0.4, 1, size=4000),
                            "c": rng.normal(1.0, 1, size=4000)})  # fmt: skip
    report = drift.drift(reference, current, ["a", "b", "c"])
    by_name = {c.column: c for c in report.columns}
    assert by_name["a"].status == "ok" and by_name["b"].status == "watch"
    assert by_name["c"].status == "act" and report.retrain and report.status == "act"
    ks = stats.ks_2samp(reference["c"], current["c"])
    assert by_name["c"].ks_statistic == pytest.approx(ks.statistic)
    assert by_name["c"].ks_pvalue == pytest.approx(ks.pvalue)
    assert by_name["b"].current_mean == pytest.approx(current["b"].mean())
    doc = report.to_dict()
    assert doc["act"] == ["c"] and doc["watch"] == ["b"] and doc["retrain"] is True
    assert doc["thresholds"] == {"watch": 0.1, "act": 0.2}
    assert (doc["n_reference"], doc["n_current"]) == (5000, 4000)
    assert list(report.table()["column"]) == ["a", "b", "c"]
    calm = drift.drift(reference, reference.iloc[:2500], ["a", "b"])
    assert calm.status == "ok" and not calm.retrain
