"""Live ``%%chat``: every model asked at once, streaming side by side in one font, bounded display traffic,
``-c`` conversations, the cell's value as ``_``, answers cut by ``max_tokens`` marked, waiting made visible."""

from __future__ import annotations

import json
import time

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from opencode_lab import ChatResult
from opencode_lab.frontends import live
from opencode_lab.frontends.display import AnswerColumn
from opencode_lab.frontends.magics import load_ipython_extension, unload_ipython_extension


@pytest.fixture
def lab(faults, make_lab):
    toml = "[lab]\nmax_retries = 1\n" + "".join(
        f'[providers.p{i}]\nbase_url = "{server.base_url}"\nmodels = ["m"]\n' for i, server in enumerate(faults)
    )
    return make_lab(toml)


@pytest.fixture
def ip(lab):
    shell = InteractiveShell.instance()
    active = list(shell.display_formatter.active_types)
    shell.display_formatter.active_types = [*active, "text/html"] if "text/html" not in active else active
    magics = load_ipython_extension(shell, lab=lab)
    magics.conversations.clear()
    yield shell
    unload_ipython_extension(shell)
    shell.display_formatter.active_types = active


def run(ip, line: str, cell: str):
    with capture_output() as cap:
        ip.run_cell_magic("chat", line, cell)
    return cap.outputs


def payload(outputs) -> int:
    """Characters a front end received: every display and every update of it."""
    return sum(len(value) for output in outputs for value in output.data.values())


@pytest.mark.slow
def test_every_model_is_asked_at_once(ip, faults):
    for server in faults[:2]:
        server.configure(latency_s=1.0)
    run(ip, "-m p0/m,p1/m", "who is first?")
    first, second = sorted(server.log[-1]["t"] for server in faults[:2])
    assert second - first < 1.0  # one after the other, the second would wait for the first's answer


@pytest.mark.slow
def test_live_updates_use_the_proportional_font_the_answer_ends_in(ip, faults):
    faults[0].configure(chunk_delay_s=0.05)
    outputs = run(ip, "-m p0/m,p1/m", "one two three four five six seven eight")
    live_html = [o.data["text/html"] for o in outputs if o.update and "text/html" in o.data]
    assert live_html and not any("<pre" in html for html in live_html)


def test_display_traffic_grows_with_time_not_with_updates_times_table_size(ip):
    started = time.monotonic()
    outputs = run(ip, "-m p0/m -n 50", "a few words to stream back " * 4)
    elapsed = time.monotonic() - started
    final = payload([o for o in outputs if not o.update][-1:])
    assert payload(outputs) <= 3 * final + live._BYTES_PER_S * elapsed


def test_more_answers_than_a_cell_shows_are_refused_before_asking(ip, faults):
    with pytest.raises(UsageError, match=f"at most {live.MAX_ANSWERS} side by side"):
        ip.run_cell_magic("chat", f"-m p0/m,p1/m -n {live.MAX_ANSWERS // 2 + 1}", "too many")
    assert faults[0].count() == 0


def test_the_cells_value_is_underscore_afterwards(ip):
    run(ip, "-m p0/m", "keep me")
    assert isinstance(ip.user_ns["_"], ChatResult) and ip.user_ns["_"].text == "echo: keep me"


def test_continue_sends_each_models_previous_turns(ip):
    run(ip, "-m p0/m", "one two three")
    run(ip, "-m p0/m -c", "four")
    follow_up = ip.user_ns["_"]
    assert follow_up.input_tokens == 3 + 4 + 1  # the first question, its answer "echo: one two three", "four"


def test_continue_without_a_previous_cell_is_refused(ip):
    with pytest.raises(UsageError, match="-c continues the previous"):
        ip.run_cell_magic("chat", "-m p0/m -c", "and then?")


def test_an_answer_cut_by_max_tokens_is_marked(ip, faults):
    body = {
        "id": "x", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "The capital of"},
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }  # fmt: skip
    faults[0].configure(queue=["raw"], raw={"headers": {"Content-Type": "application/json"}, "body": json.dumps(body)})
    outputs = run(ip, "-m p0/m --max-tokens 3 --no-stream", "Capital of France?")
    assert "The capital of *… [cut at max_tokens=3]*" in outputs[-1].data["text/markdown"]


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_a_model_still_waiting_shows_elapsed_time_and_attempt(ip, faults):
    faults[0].configure(latency_s=1.5, queue=["server_error"])
    outputs = run(ip, "-m p0/m", "slow and flaky")
    statuses = " ".join(o.data.get("text/plain", "") for o in outputs if o.update)
    assert "asking… 1 s" in statuses
    assert "attempt 2 (last: internal server error (HTTP 500))" in statuses


def test_a_terminal_prints_answers_in_the_order_the_models_were_asked_whoever_finishes_first(capsys) -> None:
    columns = [AnswerColumn(label) for label in ("slow", "fast", "faster")]
    view = live.PlainView(columns, "text")
    for index in (2, 1):  # the two later models answer first: nothing shows until the first has settled
        columns[index].result = ChatResult(text=columns[index].label, model="m", served_by="p/m", provider="p")
        view.done(index)
    assert capsys.readouterr().out == ""
    columns[0].result = ChatResult(text="from slow", model="m", served_by="p/m", provider="p")
    view.done(0)
    view.close()
    printed = capsys.readouterr().out
    assert printed.index("== slow ==") < printed.index("== fast ==") < printed.index("== faster ==")
