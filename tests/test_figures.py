"""Figures: each draws the numbers it is given, labels its axes, and leaves pyplot clean."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from microsub.analysis import describe, explore
from microsub.analysis.verdicts import MARGINS
from microsub.fmt import format_number
from microsub.models import benchmark, specs
from microsub.report import figures
from microsub.report.figures.base import COLORS, GROUP_STYLES
from microsub.report.figures.explore import VERDICT_COLORS
from microsub.report.labels import LABELS, SNAKE_CASE, label
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
            # a panel of a grid may be labelled by the panels it shares an axis with
            shared = [
                *ax.get_shared_x_axes().get_siblings(ax),
                *ax.get_shared_y_axes().get_siblings(ax),
            ]
            labelled = any(a.get_xlabel() or a.get_ylabel() for a in shared)
            assert labelled or not ax.has_data(), name
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


def test_survival_figure_draws_one_panel_per_group_with_a_visible_band(exploration):
    survival = exploration.survival
    fig = figures.survival_curves(survival)
    groups = list(describe.PURCHASE_POWER_GROUPS)
    axes, widths = fig.axes[: len(groups)], fig.axes[len(groups) :]
    assert [ax.get_title() for ax in axes] == groups
    for bars, group in zip(widths, groups, strict=True):
        curve = survival.curves[survival.curves["group"] == group]
        heights = [b.get_height() for b in bars.patches]
        expected = (curve["ci_high"] - curve["ci_low"]).to_numpy() * 100
        np.testing.assert_allclose(heights, np.nan_to_num(expected))
    for ax, group, look in zip(axes, groups, GROUP_STYLES, strict=False):
        own = [line for line in ax.get_lines() if line.get_label() == group]
        assert len(own) == 1, group
        curve = survival.curves[survival.curves["group"] == group]
        np.testing.assert_allclose(own[0].get_ydata(), curve["survival"].to_numpy())
        assert to_hex(own[0].get_color()) == look["color"]
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert bands and all(b.get_alpha() >= 0.3 for b in bands), group
        ys = np.concatenate([p.vertices[:, 1] for b in bands for p in b.get_paths()])
        assert ys.min() == pytest.approx(np.nanmin(curve["ci_low"]), abs=1e-9)
        assert ys.max() == pytest.approx(np.nanmax(curve["ci_high"]), abs=1e-9)
    first = survival.curves.groupby("group", sort=False).first()
    assert (first["survival"] == 1.0).all()
    assert survival.max_band_width == pytest.approx(
        (survival.curves["ci_high"] - survival.curves["ci_low"]).max()
    )


def _texts(fig: Figure) -> list[str]:
    """Every text a reader sees in a figure: titles, axis labels, ticks, legends, annotations."""
    out = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        out += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()] + [legend.get_title().get_text()]
    return [t for t in out if t]


def test_no_figure_shows_a_raw_column_name(exploration):
    raw = [re.compile(rf"(?<![\w]){re.escape(name)}(?![\w])") for name in (*SNAKE_CASE, "done")]
    for name, fig in _all(exploration).items():
        for text in _texts(fig):
            found = [p.pattern for p in raw if p.search(text)]
            assert not found, f"{name} shows {text!r}"


def test_axes_take_their_words_from_the_one_mapping(exploration):
    r = exploration.result
    assert figures.fatigue(r("fatigue")).axes[1].get_xlabel() == LABELS["action_page_id"]
    assert figures.purchase_reset(r("purchase_reset")).axes[0].get_xlabel() == label(
        "action_page_id"
    )
    assert figures.hour_of_day(r("hour")).axes[0].get_xlabel().startswith(LABELS["hour"])
    left, right = figures.purchase_power(r("purchase_power_value"), r("purchase_power_churn")).axes
    assert left.get_xlabel().startswith(LABELS["state_purchase_power"])
    assert right.get_xlabel().startswith(LABELS["state_purchase_power"])


def test_heatmap_shows_the_golden_features_and_targets_in_words(exploration):
    corr = exploration.correlation
    cols = [c for c in figures.HEATMAP_COLUMNS if c in corr.columns]
    assert len(cols) == len(figures.HEATMAP_COLUMNS)  # all of them vary in the simulated pages
    fig = figures.correlation_heatmap(corr)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [label(c) for c in cols[:-1]]
    assert [t.get_text() for t in ax.get_yticklabels()] == [label(c) for c in cols[1:]]
    # a cell is written only where the correlation is not negligible, in its own words
    expected = sorted(
        format_number(corr.loc[a, b], 2)
        for i, a in enumerate(cols)
        for b in cols[:i]
        if abs(corr.loc[a, b]) >= MARGINS["correlation"]
    )
    written = sorted(t.get_text() for t in ax.texts if t.get_text())
    assert expected and written == expected
    # the deck's call: same columns, no numbers
    deck = figures.correlation_heatmap(corr, height=4.6, annotate=False).axes[0]
    assert not deck.texts
    assert [t.get_text() for t in deck.get_yticklabels()] == [label(c) for c in cols[1:]]


def test_neighbouring_groups_differ_in_colour_marker_and_dash(exploration):
    ax = figures.engagement(exploration.result("engagement")).axes[0]
    lines = [c.lines[0] for c in ax.containers]
    colours = [to_hex(line.get_color()) for line in lines]
    assert colours == [look["color"] for look in GROUP_STYLES[: len(lines)]]
    assert len(set(colours)) == len(colours)
    assert len({line.get_marker() for line in lines}) == len(lines)
    assert len({line.get_linestyle() for line in lines}) == len(lines)
    # the orange and the vermillion of the palette are never neighbours
    assert not {COLORS["second"], COLORS["accent"]} <= set(colours)


def test_fatigue_figure_shades_the_depths_where_the_trend_overshoots(exploration):
    result = exploration.result("fatigue")
    table = result.table.copy()
    deep = table["action_page_id"] >= 9
    table.loc[deep, "trend"] = table.loc[deep, "ci_high"] + 0.05
    fig = figures.fatigue(dataclasses.replace(result, table=table))
    shaded = [
        p for p in fig.axes[0].patches if p.get_label() == "trend above the observed interval"
    ]
    assert len(shaded) == 1
    x0, x1 = shaded[0].get_x(), shaded[0].get_x() + shaded[0].get_width()
    assert (x0, x1) == pytest.approx((8.5, 11.5))
    assert describe.trend_fit(table).above == (9, 10, 11)
    inside = table.assign(trend=table["rate"].where(table["action_page_id"] >= 1))
    fig = figures.fatigue(dataclasses.replace(result, table=inside))
    assert not [p for p in fig.axes[0].patches if p.get_label().startswith("trend above")]


def test_verdict_legend_lists_only_the_verdicts_that_occur(exploration):
    results = exploration.hypotheses
    ax = figures.verdicts(results).axes[0]
    present = {r.verdict for r in results if r.scale == "ratio" and np.isfinite(r.estimate)}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [v for v in VERDICT_COLORS if v in present]
    # all supported: one entry
    supported = [dataclasses.replace(r, verdict="supported") for r in results]
    ax = figures.verdicts(supported).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["supported"]
    # two verdicts, in the legend's fixed order
    mixed = [dataclasses.replace(r, verdict="inconclusive") for r in supported]
    mixed[0] = supported[0]
    ax = figures.verdicts(mixed).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["supported", "inconclusive"]


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
        "capture": figures.value_capture(
            bench.value_capture, bench.value_ranking, bench.metrics, bench.config.top_share
        ),  # fmt: skip
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
