"""Serving the models: the model registry (:mod:`.registry`)."""
