"""The business configuration: the framework's defaults, validated, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from microsub.business.config import DEFAULT_PATH, config_text, load_config
from microsub.errors import ConfigError


def test_defaults_hold_the_framework() -> None:
    c = load_config()
    assert c.project == "Customer Churn Prediction"
    assert c.budget_usd_per_month == 50_000
    assert {g.key: (g.direction, g.target) for g in c.gates} == {
        "roc_auc": (">=", 0.80),
        "precision_at_20": (">=", 0.60),
        "scoring_p99_ms": ("<", 100.0),
        "demographic_parity_ratio": (">=", 0.80),
        "churn_reduction": (">=", 0.20),
    }
    tiers = {t.name: (t.min_risk, t.max_risk, t.cost_usd, t.effect) for t in c.interventions}
    assert tiers == {
        "personal outreach": (0.8, 1.0, 50.0, 0.40),
        "personalised offer": (0.5, 0.8, 10.0, 0.20),
        "automated nudge": (0.0, 0.5, 0.50, 0.05),
    }
    assert c.budget_usd_per_session == pytest.approx(50_000 / c.sessions_per_month)
    assert "12 months of history" in c.constraints and len(c.constraints) == 4
    assert "budget_usd_per_month: 50000" in config_text()


def test_scaled_effects_are_capped_at_one() -> None:
    c = load_config().scaled(3.0)
    assert [t.effect for t in c.interventions] == [1.0, 0.6000000000000001, 0.15000000000000002]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(budget_usd_per_month=-1), "budget_usd_per_month"),
        (lambda d: d["interventions"][0].update(effect=1.5), "effect"),
        (lambda d: d["interventions"][1].update(max_risk=0.7), "gap or overlap"),
        (lambda d: d["interventions"].pop(), "cover risks from 0 to 1"),
        (lambda d: d["gates"].append(d["gates"][0]), "gate keys must be unique"),
        (lambda d: d.update(unknown_field=1), "unknown_field"),
        (lambda d: d["gates"][0].update(direction=">"), "direction"),
    ],
)
def test_invalid_configurations_are_refused_by_name(tmp_path: Path, change, message) -> None:
    doc = yaml.safe_load(DEFAULT_PATH.read_text())
    change(doc)
    path = tmp_path / "business.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_unreadable_or_broken_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MICROSUB_BUSINESS_CONFIG"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("project: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
