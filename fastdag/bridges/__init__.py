"""Bridges between fastdag and other engines.

``dask_graph`` and ``dask_scheduler``: Dask graphs run on fastdag's executors
(``fastdag.dask.get``). The opposite direction, fastdag graphs on a Dask or
Ray cluster, lives with the other executors (``executors.dask_cluster``,
``executors.ray_cluster``). Nothing here imports Dask until it is used.
"""
