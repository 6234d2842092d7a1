"""Pictures: figures of runs, graphs and benchmarks, and the ``fastdag report`` command.

    RunReport / metrics files ──> figures (timeline, critical path) ──> PNG / HTML (report)
    DAG ──> dagplot ──> PNG;     benchmark JSON ──> benchplot ──> chart
                 all drawn through plotting (matplotlib, imported on use)

A top layer: nothing below imports it (``DAG.visualize`` is reached through a
hook that this package registers, see ``core.graph``).
"""
