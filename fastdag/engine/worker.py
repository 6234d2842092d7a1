"""The worker process of ``LocalExecutor``: runs batches of tasks, keeps data local.

A worker lives as long as its executor. It holds, per run, the Plan (read
once from shared memory) and the results it produced. For each batch it is
sent, it runs the tasks depth first and *continues* with any consumer whose
inputs it now holds (``_push_ready``, after each task): a chain, or a whole
reduction subtree, runs here without a message. When one task makes several
consumers ready, it keeps the first and reports at once, so the scheduler can
hand the others to idle workers (WUKONG's fan-out rule).

Data stays where it was made (delayed I/O): a result goes to the store only
if a consumer that did not run here still needs it, or the caller wants it,
or several consumers will read it (each then maps its own copy-on-write view,
so one consumer writing into its input cannot affect another).

Messages (pickled over a duplex pipe; what a worker sends is a NamedTuple of
``messages.py``, its fields named as here):

  scheduler -> worker   ("batch", run, plan_ref | None, tasks, refs, bundles)
                        ("cancel", run)   stop the current batch of ``run``
                        ("end", run)      drop everything kept for ``run``
                        ("steal", run, batch)  an idle worker waits: give back
                                          some tasks of that batch not started
                        ("stop",)
  worker -> scheduler   ("report", run, completed, boundary, consumed, stored,
                         bundles, claimed, records, final)
                        ("error", run, failure, stored)
                        ("progress", run, done, records)  tasks done since the
                                          last report, and the records not sent yet
                        ("returned", run, tasks)  given back to a steal request

``completed`` is an array of task indices; ``boundary`` the completed tasks
with a consumer not run here; ``consumed`` the stored results that tasks read
from the store (one entry per read, for the scheduler's reference counts);
``claimed`` the tasks this worker has queued locally, so the scheduler does
not hand them to anyone else. ``stored`` maps task -> StoredRef; ``bundles``
carry the small results a report stores (``store/bundle.py``: one object
for thousands of a fan-in's numbers, not a ref each), and a batch's
``bundles`` the members its tasks read. Before each task the worker writes (run, task)
into its status slot, a few bytes of shared memory the scheduler reads if the
process dies, to name the task that killed it.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
from array import array
from collections.abc import Iterable
import struct
import sys
import time
from typing import Any

from ..core import captured
from ..core.gil import MIN_TASK_S, GilSampler
from ..core.graph import ARGS_ARE_DEPS, NO_NODES, gc_paused
from ..core.guard import writeable
from ..core.plan import Plan
from ..core.runner import (FIXED_SIZES, INTERNAL_FILES, TASK_EXCEPTIONS, call_task, describe_failure,
                      nbytes)
from ..core.serialize import PICKLE, dumps
from ..store.base import StoredRef
from ..store.bundle import BUNDLE_ITEM_MAX, Bundle, BundleBuilder
from .lifeline import exit_with_parent
from ..store import files
from ..store.shm import SharedMemoryStore
from .messages import Failed, Report, Returned, ShippedPlan
from .messages import Progress as ProgressMessage
from .step import TaskFailed, failure_bytes, own_arguments, retry_task, unsendable

SLOT = struct.Struct("qq")
INTERNAL_FILES.add(__file__)
POLL_INTERVAL = 0.01
NUMBERS = frozenset({int, float, bool, type(None)})
WIDE = 8  # a task with more inputs: its inputs are fetched together, its readiness scanned
# Measures GIL holding per task for the default executor's placement (see gil.py).
SAMPLER = GilSampler() if os.environ.get("FASTDAG_GIL_SAMPLE") else None
PROGRESS_INTERVAL = 0.1  # live views (fastdag.events) see a batch at least this often
# Tasks handed back to a steal request are worth at least this much work: a
# round trip and storing their inputs' readers' results cost about a millisecond.
STEAL_MIN_S = 0.002


class Held(dict):
    """Results this worker holds for a run, by task index.

    The dict holds the results made here and not stored; a missing key is
    loaded from ``refs`` (a StoredRef, or the Bundle holding it) on each
    lookup, so every consumer gets its own copy-on-write view or copy.
    ``fetch_s`` adds up the time spent loading.
    """

    __slots__ = ("refs", "store", "fetch_s")

    def __init__(self, store: SharedMemoryStore):
        super().__init__()
        self.refs: dict[int, StoredRef | Bundle] = {}
        self.store = store
        self.fetch_s = 0.0

    def gather(self, deps: tuple[int, ...]) -> dict[int, Any]:
        """The values of ``deps`` (distinct copies, as ``__missing__`` loads them), the
        members of a bundle loaded in one pass: a wide fan-in's 100,000 inputs cost one
        step each, not a chain of calls."""
        start = time.time()
        held = dict.__contains__
        found = {d: dict.__getitem__(self, d) for d in deps if held(self, d)}
        refs = self.refs
        members: dict[Bundle, list[int]] = {}
        for d in deps:
            if d not in found:
                ref = refs[d]
                if type(ref) is Bundle:
                    read = members.get(ref)
                    if read is None:
                        members[ref] = [d]
                    else:
                        read.append(d)
                else:
                    found[d] = self.store.get(ref)
        for bundle, read in members.items():
            found.update(zip(read, bundle.load_many(read)))
        self.fetch_s += time.time() - start
        return found

    def __missing__(self, i: int) -> Any:
        start = time.time()
        try:
            ref = self.refs[i]
            if type(ref) is Bundle:
                return ref.load(i)
            return self.store.get(ref)
        finally:
            self.fetch_s += time.time() - start


class RunData:
    """What a worker keeps for one run."""

    __slots__ = ("plan", "values", "refs", "done", "uses_left", "sizes", "announced", "scanned",
                 "lifted")

    def __init__(self, shipped: ShippedPlan, store: SharedMemoryStore):
        plan = self.plan = shipped.plan
        self.lifted = set(shipped.lifted)        # tasks whose captured text is not loaded yet
        self.values = Held(store)
        self.refs = self.values.refs
        self.done = bytearray(len(plan))         # ran here
        self.uses_left = [len(c) for c in plan.dependents]  # consumers not yet run here
        self.sizes: dict[int, int] = {}          # output bytes of results known here
        self.announced: set[int] = set()         # already reported in a boundary
        self.scanned: dict[int, int] = {}        # wide fan-in -> leading inputs known here

    def own_arguments(self, i: int) -> None:
        """Task ``i``'s captured arguments, loaded if lifted (``captured.land``: only
        the text of the tasks run here is decoded, each just before it runs), as
        the task's own copy (``step.own_arguments``)."""
        if i in self.lifted:
            self.lifted.discard(i)
            captured.land(self.plan, i)
        own_arguments(self.plan, i)


