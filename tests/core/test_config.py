"""Settings come from the environment and an optional TOML file; bad values name themselves."""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from pathlib import Path

import platformdirs
import pytest

from opencode_lab import ConfigError, Settings
from opencode_lab.core.config import default_cache_dir
from opencode_lab.core.deployment import Deployment


def load(env: dict[str, str] | None = None, toml: str | None = None, tmp_path: Path | None = None) -> Settings:
    path = None
    if toml is not None:
        assert tmp_path is not None
        path = tmp_path / "opencode_lab.toml"
        path.write_text(toml)
    return Settings.load(path, env=env or {})


def test_defaults_need_no_configuration() -> None:
    settings = load()
    assert settings.cache_mode == "file"
    assert settings.agent_max_iter == 3
    assert settings.vendors["openrouter"].api_key is None
    assert settings.runlog == settings.cache_dir / "runs.sqlite"


def test_original_variable_names_are_read() -> None:
    settings = load(
        {
            "OPENROUTER_API_KEY": "sk-or-abcdefgh12345",
            "OPENROUTER_MODEL_LIST": "openai/gpt-4o-mini, meta/llama-3",
            "OC_CACHE_MODE": "memory",
            "OC_CACHE_TTL_MS": "5000",
            "LOG_LEVEL": "debug",
            "AGENT_MAX_ITER": "5",
            "OC_TIMEOUT_S": "2.5",
            "OC_MAX_CONCURRENCY": "4",
            "OC_RUNLOG": "off",
        }
    )
    assert settings.vendors["openrouter"].models == ("openai/gpt-4o-mini", "meta/llama-3")
    assert settings.cache_mode == "memory" and settings.cache_ttl_ms == 5000
    assert settings.log_level == "DEBUG" and settings.agent_max_iter == 5
    assert settings.timeout_s == 2.5 and settings.max_concurrency == 4
    assert settings.runlog is None
    key = settings.vendors["openrouter"].api_key
    assert key is not None and key.reveal() == "sk-or-abcdefgh12345"


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    settings = load({"OC_CACHE_MODE": "off"}, '[cache]\nmode = "memory"\nttl_ms = 100\n', tmp_path)
    assert settings.cache_mode == "off"
    assert settings.cache_ttl_ms == 100


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OC_CACHE_TTL_MS": "abc"}, "OC_CACHE_TTL_MS"),
        ({"OC_CACHE_MODE": "disk"}, "OC_CACHE_MODE"),
        ({"AGENT_MAX_ITER": "0"}, "AGENT_MAX_ITER"),
        ({"OC_TIMEOUT_S": "-1"}, "OC_TIMEOUT_S"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"OPENROUTER_MODEL_LIST": "a,,b"}, "OPENROUTER_MODEL_LIST"),
        ({"OPENROUTER_BASE_URL": "ftp://x"}, "OPENROUTER_BASE_URL"),
    ],
)
def test_an_invalid_variable_is_named_in_the_error(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load(env)


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"opencode_lab\.toml.*line 2"):
        load(toml='[cache]\nmode = "file\n', tmp_path=tmp_path)


def test_custom_providers_and_deployments_come_from_toml(tmp_path: Path) -> None:
    toml = """
[providers.vllm]
base_url = "http://127.0.0.1:8000/v1"
api_key_env = "VLLM_KEY"
models = ["qwen"]

[[models.smol.deployments]]
provider = "vllm"
upstream = "qwen"
rpm = 60
input_price = 0.1
output_price = 0.2

[aliases]
fast = ["smol", "local/smollm2-135m"]
"""
    settings = load({"VLLM_KEY": "vllm-secret-123456"}, toml, tmp_path)
    vllm = settings.providers["vllm"]
    assert vllm.base_url == "http://127.0.0.1:8000/v1" and vllm.models == ("qwen",)
    assert vllm.api_key is not None and vllm.api_key.reveal() == "vllm-secret-123456"
    ((name, (dep,)),) = settings.models.items()
    assert (name, dep.id, dep.provider, dep.upstream, dep.rpm) == ("smol", "vllm/qwen", "vllm", "qwen", 60)
    assert dep.input_price_per_mtok == 0.1
    assert settings.aliases["fast"] == ("smol", "local/smollm2-135m")


