"""LocalExecutor: persistent worker processes, shared-memory data, one scheduler thread.

Data flow::

    caller threads                 scheduler thread                  worker processes
    --------------                 ----------------                  ----------------
    submit(dag) --plan--> inbox --wake--> RunState per run  --batch-->  Worker.batch()
        |                                  |   ^                          |  runs tasks,
        |   Plan pickled once into a       |   +----report / error-------+  continues
        |   /dev/shm segment; workers      |                              |  locally
        |   map it zero-copy               |                              v
    Future <------ outputs mapped --------+          /dev/shm: fastdag-<token>-<worker>-<hex>
                   copy-on-write                      (results other workers need)

What the scheduler thread tells the executor's event bus (``events.py``):
``RunSubmitted`` (from ``submit``), ``TasksReady`` per batch sent to a
worker, the workers' records as ``TaskBatch`` (from progress messages
mid-batch and from reports), ``DataMoved`` per result stored in shared
memory or bundled, ``TaskFailed``, ``TaskRetried`` after a crash,
``WorkerStarted`` / ``WorkerDied``, and ``RunFinished``, from which the run
recorder (``metrics/recorder.py``) has built the run's report before its future
resolves. Plain (non-batched) subscribers are served by the bus's own
thread, so the scheduler never waits for them.

``<token>`` is ``<client pid>.<16 random hex>``; every file also ends in 64
random bits of its own (``store/files.py``: created exclusively, read only if
our uid wrote it).

Workers are started once (``subprocess`` running ``executors/boot.py``, then
``engine/worker.py``: i.e. a fresh interpreter as with the *spawn*
method, never a fork of this threaded process) and live until
``shutdown()``. Each is connected by a duplex pipe; the scheduler thread
waits on all pipes, all worker process handles and a wake-up pipe for the
inbox.

Scheduling policy, in the order the scheduler applies it:

1. A task is *ready* once all its dependencies have been reported done.
   Tasks made ready by a worker's final report go to that worker's own
   queue (``RunState.local``): the fan-in runs where its last input landed.
   Tasks made ready by a mid-batch report (a fan-out the worker split) go to
   the shared queue (``RunState.ready``) for whoever is idle.
2. An idle worker takes, from the next run in round-robin order (so small
   runs are not starved by large ones), its own queue first, then the shared
   queue, then other workers' queues. It takes a batch of
   ``plan.batch_size`` tasks: an even share of what was ready among all
   workers, busy ones included (a busy worker takes its share when it is
   done), and no more than about 20 ms of work once tasks are known to be
   slow.
3. Inside a batch the worker continues with consumers it can feed itself
   (see ``engine/worker.py``), reporting ``claimed`` tasks so they are not given
   out twice.
4. When nothing is ready and a worker is idle, the busiest worker is asked
   for tasks of its batch it has not started (``_steal``); it hands back
   half of them, those it would run last, between two of its tasks, and
   they go to the idle worker whole: a run's end is shared, not left to
   the slowest batch.

State per run (``RunState``, on ``schedstate.SchedulerState``, which keeps
the bookkeeping testable without processes): ``remaining`` dependencies not
yet reported per task; ``done``; ``refcount``, for each stored result, its
consumers that have not run yet (+1 when the caller wants the value), counted
when the result is stored and decreased by the reads workers report; at zero
the result is unlinked;
``claims`` (task -> worker running it as a continuation); ``stored`` (task ->
StoredRef) and ``bundled`` (task -> the Bundle holding its small result, see
``store/bundle.py``: a wide fan-in's inputs travel as a few bundles, not a
ref each); the ready queues; ``crashes`` per task, for retries after a
worker died.

Failure handling: a task error or a crash beyond its retries fails the run
(``TaskError`` / ``WorkerCrashedError``), and so does ``future.cancel()``.
A failed run is *closed*: its stored results are unlinked, its queues
dropped, and workers busy on it are told to stop; one still busy after
``cancel_grace`` seconds is killed and replaced. A dead worker is replaced
and the segments it created but never reported are swept from /dev/shm.

When the client dies: workers die with it (a parent-death signal, and a
watcher thread as a fallback, ``engine/lifeline.py``), even in the middle of a task.
SIGTERM cleans up as Ctrl-C does (``engine/sigterm.py``); after SIGKILL,
the next executor to start sweeps the files whose owner pid is gone.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import mmap
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import cloudpickle

from .. import events as ev
from ..core.errors import (CancelledError, SchedulerDied, SerializationError, TaskError,
                      WorkerCrashedError, describe_exception, unloadable_result)
from ..core import captured
from ..core.graph import DAG, Node, gc_paused
from ..core.records import END, RAW_WIDTH, START
from ..metrics.runs import HOST
from ..core.plan import Plan, batch_size, build_plan
from ..core.runner import received_error
from ..core.serialize import describe_unpicklable, dumps
from ..store.base import StoredRef
from ..store.bundle import Bundle
from ..store import files
from ..store.constants import ConstantCache, Pins
from ..store.shm import INLINE_THRESHOLD, SHM_DIR, SharedMemoryStore, shm_free_bytes
from ..engine import sigterm
from ..engine.executor import Executor, RunFuture, as_dag
from ..engine.messages import Returned, ShippedPlan
from .lazystart import modules_to_preload
from .placement import INLINE, PROCESSES, Placement
from .schedstate import SchedulerState
from ..engine.worker import BLAS_THREAD_VARS, SLOT


SMALL_SHM = 256 * 2**20
# The GIL switch interval while workers are started from a graph's threads: each of
# the spawn's system calls gives up the GIL, and takes one interval to get it back
# from a pure-Python thread (5 ms by default: 100-200 ms for two workers).
SPAWN_SWITCH_S = 0.0002
_SPAWNING = threading.Lock()  # the switch interval is the process's: set and put back by one
# The worker imports everything, fastdag first, from the caller's sys.path (argv[1]): a
# bare ``python -c`` would look in the current folder first, and could load another fastdag.
_WORKER_BOOT = ("import sys; sys.path[:] = sys.argv[1].split('\\n'); "
                "from fastdag.executors.boot import boot; boot(sys.argv[2:])")


@dataclass
class WorkerHandle:
    wid: int
    generation: int
    process: subprocess.Popen
    conn: Connection
    sentinel: int
    prefix: str
    alive: bool = True
    busy_run: int | None = None
    batch: list[int] = field(default_factory=list)
    batches: int = 0          # sent: a steal request names the batch it is meant for
    asked: bool = False       # a steal request for this batch is unanswered
    kill_at: float | None = None

    @property
    def name(self) -> str:
        return f"{HOST}:{self.process.pid}"


@dataclass(kw_only=True)
class RunState(SchedulerState):
    """A run's task states (``schedstate.py``: ready queues, claims, reader counts)
    and what the executor keeps beside them."""

    id: int
    future: RunFuture
    plan_ref: StoredRef
    start: float
    settings: dict[str, Any]
    stored: dict[int, StoredRef] = field(default_factory=dict)
    bundled: dict[int, Bundle] = field(default_factory=dict)
    crashes: dict[int, int] = field(default_factory=dict)
    unreported: dict[int, int] = field(default_factory=dict)  # worker -> done, not yet reported
    seen_by: set[int] = field(default_factory=set)
    records: list[tuple[str, Any]] = field(default_factory=list)  # for placement: RAW_FIELDS
    mean_task_s: float | None = None
    closed: bool = False
    constants: list[str] = field(default_factory=list)  # cached constants the plan pins


class LocalExecutor(Executor):
    """A pool of worker processes sharing results through /dev/shm.

    ``workers`` defaults to the number of cores; ``blas_threads`` to
    cores // workers (at least 1), so that workers x BLAS threads does not
    oversubscribe the machine. Workers start on first use.

    ``constant_cache``: bytes of /dev/shm that large arrays captured in
    graphs may keep between runs (see ``store.constants``), so that running
    a graph again on the same data does not copy the data again; None means
    a quarter of /dev/shm, 0 turns the cache off.

    ``dashboard``: True (any free port), a port or "host:port" serves the
    live web dashboard while the executor lives (``dashboard_url``).

    ``placement="auto"`` (what the default executor of ``fd.compute`` uses)
    runs graphs of GIL-releasing functions on threads in this process and
    the others on the workers, and runs graphs on threads while the workers
    start (see ``placement.py``), which it does once a graph needs them
    (``lazystart.py``); ``"processes"`` sends every graph to them.
    """

    name = "local"

    def __init__(self, workers: int | None = None, blas_threads: int | None = None,
                 inline_threshold: int = INLINE_THRESHOLD, cancel_grace: float = 1.0,
                 metrics: Any = None, constant_cache: int | None = None,
                 dashboard: bool | int | str = False, placement: str = "processes"):
        cores = os.cpu_count() or 1
        self.workers = workers or cores
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.blas_threads = blas_threads or max(1, cores // self.workers)
        self.inline_threshold = inline_threshold
        self.cancel_grace = cancel_grace
        self.metrics = metrics
        self.token = files.owner_token()
        self.prefix = f"fastdag-{self.token}"
        self.store = SharedMemoryStore(self.prefix + "-c", inline_threshold)
        self.constants = ConstantCache(self.prefix, constant_cache)
        self._lock = threading.Lock()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._broken: SchedulerDied | None = None
        self._closed = False
        self._stop_when_idle = False  # shutdown(wait=True) came while runs were open
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._handles: list[WorkerHandle] = []
        self._runs: dict[int, RunState] = {}
        self._run_ids = iter(range(1, sys.maxsize))
        self._rr = 0
        self._status: mmap.mmap | None = None
        self._status_path: str | None = None  # made at start, under a fresh name
        self._pid = os.getpid()  # a forked child must leave this process's workers and files be
        self._finalizer = weakref.finalize(self, _emergency_cleanup, self.prefix, self._pid)
        atexit.register(_shutdown_ref, weakref.ref(self))
        sigterm.watch(self)
        self._feed = ev.RecordFeed(self.event_bus)
        self._serve_dashboard(dashboard)
        if placement not in ("processes", "auto"):
            raise ValueError(f"placement must be 'processes' or 'auto', got {placement!r}")
        self.placement = (Placement(self.workers, self.settings, self.event_bus, self.submit_plan,
                                    self.start_workers)
                          if placement == "auto" else None)
        self._preload: list[str] = []  # modules the workers import first (lazystart.py)

    def __reduce__(self):
        raise TypeError(
            "a LocalExecutor cannot be sent to a worker process; inside a task, call "
            "compute() without an executor: the inner graph then runs in that worker")

    def settings(self) -> dict[str, Any]:
        return {"workers": self.workers, "blas_threads": self.blas_threads,
                "inline_threshold": self.inline_threshold,
                "constant_cache": self.constants.budget}

    def worker_pids(self) -> list[int]:
        return [h.process.pid for h in self._handles if h.alive]

    # -- caller side --------------------------------------------------------
    def submit(self, dag_or_nodes: DAG | Node | Iterable[Node], **options: Any) -> RunFuture:
        self._check_usable()
        dag, single = as_dag(dag_or_nodes)
        plan = build_plan(dag)  # placed by its task list, run from it wherever it goes
        placed = self._placed(plan, single, options)
        return placed if placed is not None else self.submit_plan(plan, single, **options)

    def submit_placed(self, plan: Plan, single: bool = False, **options: Any) -> RunFuture:
        """A Plan built outside DAGs (a Dask graph), placed as ``submit`` places a DAG."""
        self._check_usable()
        placed = self._placed(plan, single, options)
        return placed if placed is not None else self.submit_plan(plan, single, **options)

    def _placed(self, graph: DAG | Plan, single: bool, options: dict) -> RunFuture | None:
        """The run on threads here if placement puts ``graph`` there, else None."""
        if self.placement is None:
            return None
        where = self.placement.where(graph)  # starts the workers if the graph needs them
        if where == PROCESSES:
            return None
        name = options.get("name", "")
        if where == INLINE:  # done when it returns: nothing runs beside the tracking
            return self._track(self.placement.run_inline(graph, single, name), options)
        return self.placement.run_on_threads(graph, single, name,
                                             lambda future: self._track(future, options))

    def submit_plan(self, plan: Plan, single: bool = False, **options: Any) -> RunFuture:
        """Run a Plan built by something other than a DAG (a Dask graph, see bridges)."""
        self._check_usable()
        run_id = next(self._run_ids)
        with gc_paused():
            plan_ref, constants = self._store_plan(plan)
        future = RunFuture(f"{self.token}-{run_id}", single,
                           on_cancel=lambda: self._post(("cancel", run_id)),
                           events=self.event_bus)
        state = RunState(id=run_id, plan=plan, future=future, plan_ref=plan_ref,
                         start=time.time(), settings=self.settings(), constants=constants)
        future.tasks_total = len(plan)
        self._track(future, options)
        ev.run_submitted(self.event_bus, future.run_id, self.name, plan, options.get("name", ""),
                         state.settings)
        self._ensure_started()
        future.scheduler = self._thread
        with self._lock:  # the scheduler's death handler drains the inbox after setting this
            broken = self._broken
            if broken is None:
                self._post(("run", state))
        if broken is not None:
            self._release_plan(state)
            ev.run_finished(self.event_bus, future.run_id, state.start, broken)
            future.fail(broken)
        return future

    def _store_plan(self, plan: Plan) -> tuple[StoredRef, list[str]]:
        """Put the plan in shared memory; also return the cached constants it pins."""
        pins = Pins()
        try:
            shipped = ShippedPlan(*captured.lift(plan))  # large text: out of band, read lazily
            payload = dumps(shipped, lambda array: self.constants.reducer(array, pins))
            return self.store.put_payload("plan", payload), pins.names
        except Exception as exc:  # noqa: BLE001 - find the task to blame
            self.constants.unpin(pins.names)
            if isinstance(exc, OSError):
                raise
            raise _unpicklable_argument(plan, exc) from exc

    def start_workers(self, funcs: Iterable[Callable] = ()) -> None:
        """Start the workers (if not started yet) for a graph of ``funcs``, whose
        modules they import before they report up (see ``lazystart.py``)."""
        if self._thread is None:
            self._preload = modules_to_preload(funcs)
        with _SPAWNING:  # one at a time: a second caller would save the short interval as "old"
            interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, SPAWN_SWITCH_S))
            try:
                self._ensure_started()
            finally:
                sys.setswitchinterval(interval)

    def _post(self, item: tuple) -> None:
        self._inbox.put(item)
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError("this LocalExecutor has been shut down")
        if os.getpid() != self._pid:
            raise RuntimeError(
                f"this LocalExecutor belongs to process {self._pid}, which this one was forked "
                "from: its workers serve that process only. Make a new executor here "
                "(fd.compute() without one makes its own default in each process)")

    def shutdown(self, wait: bool = True) -> None:
        if os.getpid() != self._pid:  # a forked child: the workers and files are the parent's
            self._closed = True
            self._finalizer.detach()
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._stop_dashboard()
        if self.placement is not None:
            self.placement.shutdown(wait)
        if thread is None:
            self._cleanup_files()
            return
        self._post(("stop", wait))
        thread.join()
        self._cleanup_files()
        self._wait_for_metrics()

    def _cleanup_files(self) -> None:
        self.constants.clear()
        self.store.sweep(self.prefix)  # segments, cached constants and the status file
        self._finalizer.detach()

    # -- start-up -----------------------------------------------------------
    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            if self._closed:
                raise RuntimeError("this LocalExecutor has been shut down")
            # What clients killed before cleaning up left behind.
            files.sweep_orphans([SHM_DIR, self.store.spill_dir])
            free = shm_free_bytes()
            if free < SMALL_SHM:
                warnings.warn(
                    f"{SHM_DIR} has only {free / 2**20:.0f} MiB free: results that do not fit "
                    "will spill to slower files. In Docker, start the container with a larger "
                    "--shm-size (e.g. --shm-size=4g).", RuntimeWarning, stacklevel=4)
            name, fd = files.create_exclusive(SHM_DIR, self.prefix, files.STATUS_SUFFIX)
            self._status_path = os.path.join(SHM_DIR, name)
            files.hold(fd)  # held by the mapping's own descriptor until it is closed
            os.ftruncate(fd, SLOT.size * self.workers)
            self._status = mmap.mmap(fd, 0)
            os.close(fd)
            self._thread = self._start_scheduler()

    def _start_scheduler(self) -> threading.Thread:
        """Start the scheduler thread, which starts the workers; once they run, return it.

        The workers are the scheduler thread's children, not the caller's: a
        worker's parent-death signal fires when the *thread* that started it
        ends, and a caller's thread (a thread pool's) may end long before the
        executor does.
        """
        started = threading.Event()
        failed: list[BaseException] = []

        def serve() -> None:
            try:
                for w in range(self.workers):
                    self._handles.append(self._start_worker(w, 0))
            except BaseException as exc:  # noqa: BLE001 - raised in the caller below
                failed.append(exc)
                return
            finally:
                started.set()
            self._loop()

        thread = threading.Thread(target=serve, name="fastdag-scheduler", daemon=True)
        thread.start()
        started.wait()
        if failed:
            thread.join()
            for h in self._handles:
                h.process.kill()
                h.process.wait()
            self._handles = []
            raise failed[0]
        return thread

    def terminate(self) -> None:
        """Stop at once, from a signal handler: kill the workers, unlink every file.

        Takes no lock (the interrupted thread may hold one); the process is
        about to end, so nothing waits for the runs.
        """
        self._closed = True
        for h in list(self._handles):
            if h.alive:
                h.process.kill()
        for h in list(self._handles):
            try:
                h.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.store.sweep(self.prefix)  # everything: segments, constants, the status file
        self._finalizer.detach()

    def _start_worker(self, wid: int, generation: int) -> WorkerHandle:
        SLOT.pack_into(self._status, wid * SLOT.size, 0, -1)
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        for var in BLAS_THREAD_VARS:
            env[var] = str(self.blas_threads)
        if self.placement is not None:
            env["FASTDAG_GIL_SAMPLE"] = "1"  # workers measure GIL holding for placement
        prefix = f"{self.prefix}-{wid}.{generation}"
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_BOOT, "\n".join(sys.path), "\n".join(self._preload),
             str(theirs.fileno()),
             str(wid), self._status_path, prefix, str(self.blas_threads), self.store.spill_dir,
             str(os.getpid())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        conn = Connection(ours.detach())
        handle = WorkerHandle(wid=wid, generation=generation, process=proc, conn=conn,
                              sentinel=os.pidfd_open(proc.pid), prefix=prefix)
        ev.worker_changed(self.event_bus, handle.name, None)
        return handle

    # -- the scheduler thread ----------------------------------------------
    def _loop(self) -> None:
        try:
            self._schedule()
        except BaseException as exc:  # noqa: BLE001 - never die silently, runs are waiting
            self._scheduler_died(exc)

    def _schedule(self) -> None:
        stopping = False
        while True:
            by_obj: dict[Any, tuple[str, WorkerHandle]] = {}
            for h in self._handles:
                if h.alive:
                    by_obj[h.conn] = ("conn", h)
                    by_obj[h.sentinel] = ("dead", h)
            for obj in wait([self._wake_r, *by_obj], self._next_deadline()):
                if obj is self._wake_r:
                    stopping = self._drain_inbox() or stopping
                    continue
                what, h = by_obj[obj]
                if not h.alive:
                    continue
                if what == "conn":
                    try:
                        data = h.conn.recv_bytes()
                    except (EOFError, OSError):
                        self._worker_died(h, stopping)
                        continue
                    self._on_message(h, data)
                else:
                    self._worker_died(h, stopping)
            self._kill_overdue()
            self.constants.expire()
            if self._stop_when_idle and all(r.closed for r in self._runs.values()):
                stopping = True
            if stopping:
                self._stop_workers()
                return
            self._dispatch()

    def _next_deadline(self) -> float | None:
        """Seconds until something is due: a worker to kill, a cached constant to expire."""
        now = time.time()
        waits = [h.kill_at - now for h in self._handles if h.alive and h.kill_at]
        expiry = self.constants.next_expiry()
        if expiry is not None:
            waits.append(expiry)
        return max(0.0, min(waits)) if waits else None

    def _drain_inbox(self) -> bool:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        stop = False
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return stop
            kind = item[0]
            if kind == "run":
                state: RunState = item[1]
                if state.future.cancelled():
                    self._release_plan(state)
                    continue
                self._runs[state.id] = state
            elif kind == "cancel":
                run = self._runs.get(item[1])
                if run is not None:
                    self._close_run(run, CancelledError("the run was cancelled"))
            elif kind == "stop":
                if item[1] and any(not r.closed for r in self._runs.values()):
                    # Let the runs finish first: _schedule stops once they have (no
                    # wake-up byte would come to read a "stop" put back in the inbox).
                    self._stop_when_idle = True
                    return stop
                for run in list(self._runs.values()):
                    self._close_run(run, CancelledError("the executor was shut down"))
                stop = True

    # -- messages from workers ----------------------------------------------
    def _on_message(self, h: WorkerHandle, data: bytes) -> None:
        """Apply one message; one that cannot be applied fails its run, never this thread."""
        msg: Any = None
        try:
            with gc_paused():  # a report may carry a million records
                msg = pickle.loads(data)
                self._handle(h, msg)
        except Exception as exc:  # noqa: BLE001
            known = isinstance(msg, tuple) and len(msg) > 1
            run = self._runs.get(msg[1] if known else h.busy_run)
            if run is not None:
                self._close_run(run, TaskError(
                    f"fastdag could not handle a message from worker {h.name} about run "
                    f"{run.future.run_id}: {describe_exception(exc)}"))

    def _scheduler_died(self, exc: BaseException) -> None:
        """Fail every pending and later run with the reason, and stop the workers."""
        err = SchedulerDied(f"the LocalExecutor's scheduler thread died: "
                            f"{describe_exception(exc)}; this executor runs nothing more "
                            "(shut it down and start another)")
        err.__cause__ = exc
        for h in self._handles:
            if h.alive:
                h.process.kill()
                h.process.wait()
                h.alive = False
        with self._lock:
            self._broken = err
        runs = list(self._runs.values())
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if item[0] == "run":
                runs.append(item[1])
        for run in runs:
            if not run.closed:
                ev.run_finished(self.event_bus, run.future.run_id, run.start, err)
            run.future.fail(err)

    def _handle(self, h: WorkerHandle, msg: tuple) -> None:
        if msg[0] in ("up", "gil"):
            if self.placement is not None:
                self.placement.from_worker(h.wid, msg, self._runs)
            return
        if msg[0] == "returned":
            self._returned(h, msg)
            return
        if msg[0] == "progress":
            run = self._runs.get(msg.run)
            if run is not None:
                # Every worker's unreported completions count, not only this one's.
                run.unreported[h.wid] = msg.done
                run.future.tasks_done = run.ndone + sum(run.unreported.values())
                if not run.closed:  # no events after a run's RunFinished
                    self._feed.progress(run.future.run_id, h.wid, h.name, msg.records)
            return
        if msg[0] == "report":  # messages.Report
            run_id, completed, boundary, consumed, stored, bundles, claimed, records, final = \
                msg.run, msg.completed, msg.boundary, msg.consumed, msg.stored, msg.bundles, \
                msg.claimed, msg.records, msg.final
            failure = None
        else:  # messages.Failed: the run fails; only its stored results matter now
            run_id, failure, stored = msg.run, msg.failure, msg.stored
            completed, boundary, consumed, bundles, claimed, records = (), (), (), (), (), ()
            final = True
        if final:
            h.busy_run = None
            h.batch = []
            h.kill_at = None
            h.asked = False
        run = self._runs.get(run_id)
        if run is None or run.closed:
            for ref in stored.values():
                self.store.delete(ref)
            if run is not None:
                self._maybe_forget(run)
            self._feed.forget(h.wid)
            return
        self._feed.report(run.future.run_id, h.wid, h.name, records)
        self._feed.stored(run.future.run_id, h.name, stored)
        self._feed.bundled(run.future.run_id, h.name, bundles)
        if records:
            if self.placement is not None:  # it learns tiny tasks' times from them
                run.records.append((h.name, records))
            # First task's start to last task's end.
            busy = (records[END - RAW_WIDTH] - records[START]) / (len(records) // RAW_WIDTH)
            run.mean_task_s = busy if run.mean_task_s is None else 0.5 * (run.mean_task_s + busy)
        self._complete(run, h, completed, boundary, consumed, stored, claimed, final)
        if bundles:
            self._add_bundles(run, bundles)
        if failure is not None:
            sent = pickle.loads(failure)
            error = received_error(run.plan.name(sent.index), sent)
            ev.task_failed(self.event_bus, run.future.run_id, sent.index, h.name, error)
            self._close_run(run, error)
        elif run.ndone == len(run.plan):
            self._finish_run(run)

    def _complete(self, run: RunState, h: WorkerHandle, completed, boundary: list[int],
                  consumed: list[int], stored: dict[int, StoredRef], claimed: list[int],
                  final: bool) -> None:
        """Apply a report: completions, new stored results, reads, claims, readiness."""
        run.report(h.wid, completed, boundary, claimed, final)
        run.unreported.pop(h.wid, None)
        run.future.tasks_done = run.ndone + sum(run.unreported.values())
        # Reads of results stored earlier; results stored by this report
        # start counting after its completions, from the consumers not run yet.
        for d in run.read(consumed):
            self._free(run, d)
        run.stored.update(stored)
        self._count_readers(run, stored)

    def _add_bundles(self, run: RunState, bundles: list[Bundle]) -> None:
        """Keep a report's bundles of small results, each member counted as a stored one."""
        for b in bundles:
            run.bundled.update(dict.fromkeys(b.tasks, b))
            self._count_readers(run, b.tasks)

    def _count_readers(self, run: RunState, results: Iterable[int]) -> None:
        """Start the reference counts of new stored results; free those nobody will read."""
        for d in run.count_readers(results):
            self._free(run, d)

    def _free(self, run: RunState, i: int) -> None:
        run.refcount.pop(i, None)
        ref = run.stored.pop(i, None)
        if ref is not None:
            self.store.delete(ref)
        else:
            run.bundled.pop(i, None)  # the bundle goes with its last member

    # -- run completion -------------------------------------------------------
    def _finish_run(self, run: RunState) -> None:
        plan = run.plan
        outputs = []
        for o in plan.outputs:
            try:
                outputs.append(self.store.get(run.stored[o]))
            except Exception as exc:  # noqa: BLE001 - a result the caller cannot load
                self._close_run(run, unloadable_result(plan.name(o), exc))
                return
        self._close_run(run, None)  # RunFinished: the run recorder makes the report
        if self.placement is not None:
            self.placement.learn_run(plan, run.records)
        run.future.finish(outputs)

    def _close_run(self, run: RunState, error: BaseException | None) -> None:
        """End a run: free its data, stop its workers' batches, fail its future."""
        if run.closed:
            return
        run.closed = True
        ev.run_finished(self.event_bus, run.future.run_id, run.start, error)
        if error is not None:
            run.future.fail(error)
        for ref in run.stored.values():
            self.store.delete(ref)
        run.stored.clear()
        run.bundled.clear()
        run.clear()
        deadline = time.time() + self.cancel_grace
        for h in self._handles:
            if h.alive and h.busy_run == run.id:
                self._send(h, ("cancel", run.id))
                h.kill_at = deadline
        self._maybe_forget(run)

    def _maybe_forget(self, run: RunState) -> None:
        """Drop a closed run once no worker is still busy with it."""
        if any(h.alive and h.busy_run == run.id for h in self._handles):
            return
        for h in self._handles:
            if h.alive and h.wid in run.seen_by:
                self._send(h, ("end", run.id))
        self._release_plan(run)
        self._runs.pop(run.id, None)

    def _release_plan(self, run: RunState) -> None:
        self.store.delete(run.plan_ref)
        self.constants.unpin(run.constants)

    # -- dispatch -------------------------------------------------------------
    def _dispatch(self) -> None:
        idle = [h for h in self._handles if h.alive and h.busy_run is None]
        if not idle or not self._runs:
            return
        live = sum(1 for h in self._handles if h.alive)
        shares: dict[int, int] = {}  # per run: sized once per round, on what was ready
        for k, h in enumerate(idle):
            runs = [r for r in self._runs.values() if not r.closed and r.ready_count()]
            if not runs:
                self._steal(len(idle) - k)
                return
            own = [r for r in runs if r.local.get(h.wid)]
            run = own[0] if own else runs[self._rr % len(runs)]
            self._rr += 1
            share = shares.get(run.id)
            if share is None:
                share = shares[run.id] = batch_size(run.ready_count(), live, run.mean_task_s)
            self._send_batch(run, h, run.take(h.wid, share))

    def _steal(self, thieves: int) -> None:
        """Nothing is ready and ``thieves`` workers are idle: ask as many busy ones,
        those with the largest batches, for tasks they have not started.

        A batch is an even share of what was ready, but shares finish unevenly
        (tasks differ, another process takes a core): the end of a run is then
        shared out instead of waiting on the slowest worker. A worker asked
        answers between two tasks (``Worker.give_away``), or not at all if it
        has too little left; it is asked again only once it answered.
        """
        busy = [h for h in self._handles if h.alive and h.busy_run is not None and not h.asked
                and len(h.batch) > 1 and not self._runs[h.busy_run].closed]  # busy: not forgotten
        busy.sort(key=lambda h: len(h.batch), reverse=True)
        for h in busy[:thieves]:
            h.asked = True
            self._send(h, ("steal", h.busy_run, h.batches))

    def _returned(self, h: WorkerHandle, msg: Returned) -> None:
        """Tasks ``h`` gave back to a steal request: to an idle worker, else shared."""
        h.asked = False
        run = self._runs.get(msg.run)
        if run is None or run.closed:
            return
        gone = set(msg.tasks)
        h.batch = [t for t in h.batch if t not in gone]
        run.returned(h.wid, msg.tasks)
        idle = [x for x in self._handles if x.alive and x.busy_run is None]
        if idle:  # all of them: a share of them (``_dispatch``) would leave the rest waiting
            self._send_batch(run, idle[0], run.take(idle[0].wid, len(msg.tasks)))

    def _send_batch(self, run: RunState, h: WorkerHandle, tasks: list[int]) -> None:
        deps = run.plan.deps
        stored = run.stored
        plan_ref = None if h.wid in run.seen_by else run.plan_ref
        run.seen_by.add(h.wid)
        h.busy_run = run.id
        h.batch = tasks
        h.batches += 1
        ev.tasks_ready(self.event_bus, run.future.run_id, tasks, h.name)
        with gc_paused():  # a wide fan-in's batch names 100,000 stored inputs
            needed = list(itertools.chain.from_iterable(map(deps.__getitem__, tasks)))
            refs = {d: stored[d] for d in needed if d in stored} if stored else {}
            bundles = _bundles_for(run.bundled, needed) if run.bundled else []
            self._send(h, ("batch", run.id, plan_ref, tasks, refs, bundles))

    def _send(self, h: WorkerHandle, msg: tuple) -> None:
        try:
            h.conn.send_bytes(pickle.dumps(msg, protocol=5))
        except OSError:
            pass  # the sentinel reports the death

    # -- worker death -----------------------------------------------------------
    def _worker_died(self, h: WorkerHandle, stopping: bool) -> None:
        h.alive = False
        try:
            code = h.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            h.process.kill()
            code = h.process.wait()
        ev.worker_changed(self.event_bus, h.name, code)
        run_id, task = SLOT.unpack_from(self._status, h.wid * SLOT.size)
        run = self._runs.get(h.busy_run) if h.busy_run is not None else None
        if run is not None and not run.closed:
            culprit = task if run_id == run.id and task >= 0 else (h.batch[0] if h.batch else -1)
            self._recover(run, h, culprit, code)
        elif run is not None:
            h.busy_run = None
            self._maybe_forget(run)
        for r in self._runs.values():
            r.seen_by.discard(h.wid)  # its replacement has not seen any plan
        h.conn.close()
        os.close(h.sentinel)
        live = {ref.key for r in self._runs.values() for ref in r.stored.values()}
        self.store.sweep(h.prefix, keep=live)  # what it wrote but never reported
        if not stopping and not self._closed:
            self._handles[h.wid] = self._start_worker(h.wid, h.generation + 1)

    def _recover(self, run: RunState, h: WorkerHandle, culprit: int, code: int) -> None:
        plan = run.plan
        h.busy_run = None
        run.unreported.pop(h.wid, None)  # its batch runs again elsewhere
        if culprit >= 0:
            run.crashes[culprit] = run.crashes.get(culprit, 0) + 1
            if run.crashes[culprit] > plan.tasks[culprit].retries:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                self._close_run(run, WorkerCrashedError(
                    f"worker {h.name} died ({how}) while running task {plan.name(culprit)!r}",
                    task=plan.name(culprit)))
                return
        if culprit >= 0:
            ev.task_retried(self.event_bus, run.future.run_id, culprit, h.name,
                            run.crashes[culprit] + 1, f"worker died (exit code {code})")
        # Give the lost work back: its batch, and the continuations it had claimed.
        run.give_back(h.wid, h.batch)
        h.batch = []

    def _kill_overdue(self) -> None:
        now = time.time()
        for h in self._handles:
            if h.alive and h.kill_at is not None and h.kill_at <= now:
                h.kill_at = None
                h.process.kill()

    def _stop_workers(self) -> None:
        for h in self._handles:
            if h.alive:
                self._send(h, ("stop",))
        for h in self._handles:
            if not h.alive:
                continue
            try:
                h.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                h.process.kill()
                h.process.wait()
            h.alive = False
            h.conn.close()
            os.close(h.sentinel)
        if self._status is not None:
            self._status.close()
        if self._status_path is not None:
            files.unlink(self._status_path)