def _columns(plan: Plan) -> tuple:
    """The plan's per-task columns the batch loop reads for every task (f(a, b) and
    f(*args) are called inline there; anything else through the step, ``step.py``)."""
    return (plan.deps, plan.dependents, plan.wanted, plan.tasks, plan.modes, plan.args,
            plan.kwargs, plan.simple)


class Progress:
    """What a batch has done since its last report."""

    __slots__ = ("completed", "stored", "records", "consumed", "sent", "gil", "short", "polled",
                 "reported")

    def __init__(self) -> None:
        self.completed: list[int] = []
        self.stored: dict[int, StoredRef] = {}
        self.records = array("d")  # records.RAW_FIELDS of each task, flat
        self.consumed: list[int] = []
        self.sent = 0  # numbers of ``records`` already sent in progress messages
        self.gil = array("d")  # (task, wall s, GIL-held s) of sampled tasks, flat
        # Tasks too short to sample one by one, summed per Task: [a task, wall s, held s]
        self.short: dict[Any, list] = {}
        self.polled = self.reported = 0.0  # when control messages were read, records sent

    def lists(self) -> tuple[list[int], dict[int, StoredRef], array, list[int]]:
        """What the batch loop appends to: completed, stored, records, consumed."""
        return self.completed, self.stored, self.records, self.consumed

    def clear(self) -> None:
        """Empty in place (the batch loop holds these lists) once they are sent."""
        self.completed.clear()
        self.stored.clear()
        del self.records[:]
        self.consumed.clear()
        self.sent = 0
        del self.gil[:]
        self.short.clear()

    def sample(self, i: int, task: Any, wall: float, held: float) -> None:
        """Task ``i``'s GIL sample: its own if it ran long enough, else summed with its
        function's other short runs (``gil.GilProfile.record_window``)."""
        if wall >= MIN_TASK_S:
            self.gil.extend((i, wall, held))
            return
        window = self.short.get(task)
        if window is None:
            self.short[task] = [i, wall, held]
        else:
            window[1] += wall
            window[2] += held

    def gil_message(self, run: int) -> tuple | None:
        """("gil", run, samples, windows) for the client's placement, or None if none."""
        if not self.gil and not self.short:
            return None
        return ("gil", run, self.gil, array("d", [x for w in self.short.values() for x in w]))