def test_aliases_that_refer_to_each_other_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        load(toml='[aliases]\na = ["b"]\nb = ["a"]\n', tmp_path=tmp_path)


def test_a_selector_table_names_a_file_next_to_the_config_and_one_rule(tmp_path: Path) -> None:
    settings = load(toml='[selectors.smart]\npath = "sel.json"\nbudget = 0.5\n', tmp_path=tmp_path)
    (config,) = settings.selectors.values()
    assert config.path == tmp_path / "sel.json" and config.budget == 0.5 and config.target is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('budget = 1', "must be a table with path"),
        ('path = "s.json"\nbudjet = 1', "unknown key 'budjet'; did you mean 'budget'"),
        ('path = "s.json"\ntarget = 0.5\nbudget = 1', "give one of target, budget, willingness_to_pay, not target"),
        ('path = "s.json"\nbudget = -1', "budget must be a number at least 0"),
    ],
)
def test_a_bad_selector_table_is_refused_naming_the_key(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(toml=f"[selectors.smart]\n{table}\n", tmp_path=tmp_path)


def test_a_deployment_without_provider_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[models.x\] needs a provider"):
        load(toml='[models.x]\nupstream = "y"\n', tmp_path=tmp_path)


def test_settings_repr_shows_no_key() -> None:
    settings = load({"OPENROUTER_API_KEY": "sk-or-v1-SECRETSECRET"})
    assert "SECRETSECRET" not in repr(settings)


def test_api_keys_are_read_only_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[lab\] has unknown key 'openrouter_api_key'"):
        load(toml='[lab]\nopenrouter_api_key = "sk-or-in-a-shared-file"\n', tmp_path=tmp_path)


# -- strict TOML: a typo is an error naming the file, the key and the closest valid key --------------------


def test_an_unknown_table_is_refused_with_the_closest_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"opencode_lab\.toml: unknown table \[labb\]; did you mean 'lab'\?"):
        load(toml="[labb]\ntimeout_s = 5\n", tmp_path=tmp_path)


def test_a_setting_outside_any_table_is_pointed_to_its_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown table \[timeout_s\]; did you mean \[lab\] timeout_s\?"):
        load(toml="timeout_s = 5\n", tmp_path=tmp_path)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[lab]\ntimeout = 5\n", "[lab] has unknown key 'timeout'; did you mean 'timeout_s'?"),
        ("[lab]\nrpmm = 5\n", "[lab] has unknown key 'rpmm' (known: agent_max_iter, "),
        ('[cache]\nmdoe = "file"\n', "[cache] has unknown key 'mdoe'; did you mean 'mode'?"),
        (
            '[providers.vllm]\nbase_url = "http://h/v1"\napi_key_var = "K"\n',
            "[providers.vllm] has unknown key 'api_key_var'; did you mean 'api_key_env'?",
        ),
        ('[models.smol]\nprovider = "p"\nrpmm = 5\n', "[models.smol] has unknown key 'rpmm'; did you mean 'rpm'?"),
        (
            '[[models.smol.deployments]]\nprovider = "p"\nrpmm = 5\n',
            "[[models.smol.deployments]] #1 has unknown key 'rpmm'; did you mean 'rpm'?",
        ),
        (
            '[models.smol]\ndeploymets = [{ provider = "p" }]\n',
            "[models.smol] has unknown key 'deploymets'; did you mean 'deployments'?",
        ),
    ],
)
def test_an_unknown_key_in_any_table_is_refused_with_the_closest_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(toml=toml, tmp_path=tmp_path)
    assert f"opencode_lab.toml: {message}" in str(info.value)


# -- numbers: finite, in range, and never a boolean -----------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+inf"])
@pytest.mark.parametrize("key", ["timeout_s", "deadline_s", "breaker_failure_rate", "max_concurrency"])
def test_nan_and_infinity_in_the_file_are_refused(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"opencode_lab\.toml: \[lab\] {key} must be a finite"):
        load(toml=f"[lab]\n{key} = {value}\n", tmp_path=tmp_path)


