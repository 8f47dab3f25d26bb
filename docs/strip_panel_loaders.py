"""Drop Panel's inlined JavaScript loaders (3.5 MB each) from executed notebooks before they are committed.

``df.oc.view()`` inlines Panel's JavaScript into the notebook so that nothing is fetched from the
internet; a saved notebook does not need it: opened without a running kernel, the view's output is
its static table (the live view comes back when the cell runs).  Run after re-executing a notebook
that shows a view: ``.venv/bin/python docs/strip_panel_loaders.py notebooks/07_triage.ipynb``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

LOADERS = ("application/vnd.holoviews_load.v0+json", "application/javascript")


def strip(path: Path) -> int:
    """Remove Panel's loader outputs (and empty display outputs) from *path*; the number removed."""
    notebook = nbformat.read(path, as_version=4)
    removed = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = [o for o in cell.outputs if not _loader(o)]
        removed += len(cell.outputs) - len(kept)
        cell.outputs = kept
    nbformat.write(notebook, path)
    return removed


def _loader(output: nbformat.NotebookNode) -> bool:
    data = output.get("data")
    if output.output_type != "display_data" or data is None:
        return False
    return not data or any(kind in data for kind in LOADERS)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {strip(Path(name))} loader output(s) removed")
