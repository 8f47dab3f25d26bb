"""The dashboard in a real browser: ``opencode-lab dashboard`` serves a run log seeded through the fault server,
Debian's chromium (driven by Playwright) visits every page, reads the figures, sees a call another process
writes appear, and finds no console error and no request leaving loopback.  Screenshots go to docs/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from opencode_lab import Lab, LabError, Settings
from opencode_lab.frontends.dashboard import PAGES
from opencode_lab.testing import FaultServer
from tests.conftest import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
#: what the page may load: from the dashboard's server, and what the page made itself from it
LOOPBACK = ("http://127.0.0.1:", "blob:http://127.0.0.1:", "data:")
TOML = """[lab]
max_retries = 0
runlog = "{runlog}"
[providers.a]
base_url = "{base_url}"
models = ["x", "y"]
[models.paid]
provider = "a"
upstream = "x"
input_price = 100.0
output_price = 300.0
[slo]
availability = 0.99
latency_p95_s = 2.0
[budget]
day_usd = 1.0
"""


class Seeded:
    """What the seeding calls did, counted as they were made: the figures the dashboard must show."""

    def __init__(self, toml: Path, env: dict[str, str]) -> None:
        self.toml, self.env = toml, env
        self.calls = self.failed = self.hits = 0
        self.cost = 0.0


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    home = tmp_path_factory.mktemp("dashboard")
    with FaultServer().start() as fault:
        toml = home / "lab.toml"
        toml.write_text(TOML.format(runlog=home / "runs.sqlite", base_url=fault.base_url))
        seeded = Seeded(toml, {**os.environ, "OC_CACHE_DIR": str(home / "cache")})
        with Lab(Settings.load(toml, env=seeded.env)) as lab:
            for prompt, model in [*((f"question {i}", "paid") for i in range(6)), ("question 0", "paid"),
                                  *((f"free {i}", "a/y") for i in range(3))]:  # fmt: skip
                result = lab.chat(prompt, model)
                seeded.calls, seeded.hits, seeded.cost = seeded.calls + 1, seeded.hits + result.cached, (
                    seeded.cost + (0.0 if result.cost_usd != result.cost_usd else result.cost_usd))  # fmt: skip
            for i in range(2):
                with pytest.raises(LabError):
                    lab.chat(f"down {i} [[fault:server_error]]", "a/y")
                seeded.calls, seeded.failed = seeded.calls + 1, seeded.failed + 1
        yield seeded


@pytest.fixture(scope="module")
def dashboard_url(seeded: Seeded) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "opencode_lab", "--config", str(seeded.toml), "dashboard", "--port", str(port),
               "--refresh", "1"]  # fmt: skip
    server = subprocess.Popen(command, env=seeded.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/dashboard"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stdout and server.stdout.read()
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def page(dashboard_url: str) -> Iterator[tuple[object, list[str], list[str]]]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        outside: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda r: None if r.url.startswith(LOOPBACK) else outside.append(r.url))
        page.goto(dashboard_url)
        page.wait_for_selector("[data-total=calls]", timeout=60_000)
        yield page, errors, outside
        browser.close()


def _total(page: object, name: str) -> str:
    return page.locator(f"[data-total='{name}']").inner_text()  # type: ignore[attr-defined]


def _tab(page: object, name: str) -> None:
    page.locator(".bk-tab").filter(has_text=re.compile(f"^{re.escape(name)}$")).click()  # type: ignore[attr-defined]


def _visit(page: object, name: str) -> None:
    _tab(page, name)
    page.wait_for_timeout(800)  # type: ignore[attr-defined]
    slug = name.lower().replace(" & ", "-").replace(" ", "-")
    page.screenshot(path=DOCS / f"dashboard-{slug}.png", full_page=True)  # type: ignore[attr-defined]


def test_the_totals_are_the_seeded_calls(page, seeded):
    page, _, _ = page
    assert _total(page, "calls") == str(seeded.calls) == "12"
    assert _total(page, "failed") == str(seeded.failed) == "2"
    assert _total(page, "cache hits") == str(seeded.hits) == "1"
    assert _total(page, "cost") == f"${seeded.cost:.4f}" and seeded.cost > 0


def test_every_page_shows_its_figures(page):
    page, _, _ = page
    for name in PAGES:
        _visit(page, name)
    _visit(page, "Health")
    sla = page.locator(".oc-sla table").inner_text()
    assert "a/x" in sla and "a/y" in sla and "page" in sla  # a/y: 2 of 5 attempts failed, burning 40x
    _visit(page, "Budget")
    assert "exceeded" not in page.locator(".oc-budget table").inner_text()


def test_the_calls_behind_a_point(page):
    page, _, _ = page
    _tab(page, "Calls")
    page.locator(".oc-point-group select").select_option("a")
    page.locator(".oc-point-bucket select").select_option(index=0)
    expect(page.locator(".oc-calls table")).to_contain_text("question 3", timeout=10_000)
    table = page.locator(".oc-calls table").inner_text()
    assert "question 3" in table and "free 2" in table and "down 0" not in table  # down failed: no provider
    _visit(page, "Calls")


def test_a_call_from_another_process_appears(page, seeded):
    page, _, _ = page
    other = (
        "from opencode_lab import Lab, Settings\n"
        f"with Lab(Settings.load({str(seeded.toml)!r})) as lab:\n"
        "    lab.chat('from another process', 'paid')\n"
    )
    subprocess.run([sys.executable, "-c", other], env=seeded.env, check=True, timeout=120)
    expect(page.locator("[data-total='calls']")).to_have_text(str(seeded.calls + 1), timeout=30_000)


def test_no_console_error_and_nothing_fetched_beyond_loopback(page):
    page, errors, outside = page
    assert errors == [] and outside == []
