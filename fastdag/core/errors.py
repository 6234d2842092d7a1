"""The exceptions fastdag raises to its users.

Every failure of a run reaches the caller of ``compute()`` as one of these,
naming the task that failed, so that a user never has to read a scheduler's
stack to learn which of their functions went wrong.
"""

from __future__ import annotations

import concurrent.futures


class FastdagError(Exception):
    """Base class of every fastdag error."""


class TaskError(FastdagError):
    """A task raised. ``task`` names it; ``__cause__`` is the original exception.

    The message carries the traceback as the worker saw it, because the
    worker may be another process or host whose frames the caller cannot see.
    """

    def __init__(self, message: str, task: str = "", remote_traceback: str = ""):
        super().__init__(message)
        self.task = task
        self.remote_traceback = remote_traceback

    def __reduce__(self):
        return (type(self), (self.args[0], self.task, self.remote_traceback))


class WorkerCrashedError(TaskError):
    """The process running a task died (signal, ``os._exit``, out of memory)."""


class SerializationError(TaskError, TypeError):
    """A task's argument or result cannot be pickled, so it cannot cross processes."""


class CancelledError(FastdagError, concurrent.futures.CancelledError):
    """The run was cancelled before it finished (or its executor shut down under it).

    Also a ``concurrent.futures.CancelledError``, what ``result()`` raises
    after ``future.cancel()``: one ``except`` catches both.
    """


class SchedulerDied(FastdagError):
    """An executor's scheduler thread stopped: its pending and later runs fail with this."""


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` for an error message, even when the exception's ``__str__`` raises.

    ``sys.exit(n)`` reads as the exit code it asked for, not a bare number.
    """
    name = type(exc).__name__
    if isinstance(exc, SystemExit):
        # Read the code from ``args`` too: an exception rebuilt by tblib's
        # pickling (which dask.distributed installs) has args but code None.
        code = exc.code
        if code is None and exc.args:
            code = exc.args[0] if len(exc.args) == 1 else exc.args
        return f"SystemExit (sys.exit with exit code {code!r})"
    try:
        text = str(exc)
    except Exception as err:  # noqa: BLE001 - a user's broken __str__ must not hide the error
        text = f"<its __str__ raised {type(err).__name__}>"
    return f"{name}: {text}" if text else name


def unloadable_result(task: str, exc: BaseException) -> SerializationError:
    """The error for a result that reached the client but does not unpickle here."""
    err = SerializationError(f"the result of task {task!r} cannot be loaded in the client: "
                             f"{describe_exception(exc)}", task=task)
    err.__cause__ = exc
    return err


def task_failure(task: str, exc: BaseException, remote_tb: str) -> TaskError:
    """Wrap ``exc`` raised by ``task`` into the TaskError that ``compute()`` raises."""
    message = f"task {task!r} raised {describe_exception(exc)}"
    if remote_tb:
        message += "\n\nTraceback in the worker:\n" + remote_tb.rstrip()
    err = TaskError(message, task=task, remote_traceback=remote_tb)
    err.__cause__ = exc
    return err
