"""The Gymnasium environments: the API contract, determinism, what actions do, the vector
environment against single ones, registration and the stored simulator."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import stats

import microsub.sim
from microsub.errors import DatasetNotFoundError
from microsub.lake import LocalLake
from microsub.sim.build import build_simulator
from microsub.sim.env import SessionEnv, TrueSessionEnv
from microsub.sim.learned import LearnedSimulator
from microsub.sim.store import load_simulator, save_simulator
from microsub.sim.vector import SessionVectorEnv, TrueSessionVectorEnv


@pytest.fixture(scope="module")
def simulator(session_tables) -> LearnedSimulator:
    items = session_tables.items.select(["line_no", "ctr", "cvr", "price"])
    return build_simulator(session_tables.pages, items, n_pools=256)


def episodes(env: gym.Env, n: int, seed: int, action=None) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of ``n`` episodes (``action``: fixed, else random)."""
    env.action_space.seed(seed)
    returns, lengths = [], []
    for i in range(n):
        env.reset(seed=seed + i)
        total, steps, done = 0.0, 0, False
        while not done:
            a = env.action_space.sample() if action is None else action
            _, r, terminated, truncated, _ = env.step(a)
            total, steps, done = total + r, steps + 1, terminated or truncated
        returns.append(total)
        lengths.append(steps)
    return np.array(returns), np.array(lengths)


@pytest.mark.parametrize("action_type", ["discrete", "box"])
def test_check_env_passes(simulator, action_type) -> None:
    check_env(SessionEnv(simulator, action_type=action_type), skip_render_check=True)
    check_env(TrueSessionEnv(action_type=action_type), skip_render_check=True)


@pytest.mark.parametrize("make", [lambda s: SessionEnv(s), lambda s: TrueSessionEnv()])
def test_same_seed_same_trajectory(simulator, make) -> None:
    def trajectory(seed: int) -> list:
        env = make(simulator)
        obs, info = env.reset(seed=seed)
        out = [obs.tolist(), info["candidates"].tolist()]
        for action in [1, 5, 0, 9, 3, 7, 2, 4, 8, 6, 0, 1]:
            obs, r, term, trunc, info = env.step(action)
            out.append((obs.tolist(), r, term, trunc, info["engagement"]))
            if term or trunc:
                obs, info = env.reset()
                out.append(obs.tolist())
        return out

    assert trajectory(7) == trajectory(7)
    assert trajectory(7) != trajectory(8)


def test_an_episode_is_one_session(simulator) -> None:
    env = SessionEnv(simulator)
    obs, info = env.reset(seed=3)
    assert obs[0] == 0 and obs[4] == obs[5] == obs[6] == 0  # page 0, no history
    assert info["candidates"].shape == (10, 3) and {"age_level", "gender"} <= set(info)
    depth, value, ended = 0, 0.0, False
    while not ended:
        obs, reward, terminated, truncated, info = env.step(2)
        depth, value = depth + 1, value + reward
        assert info["depth"] == depth - 1 and 0 <= info["p_leave"] <= 1
        assert not (terminated and truncated)
        ended = terminated or truncated
        if not ended:
            assert obs[0] == depth and obs[5] == pytest.approx(value, rel=1e-6)
    assert depth <= 12
    if truncated:
        assert depth == 12  # censoring happens at the page cap only


@pytest.mark.parametrize("kind", ["learned", "truth"])
def test_actions_change_the_distribution_of_outcomes(simulator, kind) -> None:
    env = SessionEnv(simulator) if kind == "learned" else TrueSessionEnv()
    n = 600
    clickable_r, clickable_len = episodes(env, n, seed=100, action=2)  # a=0 b=0: by CTR
    cheap_r, cheap_len = episodes(env, n, seed=100, action=4)  # a=1 b=-1: cheap, convertible
    pricey_r, _ = episodes(env, n, seed=100, action=9)  # a=2 b=1: pricey, convertible
    # ranking by CTR keeps shoppers longer than ranking cheap converters ...
    assert stats.mannwhitneyu(clickable_len, cheap_len).pvalue < 0.01
    assert clickable_len.mean() > cheap_len.mean()
    # ... and pricier pages are worth more Yuan per session than cheap ones
    assert pricey_r.mean() > cheap_r.mean()


