"""One run's dashboard as a single HTML file that works offline (``fastdag report --html``).

The page's three ES modules are joined into one inline script (their
``import`` lines dropped, ``export`` words removed: they share one scope),
the style sheet is inlined, and the run's ``GET /api/runs/<id>`` answer is
embedded as a JSON data block, which ``app.js`` reads instead of asking a
server. ``</`` inside the JSON is escaped, so task data cannot close the
block and become markup.
"""

from __future__ import annotations

import json
import os
import re

from ..metrics.runs import RunReport
from .model import RunStore
from .server import STATIC

MODULES = ("model.js", "draw.js", "app.js")  # each only imports from the ones before it
_IMPORT = re.compile(r"^import\s[^;]*;\s*$", re.MULTILINE)
_EXPORT = re.compile(r"^export\s+(?=(const|function|class)\b)", re.MULTILINE)


def _read(name: str) -> str:
    with open(os.path.join(STATIC, name), encoding="utf-8") as f:
        return f.read()


def bundled_script() -> str:
    """The page's modules as one script."""
    return "\n".join(_EXPORT.sub("", _IMPORT.sub("", _read(m))) for m in MODULES)


def report_html(report: RunReport) -> str:
    """The dashboard page with ``report``'s run inside it."""
    store = RunStore()
    store.add_report(report)
    detail = store.detail(report.run.run_id)
    data = json.dumps(detail, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    page = _read("index.html")
    page = page.replace('<link rel="stylesheet" href="static/dashboard.css">',
                        f"<style>\n{_read('dashboard.css')}</style>")
    page = page.replace('<script type="module" src="static/app.js"></script>',
                        f'<script type="application/json" id="fastdag-run">{data}</script>\n'
                        f'<script type="module">\n{bundled_script()}</script>')
    return page


def write_report_html(report: RunReport, folder: str | os.PathLike[str]) -> str:
    """Write ``report.html`` in ``folder``, or the file ``folder`` names when it ends
    in ``.html``; return its path."""
    folder = os.fspath(folder)
    if folder.lower().endswith((".html", ".htm")):
        path = folder
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    else:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(report_html(report))
    return path
