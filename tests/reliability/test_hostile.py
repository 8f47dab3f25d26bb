"""Hostile answers and hostile providers against real loopback servers: bounded messages, bounded checks off
the event loop, and a user's provider that misbehaves costing only its own rows."""

from __future__ import annotations

import asyncio
import json
import time

import pandas as pd
import pytest

from opencode_lab import Completion, Lab, ModelInfo, Provider, Settings, StreamChunk, Usage
from opencode_lab.core.errors import MAX_MESSAGE_CHARS

BIG = 10_000_000


def test_a_ten_megabyte_error_message_is_bounded_everywhere(fault, make_lab, tmp_path) -> None:
    """In the exception, the row, the run log and the wide view: a few thousand characters each, not 10 MB."""
    runlog = tmp_path / "runs.sqlite"
    lab = make_lab(
        f'[providers.f]\nbase_url = "{fault.base_url}"\nmodels = ["fault-model"]\n'
        f'[lab]\nrunlog = "{runlog}"\nmax_retries = 0\n[cache]\nmode = "off"\n'
    )
    body = json.dumps({"error": {"message": "spam " * (BIG // 5), "code": 400}})
    fault.configure(queue=["raw"] * 4, raw={"status": 400, "body": body})
    frame = lab.compare(["a", "b", "c", "d"], "f/fault-model", progress=False, run="spam")
    assert frame.error_type.eq("bad_request").all()
    assert frame.error.str.len().max() < MAX_MESSAGE_CHARS + 200
    assert frame.error[0].endswith("]") and "characters in all" in frame.error[0]
    lab.flush()
    assert runlog.stat().st_size < 2_000_000
    assert len(lab.load_run("spam").error[0]) < MAX_MESSAGE_CHARS + 200
    assert len(frame.oc.wide().to_html()) < 200_000


def test_a_slow_answer_check_runs_off_the_loop_and_never_counts_as_a_timeout(judge_server, make_lab) -> None:
    """One answer that takes about two seconds to check (its one bad item is the last), while four healthy
    answers arrive, under a 2 s deadline: with the check on the event loop the healthy rows timed out; off
    it, every row gets its own verdict and the deployment stays healthy."""
    big = json.dumps([*[1] * 450_000, -1], separators=(",", ":"))

    def reply(body: dict) -> str:
        if "big" in body["messages"][-1]["content"]:
            return big
        time.sleep(0.3)  # the healthy answers arrive while the big one is being checked
        return "[1, 2, 3]"

    judge_server.reply = reply
    lab = make_lab(
        f'[providers.j]\nbase_url = "{judge_server.base_url}"\n[models.m]\nprovider = "j"\nupstream = "judge-model"\n'
        '[lab]\ndeadline_s = 2\nmax_retries = 0\n[cache]\nmode = "off"\n'
    )
    schema = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    frame = lab.compare(["big", "ok 1", "ok 2", "ok 3", "ok 4"], "m", schema=schema, progress=False)
    assert frame.error_type[0] == "schema_mismatch" and "450000: -1 is less than the minimum of 0" in frame.error[0]
    assert frame.error_type[1:].isna().all()
    assert lab.health().loc["j/judge-model", "state"] == "closed"


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ('"' + "a" * 40 + 'b"', "does not match"),  # ^(a+)+$ backtracks for minutes in Python's re
        ("```" + " \n" * 100_000 + "```", "not JSON"),
    ],
)
def test_a_hostile_answer_is_a_quick_mismatch_row(judge_server, make_lab, answer: str, says: str) -> None:
    judge_server.reply = lambda body: answer
    lab = make_lab(
        f'[providers.j]\nbase_url = "{judge_server.base_url}"\n[models.m]\nprovider = "j"\nupstream = "judge-model"\n'
        "[lab]\ndeadline_s = 5\n"
    )
    frame = lab.compare(["x", "y"], "m", schema={"type": "string", "pattern": "^(a+)+$"}, progress=False)
    assert frame.error_type.eq("schema_mismatch").all() and says in frame.error[0]


# -- a user's own provider ----------------------------------------------------------------------------------------


class Unruly(Provider):
    """A user's provider whose answer to a prompt is decided by the prompt: ``raise:<Name>`` raises it,
    ``usage``/``text``/``tokens`` return a `Completion` with that field wrong, anything else answers."""

    name = "unruly"

    async def complete(self, model: str, request) -> Completion:
        prompt = request.messages[-1].content
        if prompt.startswith("raise:"):
            kind = prompt.split(":", 1)[1]
            raise {"SystemExit": SystemExit(3), "KeyboardInterrupt": KeyboardInterrupt(),
                   "CancelledError": asyncio.CancelledError(), "GeneratorExit": GeneratorExit()}[kind]  # fmt: skip
        broken = {
            "usage": Completion("x", model, usage="lots"),  # type: ignore[arg-type]
            "text": Completion(None, model),  # type: ignore[arg-type]
            "tokens": Completion("x", model, usage=Usage(input_tokens=-5)),
            "cost": Completion("x", model, usage=Usage(cost_usd=float("nan"))),
            "object": {"text": "a dict"},
        }
        return broken.get(prompt, Completion(f"fine: {prompt}", model, "stop", Usage(1, 1)))  # type: ignore[return-value]

    async def stream(self, model: str, request):
        prompt = request.messages[-1].content
        if prompt == "raise:SystemExit":
            raise SystemExit(4)
        yield "not a chunk" if prompt == "garbage" else StreamChunk("fine")
        yield StreamChunk("", Completion("fine", model, "stop", Usage(1, 1)))

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo("m")]


@pytest.fixture
def unruly_lab(fault, tmp_path):
    config = tmp_path / "lab.toml"
    config.write_text(
        f'[providers.fault]\nbase_url = "{fault.base_url}"\nmodels = ["fault-model"]\n'
        '[models.mine]\nprovider = "unruly"\nupstream = "m"\n[lab]\nrunlog = "off"\n[cache]\nmode = "off"\n'
    )
    with Lab(Settings.load(config), providers={"unruly": Unruly()}) as lab:
        yield lab


PROMPTS = ["usage", "text", "tokens", "cost", "object", "raise:SystemExit", "raise:KeyboardInterrupt",
           "raise:CancelledError", "raise:GeneratorExit", "ok"]  # fmt: skip


def test_a_misbehaving_provider_costs_only_its_own_rows(unruly_lab) -> None:
    frame = unruly_lab.compare(PROMPTS, ["mine", "fault/fault-model"], progress=False)
    mine = frame[frame.model == "mine"].set_index("prompt")
    assert mine.error_type.drop("ok").eq("provider_error").all() and pd.isna(mine.error_type["ok"])
    assert "usage is a str ('lots')" in mine.error["usage"]
    assert "text is a NoneType" in mine.error["text"] and "usage.input_tokens is a int (-5)" in mine.error["tokens"]
    assert "raised SystemExit: 3" in mine.error["raise:SystemExit"]
    assert "raised CancelledError" in mine.error["raise:CancelledError"]
    assert frame[frame.model == "fault/fault-model"].error_type.isna().all()  # the healthy model's rows all stand
    assert unruly_lab.chat("ok", "mine", cache=False).text == "fine: ok"  # and the Lab still answers


@pytest.mark.parametrize("prompt", ["raise:SystemExit", "garbage"])
def test_a_misbehaving_stream_is_a_lab_error_and_the_lab_goes_on(unruly_lab, prompt: str) -> None:
    from opencode_lab import LabError

    with pytest.raises(LabError, match=r"SystemExit|not a StreamChunk"):
        list(unruly_lab.stream(prompt, "mine"))
    assert "".join(unruly_lab.stream("ok", "mine")) == "fine"


def test_closing_a_stream_early_is_not_a_provider_failure(unruly_lab) -> None:
    stream = unruly_lab.stream("ok", "mine")
    assert next(stream) == "fine"
    stream.close()
    assert unruly_lab.health().loc["unruly/m", "last_error"] in (None, "")


def test_a_hostile_tool_call_is_judged_in_bounded_time(fault, make_lab) -> None:
    """The call's arguments against a pattern Python's re would backtrack on for minutes: judged at once."""
    lab = make_lab(f'[providers.e]\nbase_url = "{fault.base_url}"\nmodels = ["echo"]\n')
    parameters = {"type": "object", "properties": {"q": {"type": "string", "pattern": "^(a+)+$"}}, "required": ["q"]}
    hostile = json.dumps({"q": "a" * 40 + "b"})
    prompts = [f"[[call:find {hostile}]]", '[[call:find {"q": "aaa"}]]']
    frame = lab.compare(prompts, "e/echo", tools=[{"name": "find", "parameters": parameters}], progress=False)
    assert list(frame.tool_call_valid) == [False, True]
