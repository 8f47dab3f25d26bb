"""Notebooks executed in a real kernel (nbclient), judged by their saved outputs, as a reader sees them.

Small notebooks built here talk to loopback servers started by the test; the
example notebook 02 runs the bundled local models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def execute(cells: list[str], cwd: Path, *, allow_errors: bool = False) -> list:
    """Run *cells* in a fresh kernel; the executed code cells, outputs as saved (display updates applied)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nbclient.NotebookClient(
        notebook, timeout=240, kernel_name="python3", allow_errors=allow_errors, resources={"metadata": {"path": cwd}}
    ).execute()
    return notebook.cells


def lab_cell(tmp_path: Path, providers: dict[str, str]) -> str:
    toml = "[lab]\nmax_retries = 1\n" + "".join(
        f'[providers.{name}]\nbase_url = "{url}"\nmodels = ["m"]\n' for name, url in providers.items()
    )
    (tmp_path / "lab.toml").write_text(toml)
    return (
        f"import os\nos.environ['OC_CACHE_DIR'] = {str(tmp_path / 'cache')!r}\n"
        "import opencode_lab as oc\n"
        f"lab = oc.Lab.from_file({str(tmp_path / 'lab.toml')!r})\n"
        "oc.set_default_lab(lab)\n%load_ext opencode_lab"
    )


def test_the_compare_cell_writes_nothing_to_stderr_and_keeps_at_most_one_progress_output(fault, tmp_path):
    cells = execute([lab_cell(tmp_path, {"a": fault.base_url}), "df = oc.compare([f'q{i}' for i in range(12)], 'a/m')",
                     "df = oc.compare([f'q{i}' for i in range(12)], 'a/m')  # every row from the cache"],
                    tmp_path)  # fmt: skip
    for cell in cells[1:]:
        assert not [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert len(cell.outputs) <= 1 and all(o.output_type == "display_data" for o in cell.outputs)


def test_an_error_cell_has_exactly_one_error_output_naming_the_cause_and_where(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    cells = execute([lab_cell(tmp_path, {"dead": url}), "%%chat -m dead/m\nAnyone there?"], tmp_path,
                    allow_errors=True)  # fmt: skip
    outputs = cells[1].outputs
    errors = [o for o in outputs if o.output_type == "error"]
    assert len(errors) == 1
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(errors[0].traceback))
    assert shown.startswith(f"dead/m: connection refused at {url} after 2 attempts")
    assert "UsageError" not in json.dumps([dict(o) for o in outputs])  # the cause is said once
    assert not [o for o in outputs if o.output_type == "display_data" and o.data.get("text/plain")]


@pytest.mark.llama
@pytest.mark.timeout(900)
def test_a_warm_cache_rerun_of_notebook_02_reproduces_its_statistics_and_plots(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(ROOT / "notebooks" / "02_compare_models.ipynb", as_version=4)
    first = notebook.cells[1].source
    assert 'os.environ["OC_CACHE_DIR"] = tempfile.mkdtemp(' in first
    notebook.cells[1].source = re.sub(r"tempfile\.mkdtemp\([^)]*\)", repr(str(tmp_path / "cache")), first)
    sources = [c.source for c in notebook.cells if c.cell_type == "code"]
    cold, warm = execute(sources, ROOT / "notebooks"), execute(sources, ROOT / "notebooks")

    def stats_text(cells) -> list[str]:
        return [o.data["text/plain"] for c in cells if "stats" in c.source for o in c.outputs
                if o.output_type == "execute_result"]  # fmt: skip

    assert stats_text(cold) and stats_text(warm) == stats_text(cold)
    images = [o for c in warm for o in c.outputs if "image/png" in o.get("data", {})]
    assert images and all(len(o.data["image/png"]) > 10_000 for o in images)
