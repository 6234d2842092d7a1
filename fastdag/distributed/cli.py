"""``fastdag worker --redis URL [--concurrency N]``: start distributed workers.

With ``--concurrency 1`` this process is the worker. With N > 1 it is a
supervisor of N worker processes (fresh interpreters, not forks), restarts
one that dies (at most once per second), and stops them all on SIGTERM or
Ctrl-C. A supervisor killed outright (SIGKILL) takes its workers with it:
each is told its supervisor's pid and ends when that process does
(``engine/lifeline.py``), instead of running on, unsupervised. BLAS thread pools in each worker are sized cores // N, so that N
processes never run more BLAS threads than there are cores: oversubscribed
OpenBLAS threads spin while they wait, and take the cores from the tasks.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

from ..engine.lifeline import exit_with_parent
from ..store.redis import DEFAULT_TTL


def add_worker_parser(sub: Any) -> None:
    """Register the ``worker`` subcommand on the ``fastdag`` parser."""
    p = sub.add_parser("worker", help="run distributed workers that take tasks from Redis",
                       description=__doc__.splitlines()[0])
    p.add_argument("--redis", required=True, metavar="URL",
                   help="redis://[user:password@]host:port/db, or rediss:// for TLS")
    p.add_argument("--concurrency", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes to run (default: the number of cores)")
    p.add_argument("--prefix", default="fastdag", help="key namespace (default: fastdag)")
    p.add_argument("--idle-timeout", type=float, default=30.0, metavar="S",
                   help="seconds before a dead worker's task is claimed again (default: 30)")
    p.add_argument("--max-deliveries", type=int, default=3, metavar="K",
                   help="a task that killed K workers fails its run (default: 3)")
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL, metavar="S",
                   help="expiry of every key a worker writes (safety net; default: 1 day)")
    p.add_argument("--cache-mb", type=int, default=512, metavar="MB",
                   help="per process: results it stored kept to avoid downloading them "
                        "again (default: 512)")
    p.add_argument("--blas-threads", type=int, default=None, metavar="T",
                   help="BLAS threads per worker process (default: cores // concurrency)")
    p.add_argument("--no-shm", dest="shm", action="store_false",
                   help="never hand results to workers on this host through /dev/shm: "
                        "everything goes through Redis")
    p.add_argument("--insecure", action="store_true",
                   help="run without FASTDAG_SECRET: payloads are NOT authenticated, so anyone "
                        "who can write to Redis can run code on this host")
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run one worker here, or supervise ``--concurrency`` of them."""
    if args.parent_pid is not None:  # started by a supervisor: end with it
        exit_with_parent(args.parent_pid)
    from ..core.signing import MissingSecret, Signer, WeakSecret
    from ..executors.boot import inline_nested_compute
    from .worker import WorkerConfig, run_worker
    try:
        signer = Signer(insecure=args.insecure)
    except (MissingSecret, WeakSecret) as exc:
        print(f"fastdag worker: {exc} (--insecure)", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("fastdag worker: --concurrency must be at least 1", file=sys.stderr)
        return 2
    # A supervisor passes its own sizing down: a child started with
    # --concurrency 1 would otherwise take every core for itself.
    blas = args.blas_threads or max(1, (os.cpu_count() or 1) // args.concurrency)
    if args.concurrency == 1:
        config = WorkerConfig(url=args.redis, prefix=args.prefix, idle_timeout=args.idle_timeout,
                              max_deliveries=args.max_deliveries, ttl=args.ttl,
                              cache_bytes=args.cache_mb << 20, shm=args.shm)
        inline_nested_compute()  # a task's own compute() runs inline (see executors/boot.py)
        return run_worker(config, signer, blas_threads=blas)
    return supervise(args, blas)


def supervise(args: argparse.Namespace, blas: int) -> int:
    """Keep ``args.concurrency`` single worker processes running until told to stop."""
    cmd = [sys.executable, "-m", "fastdag.cli", "worker", "--redis", args.redis,
           "--concurrency", "1", "--prefix", args.prefix, "--idle-timeout", str(args.idle_timeout),
           "--max-deliveries", str(args.max_deliveries), "--ttl", str(args.ttl),
           "--cache-mb", str(args.cache_mb), "--blas-threads", str(blas),
           "--parent-pid", str(os.getpid())]
    if args.insecure:
        cmd.append("--insecure")
    if not args.shm:
        cmd.append("--no-shm")
    env = {**os.environ, "OMP_NUM_THREADS": str(blas), "OPENBLAS_NUM_THREADS": str(blas),
           "MKL_NUM_THREADS": str(blas)}
    stopping = False

    def stop(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children: list[subprocess.Popen] = [subprocess.Popen(cmd, env=env)
                                        for _ in range(args.concurrency)]
    last_restart = 0.0
    try:
        while not stopping:
            time.sleep(0.2)
            for k, child in enumerate(children):
                if child.poll() is not None and not stopping and time.time() - last_restart > 1:
                    print(f"fastdag worker: process {child.pid} exited with {child.returncode};"
                          " starting another", file=sys.stderr, flush=True)
                    children[k] = subprocess.Popen(cmd, env=env)
                    last_restart = time.time()
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.time() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return 0
