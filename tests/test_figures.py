"""Figures: each draws the numbers it is given, labels its axes, and leaves pyplot clean."""

from __future__ import annotations

import numpy as np
import pytest

from microsub.analysis import describe, explore
from microsub.models import benchmark, specs
from microsub.report import figures
from test_hypotheses import simulate


@pytest.fixture(scope="module")
def exploration() -> explore.Exploration:
    return explore.run_all(simulate(2500, depth=0.2, night=0.6, seed=21), n_boot=30)


def _all(ex: explore.Exploration) -> dict:
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
    assert labels == list(describe.PURCHASE_POWER_GROUPS)
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


# =============================================================================================
# Benchmark figures (chapter 05 and the deck), on a small benchmark of simulated pages
# =============================================================================================
@pytest.fixture(scope="module")
def bench():


    pages = simulate(1500, depth=0.2, engaged=-0.8, seed=3)
    config = specs.BenchmarkConfig(max_iter=10, n_boot=10, repeats=1)
    return benchmark.run_benchmark(pages, random_state=0, config=config)


def _bench_figures(bench) -> dict:
    return {
        "roc": figures.roc_curves(bench.roc, bench.metrics),
        "roc_slide": figures.roc_curves(bench.roc, bench.metrics, legend_outside=True),
        "pr": figures.pr_curves(bench.pr, bench.metrics),
        "calibration": figures.calibration_curves(bench.calibration, bench.metrics),
        "convergence": figures.convergence_curves(bench.convergence, bench.metrics),
        "confusion": figures.confusion_matrices(bench.confusion),
        "comparison": figures.model_comparison(bench.metrics),
        "comparison_value": figures.model_comparison(bench.metrics, "value", height=3.0),
        "descent": figures.descent_paths(bench.descent),
        "capture": figures.value_capture(bench.value_capture, bench.value_ranking, bench.metrics,
                                         bench.config.top_share),  # fmt: skip
    }


def test_benchmark_figures_render_with_labelled_axes_and_no_open_pyplot_figure(bench, tmp_path):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    for name, fig in _bench_figures(bench).items():
        assert set(plt.get_fignums()) == before, f"{name} left a pyplot figure open"
        for ax in fig.axes:
            if ax.get_visible() and ax.has_data():
                assert ax.get_xlabel() and ax.get_ylabel() or name.startswith("comparison"), name
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000, name


def test_roc_figure_draws_one_curve_per_churn_model_with_its_auc(bench):
    ax = figures.roc_curves(bench.roc, bench.metrics).axes[0]
    churn = bench.metrics[bench.metrics["task"] == "churn"]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == [f"{m} ({a:.3f})" for m, a in zip(churn["model"], churn["roc_auc"],
                                                        strict=True)]  # fmt: skip
    first = ax.get_lines()[0]
    curve = bench.roc[bench.roc["key"] == churn["key"].iloc[0]]
    np.testing.assert_allclose(first.get_xdata(), curve["fpr"])
    # a scratch model solid, its scikit-learn counterpart dashed, in the same colour
    gd, lbfgs = ax.get_lines()[0], ax.get_lines()[1]
    assert gd.get_linestyle() == "-" and lbfgs.get_linestyle() == "--"
    assert gd.get_color() == lbfgs.get_color()


def test_confusion_figure_shows_the_counts_of_each_model(bench):
    fig = figures.confusion_matrices(bench.confusion)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(bench.confusion)
    row = bench.confusion.iloc[0]
    texts = [t.get_text().split("\n")[0] for t in visible[0].texts]
    assert texts == [f"{row[c]:,.0f}" for c in ("tn", "fp", "fn", "tp")]


def test_convergence_figure_plots_positive_gaps_on_a_log_axis(bench):
    left, right = figures.convergence_curves(bench.convergence, bench.metrics).axes
    assert left.get_yscale() == "log"
    for line in left.get_lines():
        assert (np.asarray(line.get_ydata()) > 0).all()
    assert len(right.get_lines()) == 2


def test_descent_figure_draws_each_variant_with_its_iterations(bench):
    ax = figures.descent_paths(bench.descent).axes[0]
    assert ax.get_yscale() == "log"
    steps = bench.descent.groupby("variant", sort=False)["iteration"].max()
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == [f"{v}: {n:,} iterations" for v, n in steps.items()]
    styles = [line.get_linestyle() for line in ax.get_lines()]
    assert styles == ["--", "-", "--", "-"]  # plain dashed, accelerated solid


def test_capture_figure_plots_each_score_and_its_share_at_the_top(bench):
    ax = figures.value_capture(bench.value_capture, bench.value_ranking, bench.metrics,
                               bench.config.top_share).axes[0]  # fmt: skip
    scored = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(scored) == bench.value_capture["score"].nunique()
    actual = bench.value_capture[bench.value_capture["score"] == "actual"]
    line = next(li for li in scored if li.get_label().startswith("the page values"))
    np.testing.assert_allclose(line.get_ydata(), actual["share_total"])


def test_comparison_figure_marks_the_chosen_model_and_the_ties(bench):
    metrics = bench.metrics.copy()
    churn = metrics["task"] == "churn"
    # a constructed tie: the first churn model ties with the chosen one
    metrics.loc[metrics.index[churn][0], "tied"] = True
    fig = figures.model_comparison(metrics, "churn")
    names = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert sum(n.endswith("★") for n in names) == 1
    expected = int((metrics.loc[churn, "tied"] & ~metrics.loc[churn, "best"]).sum())
    assert sum(n.endswith("(tie)") for n in names) == expected >= 1
