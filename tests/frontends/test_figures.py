"""A figure the API returns shows in Jupyter whether or not the cell ends with it, once, as ``df.plot()`` does."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from opencode_lab.core.schema import results_frame
from opencode_lab.frontends.accessor import register


@pytest.fixture
def ip():
    register()
    shell = InteractiveShell.instance()
    active = list(shell.display_formatter.active_types)
    shell.display_formatter.active_types = [*active, "text/html"] if "text/html" not in active else active
    shell.user_ns["frame"] = results_frame(
        [{"prompt": "q", "prompt_id": 0, "model": m, "sample": 0, "response": "a", "latency_s": 0.1 + i}
         for i, m in enumerate(["a/x", "b/y"])]
    )  # fmt: skip
    yield shell
    shell.display_formatter.active_types = active


def figures_shown(outputs) -> int:
    return sum(o.data["text/plain"].startswith("<Figure size") for o in outputs)


def test_an_assigned_figure_is_shown_after_the_cell(ip):
    with capture_output() as cap:
        ip.run_cell("fig = frame.oc.plot('latency')")
    assert figures_shown(cap.outputs) == 1


def test_a_figure_that_ends_the_cell_is_shown_once(ip):
    with capture_output() as cap:
        ip.run_cell("frame.oc.plot('latency')")
    assert figures_shown(cap.outputs) == 0 and cap.stdout.count("<Figure size") == 1  # by IPython's displayhook


def test_outside_jupyter_nothing_is_displayed(ip):
    ip.display_formatter.active_types = ["text/plain"]
    with capture_output() as cap:
        ip.run_cell("fig = frame.oc.plot('latency')")
    assert cap.outputs == []
