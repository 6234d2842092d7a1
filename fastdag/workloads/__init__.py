"""The classic DAG workloads (filled in by the workloads issue)."""
