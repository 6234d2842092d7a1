"""ThreadExecutor: tasks on a thread pool, for code that releases the GIL.

Scheduling is plain dependency counting: a task is submitted to the pool
the moment its last input is computed. Results stay in this process, so
nothing is pickled and nothing is copied. Several runs share the pool.

A graph computed from inside a task of this pool runs inline, in that task's
thread: queued behind the tasks that wait for it, it could never start.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.errors import TaskError
from ..core.graph import DAG, Node
from ..core.plan import Plan, batch_size
from ..engine.executor import Executor, RunFuture, as_dag
from .inprocess import InProcessRun, run_inline

# The pool whose task this thread is running, if any (see the module docstring).
_running = threading.local()


class ThreadExecutor(Executor):
    """A pool of ``workers`` threads (default: one per core)."""

    name = "threads"
    survives_fork = True  # a forked child makes a pool of its own (``_get_pool``)

    def __init__(self, workers: int | None = None, metrics: Any = None):
        self.workers = workers or os.cpu_count() or 1
        self.metrics = metrics
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0  # the process whose threads the pool holds
        self._lock = threading.Lock()
        self._open: set[RunFuture] = set()  # runs started and not done, for shutdown()

    def settings(self) -> dict[str, Any]:
        return {"workers": self.workers}

    def _get_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                # After os.fork the parent's pool has no threads here: it would never run.
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="fastdag")
                self._pool_pid = os.getpid()
            return self._pool

    def submit(self, dag_or_nodes: DAG | Node | Iterable[Node], **options: Any) -> RunFuture:
        dag, single = as_dag(dag_or_nodes)
        return self.submit_plan(dag, single, **options)

    def submit_plan(self, plan: Plan | DAG, single: bool = False, **options: Any) -> RunFuture:
        """Run a Plan built by something other than a DAG (a Dask graph, see bridges)."""
        return self.start(plan, single, options.get("name", ""),
                          before=lambda future: self._track(future, options))

    def start(self, plan: Plan | DAG, single: bool, name: str = "",
              before: Callable[[RunFuture], Any] | None = None, **run_options: Any) -> RunFuture:
        """Start running on the pool; its Future.

        ``before(future)`` (handing it to metrics) is called before any task
        starts: its first call imports the metrics modules, work that would
        otherwise hold the GIL against the run's first tasks (the numpy
        ones wait for it at every return from C).

        Called from one of the pool's own tasks (a nested ``compute()``), the
        graph runs inline in that thread: waiting for the pool there could
        wait for the very thread that is waiting. ``run_options`` go to ``new_run``.
        """
        run = self.new_run(plan, single, name, **run_options)
        if before is not None:
            before(run.future)
        pool = self._get_pool()
        if getattr(_running, "pool", None) is pool:
            run_inline(run)
        else:
            with self._lock:
                self._open.add(run.future)
            run.future.add_done_callback(self._closed_run)
            _PoolRun(run, pool, self.workers).start()
        return run.future

    def _closed_run(self, future: RunFuture) -> None:
        with self._lock:
            self._open.discard(future)

    def new_run(self, plan: Plan | DAG, single: bool, name: str = "") -> InProcessRun:
        """The run state of one submitted graph (a subclass may guard inputs or profile)."""
        return InProcessRun(plan, single, self.name, self.settings(), self.event_bus, name)

    def shutdown(self, wait: bool = True) -> None:
        """Let the runs started finish (``wait``) or cancel them, then stop the pool.

        A run's later tasks are queued on the pool as earlier ones finish, so
        the pool is stopped only once no run needs it: cancelling its queue
        under a run would leave that run's future pending for ever.
        """
        with self._lock:
            pool, self._pool = self._pool, None
            runs = list(self._open)
        if wait:
            concurrent.futures.wait(runs)
        else:
            for future in runs:
                future.cancel()
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)
        self._wait_for_metrics()


class _PoolRun:
    """One run's tasks on the pool.

    A plain object rather than closures: two closures calling each other
    form a reference cycle, which would keep a finished run (and its
    result) alive until the garbage collector ran. The pool's work items
    are the only references here, so the run is freed when its last batch
    ends.
    """

    def __init__(self, run: InProcessRun, pool: ThreadPoolExecutor, workers: int):
        self.run = run
        self.pool = pool
        self.workers = workers
        self.pending = len(run.plan)

    def start(self) -> None:
        self.spread([i for i, deps in enumerate(self.run.plan.deps) if not deps], time.time())

    def step(self, batch: list[int], ready_at: float) -> None:
        # Depth first through the batch, continuing with one consumer of
        # each finished task here; a loop, so a 100,000-task chain is fine.
        run = self.run
        stack = batch[::-1]
        _running.pool = self.pool
        try:
            while stack and not run.future.done():
                i = stack.pop()
                value = run.run_one(i, ready_at)
                with run.lock:
                    ready = run.complete(i, value)
                    self.pending -= 1
                    finished = not self.pending
                if finished:
                    run.finish()
                    return
                if ready:
                    ready_at = time.time()
                    stack.append(ready[0])
                    self.spread(ready[1:], ready_at)
        except TaskError as exc:
            run.fail(exc)
        except BaseException as exc:  # noqa: BLE001 - never leave the caller waiting
            run.fail(exc)
        finally:
            _running.pool = None

    def spread(self, tasks: list[int], ready_at: float) -> None:
        """Give tasks to the pool in batches sized as LocalExecutor sizes them.

        Tiny tasks go in up to ``workers`` contiguous batches (a thread then
        runs a whole subtree); once tasks are known to be slow, in small
        batches, so that the pool's queue balances them.
        """
        if not tasks:
            return
        size = batch_size(len(tasks), self.workers, self.run.mean_task_s())
        for k in range(0, len(tasks), size):
            self.pool.submit(self.step, tasks[k:k + size], ready_at)
