"""Core: the task graph, its plan, and how one task runs; no other layer below it.

    @task, Node, DAG (graph) ──build_plan──> Plan (plan) ──execute──> value | Failure (runner)
         │                                    │
         │                                    └── dumps/loads (serialize), signed frames (signing)
         └── .compute(): the entry-point seam, up to ``fastdag.api`` (see graph)

``errors`` holds the exception hierarchy every layer raises; ``gil`` and
``guard`` measure and protect tasks that share one interpreter. Modules here
import only each other (and the standard library, numpy-free at import).
"""
