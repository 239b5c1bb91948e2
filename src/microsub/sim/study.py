"""The simulator study: build the simulators, validate them, compare policies, measure the gap
to the truth. Pure: the pages and items tables in, a :class:`SimulationResult` out.

Protocol, fixed before any result was looked at:

1. **Halves.** The sessions are split at random into halves A and B (grouped by session,
   seeded). Simulator A is built from A only (models, candidate pools, session starts),
   simulator B from B only; simulator "all" from every session (the one the Gymnasium
   environment loads by default).
2. **Validation.** Simulator A under the logged policy is compared with the held-out sessions
   of B: sessions reaching each page, churn after each page, pages and Yuan per session, the
   share of sessions with a purchase, each held to :data:`~microsub.sim.evaluate.TOLERANCES`;
   and the chain's links are scored on B's pages (AUC, R²).
3. **Policies.** Random, logged, each of the nine fixed ``(a, b)``, greedy (expected Yuan of the
   page by chain A), and a linear policy learned by the cross-entropy method in simulator A
   only. Each runs ``n_sessions`` sessions in simulator A (what the simulator promises),
   simulator B (a simulator fitted to other data) and, on synthetic data made by the default
   generator, the truth; all on the same seed.
4. **Gap.** Per policy, delivered minus promised (B and truth against A), and whether the
   ranking of the policies survives (Spearman's rho; the same best policy?).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from microsub.contract import item_matrix
from microsub.models.chain import page_mix
from microsub.models.evaluation import grouped_split
from microsub.plain import plain
from microsub.progress import Progress
from microsub.sim.build import build_simulator
from microsub.sim.candidates import ACTION_GRID, action_names, slot_click_curve
from microsub.sim.evaluate import (
    HAZARD_MIN_PAGES,
    N_SESSIONS,
    TOLERANCES,
    Observed,
    Rollout,
    gap_table,
    hazard_table,
    policy_table,
    ranking_agreement,
    reach,
    rollout,
    validation_table,
)
from microsub.sim.learned import LearnedSimulator
from microsub.sim.params import SynthParams
from microsub.sim.policies import (
    CEMConfig,
    FixedPolicy,
    GreedyPolicy,
    Policy,
    RandomPolicy,
    train_cem,
)
from microsub.sim.truth import TrueSimulator


def study_steps(cem: CEMConfig) -> int:
    """Units :func:`run_study` reports to its ``progress`` callback."""
    return 3 + cem.iterations + 3


@dataclass
class SimulationResult:
    """What the study computed (see the module docstring). Tables are pandas frames.

    Attributes:
        n_sessions, seed: sessions per policy and simulator, and the seed.
        halves: sessions and pages of A and B.
        chain_scores: the links of chain A scored on B's pages (one row).
        slot_curve: clicks by slot in the log (:func:`~microsub.sim.candidates.slot_click_curve`).
        validation: :func:`~microsub.sim.evaluate.validation_table` (A, logged, vs B).
        reach_curves, hazard_curves: ``source`` ("simulator A", "held-out B"), the depth and the
            share reaching it / the churn after it with a Wilson interval (the validation figure).
        policies: :func:`~microsub.sim.evaluate.policy_table` of every policy in every simulator.
        hazards: churn by depth (with intervals) of every policy in every simulator.
        gaps: :func:`~microsub.sim.evaluate.gap_table` (promised in A; delivered in B, truth).
        rankings: simulator -> :func:`~microsub.sim.evaluate.ranking_agreement`.
        cem_history: best mean session value of each cross-entropy round (in A).
        truth: whether the true generator was run, and why not when it was not.
        simulators: ``{"all": ..., "A": ..., "B": ...}`` the built simulators (to store).
    """

    n_sessions: int
    seed: int
    halves: pd.DataFrame
    chain_scores: pd.DataFrame
    slot_curve: pd.DataFrame
    validation: pd.DataFrame
    reach_curves: pd.DataFrame
    hazard_curves: pd.DataFrame
    policies: pd.DataFrame
    hazards: pd.DataFrame
    gaps: pd.DataFrame
    rankings: dict[str, dict[str, Any]]
    cem_history: list[float]
    truth: dict[str, Any]
    simulators: dict[str, LearnedSimulator] = field(repr=False)

    TABLES = ("halves", "chain_scores", "slot_curve", "validation", "reach_curves",
              "hazard_curves", "policies", "hazards", "gaps")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON content (every table as records; no simulators)."""
        return plain(
            {
                "n_sessions": self.n_sessions,
                "seed": self.seed,
                "tolerances": dict(TOLERANCES),
                "hazard_min_pages": HAZARD_MIN_PAGES,
                "actions": action_names(),
                "action_grid": [list(ab) for ab in ACTION_GRID],
                "rankings": self.rankings,
                "cem_history": self.cem_history,
                "truth": self.truth,
                "validation_passed": bool(self.validation["within"].all()),
                "tables": {name: getattr(self, name) for name in self.TABLES},
            }
        )

    def row(self, policy: str, simulator: str) -> pd.Series:
        """The policy table's row of ``policy`` in ``simulator``."""
        t = self.policies
        return t[(t["policy"] == policy) & (t["simulator"] == simulator)].iloc[0]


