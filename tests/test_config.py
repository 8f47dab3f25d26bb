"""Settings come from the environment and an optional TOML file; bad values name themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencode_lab import ConfigError, Settings


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
    assert settings.openrouter_api_key is None
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
    assert settings.openrouter_model_list == ("openai/gpt-4o-mini", "meta/llama-3")
    assert settings.cache_mode == "memory" and settings.cache_ttl_ms == 5000
    assert settings.log_level == "DEBUG" and settings.agent_max_iter == 5
    assert settings.timeout_s == 2.5 and settings.max_concurrency == 4
    assert settings.runlog is None
    assert settings.openrouter_api_key is not None
    assert settings.openrouter_api_key.reveal() == "sk-or-abcdefgh12345"


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
    (dep,) = settings.deployments
    assert (dep.model, dep.provider, dep.upstream, dep.rpm) == ("smol", "vllm", "qwen", 60)
    assert dep.input_price_per_mtok == 0.1
    assert settings.aliases["fast"] == ("smol", "local/smollm2-135m")


def test_aliases_that_refer_to_each_other_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        load(toml='[aliases]\na = ["b"]\nb = ["a"]\n', tmp_path=tmp_path)


def test_a_deployment_without_provider_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[models.x\] needs a provider"):
        load(toml='[models.x]\nupstream = "y"\n', tmp_path=tmp_path)


def test_settings_repr_shows_no_key() -> None:
    settings = load({"OPENROUTER_API_KEY": "sk-or-v1-SECRETSECRET"})
    assert "SECRETSECRET" not in repr(settings)
