"""Pictures: figures of runs, graphs and benchmarks, drawn with matplotlib.

    RunReport ──> figures (timeline, breakdown, sizes, critical path) ──> PNG
    DAG ──> dagplot ──> PNG/SVG      benchmark JSON ──> benchplot ──> chart
        all through plotting (matplotlib, imported when a figure is drawn)
    report: the ``fastdag plot-bench`` command, ``command_error``, ``draw_dag``

A top layer: ``dashboard`` and the commands import it; below, only
``DAG.visualize`` reaches it, through ``core.hooks`` (installed by
``fastdag/__init__.py``), never by an import.
"""
