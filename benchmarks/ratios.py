"""fastdag-local / best peer, per suite and graph, from pytest-benchmark results (medians).

The suite's claims are ratios measured in one run (the machine is shared
and noisy, absolute times are not comparable between runs). A *peer* is
every engine that is not fastdag: Dask's schedulers (on the translated
graph and with ``dask.array``), numpy's single call, the serial reference.
Each workload also gets the metric its target in issue 5 is stated in.

The conftest calls :func:`compute` at the end of a run (terminal table and a
``fastdag_ratios`` key in the ``--benchmark-json`` file). Standalone:

    python benchmarks/ratios.py BENCH.json [-o RATIOS.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_PARAM = re.compile(r"\[(?P<param>[^\]]*)\]$")
FASTDAG = "fastdag-local"           # the first run on fresh data where the suite separates them
REPEAT = "fastdag-local-repeat"     # the same, run again on the same data (constant cache kept)
DASK_LOCAL = ("dask-sync", "dask-threads", "dask-processes", "dask-processes-pool")


def row_from_bench(bench: dict[str, Any]) -> dict[str, Any]:
    """One benchmark as {workload, engine, min, median} (seconds).

    The engine is ``extra_info['engine']`` when the test set it, else the
    parameter in brackets of the test name (``test_gemm[dask-threads]``).
    """
    extra = bench.get("extra_info") or {}
    engine = extra.get("engine")
    if engine is None:
        match = _PARAM.search(bench.get("name", ""))
        engine = match.group("param") if match else bench.get("name", "?")
    stats = bench.get("stats") or {}
    suite = bench.get("fullname", "").split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    row = {"workload": extra.get("workload") or bench.get("group") or "?", "engine": engine,
           "suite": suite, "min": stats.get("min"), "median": stats.get("median"),
           "rounds": stats.get("rounds"), "size": extra.get("size")}
    row.update({k: extra[k] for k in SCALING_KEYS if k in extra})
    return row


SCALING_KEYS = ("per_task_us", "per_task_ms", "peak_system_mib", "peak_rss_sum_mib",
                "peak_system_x_array", "peak_rss_sum_x_array")


def scaling_table(rows: list[dict[str, Any]]) -> str:
    """Per-task cost and peak memory of the scaling suite, one line per benchmark."""
    picked = [r for r in rows if any(k in r for k in SCALING_KEYS)]
    if not picked:
        return ""
    lines = [f"{'group':<22} {'engine':<18} {'min s':>9} {'per task':>12} {'peak sys MiB':>13} "
             f"{'peak RSS MiB':>13} {'sys x arr':>9} {'RSS x arr':>9}"]
    for r in sorted(picked, key=lambda r: (r["workload"], r["min"] or 0)):
        per = (f"{r['per_task_us']:.1f} us" if "per_task_us" in r
               else f"{r['per_task_ms']:.1f} ms" if "per_task_ms" in r else "-")
        lines.append(f"{r['workload']:<22} {r['engine']:<18} {r['min']:>9.4f} {per:>12} "
                     f"{r.get('peak_system_mib', '-'):>13} {r.get('peak_rss_sum_mib', '-'):>13} "
                     f"{r.get('peak_system_x_array', '-'):>9} {r.get('peak_rss_sum_x_array', '-'):>9}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """A target of issue 5: its text, the measured value and whether it is met."""

    text: str
    metric: Callable[[dict[str, float]], float | None]  # engine -> median time
    met: Callable[[float], bool]
    unit: str


def _best(times: dict[str, float], keep: Callable[[str], bool]) -> float | None:
    picked = [t for e, t in times.items() if keep(e)]
    return min(picked) if picked else None


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den <= 0 else num / den


# Engines kept in the table but not counted as peers: the SVDs' serial reference
# computes singular values only (no U, no V), less work than every other engine.
NOT_PEER: dict[str, set[str]] = {"svd1": {"serial"}, "svd2": {"serial"}}


def _is_dask(engine: str) -> bool:
    return engine.startswith("dask")


TARGETS: dict[str, list[Target]] = {
    "tree_reduction": [Target(
        "best Dask local scheduler / fastdag >= 50",
        lambda t: _ratio(_best(t, lambda e: e in DASK_LOCAL), t.get(FASTDAG)),
        lambda v: v >= 50, "x faster")],
    "gemm": [
        Target("fastdag / numpy A@B <= 1.15",
               lambda t: _ratio(t.get(FASTDAG), t.get("numpy")), lambda v: v <= 1.15, "x numpy"),
        Target("fastdag faster than dask.array's best scheduler (dask.array best / fastdag > 1)",
               lambda t: _ratio(_best(t, lambda e: e.startswith("dask-array")), t.get(FASTDAG)),
               lambda v: v > 1, "x faster"),
    ],
    "svd1": [Target("best Dask (translated graph or da.linalg.svd) / fastdag >= 1.5",
                    lambda t: _ratio(_best(t, _is_dask), t.get(FASTDAG)), lambda v: v >= 1.5, "x faster")],
    "svd2": [Target("best Dask (translated graph or da.linalg.svd_compressed) / fastdag >= 1.5",
                    lambda t: _ratio(_best(t, _is_dask), t.get(FASTDAG)), lambda v: v >= 1.5, "x faster")],
    "wordcount": [
        Target("serial / fastdag >= 1.7", lambda t: _ratio(t.get("serial"), t.get(FASTDAG)),
               lambda v: v >= 1.7, "x faster"),
        Target("best Dask / fastdag (about 1.5 expected)",
               lambda t: _ratio(_best(t, _is_dask), t.get(FASTDAG)), lambda v: v >= 1.5, "x faster"),
    ],
    "image_transform": [
        Target("fastdag / (serial / 2) <= 1.15",
               lambda t: _ratio(t.get(FASTDAG), None if t.get("serial") is None else t["serial"] / 2),
               lambda v: v <= 1.15, "x the 2-core limit"),
        Target("fastdag no slower than best Dask (best Dask / fastdag >= 1)",
               lambda t: _ratio(_best(t, _is_dask), t.get(FASTDAG)), lambda v: v >= 1, "x faster"),
    ],
}


def compute(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per suite and graph: fastdag-local's median, the best peer's, their ratio, the targets.

    Engines are compared only within one suite and one graph (workload and
    size): a tree timed by two suites is two entries, never mixed. Ratios are
    of medians (minima are kept beside them). ``fastdag-local`` is the first
    run on fresh data where the suite separates it from
    ``fastdag-local-repeat`` (the constant cache kept); both ratios are given.
    """
    groups: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        if row.get("median") is None:
            continue
        key = (row.get("suite") or "", row["workload"], str(row.get("size") or ""))
        groups.setdefault(key, {})[row["engine"]] = row
    names = [w for _, w, _ in groups]
    out: dict[str, dict[str, Any]] = {}
    for (suite, w, size), engines in sorted(groups.items()):
        if FASTDAG not in engines:
            continue
        label = w if names.count(w) == 1 else f"{w} ({suite}{', ' + size if size else ''})"
        out[label] = _entry(suite, w, size, engines)
    return out


