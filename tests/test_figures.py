"""Figures: each draws the numbers it is given, labels its axes, and leaves pyplot clean."""

from __future__ import annotations

import numpy as np
import pytest

from microsub import figures, hypotheses
from test_hypotheses import simulate


@pytest.fixture(scope="module")
def exploration() -> hypotheses.Exploration:
    return hypotheses.run_all(simulate(2500, depth=0.2, night=0.6, seed=21), n_boot=30)


def _all(ex: hypotheses.Exploration) -> dict:
    r = ex.result
    return {
        "class_balance": figures.class_balance(ex.class_balance),
        "correlation": figures.correlation_heatmap(ex.correlation),
        "rewards": figures.reward_distribution(ex.rewards),
        "survival": figures.survival_curves(ex.survival),
        "fatigue": figures.fatigue(r("fatigue")),
        "hour": figures.hour_of_day(r("hour")),
        "purchase_power": figures.purchase_power(
            r("purchase_power_value"), r("purchase_power_churn")
        ),
        "engagement": figures.engagement(r("engagement")),
        "purchase_reset": figures.purchase_reset(r("purchase_reset")),
        "item_mix": figures.item_mix(r("item_mix_churn"), r("item_mix_spend")),
        "verdicts": figures.verdicts(ex.hypotheses),
    }


def test_every_figure_renders_with_labelled_axes_and_no_open_pyplot_figure(exploration, tmp_path):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    for name, fig in _all(exploration).items():
        assert set(plt.get_fignums()) == before, f"{name} left a pyplot figure open"
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>" or name == "correlation":  # labelled by ticks
                continue
            assert ax.get_xlabel() or ax.get_ylabel() or not ax.has_data(), name
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000, name


def test_fatigue_figure_plots_the_hazard_table(exploration):
    result = exploration.result("fatigue")
    fig = figures.fatigue(result)
    ax = fig.axes[0]
    observed = next(c for c in ax.containers if c.get_label() == "observed hazard")
    np.testing.assert_allclose(observed.lines[0].get_ydata(), result.table["rate"].to_numpy())
    bars = fig.axes[1].patches
    assert [b.get_height() for b in bars] == result.table["pages"].tolist()


def test_hour_figure_plots_24_hours_and_shades_both_windows(exploration):
    result = exploration.result("hour")
    ax = figures.hour_of_day(result).axes[0]
    line = ax.get_lines()[0]  # the rate line, drawn first
    np.testing.assert_allclose(line.get_xdata(), np.arange(24))
    np.testing.assert_allclose(line.get_ydata(), result.table["rate"].to_numpy())
    texts = {t.get_text() for t in ax.texts}
    assert {"night", "evening"} <= texts


def test_survival_figure_draws_one_step_curve_per_group(exploration):
    ax = figures.survival_curves(exploration.survival).axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == list(hypotheses.PURCHASE_POWER_GROUPS)
    first = exploration.survival.curves.groupby("group", sort=False).first()
    assert (first["survival"] == 1.0).all()


def test_verdict_figure_leaves_out_difference_scaled_estimates(exploration):
    ax = figures.verdicts(exploration.hypotheses).axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    ratio_names = [
        r.name for r in exploration.hypotheses if r.scale == "ratio" and np.isfinite(r.estimate)
    ]
    assert sorted(names) == sorted(ratio_names)
    assert "Purchase power and spend" not in names
