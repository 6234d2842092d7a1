"""Metrics: per-task records, a run's report, and where reports go.

    worker RAW records ──track──> RunReport (runs) ──> last_run(), progress bar (progress)
                                      │                 peak memory (monitor)
                                      └─ sink ──> writer thread (sinkwriter) ──> Parquet / Redis / memory (sinks)
                                                     Arrow tables and schemas (tables)

Imports point down to core only; executors call ``runs.track`` once a run ends.
"""