@pytest.mark.parametrize(
    "key",
    ["rpm", "tpm", "weight", "input_price", "output_price", "cached_input_price", "cache_write_price", "request_fee",
     "context_length"],
)  # fmt: skip
def test_nan_and_infinity_in_a_deployment_are_refused(tmp_path: Path, key: str) -> None:
    for value in ("nan", "inf"):
        with pytest.raises(ConfigError, match=rf"\[models\.m\] {key} must be a finite"):
            load(toml=f'[models.m]\nprovider = "p"\n{key} = {value}\n', tmp_path=tmp_path)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
@pytest.mark.parametrize("var", ["OC_TIMEOUT_S", "OC_RETRY_AFTER_CAP_S", "OC_MAX_RETRIES", "OC_BREAKER_WINDOW"])
def test_nan_and_infinity_in_a_variable_are_refused(var: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{var} must be a finite"):
        load({var: value})


@pytest.mark.parametrize(
    "var",
    [
        "OC_TIMEOUT_S",
        "OC_DEADLINE_S",
        "OC_BREAKER_COOLDOWN_S",
        "OC_RATE_WINDOW_S",
        "OC_RETRY_AFTER_CAP_S",
        "OC_BREAKER_FAILURE_RATE",
        "OC_MAX_CONCURRENCY",
        "OC_BREAKER_FAILURES",
        "OC_BREAKER_WINDOW",
        "OC_BREAKER_MIN_CALLS",
        "OC_CACHE_TTL_MS",
        "AGENT_MAX_ITER",
    ],
)
def test_zero_and_negative_are_refused_where_they_make_no_sense(var: str) -> None:
    for value in ("0", "-1"):
        with pytest.raises(ConfigError, match=rf"^{var} must be a (whole )?number (greater than|at least)"):
            load({var: value})


@pytest.mark.parametrize("key", ["rpm", "tpm", "weight", "max_in_flight", "context_length"])
def test_a_deployment_limit_must_be_positive(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[models\.m\] {key} must be a (whole )?number"):
        load(toml=f'[models.m]\nprovider = "p"\n{key} = 0\n', tmp_path=tmp_path)


def test_zero_is_accepted_for_prices_and_retries(tmp_path: Path) -> None:
    toml = '[lab]\nmax_retries = 0\n[models.m]\nprovider = "p"\ninput_price = 0\noutput_price = 0.0\n'
    settings = load(toml=toml, tmp_path=tmp_path)
    (dep,) = settings.models["m"]
    assert settings.max_retries == 0
    assert (dep.input_price_per_mtok, dep.output_price_per_mtok) == (0.0, 0.0)


def test_a_deployment_declares_cache_prices_and_a_request_fee(tmp_path: Path) -> None:
    toml = (
        '[models.m]\nprovider = "p"\ninput_price = 3\noutput_price = 15\ncached_input_price = 0.3\n'
        "cache_write_price = 3.75\nrequest_fee = 0.002\n"
    )
    (dep,) = load(toml=toml, tmp_path=tmp_path).models["m"]
    assert (dep.cached_input_price_per_mtok, dep.cache_write_price_per_mtok, dep.request_fee_usd) == (0.3, 3.75, 0.002)


def test_a_model_table_declares_request_parameters_in_both_forms(tmp_path: Path) -> None:
    toml = (
        '[models.a]\nprovider = "p"\nreasoning_effort = "low"\noptions = { top_k = 3 }\n'
        '[models.b]\nreasoning_budget = 2048\n[[models.b.deployments]]\nprovider = "p"\n'
    )
    settings = load(toml=toml, tmp_path=tmp_path)
    assert settings.model_params["a"].payload() == {"reasoning_effort": "low", "options": {"top_k": 3}}
    assert settings.model_params["b"].payload() == {"reasoning_budget": 2048}


def test_a_request_parameter_inside_a_deployments_entry_is_refused(tmp_path: Path) -> None:
    toml = '[[models.b.deployments]]\nprovider = "p"\nreasoning_budget = 2048\n'
    with pytest.raises(ConfigError, match=r"unknown key 'reasoning_budget'"):
        load(toml=toml, tmp_path=tmp_path)


@pytest.mark.parametrize("toml", ["timeout_s = true", "max_retries = false", "agent_max_iter = true"])
def test_a_boolean_is_not_a_number(tmp_path: Path, toml: str) -> None:
    with pytest.raises(ConfigError, match=r"\[lab\] \w+ must be a finite"):
        load(toml=f"[lab]\n{toml}\n", tmp_path=tmp_path)


def test_a_whole_number_setting_refuses_a_fraction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[lab\] max_concurrency must be a finite whole number"):
        load(toml="[lab]\nmax_concurrency = 2.5\n", tmp_path=tmp_path)


# -- circuit breaker and retry settings -----------------------------------------------------------------


def test_breaker_and_retry_settings_have_defaults() -> None:
    settings = load()
    assert (settings.breaker_failures, settings.breaker_cooldown_s) == (5, 30.0)
    assert (settings.breaker_failure_rate, settings.breaker_window, settings.breaker_min_calls) == (0.5, 20, 10)
    assert settings.retry_after_cap_s == 300.0


def test_breaker_and_retry_settings_come_from_the_file(tmp_path: Path) -> None:
    toml = (
        "[lab]\nbreaker_failures = 3\nbreaker_failure_rate = 0.25\nbreaker_window = 40\n"
        "breaker_min_calls = 40\nbreaker_cooldown_s = 7.5\nretry_after_cap_s = 12\n"
    )
    s = load(toml=toml, tmp_path=tmp_path)
    assert (s.breaker_failures, s.breaker_failure_rate, s.breaker_window, s.breaker_min_calls) == (3, 0.25, 40, 40)
    assert (s.breaker_cooldown_s, s.retry_after_cap_s) == (7.5, 12.0)


def test_breaker_and_retry_variables_win_over_the_file(tmp_path: Path) -> None:
    env = {
        "OC_BREAKER_FAILURE_RATE": "1",
        "OC_BREAKER_WINDOW": "8",
        "OC_BREAKER_MIN_CALLS": "4",
        "OC_RETRY_AFTER_CAP_S": "2.5",
        "OC_BREAKER_FAILURES": "9",
        "OC_BREAKER_COOLDOWN_S": "1",
    }
    toml = "[lab]\nbreaker_failure_rate = 0.25\nbreaker_window = 40\nbreaker_min_calls = 30\nretry_after_cap_s = 12\n"
    s = load(env, toml, tmp_path)
    assert (s.breaker_failure_rate, s.breaker_window, s.breaker_min_calls, s.retry_after_cap_s) == (1.0, 8, 4, 2.5)
    assert (s.breaker_failures, s.breaker_cooldown_s) == (9, 1.0)


@pytest.mark.parametrize("value", ["0", "1.5", "-0.5"])
def test_the_breaker_failure_rate_is_a_fraction(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^OC_BREAKER_FAILURE_RATE must be a number greater than 0 and at most 1"):
        load({"OC_BREAKER_FAILURE_RATE": value})


def test_more_minimum_calls_than_the_window_holds_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"OC_BREAKER_MIN_CALLS \(21\) must be at most OC_BREAKER_WINDOW \(20\)"):
        load({"OC_BREAKER_MIN_CALLS": "21"})


def test_more_minimum_calls_than_the_window_holds_names_the_file_keys(tmp_path: Path) -> None:
    named = r"opencode_lab\.toml: \[lab\] breaker_min_calls \(6\) must be at most OC_BREAKER_WINDOW \(5\)"
    with pytest.raises(ConfigError, match=named):
        load({"OC_BREAKER_WINDOW": "5"}, "[lab]\nbreaker_window = 50\nbreaker_min_calls = 6\n", tmp_path)


# -- base URLs are checked when loaded, not on the first call ----------------------------------------------

BAD_URLS = [
    "http://h:99999/v1",
    "http://h:0/v1",
    "http://h:abc/v1",
    "http://[::1/v1",
    "http://[zz::1]:80/v1",
    "http://xn--a.com/v1",
    f"http://{'a' * 64}.com/v1",
    "http://a b.com/v1",
    "http://a..b/v1",
    "http://999.1.1.1/v1",
    "http:///v1",
    "ftp://h/v1",
    "h:8000/v1",
    "http://\u2603.net/v1",  # IDNA 2003 takes the snowman; httpx (IDNA 2008) would refuse it at call time
    "http://h\t/v1",
    "http://[::1]x/v1",
    "http://h/v1?key=1",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("var", ["OPENROUTER_BASE_URL", "OPENAI_BASE_URL"])
def test_a_bad_base_url_variable_is_refused_at_load(var: str, url: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{var} (is not a valid URL|must be an http\(s\) URL)"):
        load({var: url})


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_bad_provider_base_url_is_refused_at_load(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"opencode_lab\.toml: \[providers\.x\] base_url (is not|must be)"):
        load(toml=f'[providers.x]\nbase_url = "{url}"\n', tmp_path=tmp_path)


def test_a_refused_url_does_not_show_its_password() -> None:
    with pytest.raises(ConfigError, match=r"'http://\*\*\*@h:99999/v1'") as info:
        load({"OPENAI_BASE_URL": "http://alice:pw-TOPSECRET@h:99999/v1"})
    assert "TOPSECRET" not in str(info.value)


def test_a_base_url_with_user_info_is_kept_but_its_repr_masks_the_password() -> None:
    settings = load({"OPENAI_BASE_URL": "http://alice:pw-TOPSECRET@h/v1"})
    assert settings.vendors["openai"].base_url == "http://alice:pw-TOPSECRET@h/v1"
    assert "TOPSECRET" not in repr(settings) and "http://***@h/v1" in repr(settings)


@pytest.mark.parametrize("header", ['"X-Key" = "caf\u00e9"', '"X-Key" = "a\\nb"', '"X Key" = "v"'])
def test_a_header_httpx_could_not_send_is_refused_without_showing_its_value(tmp_path: Path, header: str) -> None:
    toml = f'[providers.x]\nbase_url = "http://h/v1"\nheaders = {{ {header} }}\n'
    with pytest.raises(ConfigError, match=r"\[providers\.x\] headers: .* needs a plain name and a printable") as info:
        load(toml=toml, tmp_path=tmp_path)
    assert "caf" not in str(info.value)


def test_header_values_are_secrets(tmp_path: Path) -> None:
    toml = '[providers.x]\nbase_url = "http://h/v1"\nheaders = { "X-Key" = "hdr-TOPSECRET-1" }\n'
    settings = load(toml=toml, tmp_path=tmp_path)
    assert settings.providers["x"].headers[0][1].reveal() == "hdr-TOPSECRET-1"
    assert "TOPSECRET" not in repr(settings)


def test_a_base_url_in_the_lab_table_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[lab\] openai_base_url is not a valid URL"):
        load(toml='[lab]\nopenai_base_url = "http://h:70000"\n', tmp_path=tmp_path)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://example.org/api/v1/", "https://example.org/api/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://[::1]:8080/v1//", "http://[::1]:8080/v1"),
        ("http://bücher.example/v1", "http://bücher.example/v1"),
        ("http://my_service:8000/v1", "http://my_service:8000/v1"),
        ("http://localhost", "http://localhost"),
    ],
)
def test_a_good_base_url_is_kept_without_trailing_slashes(url: str, kept: str) -> None:
    assert load({"OPENAI_BASE_URL": url}).vendors["openai"].base_url == kept


# -- one declaration per default ----------------------------------------------------------------------------


def test_the_cache_folder_defaults_to_the_platform_user_cache_dir() -> None:
    expected = Path(platformdirs.user_cache_dir("opencode_lab"))
    assert default_cache_dir() == expected
    assert load().cache_dir == expected
    assert Settings().cache_dir == expected


def test_the_cache_folder_follows_xdg_cache_home_on_linux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("XDG_CACHE_HOME is a Linux convention")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert load().cache_dir == tmp_path / "opencode_lab"


def test_the_cache_folder_variable_and_key_override_the_platform_default(tmp_path: Path) -> None:
    assert load({"OC_CACHE_DIR": str(tmp_path / "a")}).cache_dir == tmp_path / "a"
    settings = load(toml=f'[cache]\ndir = "{tmp_path / "b"}"\n', tmp_path=tmp_path)
    assert settings.cache_dir == tmp_path / "b"
    assert settings.runlog == tmp_path / "b" / "runs.sqlite"


def test_loading_nothing_gives_the_settings_field_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no ./opencode_lab.toml
    loaded, declared = Settings.load(env={}), Settings()
    for f in fields(Settings):
        if f.name not in ("cache_dir", "runlog", "source"):
            assert getattr(loaded, f.name) == getattr(declared, f.name), f.name


def test_a_deployment_takes_its_defaults_from_the_deployment_class(tmp_path: Path) -> None:
    (dep,) = load(toml='[models.smol]\nprovider = "p"\n', tmp_path=tmp_path).models["smol"]
    assert dep == Deployment(id="p/smol", provider="p", upstream="smol")


# -- hostile values: refused with a ConfigError naming them, never a raw exception ---------------------------------


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('[lab]\nagent_max_iter = "3"\n', "agent_max_iter must be a number, not the text '3'"),
        ('[lab]\ntimeout_s = "5"\n', "timeout_s must be a number, not the text '5'"),
        ("[cache]\ndir = 5\n", "dir must be a non-empty string, got 5"),
        ("[cache]\nttl_ms = 1000000000000000000\n", "ttl_ms must be a whole number at least 1 and at most 10000000"),
        ("[lab]\nbreaker_window = 100000000000000\n", "breaker_window must be a whole number at least 1 and at most"),
        ("[aliases]\n" + "".join(f'a{i} = "a{i + 1}"\n' for i in range(3000)), "passes over 32 aliases"),
        ("[lab]\nx = " + "{a=" * 3000 + "1" + "}" * 3000 + "\n", "nest too deeply"),
        ("[lab]\nx = " + "[" * 3000 + "]" * 3000 + "\n", "nest too deeply"),
    ],
)
def test_a_hostile_toml_value_is_a_config_error(tmp_path, toml: str, says: str) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(says)):
        Settings.load(path, env={})


