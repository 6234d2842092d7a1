"""The issue-12 table from a ``test_bench_user_code.py`` JSON: ratios against peers of the same run.

    python benchmarks/user_ratios.py user.json [--markdown]

Times are the minimum over rounds (the least disturbed on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

GIL_FREE = ("numpy", "pandas", "pillow")
PURE_PYTHON = ("json",)
TREES = ("tree_once", "tree_add", "tree_builtin", "tree_sum", "tree_lambda")


def _times(data: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    times: dict[str, dict[str, float]] = {}
    first: dict[str, dict[str, float]] = {}
    for bench in data.get("benchmarks", []):
        extra = bench.get("extra_info") or {}
        if extra.get("workload") == "user-first-compute":
            first[extra["engine"].removeprefix("first-")] = {
                k: extra[k] for k in ("first_s", "warm_s", "extra_s")}
        elif extra.get("workload", "").startswith("user-"):
            times.setdefault(extra["workload"].removeprefix("user-"), {})[extra["engine"]] = \
                bench["stats"]["min"]
    return times, first


def _target(name: str, fd_s: float, serial: float | None, dask: float | None,
            best: float) -> str:
    if name in GIL_FREE:
        return f"fastdag/best {fd_s / best:.2f} (<= 1.10: {'met' if fd_s / best <= 1.10 else 'MISSED'})"
    if name in PURE_PYTHON and dask and serial:
        ok = dask / fd_s >= 1.5 and serial / fd_s >= 1.8
        return f"Dask/fastdag {dask / fd_s:.2f}, serial/fastdag {serial / fd_s:.2f} " \
               f"(>= 1.5 and 1.8: {'met' if ok else 'MISSED'})"
    if name in TREES and dask:
        return f"Dask/fastdag {dask / fd_s:.1f} (>= 50: {'met' if dask / fd_s >= 50 else 'MISSED'})"
    return f"fastdag/best {fd_s / best:.2f}"


def rows(data: dict[str, Any]) -> list[list[str]]:
    """One row per workload: fastdag, serial, Dask's best (which), best peer, ratios and target."""
    times, first = _times(data)
    out = []
    for name, engines in times.items():
        fd_s = engines.get("fastdag-local")
        if fd_s is None:
            continue
        dask = {e: t for e, t in engines.items() if e.startswith("dask")}
        dask_best = min(dask, key=dask.__getitem__) if dask else None
        peers = {e: t for e, t in engines.items() if e != "fastdag-local"}
        best = min(peers.values()) if peers else fd_s
        serial = engines.get("serial")
        out.append([name, f"{fd_s * 1e3:.1f}", f"{serial * 1e3:.1f}" if serial else "-",
                    f"{dask[dask_best] * 1e3:.1f} ({dask_best})" if dask_best else "-",
                    _target(name, fd_s, serial, dask.get(dask_best) if dask_best else None, best)])
    for name, f in first.items():
        out.append([f"first compute ({name})", f"{f['first_s'] * 1e3:.0f}", "-",
                    f"warm {f['warm_s'] * 1e3:.0f}",
                    f"+{f['extra_s']:.3f} s (<= 0.3: {'met' if f['extra_s'] <= 0.3 else 'MISSED'})"])
    return out


HEAD = ["workload", "fastdag ms", "serial ms", "Dask best ms", "target"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with open(args.bench) as f:
        table = rows(json.load(f))
    if args.markdown:
        print("| " + " | ".join(HEAD) + " |\n|" + "---|" * len(HEAD))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        for row in [HEAD, *table]:
            print(f"{row[0]:<24} {row[1]:>10} {row[2]:>10} {row[3]:>26}  {row[4]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
