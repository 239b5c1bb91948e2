"""The exploration, pure (frames in, small results out): features, statistics helpers,
descriptive tables, the eight hypotheses and their verdicts, the constraint audit, the
generator's calibration statistics.

Modules: :mod:`.features`, :mod:`.stats`, :mod:`.describe`, :mod:`.verdicts`,
:mod:`.hypotheses`, :mod:`.audit`, :mod:`.explore` (all of it in one call),
:mod:`.calibration`.
"""
