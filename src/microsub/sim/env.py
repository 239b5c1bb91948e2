"""Gymnasium environments of one shopping session: the learned simulator and the true one."""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from microsub.config import Settings, get_settings
from microsub.lake import open_lake
from microsub.sim.candidates import A_RANGE, B_RANGE, N_ACTIONS
from microsub.sim.learned import LearnedSimulator
from microsub.sim.params import DEFAULT_PARAMS, SynthParams
from microsub.sim.session import OBS_HIGH, OBS_LOW, Sessions
from microsub.sim.store import load_simulator
from microsub.sim.truth import TrueSimulator

ActionType = Literal["discrete", "box"]


def action_space(action_type: ActionType) -> spaces.Space:
    """``Discrete(10)`` (0 = the logged page, 1..9 the ``(a, b)`` grid) or the ``(a, b)`` box."""
    if action_type == "discrete":
        return spaces.Discrete(N_ACTIONS)
    if action_type == "box":
        return spaces.Box(
            low=np.array([A_RANGE[0], B_RANGE[0]], np.float32),
            high=np.array([A_RANGE[1], B_RANGE[1]], np.float32),
            dtype=np.float32,
        )
    raise ValueError(f"action_type must be 'discrete' or 'box', got {action_type!r}")


def observation_space() -> spaces.Box:
    """The 7 observed quantities of :mod:`microsub.sim.session`."""
    return spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)


