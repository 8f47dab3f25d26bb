"""Specification of the notebook front end: ``%%chat``, ``%models``, ``%chat_stats``, ``%chat_config``.

Everything runs through a real IPython shell against a loopback `FaultServer`
(answers ``echo: <prompt>`` and counts words as tokens, so what the model
received is visible in its answer) and the bundled SmolLM2 model at
temperature 0 with a fixed seed.  Display calls are captured with IPython's
own capturing display publisher, updates included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from opencode_lab import ChatResult, Lab, LabError, Settings, StreamInterruptedError
from opencode_lab.frontends.display import answer_bundle, markdown_safe
from opencode_lab.frontends.magics import ChatMagics, interpolate, load_ipython_extension, unload_ipython_extension
from opencode_lab.testing import FaultServer

SMOL = "local/smollm2-135m"
ECHO = "fault/fault-model"  # also reachable as the alias "echo"
DOWN = "down/fault-model"  # a deployment whose server answers every request with HTTP 500
SECRET = "sk-oc-magics-test-0123456789"


# -- fixtures -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers():
    ok, down = FaultServer().start(), FaultServer(mix={"server_error": 1.0}).start()
    yield SimpleNamespace(ok=ok, down=down)
    ok.stop()
    down.stop()


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory, servers) -> Path:
    path = tmp_path_factory.mktemp("magics") / "lab.toml"
    path.write_text(f"""
[lab]
max_retries = 0

[providers.fault]
base_url = "{servers.ok.base_url}"
models = ["fault-model"]
api_key_env = "FAULT_API_KEY"

[providers.down]
base_url = "{servers.down.base_url}"
models = ["fault-model"]
api_key_env = "FAULT_API_KEY"