class Cancelled(Exception):
    """The scheduler asked to stop the current batch."""


class Batch:
    """The batch a worker is running, as a steal request finds it (``Worker.give_away``)."""

    __slots__ = ("run", "number", "stack", "tasks", "start")

    def __init__(self, run: int, number: int, stack: list[int], tasks: list[int]):
        self.run = run
        self.number = number      # batches this worker was sent, this one included
        self.stack = stack        # the batch loop's own stack: what is left to run
        self.tasks = set(tasks)   # the batch as sent (continuations are not in it)
        self.start = time.time()


class Worker:
    def __init__(self, conn, wid: int, status_path: str, prefix: str,
                 spill_dir: str | None = None):
        self.conn = conn
        self.wid = wid
        self.store = SharedMemoryStore(prefix, spill_dir=spill_dir)
        self.runs: dict[int, RunData] = {}
        fd = files.open_owned(status_path, os.O_RDWR)
        self.status = mmap.mmap(fd, 0)
        os.close(fd)
        self.slot = wid * SLOT.size
        self.cancelled: set[int] = set()
        self.batches = 0  # received: a steal request names the batch it is meant for
        self.current: Batch | None = None

    def send(self, msg: tuple) -> None:
        self.conn.send_bytes(pickle.dumps(msg, protocol=5))

    def serve(self) -> None:
        self.send(("up",))  # booted: the default executor stops running graphs on threads
        while True:
            try:
                data = self.conn.recv_bytes()
            except (EOFError, OSError):
                return
            with gc_paused():  # a batch may name 100,000 stored inputs
                msg = pickle.loads(data)
            if msg[0] == "batch":
                self.batches += 1
                self.batch(*msg[1:])
            elif not self.control(msg):
                return

    def control(self, msg: tuple) -> bool:
        """Handle a message that is not a batch; False means stop."""
        kind = msg[0]
        if kind == "cancel":
            self.cancelled.add(msg[1])
        elif kind == "end":
            self.runs.pop(msg[1], None)
            self.cancelled.discard(msg[1])
        elif kind == "steal":
            self.give_away(msg[1], msg[2])
        elif kind == "stop":
            return False
        return True

    def give_away(self, run: int, number: int) -> None:
        """Hand back to the scheduler, for an idle worker, the tasks of batch ``number``
        this worker would run last: half of those not started (rounded up), unless
        at the batch's pace so far they would take less than ``STEAL_MIN_S``.

        Read between tasks, so a task runs where it started. A request for a
        batch already over is ignored: its final report answers it.
        """
        batch = self.current
        if batch is None or batch.run != run or batch.number != number:
            return
        stack, tasks = batch.stack, batch.tasks
        waiting = [t for t in stack if t in tasks]  # the bottom of the stack runs last
        give = waiting[:(len(waiting) + 1) // 2]
        pace = (time.time() - batch.start) / max(1, len(tasks) - len(waiting))
        if not give or pace * len(give) < STEAL_MIN_S:
            return
        gone = set(give)
        stack[:] = [t for t in stack if t not in gone]
        tasks -= gone
        self.send(Returned("returned", run, give))

    def poll_control(self, run: int) -> None:
        while self.conn.poll():
            msg = pickle.loads(self.conn.recv_bytes())
            if not self.control(msg):
                raise SystemExit(0)
        if run in self.cancelled:
            raise Cancelled

    # -- one batch ----------------------------------------------------------
    def batch(self, run: int, plan_ref: StoredRef | None, tasks: list[int],
              refs: dict[int, StoredRef], bundles: list[Bundle]) -> None:
        data = self.runs.get(run)
        if data is None:
            try:
                data = self.runs[run] = RunData(self.store.get(plan_ref), self.store)
            except Exception as exc:  # noqa: BLE001 - reported, not swallowed
                self.send(Failed("error", run, failure_bytes(describe_failure(tasks[0], exc, 1)),
                                 {}))
                return
        data.refs.update(refs)
        for d, ref in refs.items():
            data.sizes[d] = ref.nbytes
        for b in bundles:
            data.refs.update(dict.fromkeys(b.tasks, b))
            data.sizes.update(zip(b.tasks, b.sizes()))
        progress = Progress()
        if SAMPLER is not None:
            SAMPLER.enter()
        self.current = Batch(run, self.batches, tasks[::-1], tasks)
        try:
            # A batch allocates a few objects per task and makes no cycles of
            # its own; pausing the collector keeps big batches linear.
            with gc_paused():
                self._run(run, data, self.current.stack, progress)
                self._flush(run, data, progress, [], True)
        except Cancelled:
            self.send(Report("report", run, array("i"), [], [], progress.stored, [], [], [],
                             True))
        except TaskFailed as failed:
            if len(progress.records) > progress.sent:  # the run's report keeps what did run
                self._send_records(run, progress)
            self.send(Failed("error", run, failure_bytes(failed.failure), progress.stored))
        finally:
            self.current = None
            if SAMPLER is not None:
                SAMPLER.exit()

    def _run(self, run: int, data: RunData, stack: list[int], progress: Progress) -> None:
        """Run ``stack`` depth first, each task's step then its consumer (locals: what it reads)."""
        plan, values, refs, sizes, done = data.plan, data.values, data.refs, data.sizes, data.done
        deps_of, dependents, wanted, tasks, modes, args_of, kwargs_of, simple = _columns(plan)
        has_value, uses_left, fixed_size = values.__contains__, data.uses_left, FIXED_SIZES.get
        completed, stored, records, consumed = progress.lists()
        status, slot, pack, clock = self.status, self.slot, SLOT.pack_into, time.time
        ready_at = progress.polled = progress.reported = clock()
        while stack:
            i = stack.pop()
            pack(status, slot, run, i)
            start = clock()
            if start - progress.polled > POLL_INTERVAL:
                self._between_tasks(run, progress, start)
            values.fetch_s = 0.0
            held = SAMPLER.held if SAMPLER is not None else 0.0
            deps = deps_of[i]
            try:
                if not simple[i]:
                    data.own_arguments(i)
                source = values.gather(deps) if len(deps) > WIDE else values
                if modes[i] == ARGS_ARE_DEPS and len(deps) == 2:
                    value = tasks[i].func(source[deps[0]], source[deps[1]])
                elif modes[i] == NO_NODES and not kwargs_of[i]:
                    value = tasks[i].func(*args_of[i])
                else:
                    value = call_task(plan, i, source)
                attempts = 1
            except TASK_EXCEPTIONS as exc:  # noqa: BLE001 - retried or reported by the step
                value, attempts = retry_task(plan, i, values, exc)
            if not simple[i]:  # its guarded arguments' views are not the caller's to keep
                value = writeable(value)
            ran = clock()
            if SAMPLER is not None:
                progress.sample(i, tasks[i], ran - start, SAMPLER.held - held)
            # Inputs go first: a task that returns one, modified, holds its only reference.
            in_bytes = 0
            for d in deps:
                in_bytes += sizes.get(d, 0)
                if not has_value(d):
                    consumed.append(d)  # read from the store: the scheduler counts it
                uses_left[d] -= 1
                if not uses_left[d] and not wanted[d]:
                    values.pop(d, None)
            consumers = dependents[i]
            out_bytes = sizes[i] = fixed_size(type(value)) or nbytes(value)
            if wanted[i] or len(consumers) > 1:
                refs[i] = stored[i] = self._put(plan, i, value, handover=True)
                end = clock()
            else:
                values[i] = value
                end = ran
            del value
            done[i] = 1
            completed.append(i)
            records.extend((i, start, end, values.fetch_s, end - ran, in_bytes, out_bytes,
                            attempts, ready_at))
            ready_at = end
            if _push_ready(consumers, stack, done, deps_of, has_value, refs, data.scanned):
                self._flush(run, data, progress, stack, False)

    def _between_tasks(self, run: int, progress: Progress, now: float) -> None:
        """Every POLL_INTERVAL: take control messages (a cancel stops the batch);
        every PROGRESS_INTERVAL: send the records made since the last report, so
        a live view sees a long batch as it runs."""
        self.poll_control(run)
        progress.polled = now
        if now - progress.reported > PROGRESS_INTERVAL:
            self._send_records(run, progress)
            progress.reported = now

    def _send_records(self, run: int, progress: Progress) -> None:
        """The records of the tasks run since the last report or progress message."""
        records = progress.records
        self.send(ProgressMessage("progress", run, len(progress.completed),
                                  records[progress.sent:]))
        progress.sent = len(records)

    def _flush(self, run: int, data: RunData, progress: Progress, claimed: list[int],
               final: bool) -> None:
        """Store what others still need and report progress to the scheduler.

        ``boundary`` lists the completed tasks with a consumer that has not
        run here: only their consumers' counters need the scheduler's
        attention, so a report of a whole subtree costs it little.
        """
        plan = data.plan
        done = data.done
        dependents = plan.dependents
        values = data.values
        announced = data.announced
        claimed_set = set(claimed)
        # Only a result still held here, or stored by this batch, can have a
        # consumer that has not run here (a held result is dropped once its
        # last consumer here has run): no need to walk every completed task.
        candidates = [i for i in dict.keys(values) if i not in announced]
        candidates += [i for i in progress.stored
                       if i not in announced and not dict.__contains__(values, i)]
        boundary = []
        leaving = []  # held here, read elsewhere: to store
        for i in candidates:
            pending = False
            for c in dependents[i]:
                if not done[c]:
                    pending = True
                    if c not in claimed_set and dict.__contains__(values, i):
                        leaving.append(i)
                        break
            if pending:
                boundary.append(i)
        announced.update(boundary)
        bundles = self._store_leaving(data, progress, leaving) if leaving else []
        gil = progress.gil_message(run)
        if gil is not None:
            self.send(gil)  # before the report that may end the run
        self.send(Report("report", run, array("i", progress.completed), boundary,
                         progress.consumed, progress.stored, bundles, list(claimed),
                         progress.records, final))
        progress.clear()

    def _store_leaving(self, data: RunData, progress: Progress, tasks: list[int]) -> list[Bundle]:
        """Store the held results ``tasks`` for their consumers elsewhere; return the bundles.

        A number (the usual input of a wide fan-in) is pickled straight into a
        bundle; anything else goes through ``_put``: into a bundle if its
        pickle is small, else into a StoredRef of its own.
        """
        values = data.values
        small = BundleBuilder()
        for i in tasks:
            value = values.pop(i)
            if type(value) in NUMBERS:
                pickled = pickle.dumps(value, 5)
                if len(pickled) <= BUNDLE_ITEM_MAX:
                    small.add(i, pickled)
                    continue
            ref = self._put(data.plan, i, value, handover=True, small=small)
            value = None  # a moved array's husk goes now, not at the next result
            if ref is not None:
                data.refs[i] = progress.stored[i] = ref
        bundles = small.close()
        for b in bundles:
            data.refs.update(dict.fromkeys(b.tasks, b))
        return bundles

    def _put(self, plan: Plan, i: int, value: Any, handover: bool = False,
             small: BundleBuilder | None = None) -> StoredRef | None:
        """Store task ``i``'s result; ``handover``: the caller drops it afterwards.

        A large array that nothing else refers to (its refcount shows only the
        caller's variable, this argument and getrefcount's own) is *moved*:
        its pages are released while being copied into the segment.
        With ``small``, a result that pickles to a few bytes and no buffers
        goes into that bundle instead (and None is returned).
        """
        consume = handover and type(value).__name__ == "ndarray" and value.base is None \
            and sys.getrefcount(value) <= 3
        try:
            payload = dumps(value)
            if small is not None and not payload.buffers and payload.kind == PICKLE \
                    and len(payload.header) <= BUNDLE_ITEM_MAX:
                small.add(i, payload.header)
                return None
            return self.store.put_payload(str(i), payload, consume=consume)
        except Exception as exc:  # noqa: BLE001 - the task's failure, not the worker's
            raise unsendable(plan, i, value, exc, "back") from None


def _push_ready(consumers: list[int], stack: list[int], done: bytearray, deps_of: list,
                has_value: Any, refs: dict, scanned: dict[int, int]) -> bool:
    """Push onto ``stack`` the first of ``consumers`` whose inputs are all here.

    True if the scheduler should hear of this task at once: a fan-out with a
    second ready branch (keep one, let the scheduler spread the rest: WUKONG's
    rule), or whose other branches wait for inputs made elsewhere (they can
    start there before this batch ends). A plain function of the batch loop's
    locals: it runs after every task.
    """
    kept = waiting = False
    for c in consumers:
        if not done[c]:
            cdeps = deps_of[c]
            if len(cdeps) > WIDE:
                missing = _inputs_missing(c, cdeps, has_value, refs, scanned)
            else:
                missing = False
                for d in cdeps:
                    if not has_value(d) and d not in refs:
                        missing = True
                        break
            if missing:
                waiting = True  # needs a result made elsewhere
            elif kept:
                return True
            else:
                stack.append(c)
                kept = True
    return waiting and len(consumers) > 1


def _inputs_missing(c: int, cdeps: tuple[int, ...], has_value: Any, refs: dict,
                    scanned: dict[int, int]) -> bool:
    """Whether wide fan-in ``c`` still lacks an input here.

    Inputs stay here until ``c`` has run, so the scan resumes where the
    last one stopped (``scanned``): the checks after each of a 100,000-input
    fan-in's inputs add up to linear time, not quadratic.
    """
    k = scanned.get(c, 0)
    n = len(cdeps)
    while k < n:
        d = cdeps[k]
        if not has_value(d) and d not in refs:
            scanned[c] = k
            return True
        k += 1
    return False


BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(n: int) -> None:
    """Give the BLAS libraries of this process ``n`` threads each.

    A library loaded from now on reads the environment (LocalExecutor also
    sets it in a worker's); threadpoolctl (some 50 ms of imports) is needed
    only for one already loaded, which a worker that boots without numpy
    has not.
    """
    for var in BLAS_THREAD_VARS:
        os.environ[var] = str(n)
    if "numpy" in sys.modules or "scipy" in sys.modules:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)