def _halves(
    pages: pd.DataFrame, items: pa.Table, seed: int
) -> tuple[tuple[pd.DataFrame, pa.Table], tuple[pd.DataFrame, pa.Table]]:
    split = grouped_split(pages["session_id"].to_numpy(), test_size=0.5, random_state=seed)
    return (
        (pages.iloc[split.train].reset_index(drop=True), items.take(split.train)),
        (pages.iloc[split.test].reset_index(drop=True), items.take(split.test)),
    )


def _curves(sim: Rollout, held_out: Observed) -> tuple[pd.DataFrame, pd.DataFrame]:
    reach_rows, hazard_rows = [], []
    for label, r in (("simulator A", sim), ("held-out B", held_out.as_rollout())):
        for d, share in enumerate(reach(r.pages), start=1):
            reach_rows.append({"source": label, "depth": d, "share": share})
        h = hazard_table(r).assign(source=label)
        hazard_rows.append(h)
    return pd.DataFrame(reach_rows), pd.concat(hazard_rows, ignore_index=True)


def _evaluate(
    simulators: dict[str, LearnedSimulator | TrueSimulator],
    policies: list[Policy],
    n_sessions: int,
    seed: int,
    logged_mix: np.ndarray,
    progress: Progress,
) -> dict[str, list[Rollout]]:
    out: dict[str, list[Rollout]] = {}
    for name, simulator in simulators.items():
        out[name] = [
            rollout(
                simulator, p, n_sessions=n_sessions, seed=seed, label=name, logged_mix=logged_mix
            )  # fmt: skip
            for p in policies
        ]
        progress(1)
    return out


def run_study(
    pages: pd.DataFrame,
    items: pa.Table,
    *,
    truth_params: SynthParams | None,
    truth_reason: str = "",
    n_sessions: int = N_SESSIONS,
    seed: int = 0,
    cem: CEMConfig | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """The whole study (module docstring).

    Args:
        pages: the pages table (contract columns), line order.
        items: the items table's ``line_no``, ``ctr``, ``cvr``, ``price``, ``position``,
            ``click`` of the same pages, same order.
        truth_params: the generator that made the data, or None (real data, other
            parameters): then no truth column.
        truth_reason: why there is no truth, for the report.
        n_sessions: sessions per policy and simulator.
        seed: seed of the split, the pools, the search and the rollouts.
        cem: settings of the cross-entropy search.
        progress: called with 1 after each of :func:`study_steps` steps.
    """
    tick = progress or (lambda n: None)
    cem = cem or CEMConfig()
    (pages_a, items_a), (pages_b, items_b) = _halves(pages, items, seed)
    columns = ["line_no", "ctr", "cvr", "price"]
    sims: dict[str, LearnedSimulator] = {}
    for name, p, it in (("all", pages, items), ("A", pages_a, items_a), ("B", pages_b, items_b)):
        sims[name] = build_simulator(p, it.select(columns), random_state=seed)
        tick(1)
    held_out = Observed.from_pages(pages_b)
    logged_a = rollout(sims["A"], FixedPolicy(0), n_sessions=n_sessions, seed=seed + 1,
                       label="A")  # fmt: skip
    learned, cem_history = train_cem(sims["A"], config=cem, seed=seed, progress=tick)
    policies: list[Policy] = [
        RandomPolicy(),
        FixedPolicy(0),
        *(FixedPolicy(k) for k in range(1, len(ACTION_GRID) + 1)),
        GreedyPolicy(sims["A"].models),
        learned,
    ]
    runners: dict[str, LearnedSimulator | TrueSimulator] = {"A": sims["A"], "B": sims["B"]}
    if truth_params is not None:
        runners["truth"] = TrueSimulator(truth_params)
    rollouts = _evaluate(runners, policies, n_sessions, seed + 2, page_mix(pages), tick)
    if truth_params is None:
        tick(1)
    others = {k: v for k, v in rollouts.items() if k != "A"}
    gaps = gap_table(rollouts["A"], others)
    reach_curves, hazard_curves = _curves(logged_a, held_out)
    return SimulationResult(
        n_sessions=n_sessions,
        seed=seed,
        halves=pd.DataFrame(
            [
                {"half": h, "sessions": int(p["session_id"].nunique()), "pages": len(p)}
                for h, p in (("A", pages_a), ("B", pages_b))
            ]
        ),  # fmt: skip
        chain_scores=pd.DataFrame([sims["A"].models.scores(pages_b)]),
        slot_curve=slot_click_curve(
            item_matrix(items, "position"),
            item_matrix(items, "click"),
            item_matrix(items, "price"),
            pages["action_page_id"].to_numpy(),
        ),  # fmt: skip
        validation=validation_table(logged_a, held_out, int(pages_a["session_id"].nunique())),
        reach_curves=reach_curves,
        hazard_curves=hazard_curves,
        policies=policy_table([r for rs in rollouts.values() for r in rs]),
        hazards=pd.concat(
            [
                hazard_table(r).assign(policy=r.policy, simulator=r.simulator)
                for rs in rollouts.values()
                for r in rs
            ],
            ignore_index=True,
        ),  # fmt: skip
        gaps=gaps,
        rankings={name: ranking_agreement(gaps, name) for name in others},
        cem_history=cem_history,
        truth={"available": truth_params is not None, "reason": truth_reason},
        simulators=sims,
    )