def test_a_number_from_the_environment_may_be_text() -> None:
    assert Settings.load(env={"OC_TIMEOUT_S": "5", "AGENT_MAX_ITER": "4"}).agent_max_iter == 4


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p, "is not a regular file"),  # a folder
        (lambda p: _write(p / "b.toml", b"\xff\xfe\x00binary"), "is not UTF-8 text"),
        (lambda p: Path("/dev/zero"), "is not a regular file"),
    ],
)
def test_a_config_path_that_is_not_a_toml_file_is_a_config_error(tmp_path, make, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Settings.load(make(tmp_path), env={})


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_an_environment_value_that_is_not_text_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OC_CACHE_DIR must be text"):
        Settings.load(env={"OC_CACHE_DIR": 5})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"agent_max_iter": "3"}, "agent_max_iter must be int, got '3'"),
        ({"timeout_s": "5"}, "timeout_s must be float, got '5'"),
        ({"cache_dir": 5}, "cache_dir must be Path, got 5"),
        ({"default_models": ["a"]}, r"default_models must be tuple\[str, \.\.\.\]"),
    ],
)
def test_settings_built_directly_have_their_types_checked(kwargs: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Settings(**kwargs)


def test_a_lab_given_something_other_than_settings_says_what_it_takes() -> None:
    from opencode_lab import Lab

    with pytest.raises(ConfigError, match=r"Lab\(\) takes Settings, not str; for a TOML file use Lab.from_file"):
        Lab("lab.toml")  # type: ignore[arg-type]


def test_a_provider_region_and_a_deployment_override_come_from_toml(tmp_path: Path) -> None:
    settings = load(
        None,
        '[providers.aws]\nbase_url = "http://127.0.0.1:9"\nregion = "us-east-1"\n'
        '[providers.gcp]\nbase_url = "http://127.0.0.1:9"\nlocation = "europe-west4"\n'
        '[providers.plain]\nbase_url = "http://127.0.0.1:9"\n'
        '[models.m]\nprovider = "aws"\nregion = "eu-central-1"\n',
        tmp_path,
    )
    assert settings.providers["aws"].region == "us-east-1"
    assert settings.providers["gcp"].region == "europe-west4"  # Vertex's word for it
    assert settings.providers["plain"].region is None
    assert settings.models["m"][0].region == "eu-central-1"


_P = '[providers.p]\nbase_url = "http://127.0.0.1:9"\n'


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        (_P + 'region = "US East 1"\n', "[providers.p] region must be a region of lowercase letters, digits and '-'"),
        (_P + 'location = " "\n', "[providers.p] location must be a non-empty string, got ' '"),
        (_P + "region = 1\n", "[providers.p] region must be a non-empty string, got 1"),
        ('[models.m]\nprovider = "p"\nregion = "eu_central_1"\n', "[models.m] region must be a region"),
    ],
)
def test_a_bad_region_is_refused_naming_key_and_value(tmp_path: Path, toml: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)) as caught:
        load(None, toml, tmp_path)
    bad = toml.rpartition(" = ")[2].strip()
    assert bad.strip('"') in str(caught.value)


