"""Core: the task graph, its plan, and how one task runs; the bottom layer.

    @task, Node, DAG (graph) ──build_plan──> Plan (plan) ──execute──> value | Failure (runner)
         │                                    │
         │                                    └── dumps/loads (serialize), signed frames (signing)
         └── .compute(): through ``hooks`` to ``fastdag.api`` (the default executor)

``errors`` holds the exception hierarchy every layer raises; ``records`` the
layout of a worker's raw task record; ``gil`` and ``guard`` measure and
protect tasks that share one interpreter; ``hooks`` the upper layers'
services that core and engine objects offer as methods. Modules here import
only each other, the standard library and cloudpickle (no numpy at import).
"""
