"""Progress of compare(): one display updated in place in Jupyter, tqdm in a terminal, nothing when switched off."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from opencode_lab.frontends.progress import HtmlProgress

PROMPTS = ["p0", "p1", "p2 [[fault:server_error]]"]


@pytest.fixture
def lab(fault, make_lab):
    return make_lab(f'[lab]\nmax_retries = 0\n[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n')


@pytest.fixture
def shell():
    """A running IPython whose front end renders HTML, as Jupyter's does."""
    ip = InteractiveShell.instance()
    active = list(ip.display_formatter.active_types)
    ip.display_formatter.active_types = [*active, "text/html"] if "text/html" not in active else active
    yield ip
    ip.display_formatter.active_types = active


@pytest.fixture
def terminal():
    """A running IPython that renders text only, as a terminal does."""
    ip = InteractiveShell.instance()
    active = list(ip.display_formatter.active_types)
    ip.display_formatter.active_types = ["text/plain"]
    yield ip
    ip.display_formatter.active_types = active


def progress_lines(outputs) -> list[str]:
    return [o.data["text/plain"] for o in outputs if o.update and o.data["text/plain"]]


def test_in_jupyter_progress_is_one_display_updated_in_place_with_nothing_on_stderr(shell, lab):
    with capture_output() as cap:
        lab.compare(PROMPTS, "a/x")
    assert [o.data for o in cap.outputs if not o.update] == [{"text/plain": ""}]  # one element
    assert all(o.update for o in cap.outputs[1:])
    assert cap.stderr == ""


def test_the_bar_ends_on_the_true_count_with_failures_and_then_empties(shell, lab):
    with capture_output() as cap:
        lab.compare(PROMPTS, "a/x")
    assert progress_lines(cap.outputs)[-1].startswith("compare 3/3 calls · 1 failed")
    assert cap.outputs[-1].data == {"text/plain": ""}  # a saved notebook keeps no stale bar


def test_a_fully_cached_rerun_counts_every_row(shell, lab):
    lab.compare(PROMPTS[:2], "a/x", progress=False)
    with capture_output() as cap:
        lab.compare(PROMPTS[:2], "a/x")
    assert progress_lines(cap.outputs)[-1].startswith("compare 2/2 calls · 2 cached")


def test_the_html_bar_escapes_its_label_and_shows_a_progress_element(shell):
    with capture_output():
        bar = HtmlProgress(4, "<b>run</b>")
        bar.update({"error_type": None, "cached": False})
    shown = bar.bundle()["text/html"]
    assert '<progress value="1" max="4"' in shown and "&lt;b&gt;run&lt;/b&gt; 1/4 calls" in shown


def test_in_a_terminal_progress_is_tqdm_on_stderr(terminal, lab, capsys):
    with capture_output(stderr=False):
        lab.compare(PROMPTS[:2], "a/x")
    assert "compare" in capsys.readouterr().err


def test_progress_false_shows_nothing(shell, lab, capsys):
    with capture_output() as cap:
        lab.compare(PROMPTS, "a/x", progress=False)
    assert cap.outputs == [] and cap.stdout == "" and cap.stderr == ""
    assert capsys.readouterr().err == ""
