"""Render the executed example notebooks as a person sees them: nbconvert to HTML, headless Chromium to PNG.

Writes ``docs/notebook_compare.png`` (all of ``02_compare_models``) and
``docs/chat_two_models.png`` (the two-model ``%%chat`` cell of ``01_quickstart``
with its saved output).  Needs Debian's ``chromium`` package.  Run from the
repository root: ``.venv/bin/python docs/render_notebooks.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
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


def main() -> None:
    compare = nbformat.read(ROOT / "notebooks" / "02_compare_models.ipynb", as_version=4)
    screenshot(compare, ROOT / "docs" / "notebook_compare.png", (1280, 3700))
    quickstart = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", as_version=4)
    two_models = [c for c in quickstart.cells if c.cell_type == "code" and c.source.startswith("%%chat -m")
                  and "," in c.source.splitlines()[0]]
    quickstart.cells = two_models[:1]
    screenshot(quickstart, ROOT / "docs" / "chat_two_models.png", (1280, 230))


if __name__ == "__main__":
    main()