class _SessionEnvBase(gym.Env[np.ndarray, Any]):
    """One session on a batch simulator of size 1 (see :class:`SessionEnv`)."""

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        simulator: LearnedSimulator | TrueSimulator,
        action_type: ActionType = "discrete",
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.simulator = simulator
        self.action_type = action_type
        self.render_mode = render_mode
        self.action_space = action_space(action_type)
        self.observation_space = observation_space()
        self._sessions: Sessions | None = None
        self._last: dict[str, Any] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._sessions = self.simulator.start(self.np_random, 1)
        self._last = {}
        return self._sessions.observation()[0], self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._sessions is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        box = self.action_type == "box"
        batch = np.asarray(action, np.float64)[None, :] if box else np.array([int(action)])
        s = self._sessions
        depth = int(s.depth[0])
        out = self.simulator.step(self.np_random, s, batch, box=box)
        self._last = {
            "depth": depth,
            "engagement": int(out.engagement[0]),
            "purchased": bool(out.bought[0]),
            "p_leave": float(out.p_leave[0]),
        }
        info = {
            "candidates": s.options[0],
            "age_level": int(s.age_level[0]),
            "gender": int(s.gender[0]),
            **self._last,
        }
        terminated, truncated = bool(out.terminated[0]), bool(out.truncated[0])
        return s.observation()[0], float(out.reward[0]), terminated, truncated, info

    def _info(self) -> dict[str, Any]:
        s = self._sessions
        assert s is not None
        return {
            "candidates": s.options[0],
            "age_level": int(s.age_level[0]),
            "gender": int(s.gender[0]),
            **self._last,
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._sessions is None:
            return None
        obs = self._sessions.observation()[0]
        last = ", ".join(f"{k}={v}" for k, v in self._last.items())
        return (
            f"page {int(obs[0])}, purchase power {int(obs[1])}, session value "
            f"{obs[5]:.2f} Yuan{' (' + last + ')' if last else ''}"
        )


class SessionEnv(_SessionEnvBase):
    """One shopping session on the Taobao feed, played by the fitted models.

    ## Description

    A *micro-subscription*: each page of 50 items is a period; asking for the next page renews,
    leaving churns. The agent decides what each page shows; the simulator, built from the
    log's pages and items tables and the fitted models (:mod:`microsub.models.chain`), answers
    what the shopper does on it (engagement, purchase, Yuan spent) and whether they leave. One
    episode is one session. Registered as ``microsub/AlibabaSession-v0``.

    ## Action Space

    ``Discrete(10)``: the items of the page are ranked by ``ctr * cvr^a * price^b`` (the ranking
    of the platform behind the data) among a pool of two logged pages' items at this depth,
    and the 50 best fill the page in score order. Action 0 shows the pool's first page as it was
    logged (the log's own policy); actions 1-9 are ``(a, b)`` in ``{0, 1, 2} x {-1, 0, 1}``
    (:data:`~microsub.sim.candidates.ACTION_GRID`). With ``action_type="box"``, the action is
    ``(a, b)`` in ``[0, 2] x [-1, 1]`` (float32). Why a pool and not a re-ordering of one page:
    :mod:`microsub.sim.candidates`.

    ## Observation Space

    ``Box(7,)`` float32:

    | Num | Observation           | Min  | Max  |
    |-----|-----------------------|------|------|
    | 0   | page depth            | 0    | 11   |
    | 1   | purchase power        | 0    | 127  |
    | 2   | hour (sin)            | -1   | 1    |
    | 3   | hour (cos)            | -1   | 1    |
    | 4   | last page engagement  | 0    | 100  |
    | 5   | session value (Yuan)  | 0    | inf  |
    | 6   | pages since purchase  | 0    | 12   |

    The candidates' item mix under each discrete action (``(10, 3)``: ln mean CTR, ln mean CVR,
    mean ln price) is in ``info["candidates"]``; age level and gender are in ``info`` for
    fairness audits, never in the observation.

    ## Rewards

    The Yuan the shopper spends on the page (0 on most pages).

    ## Starting State

    A shopper drawn uniformly from the logged session starts (purchase power, hour, age level,
    gender), at page 0 with no history.

    ## Episode End

    * Termination: the shopper leaves after the page (churn), drawn from the leave model.
    * Truncation: page 11, the platform's cap, without leaving (censoring, not churn).

    ## Arguments

    * ``simulator``: a :class:`~microsub.sim.learned.LearnedSimulator`; by default the one the
      pipeline's simulate stage stored in the lake of ``settings`` (run ``microsub run``).
    * ``settings``: :class:`~microsub.config.Settings` (default: from the environment).
    * ``fit``: which stored simulator: ``"all"`` (every session, default), ``"A"`` or ``"B"``
      (fitted to one half of the sessions).
    * ``action_type``: ``"discrete"`` (default) or ``"box"``.
    * ``render_mode``: ``None`` or ``"ansi"``.

    ## Version History

    * v0: first version (pools of two logged pages, the four-model chain).
    """

    def __init__(
        self,
        simulator: LearnedSimulator | None = None,
        *,
        settings: Settings | None = None,
        fit: str = "all",
        action_type: ActionType = "discrete",
        render_mode: str | None = None,
    ) -> None:
        if simulator is None:
            simulator = load_simulator(open_lake(settings or get_settings()), fit)
        super().__init__(simulator, action_type, render_mode)


class TrueSessionEnv(_SessionEnvBase):
    """One shopping session played by the generator of the synthetic log: the truth.

    The same spaces, rewards and episode end as :class:`SessionEnv`; the shopper, the candidate
    items and every reaction come from :mod:`microsub.sim.dynamics` (see
    :class:`~microsub.sim.truth.TrueSimulator`): a policy can be run in the learned simulator
    and in the process that generated the data, which measures the learned simulator's error on
    that policy. Only meaningful for data the generator made with these parameters. Registered
    as ``microsub/AlibabaSessionTruth-v0``.

    ## Arguments

    * ``params``: the generator's coefficients (default: those of the default data).
    * ``action_type``, ``render_mode``: as in :class:`SessionEnv`.

    ## Version History

    * v0: first version.
    """

    def __init__(
        self,
        params: SynthParams = DEFAULT_PARAMS,
        *,
        action_type: ActionType = "discrete",
        render_mode: str | None = None,
    ) -> None:
        super().__init__(TrueSimulator(params), action_type, render_mode)