def _bundles_for(bundled: dict[int, Bundle], needed: list[int]) -> list[Bundle]:
    """The bundles holding the inputs ``needed``: whole when the batch reads at least
    half of one, else only the members it reads (a bundle's bytes do not travel
    again with every batch that reads one of its numbers)."""
    reads = collections.Counter(map(bundled.get, needed))  # bundle -> reads (C loops)
    reads.pop(None, None)
    partial = {b for b, n in reads.items() if 2 * n < len(b)}
    if not partial:
        return list(reads)
    members: dict[Bundle, list[int]] = {b: [] for b in partial}
    for d in needed:
        read = members.get(bundled.get(d))
        if read is not None:
            read.append(d)
    return [b.select(dict.fromkeys(members[b])) if b in partial else b for b in reads]


def _unpicklable_argument(plan: Plan, exc: Exception) -> SerializationError:
    for i in range(len(plan)):
        for part, what in ((plan.tasks[i], "function"), (plan.args[i], "arguments"),
                           (plan.kwargs[i], "keyword arguments")):
            try:
                cloudpickle.dumps(part)
            except Exception as inner:  # noqa: BLE001
                culprit = _find_unpicklable(part)
                return SerializationError(
                    f"the {what} of task {plan.name(i)!r} cannot be sent to a worker process: "
                    f"{describe_unpicklable(culprit, inner)}", task=plan.name(i))
    return SerializationError(f"the graph cannot be pickled: {exc}")


def _find_unpicklable(value: Any) -> Any:
    items = value.values() if isinstance(value, dict) else value \
        if isinstance(value, (list, tuple, set, frozenset)) else ()
    for item in items:
        try:
            cloudpickle.dumps(item)
        except Exception:  # noqa: BLE001
            return _find_unpicklable(item)
    return value


def _shutdown_ref(ref: weakref.ref) -> None:
    executor = ref()
    if executor is not None:
        executor.shutdown(wait=False)


def _emergency_cleanup(prefix: str, pid: int) -> None:
    if os.getpid() != pid:  # a forked child's exit: the files are its parent's
        return
    SharedMemoryStore(prefix).sweep()  # segments, spilled ones and the status file
