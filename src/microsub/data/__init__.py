"""Raw log to pages: containers, parsing with quarantine, the ingestion driver, sessions, and the
synthetic log writer.

Modules: :mod:`.containers` (plain, gzip, tar), :mod:`.parse` (lines to pages and quarantine),
:mod:`.ingest` (the streaming driver and its reconciliation), :mod:`.sessions` (session ids,
terminated vs truncated, next-state columns), :mod:`.synth` (writes a log from
:mod:`microsub.sim.dynamics`).
"""
