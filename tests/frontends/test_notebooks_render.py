"""The example notebooks as saved: executed top to bottom, self-contained, nothing private in their outputs.

``pytest --nbval`` (see the Makefile) re-runs them and compares outputs; these checks
need no kernel and catch a notebook edited but not re-executed before nbval does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def code_cells(path: Path) -> list:
    nbformat = pytest.importorskip("nbformat")
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def output_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.extend(str(v) for k, v in output.get("data", {}).items() if k != "image/png")
    return "".join(parts)


def test_the_six_example_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_compare_models.ipynb",
                                           "03_routing_and_failover.ipynb", "04_caching_and_cost.ipynb",
                                           "05_grading_and_ratings.ipynb", "06_model_selection.ipynb",
                                           "07_triage.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_outputs_come_from_one_run_in_order(path):
    counts = [c.execution_count for c in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), "re-execute with jupyter nbconvert --execute --inplace"


def expected_to_fail(cell) -> bool:
    """A cell that shows an error on purpose (nbclient and nbval both honour the tag)."""
    return "raises-exception" in cell.metadata.get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_cell_failed_unless_it_shows_a_failure_on_purpose(path):
    for cell in code_cells(path):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert len(errors) == (1 if expected_to_fail(cell) else 0), cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nothing_reached_stderr(path):
    for cell in code_cells(path):
        assert not [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"], cell.source


def test_the_failing_cell_of_03_names_the_cause_and_where_in_one_line():
    (cell,) = [c for c in code_cells(NOTEBOOKS_DIR / "03_routing_and_failover.ipynb") if expected_to_fail(c)]
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    (line,) = error.traceback
    assert re.search(r"broken/fault-model.*: internal server error \(HTTP 500\) at http://127\.0\.0\.1:\d+/v1", line)
    assert "circuit open" in line and "UsageError" not in output_text(cell)


def test_notebook_02_shows_the_wide_view_with_scores():
    (cell,) = [c for c in code_cells(NOTEBOOKS_DIR / "02_compare_models.ipynb") if c.source == "results.oc.wide()"]
    shown = output_text(cell)
    assert 'class="oc-wide"' in shown and "✓" in shown and "expected: Paris" in shown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_cell_uses_a_fresh_cache(path):
    assert 'os.environ["OC_CACHE_DIR"] = tempfile.mkdtemp(' in code_cells(path)[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_hold_no_keys_headers_or_local_paths(path):
    for cell in code_cells(path):
        text = output_text(cell)
        assert not re.search(r"\bsk-[A-Za-z0-9-]{8,}|Authorization|Bearer ", text), cell.source  # not CSS mask-position
        assert "/tmp/" not in text and "/home/" not in text and str(ROOT) not in text, cell.source
