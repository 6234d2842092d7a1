"""Engine: what every executor shares, below the user-facing executors.

    Executor.submit(dag) ──> RunFuture (executor)                  [caller's process]
                                 │ Plan, batches of task indices
                                 ▼
    worker process: Worker (worker) ──step (retry_task)──> results kept, or put in the store
        reports to the scheduler as named messages (messages: Report, Progress, Failed)
        ends with its parent (lifeline); SIGTERM cleans up like Ctrl-C (sigterm)

``step`` is the task step both worker kinds run (this package's local
worker and ``distributed.worker``, the Redis one): a task with its retries,
its failure made sendable, its metrics record.

``executor`` holds the base classes (``Executor``, ``RunFuture``) that the
local, Redis and bridge executors subclass, so those depend on this layer
and not on each other. Imports point down only: core, store, metrics, and
``events.py`` (the event stream, core by its imports; at the top of the
package because its path is public).
"""