def test_region_and_location_together_are_refused(tmp_path: Path) -> None:
    toml = '[providers.p]\nbase_url = "http://127.0.0.1:9"\nregion = "us-east-1"\nlocation = "us-east-1"\n'
    with pytest.raises(ConfigError, match="both region and location"):
        load(None, toml, tmp_path)


def test_a_plugin_type_gets_region_parsed_not_passed_as_its_own_option(tmp_path: Path) -> None:
    settings = load(None, '[providers.d]\ntype = "dask"\nregion = "eu-west-1"\nscheduler = "x"\n', tmp_path)
    assert settings.providers["d"].region == "eu-west-1"
    assert dict(settings.providers["d"].options) == {"scheduler": "x"}


def test_audit_is_on_and_privacy_off_by_default() -> None:
    settings = load()
    assert settings.audit is True and settings.privacy is False and settings.audit_key is None
    assert settings.audit_key_file.name == "audit.key"


@pytest.mark.parametrize(("text", "expected"), [("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False)])
def test_privacy_and_audit_flags_read_from_the_environment(text: str, expected: bool) -> None:
    settings = load({"OC_PRIVACY": text, "OC_AUDIT": text})
    assert settings.privacy is expected and settings.audit is expected


def test_a_flag_is_a_boolean_in_toml_and_a_word_in_a_variable(tmp_path: Path) -> None:
    assert load(toml="[lab]\nprivacy = true\naudit = false\n", tmp_path=tmp_path).privacy is True
    with pytest.raises(ConfigError, match=r"\[lab\] privacy must be true or false"):
        load(toml='[lab]\nprivacy = "yes"\n', tmp_path=tmp_path)
    with pytest.raises(ConfigError, match="OC_AUDIT must be true or false"):
        load({"OC_AUDIT": "maybe"})


def test_the_audit_key_comes_from_the_environment_only_and_never_shows(tmp_path: Path) -> None:
    settings = load({"OC_AUDIT_KEY": "correct horse battery staple", "OC_AUDIT_KEY_FILE": str(tmp_path / "k")})
    assert settings.audit_key is not None and settings.audit_key.reveal() == "correct horse battery staple"
    assert settings.audit_key_file == tmp_path / "k" and "horse" not in repr(settings)
    with pytest.raises(ConfigError, match="unknown key 'audit_key'"):
        load(toml='[lab]\naudit_key = "x"\n', tmp_path=tmp_path)
