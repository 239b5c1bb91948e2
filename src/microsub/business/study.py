"""The business case, computed: programmes compared on the same simulated sessions, uplift,
sensitivity to the assumed effects, fairness, and the measurements of the success gates.

Programmes (each a targeting policy over a page ranking; none, the budget, and the money as
in :mod:`microsub.business.programme`):

* no intervention (the baseline: the logged ranking, no spend);
* the framework's fixed risk tiers, under the budget;
* expected-value targeting, its gain-per-dollar threshold calibrated on a pilot run so that
  the budget is spent in that order (:func:`~microsub.business.targeting.calibrate_threshold`);
* a random allocation of the fixed tiers' spend (what targeting by risk adds);
* two re-rankings of every page from the simulator (:mod:`microsub.sim.candidates`), which
  cost no intervention: by predicted clicks (``a = 0, b = 0``) and by expected Yuan per
  impression (``a = 1, b = 1``).

The recommended programme is the one with the largest net value among those that reach the
churn-reduction objective, or the largest net value overall when none does. Its churn
reduction and its demographic parity ratio are the measurements of those two gates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from microsub.business.config import BusinessConfig
from microsub.business.fairness import audit, mitigation_cost
from microsub.business.programme import ProgrammeRun, chain_risk, compare, paired_difference, play
from microsub.business.targeting import (
    NONE,
    ExpectedValue,
    NoIntervention,
    RandomSpend,
    RiskTiers,
    calibrate_threshold,
    gains,
    tier_of,
)
from microsub.business.uplift import qini_table, trial
from microsub.business.value import StakeTable
from microsub.plain import plain
from microsub.progress import Progress
from microsub.sim.candidates import ACTION_GRID
from microsub.sim.learned import LearnedSimulator
from microsub.sim.truth import TrueSimulator

#: The re-rankings compared, ``(name, (a, b))``.
RERANKINGS = (
    ("re-rank every page by clicks (a=0, b=0)", (0.0, 0.0)),
    ("re-rank every page by expected Yuan (a=1, b=1)", (1.0, 1.0)),
)
#: The random control: the fixed tiers' spend on random pages (what targeting by risk adds).
RANDOM_CONTROL = "random allocation (the fixed tiers' spend)"
#: Programmes that are comparisons, never candidates to fund.
CONTROLS = (NoIntervention.name, RANDOM_CONTROL)
#: Units :func:`run_business` reports to its ``progress`` callback.
STEPS = 6


@dataclass
class BusinessResult:
    """What the business study computed (module docstring). Tables are pandas frames.

    Attributes:
        n_sessions, seed: simulated sessions per programme, and the seed.
        threshold: the expected-value policy's gain-per-dollar threshold.
        programmes: :func:`~microsub.business.programme.compare` rows of every programme in
            every simulator run (``learned``; ``truth`` when available).
        verdict: the best programme and the runner-up by net value, their paired difference
            with an interval, and the recommended programme and why.
        breakeven: per tier, the median risk of its pages, their median value at stake and the
            value at stake at which the tier pays for itself.
        qini_curves, qini: the randomised trial's Qini curves and coefficients.
        sensitivity: churn reduction and net value of the targeting programmes when every
            effect is scaled.
        fairness_groups, fairness: the fairness audit of every programme that targets.
        measurements: gate key -> measured value (churn reduction, demographic parity ratio).
    """

    n_sessions: int
    seed: int
    threshold: float
    programmes: pd.DataFrame
    verdict: dict[str, Any]
    breakeven: pd.DataFrame
    qini_curves: pd.DataFrame
    qini: pd.DataFrame
    sensitivity: pd.DataFrame
    fairness_groups: pd.DataFrame
    fairness: pd.DataFrame
    measurements: dict[str, float]

    TABLES = ("programmes", "breakeven", "qini_curves", "qini", "sensitivity",
              "fairness_groups", "fairness")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON content."""
        return plain({
            "n_sessions": self.n_sessions, "seed": self.seed, "threshold": self.threshold,
            "verdict": self.verdict, "measurements": self.measurements,
            "tables": {name: getattr(self, name) for name in self.TABLES},
        })  # fmt: skip

    def row(self, programme: str, simulator: str = "learned") -> pd.Series:
        """The programme table's row of ``programme`` in ``simulator``."""
        t = self.programmes
        return t[(t["policy"] == programme) & (t["simulator"] == simulator)].iloc[0]


