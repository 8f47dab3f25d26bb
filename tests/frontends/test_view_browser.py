"""The results view in a real browser: JupyterLab on loopback, Debian's chromium driven by Playwright.

The notebook compares two models of a loopback test server (one prompt fails on one of
them, answers are scored), shows ``results.oc.view()``, and the browser filters, opens a
transcript and labels a row, as a person would.  Every request the page makes is checked
to stay on 127.0.0.1: Panel's JavaScript is inlined, nothing comes from the internet.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "triage_view.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
SETUP = """\
from pathlib import Path
import pandas as pd
import opencode_lab as oc
from opencode_lab.testing import FaultServer

server = FaultServer().start()
Path("lab.toml").write_text(
    f'[lab]\\nmax_retries = 0\\n[providers.t]\\nbase_url = "{server.base_url}"\\nmodels = ["alpha", "beta"]\\n'
)
lab = oc.Lab.from_file("lab.toml")
prompts = pd.DataFrame([
    {"prompt": "capital of France", "expected": "Paris"},
    {"prompt": "two plus two", "expected": "two"},
    {"prompt": "largest planet", "expected": "planet"},
    {"prompt": "[[fault:bad_request]] boiling point of water", "expected": "100"},
])
results = lab.compare(prompts, ["t/alpha", "t/beta"], scorer=oc.scorers.contains(), run="browser", progress=False)
len(results)"""
VIEW = "view = results.oc.view(lab=lab, who='tester')\nview"


def _appears(locator, timeout_ms: int = 10_000) -> bool:  # type: ignore[no-untyped-def]
    try:
        locator.first.wait_for(timeout=timeout_ms)
    except Exception:  # playwright's TimeoutError
        return False
    return True


def _notebook(folder: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(VIEW)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "triage.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[str]:
    """JupyterLab serving *tmp_path* on a free loopback port, without token, news, update checks or the
    extension manager's package index."""
    port = free_port()
    _notebook(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OC_RUNLOG": str(tmp_path / "runs.sqlite"),
        "OC_CACHE_MODE": "off",
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/api/status", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "jupyter exited"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_view_filters_opens_a_transcript_and_labels_a_row_in_a_real_browser(jupyter: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def only_loopback(route) -> None:  # type: ignore[no-untyped-def]
            if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_loopback)
        page.goto(f"{jupyter}/lab/tree/triage.ipynb", timeout=120_000)
        page.locator(".jp-Notebook").first.wait_for(timeout=120_000)
        dialog = page.locator(".jp-Dialog")
        if dialog.count() or _appears(dialog):  # the kernel picker, when the kernel specs came late
            dialog.get_by_role("button", name="Select", exact=True).click()
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=120_000)
        news = page.locator(".jp-toast-button", has_text="No")
        if news.count():
            news.first.click()
        page.locator("li.lm-MenuBar-item", has_text="Run").click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()

        rows = page.locator(".tabulator-row")
        rows.first.wait_for(timeout=180_000)
        assert rows.count() == 8  # 4 prompts x 2 models
        assert page.get_by_text("8 of 8 rows").is_visible()
        assert not page.locator(".oc-view-static").first.is_visible()  # the live view replaced the static table

        page.get_by_role("button", name="failures", exact=True).click()
        page.get_by_text("2 of 8 rows").wait_for(timeout=30_000)
        expect(rows).to_have_count(2, timeout=30_000)  # the table redraws after the count's text changes
        for i in range(2):
            expect(rows.nth(i)).to_contain_text("failed: bad_request", timeout=30_000)

        page.get_by_role("button", name="all", exact=True).click()
        page.get_by_text("8 of 8 rows").wait_for(timeout=30_000)
        rows.filter(has_text="capital of France").first.click()
        transcript = page.locator(".oc-transcript")
        transcript.wait_for(timeout=30_000)
        assert "prompt as sent" in transcript.inner_text() and "echo: capital of France" in transcript.inner_text()

        page.get_by_role("button", name="wrong", exact=True).click()
        page.get_by_text("saved: wrong (tester)").wait_for(timeout=30_000)
        expect(rows.filter(has_text="capital of France").first).to_contain_text("wrong", timeout=30_000)
        page.locator(".jp-OutputArea-output").last.screenshot(path=str(SCREENSHOT))
        browser.close()

    assert outside == [], "\n".join(outside)
    labels = subprocess.run(
        [sys.executable, "-c", "import opencode_lab as oc; print(oc.labels('browser')[['model', 'label', 'who']])"],
        env={**os.environ, "OC_RUNLOG": str(tmp_path / "runs.sqlite"), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "wrong" in labels.stdout and "tester" in labels.stdout
