"""The example notebooks as saved: executed top to bottom, self-contained, nothing private in their outputs.

``pytest --nbval`` (see the Makefile) re-runs them and compares outputs; these checks
need no kernel and catch a notebook edited but not re-executed before nbval does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def output_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.extend(str(v) for k, v in output.get("data", {}).items() if k != "image/png")
    return "".join(parts)


def test_the_four_example_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_compare_models.ipynb",
                                           "03_routing_and_failover.ipynb", "04_caching_and_cost.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_outputs_come_from_one_run_in_order(path):
    counts = [c.execution_count for c in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), "re-execute with jupyter nbconvert --execute --inplace"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_cell_failed(path):
    for cell in code_cells(path):
        assert all(o.output_type != "error" for o in cell.outputs), cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_cell_uses_a_fresh_cache(path):
    assert 'os.environ["OC_CACHE_DIR"] = tempfile.mkdtemp(' in code_cells(path)[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_hold_no_keys_headers_or_local_paths(path):
    for cell in code_cells(path):
        text = output_text(cell)
        assert not re.search(r"sk-[A-Za-z0-9-]{8,}|Authorization|Bearer ", text), cell.source
        assert "/tmp/" not in text and "/home/" not in text and str(ROOT) not in text, cell.source