def test_vector_env_has_the_distribution_of_single_envs(simulator) -> None:
    n_envs, steps = 64, 120
    ends = {"vector": [], "single": []}
    vec = SessionVectorEnv(n_envs, simulator)
    sync = gym.vector.SyncVectorEnv([lambda: SessionEnv(simulator) for _ in range(n_envs)])
    for name, envs in (("vector", vec), ("single", sync)):
        envs.reset(seed=0)
        returns = np.zeros(n_envs)
        for _ in range(steps):
            _, reward, terminated, truncated, _ = envs.step(np.full(n_envs, 7))
            returns += reward
            for i in np.flatnonzero(terminated | truncated):
                ends[name].append(returns[i])
                returns[i] = 0.0
    v, s = np.array(ends["vector"]), np.array(ends["single"])
    assert len(v) > 1000 and len(s) > 1000
    # same session length distribution (episodes per step) and same value distribution
    assert abs(len(v) - len(s)) < 4 * np.sqrt(len(s))
    assert stats.ks_2samp(v, s).pvalue > 0.01
    assert stats.ks_2samp(v > 0, s > 0).pvalue > 0.01


def test_vector_env_autoresets_on_the_next_step(simulator) -> None:
    envs = SessionVectorEnv(256, simulator)
    obs, info = envs.reset(seed=1)
    assert obs.shape == (256, 7) and info["candidates"].shape == (256, 10, 3)
    assert info["_candidates"].all()
    _, _, terminated, truncated, _ = envs.step(np.zeros(256, int))
    ended = terminated | truncated
    assert ended.any()
    obs, reward, terminated, truncated, info = envs.step(np.zeros(256, int))
    # the sessions that ended start over: page 0, no reward, no flags
    assert (obs[ended, 0] == 0).all() and (obs[ended, 5] == 0).all()
    assert (reward[ended] == 0).all() and not (terminated | truncated)[ended].any()
    assert (obs[~ended, 0] == 2).all()  # the others are on page 2 (or ended on it)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP


def test_truth_vector_env_steps(simulator) -> None:
    envs = TrueSessionVectorEnv(32)
    obs, _ = envs.reset(seed=2)
    obs, reward, terminated, truncated, info = envs.step(np.full(32, 3))
    assert obs.shape == (32, 7) and reward.shape == (32,) and (reward >= 0).all()


def test_registered_and_made_from_the_lake(tmp_path, simulator, monkeypatch) -> None:
    lake = LocalLake(tmp_path / "lake")
    monkeypatch.setenv("MICROSUB_LAKE", str(tmp_path / "lake"))
    with pytest.raises(DatasetNotFoundError, match="run `microsub run` first"):
        gym.make(microsub.sim.ENV_ID)
    save_simulator(lake, "all", simulator)
    env = gym.make(microsub.sim.ENV_ID)  # no arguments: the lake of the current settings
    assert env.spec.id == "microsub/AlibabaSession-v0"
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    box = gym.make(microsub.sim.ENV_ID, simulator=simulator, action_type="box")
    assert box.action_space.shape == (2,)
    truth = gym.make(microsub.sim.TRUTH_ENV_ID)
    assert truth.action_space == env.action_space
    assert truth.observation_space == env.observation_space
    vec = gym.make_vec(microsub.sim.ENV_ID, num_envs=8, vectorization_mode="vector_entry_point")
    assert isinstance(vec.unwrapped, SessionVectorEnv) and vec.num_envs == 8


def test_stored_simulator_is_the_same_simulator(tmp_path, simulator) -> None:
    lake = LocalLake(tmp_path / "lake")
    save_simulator(lake, "A", simulator)
    loaded = load_simulator(lake, "A")
    assert np.array_equal(loaded.models.pre_weights, simulator.models.pre_weights)
    assert np.allclose(loaded._options, simulator._options)
    a, b = episodes(SessionEnv(simulator), 50, 9), episodes(SessionEnv(loaded), 50, 9)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
