"""Vector environments: ``N`` sessions stepped at once in NumPy (Gymnasium ``VectorEnv``).

Autoreset mode: **next step** (``AutoresetMode.NEXT_STEP``, Gymnasium's default and the mode of
its ``SyncVectorEnv``). A session that ends (terminated or truncated) at step ``t`` is replaced at
step ``t + 1``: that step ignores its action and returns the new session's first observation
with reward 0 and both flags false. The ``N`` sessions are therefore distributed as ``N``
independent :class:`~microsub.sim.env.SessionEnv` episodes run back to back (tested against a
``SyncVectorEnv`` of single environments).

``info`` holds, per key, an array over the ``N`` sessions and the mask ``info["_" + key]``
(all true: every session reports every key): ``candidates`` ``(N, 10, 3)``, ``age_level``,
``gender``, and after a step ``engagement``, ``purchased``, ``p_leave``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from microsub.config import Settings, get_settings
from microsub.lake import open_lake
from microsub.sim.env import ActionType, action_space, observation_space
from microsub.sim.learned import LearnedSimulator
from microsub.sim.params import DEFAULT_PARAMS, SynthParams
from microsub.sim.session import Sessions
from microsub.sim.store import load_simulator
from microsub.sim.truth import TrueSimulator


class _SessionVectorBase(VectorEnv):
    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        simulator: LearnedSimulator | TrueSimulator,
        action_type: ActionType = "discrete",
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.simulator = simulator
        self.action_type = action_type
        self.single_action_space = action_space(action_type)
        self.single_observation_space = observation_space()
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._sessions: Sessions | None = None
        self._ended = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._sessions = self.simulator.start(self.np_random, self.num_envs)
        self._ended[:] = False
        return self._sessions.observation(), self._info({})

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._sessions is None:
            raise RuntimeError("call reset() before step()")
        box = self.action_type == "box"
        actions = np.asarray(actions, np.float64 if box else np.int64)
        s = self._sessions
        out = self.simulator.step(self.np_random, s, actions, box=box)
        reward = out.reward.astype(np.float64)
        terminated, truncated = out.terminated.copy(), out.truncated.copy()
        restarted = np.flatnonzero(self._ended)
        if len(restarted):
            s.replace(restarted, self.simulator.start(self.np_random, len(restarted)))
            reward[restarted] = 0.0
            terminated[restarted] = truncated[restarted] = False
        self._ended = terminated | truncated
        last = {"engagement": out.engagement, "purchased": out.bought, "p_leave": out.p_leave}
        return s.observation(), reward, terminated, truncated, self._info(last)

    def _info(self, last: dict[str, np.ndarray]) -> dict[str, Any]:
        s = self._sessions
        assert s is not None
        info: dict[str, Any] = {
            "candidates": s.options,
            "age_level": s.age_level,
            "gender": s.gender,
            **last,
        }
        mask = np.ones(self.num_envs, dtype=bool)
        info.update({f"_{key}": mask for key in list(info)})
        return info


class SessionVectorEnv(_SessionVectorBase):
    """``num_envs`` sessions of :class:`~microsub.sim.env.SessionEnv` (the learned simulator),
    stepped in NumPy; arguments as the single environment's, plus ``num_envs``."""

    def __init__(
        self,
        num_envs: int = 1,
        simulator: LearnedSimulator | None = None,
        *,
        settings: Settings | None = None,
        fit: str = "all",
        action_type: ActionType = "discrete",
    ) -> None:
        if simulator is None:
            simulator = load_simulator(open_lake(settings or get_settings()), fit)
        super().__init__(num_envs, simulator, action_type)


class TrueSessionVectorEnv(_SessionVectorBase):
    """``num_envs`` sessions of :class:`~microsub.sim.env.TrueSessionEnv` (the generator)."""

    def __init__(
        self,
        num_envs: int = 1,
        params: SynthParams = DEFAULT_PARAMS,
        *,
        action_type: ActionType = "discrete",
    ) -> None:
        super().__init__(num_envs, TrueSimulator(params), action_type)