[aliases]
echo = "{ECHO}"
""")
    return path


def make_lab(lab_file: Path, cache_dir: Path) -> Lab:
    return Lab(Settings.load(lab_file, env={"OC_CACHE_DIR": str(cache_dir), "FAULT_API_KEY": SECRET}))


@pytest.fixture(scope="module")
def lab(lab_file, tmp_path_factory):
    lab = make_lab(lab_file, tmp_path_factory.mktemp("cache"))
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def ip(lab):
    shell = InteractiveShell.instance()
    load_ipython_extension(shell, lab=lab)
    yield shell
    unload_ipython_extension(shell)


@pytest.fixture
def magics(ip, lab) -> ChatMagics:
    """The registered magics, with no session defaults and an HTML front end, reset after each test."""
    found = ip.magics_manager.registry["ChatMagics"]
    found.defaults.clear()
    found.lab = lab
    active = list(ip.display_formatter.active_types)
    yield found
    found.defaults.clear()
    found.lab = lab
    ip.display_formatter.active_types = active


@pytest.fixture
def fresh_lab(magics, lab_file, tmp_path):
    """A Lab of its own for failure tests: their open circuits must not leak into other tests."""
    lab = make_lab(lab_file, tmp_path / "cache")
    magics.lab = lab
    yield lab
    lab.close()


@dataclass
class Shown:
    """What one magic call put on screen: displays (updates included), stdout, and the error if it raised."""

    outputs: list[Any]
    stdout: str
    error: BaseException | None = None

    @property
    def final(self) -> dict[str, str]:
        """The last display that is not an update: the rendering that stays in the notebook."""
        return [o.data for o in self.outputs if not o.update][-1]

    @property
    def updates(self) -> list[dict[str, str]]:
        return [o.data for o in self.outputs if o.update]

    def everything(self) -> str:
        return self.stdout + "".join(str(v) for o in self.outputs for v in o.data.values()) + str(self.error or "")


def chat(ip, line: str, cell: str, *, fails: bool = False) -> Shown:
    with capture_output() as cap:
        try:
            ip.run_cell_magic("chat", line, cell)
        except UsageError as exc:
            if not fails:
                raise
            return Shown(list(cap.outputs), cap.stdout, exc)
    assert not fails, "expected the cell to fail"
    return Shown(list(cap.outputs), cap.stdout)


def line_magic(ip, name: str, line: str = "") -> tuple[Any, Shown]:
    with capture_output() as cap:
        value = ip.run_line_magic(name, line)
    return value, Shown(list(cap.outputs), cap.stdout)


# -- the extension --------------------------------------------------------------------------------------------------


def test_loading_registers_the_magics(ip):
    assert ip.find_cell_magic("chat") is not None
    assert ip.find_cell_magic("oc_chat") is not None
    for name in ("models", "chat_stats", "chat_config"):
        assert ip.find_line_magic(name) is not None


def test_loading_twice_keeps_the_same_magics_and_their_defaults(ip, magics):
    magics.defaults["temperature"] = 0.0
    with capture_output() as cap:
        again = load_ipython_extension(ip)
    assert again is magics
    assert ip.find_cell_magic("chat").__self__ is magics
    assert magics.defaults == {"temperature": 0.0}
    assert cap.stdout == ""


def test_a_chat_magic_owned_by_another_extension_is_kept_with_one_warning(ip, magics, lab):
    def other_chat(line, cell):
        return "theirs"

    unload_ipython_extension(ip)
    ip.register_magic_function(other_chat, "cell", "chat")
    try:
        with capture_output() as cap:
            ours = load_ipython_extension(ip, lab=lab)
        assert cap.stdout.count("\n") == 1
        assert "%%chat" in cap.stdout and "other_chat" not in cap.stdout and "%%oc_chat" in cap.stdout
        assert ip.run_cell_magic("chat", "", "hi") == "theirs"
        assert ip.find_cell_magic("oc_chat").__self__ is ours
    finally:
        unload_ipython_extension(ip)
        del ip.magics_manager.magics["cell"]["chat"]
        load_ipython_extension(ip, lab=lab)


def test_help_lists_every_option(ip):
    with capture_output() as cap:
        ip.run_cell("%%chat?")
    for option in ("--model", "--system", "--temperature", "--max-tokens", "--top-p", "--stop", "-n", "--seed",
                   "--no-cache", "--format", "--output", "--no-stream", "%%chat"):
        assert option in cap.stdout, option


# -- prompt fields --------------------------------------------------------------------------------------------------


def test_fields_are_filled_from_variables_attributes_and_keys():
    ns = {"topic": "tides", "paper": SimpleNamespace(title="On Tides"), "row": {"q": "why?", 0: "zero"},
          "items": ["a", "b"]}
    assert interpolate("{topic}|{paper.title}|{row[q]}|{row['q']}|{row[0]}|{items[1]}", ns) == \
        "tides|On Tides|why?|why?|zero|b"


def test_braces_that_are_not_a_field_stay_literal():
    assert interpolate('Reply as {"answer": "{x}", "score": 1}', {"x": 4}) == 'Reply as {"answer": "4", "score": 1}'
    assert interpolate('{"a": {"b": 1}} and { spaced } and {1}', {}) == '{"a": {"b": 1}} and { spaced } and {1}'


def test_double_braces_escape_like_str_format():
    assert interpolate("{{x}} {{{x}}} {{\"k\": {x}}}", {"x": 7}) == '{x} {7} {"k": 7}'


def test_a_missing_variable_is_a_usage_error_naming_it():
    with pytest.raises(UsageError, match=r"\{topik\}.*'topik' is not defined"):
        interpolate("Tell me about {topik}.", {"topic": "tides"})


@pytest.mark.parametrize("template, problem", [("{paper.author}", "attribute 'author'"),
                                               ("{row[missing]}", "key 'missing'"),
                                               ("{items[5]}", "key 5")])
def test_a_missing_attribute_or_key_is_a_usage_error(template, problem):
    ns = {"paper": SimpleNamespace(title="t"), "row": {"q": 1}, "items": []}
    with pytest.raises(UsageError, match=problem):
        interpolate(template, ns)


def test_the_model_receives_the_filled_prompt(ip, magics):
    ip.user_ns.update(city="Lyon", facts={"river": "Rhône"})
    shown = chat(ip, "-m echo", 'What river runs through {city}? Known: {facts[river]}. Format {"a": 1}, {{city}}.')
    assert 'echo: What river runs through Lyon? Known: Rhône. Format {"a": 1}, {city}.' in shown.final["text/plain"]


# -- one model ------------------------------------------------------------------------------------------------------


@pytest.mark.llama
def test_one_model_streams_into_one_display_updated_in_place(ip, magics):
    shown = chat(ip, f"-m {SMOL} -t 0 --seed 1 --max-tokens 24 --no-cache -o answer",
                 "What is the capital of France?")
    answer = ip.user_ns["answer"].text
    live = [o for o in shown.outputs if o.update]
    assert len({o.transient["display_id"] for o in live}) == 1  # every update targets the same display
    texts = [u["text/plain"].rsplit("\n-- ", 1)[0] for u in shown.updates if "streaming…" in u["text/plain"]]
    assert texts, "the answer was never shown while streaming"
    assert texts[0] and answer.startswith(texts[0]) and texts[0] != answer  # a partial answer came first
    assert shown.final["text/markdown"].startswith(answer)


@pytest.mark.llama
def test_the_answer_is_rendered_markdown_with_a_footer(ip, magics, lab):
    shown = chat(ip, f"-m {SMOL} -t 0 --seed 1 --max-tokens 16 -o answer", "Name three primary colors.")
    result = ip.user_ns["answer"]
    same = lab.chat("Name three primary colors.", SMOL, temperature=0, seed=1, max_tokens=16, cache=False)
    assert result.text == same.text  # temperature 0 + seed: the magic asks exactly what the API asks
    assert set(shown.final) == {"text/markdown", "text/plain"}
    assert shown.final["text/markdown"].endswith(f"<sub>{result.footer()}</sub>")
    assert "local/smollm2-135m" in result.footer() and "1 attempt(s)" in result.footer()


def test_every_request_parameter_is_an_option_that_reaches_the_server(ip, magics, servers):
    servers.ok.reset()
    chat(ip, "-m echo -t 0.5 --max-tokens 9 --seed 4 --top-p 0.5 --stop END --stop STOP --no-cache", "q")
    (entry,) = servers.ok.log
    assert entry["sampling"] == {"temperature": 0.5, "max_tokens": 9, "seed": 4, "top_p": 0.5, "stop": ["END", "STOP"]}


def test_output_stores_one_chat_result(ip, magics):
    chat(ip, "-m echo -o reply", "store me")
    reply = ip.user_ns["reply"]
    assert isinstance(reply, ChatResult)
    assert reply.text == "echo: store me" and reply.served_by == ECHO


def test_a_rerun_is_served_from_the_cache_unless_no_cache(ip, magics):
    chat(ip, "-m echo -o first", "cache me please")
    chat(ip, "-m echo -o second", "cache me please")
    chat(ip, "-m echo --no-cache -o third", "cache me please")
    assert [ip.user_ns[v].cached for v in ("first", "second", "third")] == [False, True, False]
    assert "cached" in chat(ip, "-m echo", "cache me please").final["text/plain"]


def test_no_stream_sends_one_plain_request_and_shows_no_partial_text(ip, magics, servers):
    shown = chat(ip, "-m echo --no-stream --no-cache", "not streamed")
    assert servers.ok.log[-1]["prompt"] == "not streamed" and servers.ok.log[-1]["stream"] is False
    assert not any("streaming…" in u["text/plain"] for u in shown.updates)
    assert shown.final["text/plain"].startswith("echo: not streamed")


def test_system_prompt_temperature_and_seed_reach_the_request(ip, magics):
    chat(ip, "-m echo --no-cache -o plain", "count my words")
    chat(ip, '-m echo --no-cache -s "three more words" -o with_system', "count my words")
    assert ip.user_ns["with_system"].input_tokens == ip.user_ns["plain"].input_tokens + 3
    chat(ip, "-m echo --no-cache -t 0.8 -o sampled", "sample me")
    chat(ip, "-m echo --no-cache -t 0.8 --seed 3 -o seeded", "sample me")
    assert ip.user_ns["sampled"].text.startswith("echo: sample me #")  # sampling without a seed
    assert ip.user_ns["seeded"].text == "echo: sample me"


@pytest.mark.llama
def test_max_tokens_bounds_the_answer(ip, magics):
    chat(ip, f"-m {SMOL} -t 0 --seed 1 --max-tokens 5 -o short", "Tell me a long story about a dragon.")
    assert ip.user_ns["short"].output_tokens <= 5


@pytest.mark.parametrize("fmt, text, expected, mime", [
    ("text", "a <b>bold</b> claim", '<pre style="white-space:pre-wrap', "text/html"),
    ("code", "Here:\n```python\nprint(1)\n```\nDone.", "```python\nprint(1)\n```", "text/markdown"),
    ("json", 'Sure:\n```json\n{"a": [1, 2]}\n```', '```json\n{\n  "a": [\n    1,\n    2\n  ]\n}\n```', "text/markdown"),
    ("json", "not json at all", "not valid JSON", "text/markdown"),
])
def test_formats_render_the_answer(fmt, text, expected, mime):
    bundle = answer_bundle(ChatResult(text=text, model="m", served_by="p/m", provider="p"), fmt)
    assert expected in bundle[mime]


def test_format_option_selects_the_rendering(ip, magics):
    assert "text/html" in chat(ip, "-m echo --format text", "as text").final
    assert chat(ip, "-m echo --format code", "as code").final["text/markdown"].startswith("```\necho: as code\n```")


# -- several models and samples -------------------------------------------------------------------------------------


@pytest.mark.llama
def test_several_models_fill_a_side_by_side_table(ip, magics, lab):
    calls_before = len(lab.calls)
    shown = chat(ip, f"-m echo,{SMOL} -t 0 --seed 1 --max-tokens 12 -o both", "What is 2+2?")
    both = ip.user_ns["both"]
    assert list(both) == ["echo", SMOL] and all(isinstance(r, ChatResult) for r in both.values())
    table = shown.final["text/html"]
    assert table.startswith('<table class="oc-compare">')
    assert table.index(">echo</th>") < table.index(f">{SMOL}</th>")
    for result in both.values():
        assert result.footer() in table  # a stats row under each answer
    assert "echo: What is 2+2?" in table
    assert any("<table" in u.get("text/html", "") and "streaming…" in u["text/html"] for u in shown.updates)
    assert len(lab.calls) == calls_before + 2  # every answer lands in the session records


def test_repeated_and_comma_separated_models_are_combined_once(ip, magics):
    chat(ip, f"-m echo -m echo,{ECHO} -o combined", "dedupe")
    assert list(ip.user_ns["combined"]) == ["echo", ECHO]


def test_samples_are_stored_as_a_list_and_kept_apart(ip, magics):
    shown = chat(ip, "-m echo -n 2 -t 1 -o samples", "two samples please")
    first, second = ip.user_ns["samples"]
    assert first.text != second.text  # sampled at temperature 1 without a seed: never collapsed into one
    assert ">echo #1</th>" in shown.final["text/html"] and ">echo #2</th>" in shown.final["text/html"]


def test_several_models_with_samples_store_a_dict_of_lists(ip, magics):
    chat(ip, f"-m echo,{ECHO} -n 2 -o grid", "grid")
    grid = ip.user_ns["grid"]
    assert list(grid) == ["echo", ECHO] and [len(v) for v in grid.values()] == [2, 2]


# -- failures -------------------------------------------------------------------------------------------------------


def test_a_failed_model_is_shown_in_red_and_the_others_still_answer(ip, magics, fresh_lab):
    shown = chat(ip, f"-m echo,{DOWN} -o mixed", "one of us fails")
    mixed = ip.user_ns["mixed"]
    assert isinstance(mixed["echo"], ChatResult) and isinstance(mixed[DOWN], LabError)
    table = shown.final["text/html"]
    assert 'style="color:#c62828"' in table and "<b>server_error</b>" in table
    assert f"#1 {DOWN}: server_error (HTTP 500)" in table  # the attempted deployment
    assert "Traceback" not in shown.everything()


def test_when_every_model_fails_the_cell_fails_naming_cause_and_place_after_storing(ip, magics, fresh_lab, servers):
    shown = chat(ip, f"-m {DOWN} -o lost", "nobody answers", fails=True)
    assert str(shown.error) == f"{DOWN}: internal server error (HTTP 500) at {servers.down.base_url}"
    assert isinstance(ip.user_ns["lost"], LabError)
    assert [o.data for o in shown.outputs if not o.update] == [{"text/plain": ""}]  # the error is said once, below


def test_a_failed_cell_is_reported_to_the_kernel_as_one_error_line_per_model(ip, magics, fresh_lab):
    with capture_output() as cap:
        result = ip.run_cell(f"%%chat -m {DOWN} -n 2\nnobody at all")
    assert isinstance(result.error_in_exec, UsageError)  # nbclient and nbval (even --nbval-lax) see a failed cell
    printed = (cap.stdout + cap.stderr).splitlines()
    where = fresh_lab.providers["down"].base_url
    assert [line for line in printed if DOWN in line] == [
        f"\x1b[31m{DOWN} #{k}\x1b[0m: internal server error (HTTP 500) at {where}" for k in (1, 2)
    ]
    assert "UsageError" not in cap.stdout + cap.stderr and "Traceback" not in cap.stdout + cap.stderr


def test_a_stream_cut_midway_shows_the_partial_answer_above_the_error(ip, magics, fresh_lab):
    shown = chat(ip, "-m echo -o cut", "[[fault:cut_stream]] a b c d e f", fails=True)
    assert isinstance(ip.user_ns["cut"], StreamInterruptedError)
    assert "echo: [[fault:cut_stream]]" in shown.final["text/html"]  # the text that did arrive
    assert "see the error below" in shown.final["text/html"]
    assert str(shown.error).startswith("echo: ") and "mid-stream" in str(shown.error)


@pytest.mark.parametrize("line, message", [
    ("-m echo -t warm", "invalid float value"),
    ("-m echo -t 5", "temperature must be between"),
    ("-m echo --max-tokens 0", "max_tokens must be at least 1"),
    ("-m echo -n 0", "-n must be at least 1"),
    ("-m echo --format yaml", "invalid choice"),
    ("-m echo -o 2x", "-o needs a Python variable name"),
    ("-m echo --bogus", "unrecognized arguments"),
    ("-m smolm2-135m", "unknown model 'smolm2-135m'; did you mean local/smollm2-135m"),
    ('-m echo -s "unclosed', "cannot parse the options"),
    ("-m echo -o get_ipython", "-o get_ipython would replace a name Python or IPython relies on"),
    ("-m echo -o __builtins__", "-o __builtins__ would replace a name"),
    ("-m echo -o print", "-o print would replace a name"),
    ("-m echo -o In", "-o In would replace a name"),
    ("-m ''", "-m needs a model id"),
    ("-m echo " + "-t 0 " * 20_000, "the option line is 100008 characters; at most 2000 are read"),
    ("-m echo " + "-t 0 " * 300, "the option line has 602 words; at most 256 are read"),
    ("-m echo --schema @/dev/zero", "schema file '/dev/zero' is not a regular file"),
])
def test_bad_options_are_one_line_usage_errors_before_any_request(ip, magics, servers, line, message):
    sent = len(servers.ok.log)
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("chat", line, "hello")
    assert len(servers.ok.log) == sent


def test_a_schema_file_that_is_not_json_is_refused_without_showing_it(ip, magics, servers, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.write_text("root:$6$saltsalt$secrethashsecrethash:19000:0:99999:7:::\n")
    sent = len(servers.ok.log)
    with pytest.raises(UsageError) as raised:
        ip.run_cell_magic("chat", f"-m echo --schema @{shadow}", "hello")
    assert "schema is not JSON" in str(raised.value) and "secrethash" not in str(raised.value)
    assert "root" not in str(raised.value) and len(servers.ok.log) == sent


def test_the_option_line_still_expands_notebook_variables(ip, magics):
    ip.user_ns.update(which="echo", brief="Answer in one word.")
    chat(ip, "-m $which -s {brief!r} -o expanded", "expand me")
    assert ip.user_ns["expanded"].served_by == ECHO


def test_a_field_whose_property_raises_is_a_usage_error_naming_it():
    class Paper:
        @property
        def author(self) -> str:
            raise RuntimeError("not loaded")

    with pytest.raises(UsageError, match=r"\{paper.author\}: reading attribute 'author' of Paper raised RuntimeError"):
        interpolate("By {paper.author}", {"paper": Paper()})


def test_an_empty_cell_is_a_usage_error(ip, magics):
    with pytest.raises(UsageError, match="needs a prompt"):
        ip.run_cell_magic("chat", "-m echo", "  \n")


# -- safety ---------------------------------------------------------------------------------------------------------


def test_model_text_is_html_escaped_in_every_format(ip, magics):
    payload = "<script>alert(1)</script> & <img src=x onerror=alert(2)>"
    for line in ("-m echo", "-m echo --format text", f"-m echo,{ECHO}"):
        final = chat(ip, line, payload).final
        rich = final.get("text/html", "") + final.get("text/markdown", "")
        assert "<script>" not in rich and "<img" not in rich
        assert "&lt;script" in rich


def test_markdown_keeps_code_literal_and_escapes_html_elsewhere():
    assert markdown_safe("a <b> & `x<y>` c") == "a &lt;b> &amp; `x<y>` c"
    assert markdown_safe("```html\n<p>hi</p>\n```\n<i>x</i>") == "```html\n<p>hi</p>\n```\n&lt;i>x&lt;/i>"
    assert markdown_safe("a ` b\n\n<img src=x> ` c") == "a ` b\n\n&lt;img src=x> ` c"  # no code span across paragraphs


def test_no_api_key_or_authorization_header_appears_in_any_output(ip, magics, fresh_lab, servers):
    shown = [chat(ip, "-m echo", f"do you know {SECRET}?"), chat(ip, f"-m echo,{DOWN}", "leak check")]
    _, stats = line_magic(ip, "chat_stats")
    _, models = line_magic(ip, "models")
    assert servers.ok.log[-1]["auth"] is True  # the key was sent...
    for output in (*shown, stats, models):
        text = output.everything()
        assert "sk-oc-magics-test" not in text.replace(f"do you know {SECRET}", "")  # ...and never shown
        assert "Authorization" not in text and "Bearer" not in text


# -- %chat_config ---------------------------------------------------------------------------------------------------


def test_config_defaults_apply_to_later_cells(ip, magics):
    line_magic(ip, "chat_config", 'model=echo system="two words" cache=false')
    chat(ip, "-o configured", "which model")
    configured = ip.user_ns["configured"]
    assert configured.served_by == ECHO and not configured.cached
    assert configured.input_tokens == 2 + 2  # prompt words plus the default system prompt's words


def test_cell_options_override_config_defaults(ip, magics):
    line_magic(ip, "chat_config", f"model={SMOL} temperature=1.5")
    chat(ip, "-m echo -t 0 --seed 2 -o overridden", "override")
    assert ip.user_ns["overridden"].served_by == ECHO
    assert ip.user_ns["overridden"].text == "echo: override"  # temperature 0 + seed: no sampling suffix


def test_config_without_arguments_shows_the_defaults(ip, magics):
    _, shown = line_magic(ip, "chat_config")
    assert "no %%chat defaults set" in shown.stdout
    line_magic(ip, "chat_config", "temperature=0 seed=7 max_tokens=32")
    _, shown = line_magic(ip, "chat_config")
    assert shown.stdout == "temperature = 0.0\nmax_tokens = 32\nseed = 7\n"


@pytest.mark.parametrize("line, message", [
    ("colour=blue", "unknown %chat_config key 'colour'"),
    ("temperature=hot", "temperature='hot'"),
    ("temperature=9", "temperature must be between"),
    ("max_tokens=-3", "max_tokens must be at least 1"),
    ("cache=maybe", "cache='maybe': expected true, false or refresh"),
    ("model=no-such-model", "unknown model 'no-such-model'"),
    ("temperature", "expects KEY=VALUE"),
])
def test_config_rejects_unknown_keys_and_bad_values_naming_them(ip, magics, line, message):
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("chat_config", line)
    assert magics.defaults == {}


def test_config_empty_value_clears_one_default_and_reset_clears_all(ip, magics):
    line_magic(ip, "chat_config", "model=echo seed=1 temperature=0")
    line_magic(ip, "chat_config", "seed=")
    assert magics.defaults == {"model": "echo", "temperature": 0.0}
    line_magic(ip, "chat_config", "--reset")
    assert magics.defaults == {}


# -- %models and %chat_stats ----------------------------------------------------------------------------------------


def test_models_lists_the_catalog_filtered_by_text_or_tag(ip, magics):
    every, _ = line_magic(ip, "models")
    assert {SMOL, ECHO, DOWN} <= set(every.index)
    assert list(line_magic(ip, "models", "smol")[0].index) == [SMOL]
    assert list(line_magic(ip, "models", "--tag base")[0].index) == ["local/gemma-3-270m"]
    assert list(line_magic(ip, "models", "down")[0].index) == [DOWN]


def test_chat_stats_summarises_this_sessions_calls(ip, magics):
    chat(ip, "-m echo", "stats please")
    stats, _ = line_magic(ip, "chat_stats")
    assert "echo" in stats.index and stats.loc["echo", "calls"] >= 1
    assert {"latency_p50_s", "cost_usd", "failure_rate"} <= set(stats.columns)


def test_chat_stats_can_group_by_another_column_and_draw_a_plot(ip, magics):
    stats, shown = line_magic(ip, "chat_stats", "--by served_by --plot latency")
    assert ECHO in stats.index
    assert [o.data["text/plain"][:12] for o in shown.outputs] == ["<Figure size"]


def test_chat_stats_plot_shows_one_figure_and_plot_of_the_sessions_calls_draws_boxes(ip, magics, lab):
    """(A figure drawn outside a cell would wait for the next cell, maybe another test's, to be shown.)"""
    ip.user_ns["_oc_lab"] = lab
    chat(ip, "-m echo", "one chart, one name")
    with capture_output() as cap:
        ip.run_line_magic("chat_stats", "--plot latency")
    (shown,) = [o.data for o in cap.outputs]
    assert shown["text/plain"].startswith("<Figure size")
    ip.run_cell("title = _oc_lab.plot(_oc_lab.results(), 'latency').axes[0].get_title()")  # in a cell, as in Jupyter
    assert ip.user_ns["title"] == "Latency of ok calls"


def test_chat_stats_rejects_an_unknown_plot_kind(ip, magics):
    with pytest.raises(UsageError, match="unknown plot kind 'pie'"):
        ip.run_line_magic("chat_stats", "--plot pie")


# -- a terminal front end -------------------------------------------------------------------------------------------


def test_without_an_html_front_end_the_answer_is_printed_as_plain_text(ip, magics):
    ip.display_formatter.active_types = ["text/plain"]
    single = chat(ip, "-m echo --no-cache", "terminal one")
    assert single.outputs == [] and single.stdout.startswith("echo: terminal one\n-- fault/fault-model · ")
    whole = chat(ip, "-m echo --no-cache --no-stream", "terminal one")
    assert whole.stdout.startswith("echo: terminal one\n-- fault/fault-model · ")
    both = chat(ip, f"-m echo,{ECHO} --no-cache", "terminal two")
    assert both.stdout.startswith("== echo ==\necho: terminal two\n-- ")
    assert f"\n\n== {ECHO} ==\necho: terminal two\n-- " in both.stdout and "<" not in both.stdout


# -- reasoning controls, provider options, log-probabilities --------------------------------------------------------


def test_a_cell_takes_reasoning_controls_options_and_logprobs(ip, magics, servers):
    chat(ip, "-m echo --reasoning-effort low --option presence_penalty=0.5 --option stop_word=END "
             "--top-logprobs 2 --no-cache -o probed", "hello")
    body = servers.ok.requests[-1]
    assert (body["reasoning_effort"], body["presence_penalty"], body["stop_word"]) == ("low", 0.5, "END")
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert [e.token for e in ip.user_ns["probed"].logprobs] == ["echo:", " hello"]


def test_options_can_be_session_defaults(ip, magics, servers):
    line_magic(ip, "chat_config", "options=top_k=5 reasoning_effort=high")
    chat(ip, "-m echo --no-cache", "hello")
    body = servers.ok.requests[-1]
    assert (body["top_k"], body["reasoning_effort"]) == (5, "high")


def test_a_bad_option_is_a_one_line_usage_error(ip, magics):
    shown = chat(ip, "-m echo --option top_k", "hello", fails=True)
    assert isinstance(shown.error, UsageError) and "an option must be written key=value" in str(shown.error)