def _entry(suite: str, w: str, size: str, engines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One comparison: medians of every engine of one suite and graph, and the targets."""
    medians = {e: r["median"] for e, r in engines.items()}
    mins = {e: r["min"] for e, r in engines.items()}
    peers = {e: t for e, t in medians.items()
             if not e.startswith("fastdag") and e not in NOT_PEER.get(w, ())}
    entry: dict[str, Any] = {
        "suite": suite, "workload": w, "size": size or None,
        "fastdag_local_s": medians[FASTDAG], "fastdag_local_min_s": mins[FASTDAG],
        "rounds": {e: r.get("rounds") for e, r in engines.items()},
        "times_s": dict(sorted(medians.items(), key=lambda kv: kv[1])), "min_s": mins}
    repeat = medians.get(REPEAT)
    if repeat is not None:
        entry["fastdag_local_repeat_s"] = repeat
    if peers:
        best = min(peers, key=peers.__getitem__)
        entry.update(best_peer=best, best_peer_s=peers[best],
                     ratio=medians[FASTDAG] / peers[best],
                     ratio_min=_ratio(mins[FASTDAG], mins[best]))
        if repeat is not None:
            entry["ratio_repeat"] = repeat / peers[best]
    entry["targets"] = []
    for target in TARGETS.get(w, []):
        value = target.metric(medians)
        entry["targets"].append({"target": target.text, "value": value, "unit": target.unit,
                                 "met": None if value is None else bool(target.met(value))})
    return entry


def format_table(table: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of medians: one line per suite and graph, then one per target."""
    lines = [f"{'workload':<40} {'first run':>10} {'repeat':>10} {'best peer':>20} {'peer s':>9} "
             f"{'first/peer':>10} {'repeat/peer':>11}"]
    for w, e in table.items():
        peer = e.get("best_peer", "-")
        peer_s = f"{e['best_peer_s']:.4f}" if "best_peer_s" in e else "-"
        ratio = f"{e['ratio']:.3f}" if "ratio" in e else "-"
        repeat = f"{e['fastdag_local_repeat_s']:.4f}" if "fastdag_local_repeat_s" in e else "-"
        ratio_repeat = f"{e['ratio_repeat']:.3f}" if "ratio_repeat" in e else "-"
        lines.append(f"{w:<40} {e['fastdag_local_s']:>10.4f} {repeat:>10} {peer:>20} {peer_s:>9} "
                     f"{ratio:>10} {ratio_repeat:>11}")
        for t in e["targets"]:
            verdict = "n/a" if t["met"] is None else ("MET" if t["met"] else "MISSED")
            value = "-" if t["value"] is None else f"{t['value']:.3f} {t['unit']}"
            lines.append(f"    target: {t['target']}: {value} -> {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", help="a pytest-benchmark --benchmark-json file")
    parser.add_argument("-o", "--output", help="write the ratios as JSON here")
    args = parser.parse_args(argv)
    with open(args.bench) as f:
        data = json.load(f)
    rows = [row_from_bench(b) for b in data.get("benchmarks", [])]
    table = compute(rows)
    print(format_table(table))
    scaling = scaling_table(rows)
    if scaling:
        print(scaling)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(table, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
