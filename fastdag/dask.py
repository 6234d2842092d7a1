"""Dask collections on fastdag: ``dask.compute(x, scheduler=fastdag.dask.get)``.

    import dask.array as da
    import fastdag.dask

    x = da.random.random((4000, 4000), chunks=1000)
    (x @ x.T).sum().compute(scheduler=fastdag.dask.get)   # fastdag's default executor

    with fd.LocalExecutor(workers=4) as ex:
        x.sum().compute(scheduler=ex.dask_get)          # that executor's workers
        with dask.config.set(scheduler=ex.dask_get):
            ...

The default executor places each Dask graph as it places fastdag's own
(``executors/placement.py``): once every Dask task function of a graph is
known to release the GIL (numpy, pandas chunks), the graph runs on threads
of this process with copy-on-write inputs; pure-Python graphs (bags,
delayed) and graphs of functions never seen run on the worker processes,
where chunks travel through shared memory as fastdag's own results do.
Failed tasks raise their own exception type, as with Dask's schedulers.
Task names in metrics are the Dask keys.
"""

from __future__ import annotations

from typing import Any

from .api import get_default_executor


def get(dsk: Any, keys: Any, executor: Any = None, **kwargs: Any) -> Any:
    """Dask's scheduler ``get``: compute ``keys`` (a key or nested lists of keys) of ``dsk``.

    ``executor``: a fastdag executor (default: the process-wide
    LocalExecutor). ``metrics``, ``name`` and ``progress`` are fastdag run
    options; other keyword arguments Dask passes to schedulers are ignored.
    """
    return (executor or get_default_executor()).dask_get(dsk, keys, **kwargs)


__all__ = ["get"]
