"""The business case: the configuration (:mod:`.config`, ``business.yaml``), success gates
(:mod:`.gates`), the value at stake (:mod:`.value`), targeting policies (:mod:`.targeting`),
retention programmes played in the simulator (:mod:`.programme`), uplift (:mod:`.uplift`),
fairness (:mod:`.fairness`) and the whole study (:mod:`.study`)."""
