"""Engine: what every executor shares, below the user-facing executors.

    Executor.submit(dag) ──> RunFuture (executor)          [caller's process]
                                 │ Plan
                                 ▼
    worker process: Worker (worker) ── execute ──> store / next task
        exit_with_parent (lifeline), SIGTERM handling (sigterm)

``executor`` holds the base classes (``Executor``, ``RunFuture``) that the
local, Redis and bridge executors subclass, so they depend on this layer and
not on each other. Imports point down only: core, store, metrics.
"""