def main(conn, wid: int, status_path: str, prefix: str, blas_threads: int,
         spill_dir: str | None = None, preload: Iterable[str] = ()) -> None:
    """Entry point of a worker process; ``preload``: modules to import before it reports up."""
    # Ctrl-C goes to the whole process group; the client decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_blas_threads(blas_threads)
    from ..store import arena
    arena.install(prefix + "-r")  # fd.result_array outputs; swept with the worker's prefix
    _preload(preload)
    Worker(conn, wid, status_path, prefix, spill_dir).serve()


def _preload(modules: Iterable[str]) -> None:
    """Import what the first tasks will need (``executors/lazystart.py``); a module that fails
    here fails again, with the task's own error, when a task needs it."""
    import importlib
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - SystemExit too: the task reports it
            pass


def main_from_argv(argv: list[str], preload: Iterable[str] = ()) -> None:
    """Worker entry point: argv is FD WID STATUS PREFIX BLAS SPILL PARENT, as LocalExecutor
    passes them (PARENT: the client's pid; the worker dies with it). The process
    already has the caller's sys.path (``local._WORKER_BOOT``), so it imports user
    modules exactly as the caller does."""
    from multiprocessing.connection import Connection
    fd, wid, status_path, prefix, blas, spill_dir, parent = argv
    exit_with_parent(int(parent))
    main(Connection(int(fd)), int(wid), status_path, prefix, int(blas), spill_dir, preload)

