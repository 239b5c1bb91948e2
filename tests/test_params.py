"""The generator's parameters (pydantic) and the golden digest of its output.

A change to the generative model or the log writer that changes the bytes written for a seed
must bump ``GENERATOR_VERSION`` (it is part of the data's identity and of every cache key); the
golden digests below catch a change that forgot to.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from microsub.data import synth
from microsub.errors import ConfigError
from microsub.sim import params

#: sha256 of the first 500 pages at seed 20190513 with the default parameters, per generator
#: version. A new version adds its digest here.
GOLDEN_LOG = {1: "4388f864cd3ebee34848cd7ef47edc344982b626f48eb39c74bf50c947190d6b"}
#: params_digest of the default parameters, per generator version.
GOLDEN_PARAMS = {1: "f4e8535ef1c0f333"}


def test_golden_digest_of_a_small_seeded_log(tmp_path: Path) -> None:
    summary = synth.generate(tmp_path / "golden.txt", n_pages=500, seed=20190513)
    digest = hashlib.sha256((tmp_path / "golden.txt").read_bytes()).hexdigest()
    assert digest == summary.sha256
    version = params.GENERATOR_VERSION
    assert version in GOLDEN_LOG, f"record the golden digest of generator version {version}"
    assert digest == GOLDEN_LOG[version], (
        "the synthetic log's bytes changed for the same seed and parameters: bump "
        "microsub.sim.params.GENERATOR_VERSION and record the new digest in GOLDEN_LOG"
    )
    assert summary.params_digest == GOLDEN_PARAMS[version]


def test_params_digest_changes_with_any_coefficient() -> None:
    base = params.params_digest(params.DEFAULT_PARAMS)
    assert params.params_digest(params.SynthParams()) == base
    assert params.params_digest(params.DEFAULT_PARAMS.replace(leave_depth=0.21)) != base


def test_parameters_are_frozen_and_forbid_unknown_names() -> None:
    with pytest.raises(ValidationError):
        params.DEFAULT_PARAMS.leave_depth = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="leave_dept"):
        params.SynthParams(leave_dept=0.3)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"age_level_probs": (0.5, 0.5)}, "age_level_probs"),
        ({"purchase_power_probs": (0.2,) * 7}, "purchase_power_probs"),
        ({"quantity_probs": ()}, "quantity_probs"),
        ({"price_endings": ((120, 1.0),)}, "price_endings"),
        ({"hour_weights": (1.0,) * 23}, "hour_weights"),
        ({"hour_weights": (0.0,) + (1.0,) * 23}, "hour_weights"),
        ({"price_knots": ((0.0, 5.0), (-1.0, 10.0))}, "price_knots"),
        ({"cvr_knots": ((0.0, 0.5), (1.0, 2.0))}, "cvr_knots"),
        ({"gender_1_prob": 1.5}, "gender_1_prob"),
        ({"click_user_sd": -0.1}, "click_user_sd"),
        ({"appeal_sd": 0.0}, "appeal_sd"),
        ({"pad_page_share": 1.0}, "pad_page_share"),
        ({"ctr_min": 0.5, "ctr_max": 0.4}, "ctr_min"),
        ({"corr_ctr_cvr": 0.99, "corr_cvr_price": 0.99, "corr_ctr_price": -0.99}, "corr"),
    ],
)
def test_invalid_parameters_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as error:
        params.DEFAULT_PARAMS.replace(**changes)
    assert "invalid generator parameters" in str(error.value)


def test_replace_keeps_the_other_coefficients() -> None:
    changed = params.DEFAULT_PARAMS.replace(leave_bounce=0.0)
    assert changed.leave_bounce == 0.0
    assert changed.leave_depth == params.DEFAULT_PARAMS.leave_depth
    assert params.DEFAULT_PARAMS.leave_bounce == 1.8
