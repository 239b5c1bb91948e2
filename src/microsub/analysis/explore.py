"""The whole exploration of a pages table in one call (:func:`run_all`): descriptive
statistics, the eight hypotheses (Holm-adjusted) and the constraint audit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from microsub.analysis.audit import AuditCheck, audit_constraints
from microsub.analysis.describe import (
    RewardDistribution,
    SurvivalCurves,
    class_balance,
    correlation_matrix,
    pages_frame,
    reward_distribution,
    survival_by_purchase_power,
)
from microsub.analysis.hypotheses import run_hypotheses
from microsub.analysis.stats import ALPHA, CORRECTION
from microsub.analysis.verdicts import HypothesisResult, verdict_table


@dataclass(frozen=True)
class Exploration:
    """Everything the exploration computes (:func:`run_all`).

    Attributes:
        n_pages, n_sessions: size of the pages table.
        class_balance: :func:`class_balance`.
        correlation: :func:`correlation_matrix`.
        rewards: :func:`reward_distribution`.
        survival: :func:`survival_by_purchase_power`.
        hypotheses: the eight tests, Holm-adjusted (:func:`adjust`).
        audit: :func:`audit_constraints`.
        alpha, correction: the family's error rate and correction method.
    """

    n_pages: int
    n_sessions: int
    class_balance: pd.DataFrame
    correlation: pd.DataFrame
    rewards: RewardDistribution
    survival: SurvivalCurves
    hypotheses: tuple[HypothesisResult, ...]
    audit: tuple[AuditCheck, ...]
    alpha: float = ALPHA
    correction: str = CORRECTION

    def result(self, key: str) -> HypothesisResult:
        """The hypothesis result with this ``key`` (KeyError naming the known keys)."""
        for r in self.hypotheses:
            if r.key == key:
                return r
        raise KeyError(f"no hypothesis {key!r}; known: {[r.key for r in self.hypotheses]}")

    def verdict_table(self) -> pd.DataFrame:
        """:func:`verdict_table` of the hypotheses."""
        return verdict_table(self.hypotheses)

    def audit_table(self) -> pd.DataFrame:
        """The audit as a frame: ``check``, ``status``, ``detail``."""
        return pd.DataFrame([dataclasses.asdict(c) for c in self.audit])


#: Steps :func:`run_all` reports to ``progress`` (for a progress bar's total).
RUN_ALL_STEPS = 13


def run_all(
    pages: pd.DataFrame,
    *,
    n_boot: int = 300,
    random_state: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Exploration:
    """The whole exploration of a pages table.

    Args:
        pages: the pages table (contract columns).
        n_boot: bootstrap resamples of the session-level interval.
        random_state: seed of the bootstrap.
        progress: called with 1 after each of :data:`RUN_ALL_STEPS` steps.
    """
    tick = progress or (lambda n: None)
    frame = pages_frame(pages)
    tick(1)
    balance = class_balance(frame)
    tick(1)
    corr = correlation_matrix(frame)
    tick(1)
    rewards = reward_distribution(frame)
    survival = survival_by_purchase_power(frame)
    tick(1)
    results = run_hypotheses(frame, n_boot=n_boot, random_state=random_state, progress=tick)
    audit = audit_constraints(frame)
    tick(1)
    return Exploration(
        n_pages=len(frame),
        n_sessions=int(frame["session_id"].nunique()),
        class_balance=balance,
        correlation=corr,
        rewards=rewards,
        survival=survival,
        hypotheses=results,
        audit=audit,
    )
