"""Distributed mode: ``RedisExecutor`` and the ``fastdag worker`` command.

The client puts a signed Plan and the root tasks into Redis; workers on any
number of hosts take batches from a stream, run clusters of tasks locally
and hand fan-ins to each other through atomic counters (see ``protocol``,
``cluster`` and ``worker``).
"""

from .executor import RedisExecutor, RedisUnavailable
from ..core.signing import MissingSecret, PayloadRejected, WeakSecret

__all__ = ["RedisExecutor", "RedisUnavailable", "PayloadRejected", "MissingSecret", "WeakSecret"]
