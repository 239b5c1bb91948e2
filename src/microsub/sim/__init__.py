"""The session simulator.

* :mod:`.params`, :mod:`.dynamics`: the generative model of a session (the truth on synthetic
  data), shared by the log writer and the true simulator;
* :mod:`.candidates`: what an action chooses (items ranked by ``ctr * cvr^a * price^b``);
* :mod:`.session`: the state of simulated sessions and what a policy observes;
* :mod:`.learned` / :mod:`.truth`: the two batch simulators; :mod:`.build` and :mod:`.store`
  build a learned one from the lake's tables and store it;
* :mod:`.env` / :mod:`.vector`: the Gymnasium environments (single and vector);
* :mod:`.policies`, :mod:`.evaluate`: policies and their evaluation with intervals.

Importing this package registers the environments with Gymnasium (entry points as strings:
nothing else is imported):

* ``microsub/AlibabaSession-v0``: :class:`~microsub.sim.env.SessionEnv`, the learned simulator
  (vector version :class:`~microsub.sim.vector.SessionVectorEnv`);
* ``microsub/AlibabaSessionTruth-v0``: :class:`~microsub.sim.env.TrueSessionEnv`, the generator
  (vector version :class:`~microsub.sim.vector.TrueSessionVectorEnv`).
"""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "microsub/AlibabaSession-v0"
TRUTH_ENV_ID = "microsub/AlibabaSessionTruth-v0"

for _id, _single, _vector in (
    (ENV_ID, "SessionEnv", "SessionVectorEnv"),
    (TRUTH_ENV_ID, "TrueSessionEnv", "TrueSessionVectorEnv"),
):
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point=f"microsub.sim.env:{_single}",
            vector_entry_point=f"microsub.sim.vector:{_vector}",
            max_episode_steps=None,
        )
