"""Where run reports go: memory, Parquet (file or directory), Redis.

A sink is anything with ``write(report)``. ``compute(..., metrics=X)``
accepts a sink object, a filesystem path (Parquet) or a Redis URL; the
readers here (``load_metrics``) turn any of them back into RunReports for
``fastdag report``.

Parquet files cannot be appended to in place, so a *file* sink rewrites the
file with the new run added (fine for hundreds of runs; writers in one
process are serialised, writers in several processes should use a
directory). A *directory* sink writes one file per run, so appending costs
the same whatever the history. Redis gets one pipelined transaction per run.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..core.errors import FastdagError
from .runs import RunReport, run_record_dict, run_record_from_dict

if TYPE_CHECKING:  # pyarrow is imported when a sink first writes or reads, not with fastdag
    import pyarrow as pa

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class MetricsError(FastdagError):
    """Metrics could not be read: missing, empty, corrupt or not fastdag's."""


@runtime_checkable
class Sink(Protocol):
    """Receives the report of every finished run."""

    def write(self, report: RunReport) -> None: ...


class MemorySink:
    """Keeps reports in a list, for the caller to read (``sink.reports``)."""

    def __init__(self) -> None:
        self.reports: list[RunReport] = []
        self._lock = threading.Lock()

    def write(self, report: RunReport) -> None:
        with self._lock:
            self.reports.append(report)

    def read(self) -> list[RunReport]:
        with self._lock:
            return list(self.reports)

    def __repr__(self) -> str:
        return f"MemorySink({len(self.reports)} runs)"


