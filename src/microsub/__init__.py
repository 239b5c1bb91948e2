"""microsub: shopping sessions on the Taobao feed as micro-subscriptions.

Importing the package does no work: modules are imported where they are used, settings are read
by :func:`microsub.config.get_settings`.
"""

__version__ = "0.1.0"
