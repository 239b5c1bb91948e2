"""Raw log to pages: containers, parsing with quarantine, the two ingestion engines, sessions,
and the synthetic log writer.

Modules: :mod:`.containers` (plain, gzip, tar), :mod:`.parse` (lines to pages and quarantine,
Polars kernels shared by both engines), :mod:`.ingest` (the single-machine engine: streaming
driver and its reconciliation), :mod:`.spark` (the same ingestion on Spark; pyspark is an
optional extra, imported inside its functions), :mod:`.background` (reading and writing in
worker threads), :mod:`.sessions` (session ids, terminated vs truncated, next-state columns, the
carry between partitions), :mod:`.synth` (writes a log from :mod:`microsub.sim.dynamics`).
"""
