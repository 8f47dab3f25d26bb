"""The vendors the environment configures are one table: each row's variables and keys turn on and set up
its provider."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from opencode_lab import ConfigError, Lab, ModelNotFoundError, Settings
from opencode_lab.core.vendors import VENDORS, Vendor
from opencode_lab.providers.anthropic import AnthropicProvider
from opencode_lab.providers.openai_compat import OpenAICompatibleProvider
from opencode_lab.providers.registry import load_factory, provider_types
from opencode_lab.providers.vendors import ROWS

KEY = "sk-vendor-table-0123456789"
NOWHERE = "http://127.0.0.1:9/api"  # never contacted: these tests only build


@pytest.fixture
def env_lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``env_lab(**variables)``: a Lab from the environment with *variables* set; closed afterwards."""
    labs: list[Lab] = []

    def make(**variables: str) -> Lab:
        for var, value in variables.items():
            monkeypatch.setenv(var, value)
        labs.append(Lab.from_env())
        return labs[-1]

    yield make
    for lab in labs:
        lab.close()


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_a_vendor_key_and_base_url_variable_build_the_vendors_own_provider(env_lab, row: Vendor) -> None:
    lab = env_lab(**{row.key_env[-1]: KEY, row.base_url_env: NOWHERE})
    provider = lab.providers[row.name]
    assert type(provider) is type(load_factory(row.factory)(lab.settings.vendors[row.name], lab.settings))
    assert provider.base_url == NOWHERE  # type: ignore[attr-defined]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_a_vendor_without_a_key_is_off_and_keeps_its_default_base_url(env_lab, row: Vendor) -> None:
    lab = env_lab()
    assert row.name not in lab.providers
    assert lab.settings.vendors[row.name].base_url == row.default_base_url


def test_every_vendor_is_a_type_a_toml_table_can_name() -> None:
    assert {row.name for row in ROWS} <= set(provider_types())


def test_each_later_key_variable_wins() -> None:
    for row in ROWS:
        settings = Settings.load(env={var: f"{KEY}-{i}" for i, var in enumerate(row.key_env)})
        key = settings.vendors[row.name].api_key
        assert key is not None and key.reveal() == f"{KEY}-{len(row.key_env) - 1}"


def test_a_base_url_comes_from_the_lab_table_and_the_variable_wins(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text('[lab]\nopenai_base_url = "http://from-the-file:1/v1"\n')
    assert Settings.load(path, env={}).vendors["openai"].base_url == "http://from-the-file:1/v1"
    assert Settings.load(path, env={"OPENAI_BASE_URL": NOWHERE}).vendors["openai"].base_url == NOWHERE


def test_a_vendor_option_comes_from_its_variable_or_its_lab_key(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text("[lab]\nanthropic_max_tokens = 55\n")
    assert Settings.load(env={}).vendors["anthropic"].options == {"max_tokens": 1024}
    assert Settings.load(path, env={}).vendors["anthropic"].options == {"max_tokens": 55}
    assert Settings.load(path, env={"OC_ANTHROPIC_MAX_TOKENS": "77"}).vendors["anthropic"].options == {"max_tokens": 77}


def test_a_bad_vendor_option_is_refused_naming_its_variable() -> None:
    with pytest.raises(ConfigError, match="OC_ANTHROPIC_MAX_TOKENS must be a whole number at least 1"):
        Settings.load(env={"OC_ANTHROPIC_MAX_TOKENS": "0"})


def test_a_toml_provider_of_a_vendor_type_reads_the_vendors_option(make_lab, monkeypatch) -> None:
    monkeypatch.setenv("OC_ANTHROPIC_MAX_TOKENS", "77")
    lab = make_lab(f'[providers.claude]\ntype = "anthropic"\nbase_url = "{NOWHERE}"\n')
    provider = lab.providers["claude"]
    assert isinstance(provider, AnthropicProvider) and provider.max_tokens == 77


def test_a_model_list_variable_turns_its_vendor_on_and_is_the_rotation_pool(env_lab) -> None:
    lab = env_lab(OPENROUTER_MODEL_LIST="vendor/a, vendor/b", OPENROUTER_BASE_URL=NOWHERE)
    assert "openrouter" in lab.providers
    assert lab.catalog.pool == ("openrouter/vendor/a", "openrouter/vendor/b")


def test_openai_in_a_file_is_any_compatible_server_whose_catalog_is_declared(make_lab, env_lab) -> None:
    vendor = env_lab(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=NOWHERE).providers["openai"]
    assert vendor.capabilities.open_catalog
    lab = make_lab(f'[providers.vllm]\nbase_url = "{NOWHERE}"\nmodels = ["served"]\n')
    assert type(lab.providers["vllm"]) is OpenAICompatibleProvider
    with pytest.raises(ModelNotFoundError, match="'vllm/other'"):
        lab.chat("hi", "vllm/other")


@pytest.mark.parametrize("name", ["openai", "gemini", "local"])
def test_a_toml_table_may_not_take_a_built_in_provider_name(make_lab, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[providers\.{name}\]: name must be a plain word other than anthropic"):
        make_lab(f'[providers.{name}]\nbase_url = "{NOWHERE}"\n')


def test_the_table_holds_every_variable_a_vendor_reads() -> None:
    assert {"OPENROUTER_MODEL_LIST", "GOOGLE_API_KEY", "OC_ANTHROPIC_MAX_TOKENS"} <= set(VENDORS.variables)
    assert all(var not in os.environ for var in VENDORS.variables)  # cleared for the tests, from the table


def test_a_plug_in_registers_a_vendor_that_the_environment_alone_configures(tmp_path: Path) -> None:
    """In a fresh interpreter (registration is global), entering the package through core, below the providers."""
    script = textwrap.dedent("""
        from opencode_lab.core.vendors import VENDORS, Vendor
        print(",".join(vendor.name for vendor in VENDORS))
        VENDORS.register(Vendor(
            "acme", "opencode_lab.providers.openai_compat:from_config",
            key_env=("ACME_API_KEY",), base_url_env="ACME_BASE_URL", default_base_url="https://api.acme.test/v1",
        ))
        from opencode_lab import Lab
        with Lab.from_env() as lab:
            print(type(lab.providers["acme"]).__name__, lab.providers["acme"].base_url)
    """)
    env = {**os.environ, "ACME_API_KEY": KEY, "ACME_BASE_URL": NOWHERE, "OC_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [",".join(row.name for row in ROWS), "OpenAICompatibleProvider", NOWHERE]


def test_openai_itself_is_sent_the_output_bound_as_max_completion_tokens(env_lab, fault) -> None:
    """OpenAI's reasoning models refuse ``max_tokens``; a self-hosted compatible server keeps the older name."""
    lab = env_lab(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fault.base_url)
    lab.chat("hi", "openai/fault-model", max_tokens=7, cache=False)
    body = fault.requests[-1]
    assert body["max_completion_tokens"] == 7 and "max_tokens" not in body
