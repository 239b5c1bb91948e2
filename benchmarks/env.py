"""Steps per second of the session environments, side by side with CartPole-v1 in one run.

Measures, through the Gymnasium API (``gym.make`` with its default wrappers, and
``gym.make_vec`` with the environments' own vector implementations):

* ``CartPole-v1``: the single environment, and its NumPy vector environment
  (``vectorization_mode="vector_entry_point"``);
* ``microsub/AlibabaSession-v0``: the learned simulator, single and vector (the default
  simulator the pipeline stored in the lake of the current settings, else one built from the
  ``ci`` profile in a temporary folder);
* ``microsub/AlibabaSessionTruth-v0``: the true generator, single and vector (for reference).

Every run steps with actions drawn beforehand uniformly from the action space (so the policy
costs nothing) and resets after each episode (single) or autoresets (vector); the median of
``--repeats`` runs is reported. Targets (issue #10): single >= 0.25x CartPole's steps/s;
vector >= 500k steps/s (goal 1M).

    .venv/bin/python benchmarks/env.py [--steps 100000] [--num-envs 65536] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym

import microsub.sim  # registers the environments
from microsub.config import Settings
from microsub.errors import DatasetNotFoundError
from microsub.lake import open_lake
from microsub.pipeline import run
from microsub.sim.store import load_simulator


def default_simulator(workdir: Path) -> tuple[object, str]:
    """The stored default simulator, else one built by the pipeline on the ci profile."""
    settings = Settings()
    try:
        return load_simulator(open_lake(settings), "all"), f"lake {settings.lake}"
    except DatasetNotFoundError:
        ci = Settings(profile="ci", data_dir=workdir / "data", lake=str(workdir / "lake"))
        run(ci, stages=("simulate",))
        return load_simulator(open_lake(ci), "all"), "ci profile (built for this run)"


def single_rate(env: gym.Env, steps: int, seed: int) -> float:
    """Steps per second of ``env`` over ``steps`` steps with pre-drawn random actions."""
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector_rate(envs: gym.vector.VectorEnv, steps: int, seed: int) -> float:
    """Sub-environment steps per second of ``envs`` over ``steps`` vector steps."""
    envs.action_space.seed(seed)
    actions = [envs.action_space.sample() for _ in range(steps)]
    envs.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        envs.step(action)
    return steps * envs.num_envs / (time.perf_counter() - start)


def median_of(repeats: int, measure) -> float:  # noqa: ANN001
    return statistics.median(measure(seed) for seed in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="single-env steps per run")
    parser.add_argument("--num-envs", type=int, default=65_536, help="sessions of a vector env")
    parser.add_argument("--vector-steps", type=int, default=40, help="vector steps per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per row (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        simulator, where = default_simulator(Path(tmp))
    rows = []
    for name, kwargs in (
        ("CartPole-v1", {}),
        (microsub.sim.ENV_ID, {"simulator": simulator}),
        (microsub.sim.TRUTH_ENV_ID, {}),
    ):
        steps = args.steps if name != microsub.sim.TRUTH_ENV_ID else args.steps // 20
        env = gym.make(name, **kwargs)
        single = median_of(args.repeats, lambda seed, e=env, k=steps: single_rate(e, k, seed))
        env.close()
        n = args.num_envs if name != microsub.sim.TRUTH_ENV_ID else args.num_envs // 16
        envs = gym.make_vec(name, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
        vector = median_of(
            args.repeats, lambda seed, e=envs: vector_rate(e, args.vector_steps, seed)
        )
        envs.close()
        rows.append((name, single, vector, n))

    cart = rows[0][1]
    print(f"session environments vs CartPole-v1: median of {args.repeats} runs; simulator: {where}")
    print(f"{'environment':34} {'single steps/s':>15} {'vs CartPole':>12} "
          f"{'vector steps/s':>15} {'num_envs':>9}")  # fmt: skip
    for name, single, vector, n in rows:
        print(f"{name:34} {single:15,.0f} {single / cart:11.2f}x {vector:15,.0f} {n:9,}")
    learned = rows[1]
    print(
        f"\ntargets: single >= 0.25x CartPole: {learned[1] / cart:.2f}x "
        f"({'met' if learned[1] / cart >= 0.25 else 'NOT met'}); vector >= 500,000 steps/s "
        f"(goal 1,000,000): {learned[2]:,.0f} ({'met' if learned[2] >= 500_000 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
