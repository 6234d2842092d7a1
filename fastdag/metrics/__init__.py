"""Metrics: per-task records, a run's report, and where reports go.

    worker RAW blocks ──> RunReport (runs) ──.to_arrow()──> pyarrow Table (tables)
    executor ──track──> (tracking) ──> last_run(); peak memory and progress bar
                                       (monitor, progress)
                                  ──> sink ──> writer thread (sinkwriter) ──> Parquet,
                                               Redis or memory (sinks)

Layered inside too: runs < tables, sinkwriter < sinks < tracking. Imports
point down to ``core`` only; executors call ``tracking.track`` for every run.
"""
