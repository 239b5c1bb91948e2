"""The business case: success gates (:mod:`.gates`)."""
