"""Metrics as pyarrow Tables: the one columnar format every sink persists.

Task records are built column by column straight from the raw tuples the
workers recorded, without creating a TaskRecord object per task, because a
sink writes every run and a tree reduction has thousands of tiny tasks.
Run records travel in the table's schema metadata (``fastdag.runs``, JSON),
so one file holds a whole run, including a run that had no tasks.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core.graph import gc_paused
from ..core.records import (ATTEMPTS, END, FETCH_S, INDEX, INPUT_BYTES, OUTPUT_BYTES, RAW_WIDTH,
                            READY, START, STORE_S)
from .runs import RunReport, TaskRecord, run_record_dict, run_record_from_dict

if TYPE_CHECKING:
    from collections.abc import Iterable

RUNS_KEY = b"fastdag.runs"

TASK_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("task_key", pa.string()),
    ("function", pa.string()),
    ("worker", pa.string()),
    ("start", pa.float64()),
    ("end", pa.float64()),
    ("exec_s", pa.float64()),
    ("input_bytes", pa.int64()),
    ("output_bytes", pa.int64()),
    ("fetch_s", pa.float64()),
    ("store_s", pa.float64()),
    ("queued_s", pa.float64()),
    ("retries", pa.int32()),
    ("index", pa.int32()),
    ("deps", pa.list_(pa.int32())),
])


def tasks_table(report: RunReport) -> pa.Table:
    """The task records of one run as a Table (``TASK_SCHEMA``, run in the metadata)."""
    # No cycles are made here, and a collection triggered by these
    # allocations would scan every live graph node of the process.
    with gc_paused():
        if report.raw_records:
            columns = _columns_from_raw(report)
        else:
            columns = _columns_from_records(report.tasks)
        table = pa.Table.from_pydict(columns, schema=TASK_SCHEMA)
    return with_runs(table, [report])


def with_runs(table: pa.Table, reports: Iterable[RunReport]) -> pa.Table:
    """``table`` with the run records of ``reports`` stored in its schema metadata."""
    runs = [run_record_dict(r.run) for r in reports]
    return table.replace_schema_metadata({RUNS_KEY: json.dumps(runs).encode()})


def _columns_from_raw(report: RunReport) -> dict[str, object]:
    # Everything per task is done by numpy or Arrow, never a Python loop per task.
    flat, workers = _raw_matrix(report.raw_records)
    n = len(flat)
    idx_np = flat[:, INDEX].astype(np.int32)
    idx = pa.array(idx_np)
    start_a, end_a = flat[:, START], flat[:, END]
    fetch_a, store_a, ready_a = flat[:, FETCH_S], flat[:, STORE_S], flat[:, READY]
    deps = report.task_deps
    return {
        "run_id": _repeat(report.run.run_id, n),
        "task_key": _task_keys(report).take(idx),
        "function": pa.array(report.task_functions, pa.string()).take(idx),
        "worker": workers,
        "start": start_a,
        "end": end_a,
        "exec_s": np.maximum(0.0, end_a - start_a - fetch_a - store_a),
        "input_bytes": flat[:, INPUT_BYTES].astype(np.int64),
        "output_bytes": flat[:, OUTPUT_BYTES].astype(np.int64),
        "fetch_s": fetch_a,
        "store_s": store_a,
        "queued_s": np.where(ready_a > 0, np.maximum(0.0, start_a - ready_a), 0.0),
        "retries": flat[:, ATTEMPTS].astype(np.int32) - 1,
        "index": idx_np,
        "deps": _deps_array(deps).take(idx) if deps else pa.nulls(n, TASK_SCHEMA.field("deps").type),
    }


def _raw_matrix(raw: list[tuple[str, Any]]) -> tuple[np.ndarray, pa.Array]:
    """The raw blocks as one (tasks, RAW_WIDTH) float64 matrix, and the worker column.

    Floats are exact for the integer fields (indices, byte counts < 2**53).
    Blocks of one task (tuples) convert in one numpy call; batch blocks
    (``array('d')``) are read through the buffer protocol without a copy.
    """
    blocks = [b for _, b in raw]
    counts = np.fromiter((len(b) // RAW_WIDTH for b in blocks), dtype=np.int64, count=len(blocks))
    if all(len(b) == RAW_WIDTH for b in blocks):
        flat = np.array(blocks, dtype=np.float64)
    else:
        flat = np.concatenate([np.asarray(b, dtype=np.float64).reshape(-1) for b in blocks])
        flat = flat.reshape(-1, RAW_WIDTH)
    codes: dict[str, int] = {}
    per_block = np.fromiter((codes.setdefault(w, len(codes)) for w, _ in raw), dtype=np.int32,
                            count=len(raw))
    workers = pa.DictionaryArray.from_arrays(pa.array(np.repeat(per_block, counts)),
                                             pa.array(list(codes), pa.string()))
    return flat, workers.cast(pa.string())


def _task_keys(report: RunReport) -> pa.Array:
    """Every task's key, by plan index.

    A run's names are ``f"{function}-{key}"``; building those strings in
    Python costs about a microsecond per task, so when the report knows its
    keys they are joined in Arrow instead (checked against one name
    computed the slow way).
    """
    names, functions, keys = report.task_names, report.task_functions, report.task_keys
    if keys is not None and len(keys) == len(functions) and len(keys):
        joined = pc.binary_join_element_wise(pa.array(functions, pa.string()),
                                             pa.array(keys, pa.int64()).cast(pa.string()), "-")
        if joined[0].as_py() == names[0]:
            return joined
    if not isinstance(names, list):
        names = names[:]  # a lazy sequence: materialise in one pass, not a call per task
    return pa.array(names, pa.string())


def _deps_array(deps: list[tuple[int, ...]]) -> pa.Array:
    """The dependency lists, by plan index, as one Arrow list<int32> array."""
    lengths = np.fromiter(map(len, deps), dtype=np.int32, count=len(deps))
    offsets = np.zeros(len(deps) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(deps), dtype=np.int32,
                         count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def _repeat(text: str, n: int) -> pa.Array:
    """``n`` copies of ``text`` as a string column, built in C."""
    indices = pa.array(np.zeros(n, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([text])).cast(pa.string())


def _columns_from_records(tasks: list[TaskRecord]) -> dict[str, list]:
    return {name: [getattr(t, name) for t in tasks] for name in TASK_SCHEMA.names}


def reports_from_table(table: pa.Table, source: str) -> list[RunReport]:
    """Split a Table of task rows (several runs possible) back into RunReports.

    Raises ``ValueError`` naming ``source`` when the table lacks the run
    records or columns fastdag writes.
    """
    meta = table.schema.metadata or {}
    if RUNS_KEY not in meta:
        raise ValueError(f"{source} has no fastdag run records (not written by fastdag?)")
    missing = [n for n in TASK_SCHEMA.names if n not in table.column_names]
    if missing:
        raise ValueError(f"{source} lacks the column(s) {', '.join(missing)}")
    try:
        runs = [run_record_from_dict(d) for d in json.loads(meta[RUNS_KEY])]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source} has unreadable run records: {exc}") from None
    rows = table.select(TASK_SCHEMA.names).to_pylist()
    by_run: dict[str, list[TaskRecord]] = {r.run_id: [] for r in runs}
    for row in rows:
        row["deps"] = tuple(row["deps"] or ())
        by_run.setdefault(row["run_id"], []).append(TaskRecord(**row))
    return [RunReport.loaded(r, by_run[r.run_id]) for r in runs]


def combine(tables: list[pa.Table]) -> pa.Table:
    """Concatenate per-run tables, merging their run records."""
    runs: list[object] = []
    for t in tables:
        runs.extend(json.loads((t.schema.metadata or {}).get(RUNS_KEY, b"[]")))
    merged = pa.concat_tables([t.replace_schema_metadata(None).cast(TASK_SCHEMA)
                               for t in tables]) if tables else TASK_SCHEMA.empty_table()
    return merged.replace_schema_metadata({RUNS_KEY: json.dumps(runs).encode()})