@dataclass
class _Runner:
    """Runs programmes of one configuration on one simulator, same sessions every time."""

    simulator: LearnedSimulator | TrueSimulator
    config: BusinessConfig
    stake: StakeTable
    risk: Any
    n_sessions: int
    seed: int

    def run(self, targeting: Any, **kw: Any) -> ProgrammeRun:
        return play(self.simulator, targeting, self.config, self.stake, self.risk,
                    n_sessions=self.n_sessions, seed=self.seed, **kw)  # fmt: skip

    def threshold(self) -> float:
        """The expected-value threshold that spends the budget best-first (pilot run)."""
        pilot = self.run(ExpectedValue(1.0), budget_usd=float("inf"))
        log = pilot.pages_log[pilot.pages_log["tier"] != NONE]
        if log.empty:
            return 1.0
        gain, cost = gains(log["risk"].to_numpy(), log["stake_usd"].to_numpy(),
                           self.config.interventions)  # fmt: skip
        rows, tier = np.arange(len(log)), log["tier"].to_numpy()
        budget = self.n_sessions * self.config.budget_usd_per_session
        return calibrate_threshold(gain[rows, tier] / cost[rows, tier], cost[rows, tier], budget)

    def programmes(self, threshold: float) -> dict[str, ProgrammeRun]:
        runs = {"none": self.run(NoIntervention()), "tiers": self.run(RiskTiers()),
                "ev": self.run(ExpectedValue(threshold))}  # fmt: skip
        log = runs["tiers"].pages_log
        granted = log["tier"].to_numpy()[log["tier"].to_numpy() != NONE]
        shares = np.bincount(granted, minlength=len(self.config.interventions)).astype(float)
        rate = len(granted) / len(log)
        runs["random"] = self.run(
            RandomSpend(rate, tuple(shares / shares.sum()) if shares.sum() else ()),
            budget_usd=float(runs["tiers"].spend.sum()),
            name=RANDOM_CONTROL,
        )
        for name, ab in RERANKINGS:
            runs[name] = self.run(NoIntervention(), page_action=ACTION_GRID.index(ab) + 1,
                                  name=name)  # fmt: skip
        return runs


def _verdict(runs: dict[str, ProgrammeRun], rows: pd.DataFrame, config: BusinessConfig,
             target: float) -> dict[str, Any]:  # fmt: skip
    by_net = rows.sort_values("net_usd", ascending=False)
    best, second = by_net.iloc[0], by_net.iloc[1]
    key = {r.policy: k for k, r in runs.items()}
    diff = paired_difference(runs[key[best["policy"]]], runs[key[second["policy"]]], config)
    reaching = by_net[by_net["churn_reduction"] >= target]
    recommended = reaching.iloc[0] if len(reaching) else best
    return {
        "best": best["policy"], "runner_up": second["policy"],
        "net_difference_usd": diff[0], "net_difference_low": diff[1],
        "net_difference_high": diff[2],
        "recommended": recommended["policy"],
        "recommended_reaches_objective": bool(len(reaching)),
        "rule": "the largest net value among the programmes that reach the churn objective, "
                "else the largest net value",
    }  # fmt: skip


def _breakeven(base: ProgrammeRun, config: BusinessConfig) -> pd.DataFrame:
    log = base.pages_log
    tier = tier_of(log["risk"].to_numpy(), config.interventions)
    rows = []
    for k, t in enumerate(config.interventions):
        part = log[tier == k]
        risk = float(part["risk"].median()) if len(part) else float("nan")
        rows.append({"tier": t.name, "pages_share": len(part) / len(log), "median_risk": risk,
                     "median_stake_usd": float(part["stake_usd"].median()),
                     "breakeven_stake_usd": t.cost_usd / (risk * t.effect)})  # fmt: skip
    return pd.DataFrame(rows)


