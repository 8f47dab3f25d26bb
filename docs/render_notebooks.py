"""Render the executed example notebooks as a person sees them: nbconvert to HTML, headless Chromium to PNG.

Writes ``docs/notebook_compare.png`` (all of ``02_compare_models``), ``docs/wide_view.png``
(its ``results.oc.wide()`` cell), ``docs/chat_two_models.png`` (the two-model ``%%chat`` cell
of ``01_quickstart``) and ``docs/error_cell.png`` (the cell of ``03_routing_and_failover``
where every model fails), each with its saved output.  ``--all DIR`` also renders every
notebook whole into DIR, for reading them as a browser shows them.  Needs Debian's
``chromium`` package.  Run from the repository root: ``.venv/bin/python docs/render_notebooks.py``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def screenshot(notebook: nbformat.NotebookNode, out: Path, size: tuple[int, int]) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    html, _ = HTMLExporter(template_name="classic").from_notebook_node(notebook)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html)
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", f"--screenshot={out}",
                        f"--window-size={size[0]},{size[1]}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {out}")


def cells(name: str, keep: Callable[[Any], bool]) -> nbformat.NotebookNode:
    """Notebook *name* with only the cells *keep* accepts (their saved outputs included)."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells = [c for c in notebook.cells if keep(c)]
    if not notebook.cells:
        sys.exit(f"{name}: no cell to render; was the notebook changed?")
    return notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", type=Path, metavar="DIR", help="also render every notebook whole into DIR")
    args = parser.parse_args()
    docs = ROOT / "docs"
    compare = nbformat.read(NOTEBOOKS / "02_compare_models.ipynb", as_version=4)
    screenshot(compare, docs / "notebook_compare.png", (1280, 5200))
    screenshot(cells("02_compare_models.ipynb", lambda c: c.source.startswith("results.oc.wide()")),
               docs / "wide_view.png", (1280, 430))
    screenshot(cells("01_quickstart.ipynb", lambda c: c.cell_type == "code" and c.source.startswith("%%chat -m")
                     and "," in c.source.splitlines()[0]), docs / "chat_two_models.png", (1280, 230))
    screenshot(cells("03_routing_and_failover.ipynb", lambda c: "raises-exception" in c.metadata.get("tags", [])),
               docs / "error_cell.png", (1280, 170))
    if args.all:
        args.all.mkdir(parents=True, exist_ok=True)
        for path in sorted(NOTEBOOKS.glob("0*.ipynb")):
            screenshot(nbformat.read(path, as_version=4), args.all / f"{path.stem}.png", (1280, 9000))


if __name__ == "__main__":
    main()
