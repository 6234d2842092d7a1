"""``@fd.task`` on an ``async def`` function: the task's value is what the coroutine returns.

A task's result has to be a value: a coroutine object cannot be pickled to
the caller, and handed back unawaited it would never run. So ``Task`` calls
an async function through ``synchronous(func)``, which runs each call's
coroutine to completion on an event loop of its own (``asyncio.run``), in
whatever thread or process the task runs. Where that thread already runs a
loop (a graph computed inline by async code), the coroutine runs on a short-
lived thread instead, since one thread cannot run two loops.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def synchronous(func: Callable) -> Callable:
    """A plain function with ``func``'s name and signature that runs ``func``'s coroutine."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        return run_coroutine(func(*args, **kwargs))

    return run


def run_coroutine(coro: Any) -> Any:
    """Run ``coro`` to completion and return its value (or raise its exception)."""
    import asyncio  # here: a worker process boots without it
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fastdag-async") as pool:
        return pool.submit(asyncio.run, coro).result()
