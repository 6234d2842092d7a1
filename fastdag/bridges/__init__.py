"""Bridges between fastdag and other engines, in both directions.

    Dask collection ──scheduler=fastdag.dask.get──> dask_scheduler ──> dask_graph.to_plan
        ──> Plan on a fastdag executor (Executor.dask_get, through core.hooks)

    fastdag DAG ──DaskExecutor / RayExecutor──> engine_executor.split_plan: one-task Plans
        ──clusters.group──> one engine task per cluster (tiny tasks together)
        ──> dask.distributed / Ray workers, each running fastdag's runner (dask_cluster,
            ray_cluster)

Above the engine layer, beside ``executors`` and ``distributed``; nothing
here imports Dask or Ray until it is used.
"""