_file_locks: dict[str, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _file_locks_guard:
        return _file_locks.setdefault(key, threading.Lock())


class ParquetSink:
    """Appends each run to a Parquet file (path ending in ``.parquet``) or a directory.

    Task rows follow ``tables.TASK_SCHEMA``; the run records are kept in the
    file's schema metadata, so pandas, DuckDB or ``pyarrow.dataset`` read the
    task rows directly and ``load_metrics`` recovers the runs too.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.is_file = self.path.suffix == ".parquet" or self.path.is_file()

    def __repr__(self) -> str:
        return f"ParquetSink({str(self.path)!r})"

    # Written by the background writer (sinkwriter.py), not on the run's thread.
    background = True

    @property
    def key(self) -> tuple[str, str]:
        """Sinks with equal keys write to the same place (batched together)."""
        return ("parquet", str(self.path.resolve()))

    def write(self, report: RunReport) -> None:
        self.write_many([report])

    def write_many(self, reports: list[RunReport]) -> None:
        """Append ``reports``: one new file in a directory, one rewrite for a file."""
        from .tables import combine
        tables = [r.to_arrow() for r in reports]
        if not self.is_file:
            # One new file per run, named by its start and id: a run's records
            # can be found, copied or deleted on their own.
            self.path.mkdir(parents=True, exist_ok=True)
            for report, table in zip(reports, tables):
                run = report.run
                _write_atomic(self.path / f"run-{run.start:.6f}-{run.run_id}.parquet", table)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _lock_for(self.path):
            if self.path.exists() and self.path.stat().st_size > 0:
                tables.insert(0, _read_parquet_file(self.path))
            _write_atomic(self.path, combine(tables) if len(tables) > 1 else tables[0])

    def read(self) -> list[RunReport]:
        from .sinkwriter import settle
        settle("reading metrics")
        return load_parquet(self.path)


# Columns with few distinct values; dictionary-encoding the others costs time for nothing.
_DICTIONARY_COLUMNS = ["run_id", "function", "worker"]


def _write_atomic(path: Path, table: pa.Table) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    import pyarrow.parquet as pq
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        pq.write_table(table, tmp, use_dictionary=_DICTIONARY_COLUMNS)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_parquet_file(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq
    if path.stat().st_size == 0:
        raise MetricsError(f"metrics file {str(path)!r} is empty")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise MetricsError(f"metrics file {str(path)!r} is not a readable Parquet file "
                           f"({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_parquet(path: str | os.PathLike[str]) -> list[RunReport]:
    """Every run stored in a Parquet metrics file or directory, oldest first."""
    from .sinkwriter import settle
    from .tables import reports_from_table
    settle("reading metrics")
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.glob("*.parquet") if not f.name.startswith("."))
        if not files:
            raise MetricsError(f"metrics directory {str(p)!r} holds no .parquet files")
    elif p.exists():
        files = [p]
    else:
        raise MetricsError(f"metrics file {str(p)!r} does not exist")
    reports: list[RunReport] = []
    for f in files:
        try:
            reports.extend(reports_from_table(_read_parquet_file(f), repr(str(f))))
        except ValueError as exc:
            raise MetricsError(f"metrics file {exc}") from None
    if not reports:
        raise MetricsError(f"{str(p)!r} holds no runs")
    return sorted(reports, key=lambda r: r.run.start)


class RedisSink:
    """Stores runs in Redis: one pipelined transaction per run, whatever its size.

    Keys (``prefix`` default ``fastdag:reports``, apart from the
    ``fastdag:metrics:*`` lists distributed workers fill while a run is in
    flight): ``{prefix}:runs`` a sorted set of run ids by start time,
    ``{prefix}:run:{id}`` the run record as JSON, ``{prefix}:tasks:{id}``
    the task rows as an Arrow IPC stream. ``ttl`` (seconds) makes both
    per-run keys expire.
    """

    def __init__(self, url: str, prefix: str = "fastdag:reports", ttl: int | None = None,
                 client: Any = None):
        self.url = url
        self.prefix = prefix
        self.ttl = ttl
        self._client = client

    def __repr__(self) -> str:
        return f"RedisSink({_redact(self.url)!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            import redis
            self._client = redis.Redis.from_url(self.url)
        return self._client

    background = True

    @property
    def key(self) -> tuple[str, str, str]:
        return ("redis", self.url, self.prefix)

    def write(self, report: RunReport) -> None:
        self.write_many([report])

    def write_many(self, reports: list[RunReport]) -> None:
        """Store ``reports`` in one MULTI/EXEC pipeline: one round trip in all."""
        pipe = self.client.pipeline(transaction=True)
        for report in reports:
            run = report.run
            run_key, tasks_key = self._keys(run.run_id)
            pipe.set(run_key, json.dumps(run_record_dict(run)), ex=self.ttl)
            pipe.set(tasks_key, _ipc_bytes(report.to_arrow()), ex=self.ttl)
            pipe.zadd(f"{self.prefix}:runs", {run.run_id: run.start})
        pipe.execute()

    def run_ids(self) -> list[str]:
        """Stored run ids, oldest first."""
        return [r.decode() for r in self.client.zrange(f"{self.prefix}:runs", 0, -1)]

    def read(self, run_ids: list[str] | None = None) -> list[RunReport]:
        """The stored runs (all, or those named), oldest first, in one round trip."""
        import pyarrow as pa

        from .sinkwriter import settle
        from .tables import reports_from_table
        settle("reading metrics")
        ids = self.run_ids() if run_ids is None else list(run_ids)
        pipe = self.client.pipeline(transaction=False)
        for rid in ids:
            run_key, tasks_key = self._keys(rid)
            pipe.get(run_key)
            pipe.get(tasks_key)
        values = pipe.execute()
        reports = []
        for rid, run_json, blob in zip(ids, values[0::2], values[1::2]):
            if run_json is None or blob is None:
                continue  # expired
            try:
                table = pa.ipc.open_stream(blob).read_all()
                run = run_record_from_dict(json.loads(run_json))
            except (pa.ArrowInvalid, ValueError, TypeError) as exc:
                raise MetricsError(f"run {rid} in Redis is corrupt: {_first_line(exc)}") from None
            for r in reports_from_table(table, f"run {rid} in Redis"):
                r.run = run
                reports.append(r)
        return sorted(reports, key=lambda r: r.run.start)

    def _keys(self, run_id: str) -> tuple[str, str]:
        return f"{self.prefix}:run:{run_id}", f"{self.prefix}:tasks:{run_id}"


def _ipc_bytes(table: pa.Table) -> bytes:
    import pyarrow as pa
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


_redis_sinks: dict[str, RedisSink] = {}


def resolve_sink(spec: Any) -> Any:
    """The sink for ``metrics=spec``: None/False none, a URL Redis, a path Parquet."""
    if spec is None or spec is False:
        return None
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text.startswith(REDIS_SCHEMES):
            sink = _redis_sinks.get(text)
            if sink is None:
                sink = _redis_sinks[text] = RedisSink(text)
            return sink
        return ParquetSink(text)
    if isinstance(spec, Sink):
        return spec
    raise TypeError(f"metrics= takes a path, a redis:// URL or an object with write(report), "
                    f"not {type(spec).__name__}")


def load_metrics(source: str | os.PathLike[str]) -> list[RunReport]:
    """Every run stored at ``source`` (a Parquet file/directory or a Redis URL).

    Raises MetricsError with a one-line reason when there is nothing usable.
    """
    text = os.fspath(source)
    if text.startswith(REDIS_SCHEMES):
        try:
            reports = RedisSink(text).read()
        except MetricsError:
            raise
        except Exception as exc:  # noqa: BLE001 - connection errors of any kind
            raise MetricsError(f"cannot read metrics from {_redact(text)}: "
                               f"{_first_line(exc)}") from None
        if not reports:
            raise MetricsError(f"no runs stored at {_redact(text)}")
        return reports
    return load_parquet(text)