def _sensitivity(runner: _Runner, factors: tuple[float, ...]) -> pd.DataFrame:
    rows = []
    base = runner.run(NoIntervention())
    for factor in factors:
        scaled = _Runner(runner.simulator, runner.config.scaled(factor), runner.stake,
                         runner.risk, runner.n_sessions, runner.seed)  # fmt: skip
        for key, run in scaled.programmes(scaled.threshold()).items():
            if key in ("none",) or key.startswith("re-rank"):
                continue
            r = compare(run, base, scaled.config)
            rows.append({"factor": factor, "policy": r["policy"],
                         "churn_reduction": r["churn_reduction"], "net_usd": r["net_usd"],
                         "cost_usd": r["cost_usd"]})  # fmt: skip
    return pd.DataFrame(rows)


def _fairness(
    runs: dict[str, ProgrammeRun], config: BusinessConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    groups, summary = [], []
    target = config.gate("demographic_parity_ratio").target
    for run in runs.values():
        g, s = audit(run)
        groups.append(g.assign(policy=run.policy))
        s = s.assign(
            policy=run.policy,
            passes=s["demographic_parity_ratio"] >= target,
            mitigation_usd=mitigation_cost(run, target, config.sessions_per_month),
        )
        summary.append(s)  # fmt: skip
    return pd.concat(groups, ignore_index=True), pd.concat(summary, ignore_index=True)


def run_business(
    learned: LearnedSimulator,
    stake: StakeTable,
    config: BusinessConfig,
    *,
    truth: TrueSimulator | None,
    n_sessions: int,
    seed: int = 0,
    progress: Progress | None = None,
) -> BusinessResult:
    """The business study (module docstring) on ``learned`` (and ``truth`` when given).

    Args:
        learned: the learned simulator (its chain also gives the churn risk).
        stake: value at stake by depth and purchase power.
        config: the business configuration.
        truth: the true simulator, or None (real data).
        n_sessions: simulated sessions per programme.
        seed: seed of the simulated sessions (the same for every programme).
        progress: called with 1 after each of :data:`STEPS` steps.
    """
    tick = progress or (lambda n: None)
    risk = chain_risk(learned.models)
    runner = _Runner(learned, config, stake, risk, n_sessions, seed)
    threshold = runner.threshold()
    runs = runner.programmes(threshold)
    tick(1)
    base = runs["none"]
    rows = pd.DataFrame([compare(r, base, config) for r in runs.values()])
    target = config.gate("churn_reduction").target
    verdict = _verdict(runs, rows, config, target)
    if truth is not None:
        true_runner = _Runner(truth, config, stake, risk, n_sessions, seed)
        true_runs = true_runner.programmes(threshold)
        rows = pd.concat([rows, pd.DataFrame(
            [compare(r, true_runs["none"], config) for r in true_runs.values()])],
            ignore_index=True)  # fmt: skip
    tick(1)
    offer = 1  # the middle tier: the trial's intervention
    curves, qini = qini_table(
        trial(learned, config, stake, risk, tier=offer, n_sessions=n_sessions, seed=seed + 1),
        config.interventions[offer],
    )
    tick(1)
    sensitivity = _sensitivity(runner, config.sensitivity_factors)
    tick(1)
    targeted = {k: r for k, r in runs.items() if k in ("tiers", "ev", "random")}
    fairness_groups, fairness = _fairness(targeted, config)
    tick(1)
    recommended = next(r for r in runs.values() if r.policy == verdict["recommended"])
    parity = audit(recommended)[1]["demographic_parity_ratio"].min()
    learned_rows = rows[rows["simulator"] == "learned"].set_index("policy")
    measurements = {
        "churn_reduction": float(learned_rows.loc[verdict["recommended"], "churn_reduction"]),
        "demographic_parity_ratio": float(parity),
    }
    tick(1)
    return BusinessResult(
        n_sessions=n_sessions, seed=seed, threshold=threshold, programmes=rows,
        verdict=verdict, breakeven=_breakeven(base, config), qini_curves=curves, qini=qini,
        sensitivity=sensitivity, fairness_groups=fairness_groups, fairness=fairness,
        measurements=measurements,
    )  # fmt: skip
