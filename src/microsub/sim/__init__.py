"""The session simulator: the generative model of a session (:mod:`.dynamics`, the truth on
synthetic data)."""
