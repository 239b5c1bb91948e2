"""Policies: what each page shows, behind one small interface.

A policy maps the observations of ``n`` sessions, ``(n, 7)``, and the item mix each discrete
action would show, ``(n, 10, 3)`` (``info["candidates"]``), to ``n`` discrete actions::

    actions = policy(obs, candidates, rng)

* :class:`RandomPolicy`: a uniformly random action on every page;
* :class:`FixedPolicy`: always the same action; ``FixedPolicy(0)`` is the **logged** policy
  (the page as the platform showed it);
* :class:`GreedyPolicy`: myopic: the action with the highest expected Yuan on this page
  according to a fitted chain (:meth:`~microsub.models.chain.SessionModels.expected_value`),
  blind to whether the shopper stays;
* :class:`LinearPolicy`: the action with the highest score ``[features(obs), 1] @ W``; its
  weights are learned by the cross-entropy method (:func:`train_cem`) on the session value in
  a simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from microsub.models.chain import SessionModels, pre_design
from microsub.progress import Progress
from microsub.sim.candidates import N_ACTIONS, action_names
from microsub.sim.learned import LearnedSimulator
from microsub.sim.truth import TrueSimulator


class Policy(Protocol):
    """``policy(obs (n, 7), candidates (n, 10, 3), rng) -> actions (n,)``."""

    name: str

    def __call__(
        self, obs: np.ndarray, candidates: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class RandomPolicy:
    """A uniformly random discrete action on every page."""

    name: str = "random"

    def __call__(
        self, obs: np.ndarray, candidates: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        return rng.integers(0, candidates.shape[1], len(obs))


@dataclass(frozen=True)
class FixedPolicy:
    """Always action ``action`` (0: the logged page; 1..9: an ``(a, b)`` of the grid)."""

    action: int
    name: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.action < N_ACTIONS:
            raise ValueError(f"action must be in 0..{N_ACTIONS - 1}, got {self.action}")
        if not self.name:
            label = action_names()[self.action]
            object.__setattr__(self, "name", label if self.action == 0 else f"fixed {label}")

    def __call__(
        self, obs: np.ndarray, candidates: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        return np.full(len(obs), self.action, dtype=np.int64)


def hours_from_observation(obs: np.ndarray) -> np.ndarray:
    """The hour of day back from its sine and cosine (NaN where both are 0: unknown)."""
    angle = np.arctan2(obs[:, 2], obs[:, 3]) % (2 * np.pi)
    hour = np.rint(angle * 24 / (2 * np.pi)) % 24
    return np.where((obs[:, 2] == 0) & (obs[:, 3] == 0), np.nan, hour)


@dataclass(frozen=True)
class GreedyPolicy:
    """Myopic: the action whose page is worth the most Yuan in expectation, by ``models``."""

    models: SessionModels = field(repr=False)
    name: str = "greedy (expected Yuan of the page)"

    def __call__(
        self, obs: np.ndarray, candidates: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        n, k = candidates.shape[:2]
        rep = np.repeat(np.arange(n), k)
        hour = hours_from_observation(obs)
        x = pre_design(
            obs[rep, 0], obs[rep, 1], hour[rep], obs[rep, 4], obs[rep, 5], obs[rep, 6],
            candidates.reshape(n * k, 3),
        )  # fmt: skip
        return np.argmax(self.models.expected_value(x).reshape(n, k), axis=1)


#: Scales of the observation in :func:`policy_features` (depth, power, sin, cos, ln(1 + e),
#: ln(1 + value), since).
_FEATURE_SCALE = np.array([11.0, 7.0, 1.0, 1.0, 3.0, 6.0, 12.0])


def policy_features(obs: np.ndarray) -> np.ndarray:
    """``(n, 8)``: the observation on comparable scales (engagement and value as logs) and 1."""
    f = obs.astype(np.float64).copy()
    f[:, 4] = np.log1p(f[:, 4])
    f[:, 5] = np.log1p(f[:, 5])
    return np.hstack([f / _FEATURE_SCALE, np.ones((len(f), 1))])


@dataclass(frozen=True)
class LinearPolicy:
    """The action with the highest score ``policy_features(obs) @ weights``.

    Attributes:
        weights: ``(8, 10)``.
    """

    weights: np.ndarray = field(repr=False)
    name: str = "learned (cross-entropy, linear)"

    def __call__(
        self, obs: np.ndarray, candidates: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        return np.argmax(policy_features(obs) @ self.weights, axis=1)


def mean_session_value(
    simulator: LearnedSimulator | TrueSimulator,
    policy: Policy,
    n_sessions: int,
    seed: int,
) -> float:
    """Mean Yuan per session of ``policy`` over ``n_sessions`` sessions from ``seed``."""
    rng = np.random.default_rng(seed)
    s = simulator.start(rng, n_sessions)
    total = 0.0
    active = np.arange(n_sessions)
    while len(active):
        action = policy(s.observation(), s.options, rng)
        out = simulator.step(rng, s, action)
        total += float(out.reward.sum())
        keep = ~(out.terminated | out.truncated)
        if not keep.all():
            s = s.take(np.flatnonzero(keep))
            active = active[keep]
    return total / n_sessions


@dataclass(frozen=True)
class CEMConfig:
    """Settings of the cross-entropy search (:func:`train_cem`).

    Attributes:
        iterations: rounds of sampling and refitting.
        population: weight vectors sampled per round.
        elite: the best of them the next distribution is fitted to.
        sessions: simulated sessions per evaluation (the same seeds for every candidate of a
            round: common random numbers, so candidates are compared on the same shoppers).
        init_sd: standard deviation of the first round's weights.
        min_sd: floor of the standard deviation (keeps the search from collapsing early).
    """

    iterations: int = 12
    population: int = 32
    elite: int = 6
    sessions: int = 2000
    init_sd: float = 1.0
    min_sd: float = 0.05


def train_cem(
    simulator: LearnedSimulator,
    *,
    config: CEMConfig | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[LinearPolicy, list[float]]:
    """Learn a :class:`LinearPolicy` in ``simulator`` by the cross-entropy method.

    Each round draws ``population`` weight matrices from independent normals (mean ``mu``,
    sd ``sigma`` per weight), scores each by :func:`mean_session_value`, and refits ``mu``
    and ``sigma`` to the ``elite`` best: ``mu <- mean(elite)``,
    ``sigma <- max(min_sd, sd(elite))``. The start ``mu`` favours the logged page (weight 1 on
    the constant of action 0), so the search begins at the log's behaviour.

    Returns:
        ``(policy with weights mu, best mean session value of each round)``.
    """
    config = config or CEMConfig()
    rng = np.random.default_rng(seed)
    shape = (len(_FEATURE_SCALE) + 1, N_ACTIONS)
    mu = np.zeros(shape)
    mu[-1, 0] = 1.0
    sigma = np.full(shape, config.init_sd)
    history = []
    for round_ in range(config.iterations):
        candidates = mu + sigma * rng.standard_normal((config.population, *shape))
        scores = np.array(
            [
                mean_session_value(simulator, LinearPolicy(w), config.sessions, seed + round_)
                for w in candidates
            ]
        )
        best = candidates[np.argsort(-scores)[: config.elite]]
        mu, sigma = best.mean(axis=0), np.maximum(best.std(axis=0), config.min_sd)
        history.append(float(scores.max()))
        if progress is not None:
            progress(1)
    return LinearPolicy(mu), history
