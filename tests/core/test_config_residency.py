"""Settings for regions and OpenRouter preferences: the lab-wide rule, the home region, each model's rules and a
vendor's own keys in its provider tables, all checked when the file loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencode_lab import ConfigError, Settings
from opencode_lab.core.deployment import ModelRules
from opencode_lab.core.provider_routing import ProviderRouting
from opencode_lab.session.build import build_providers


def load(tmp_path: Path, toml: str = "", env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "lab.toml"
    path.write_text(toml)
    return Settings.load(path, env=env or {})


def test_the_lab_wide_rule_and_home_region_come_from_the_file_or_the_environment(tmp_path: Path) -> None:
    settings = load(tmp_path, '[lab]\nregions = ["eu-*", "Europe-*"]\nhome_region = "eu-central-1"\n')
    assert (settings.regions, settings.home_region) == (("eu-*", "europe-*"), "eu-central-1")
    settings = load(tmp_path, "", {"OC_REGIONS": "eu-*, europe-*", "OC_HOME_REGION": "europe-west4"})
    assert (settings.regions, settings.home_region) == (("eu-*", "europe-*"), "europe-west4")
    assert load(tmp_path).regions == () and load(tmp_path).home_region is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[lab]\nregions = "eu west"\n', r"\[lab\] regions must hold region names or glob patterns"),
        ('[lab]\nhome_region = "EU_1"\n', r"\[lab\] home_region must be a region of lowercase letters"),
        ('[models.x]\nprovider = "p"\nregions = [1]\n', r"\[models.x\] regions must hold region names"),
        ('[models.x]\nprovider = "p"\nregion_s = ["eu-*"]\n', r"unknown key 'region_s'; did you mean 'regions'"),
        (
            '[models.x]\nprovider_routing = { sort = "cheap" }\n[[models.x.deployments]]\nprovider = "p"\n',
            r"\[models.x\] provider_routing.sort must be one of",
        ),
        (
            '[providers.p]\nbase_url = "http://127.0.0.1:1/v1"\nprovider_routing = { sort = "price" }\n',
            r"\[providers.p\] has unknown key 'provider_routing'",
        ),
    ],
)
def test_a_bad_setting_names_the_file_table_and_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, toml)


def test_a_models_rules_apply_to_the_name_in_either_form(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[models.one]\nprovider = "p"\nregions = ["eu-*"]\n\n'
        '[models.many]\nregions = "us-*"\nprovider_routing = { data_collection = "deny" }\n'
        '[[models.many.deployments]]\nprovider = "p"\n[[models.many.deployments]]\nprovider = "q"\n',
    )
    assert settings.rules == {
        "one": ModelRules(regions=("eu-*",)),
        "many": ModelRules(("us-*",), ProviderRouting.of({"data_collection": "deny"})),
    }
    assert [d.id for d in settings.models["one"]] == ["p/one"]


def test_a_vendors_own_setting_in_its_provider_table_wins_over_the_lab_wide_one(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[lab]\nanthropic_max_tokens = 512\n\n'
        '[providers.claude]\ntype = "anthropic"\nbase_url = "http://127.0.0.1:1"\nmax_tokens = 2048\n\n'
        '[providers.claude2]\ntype = "anthropic"\nbase_url = "http://127.0.0.1:1"\n\n'
        '[providers.or]\ntype = "openrouter"\nbase_url = "http://127.0.0.1:1/v1"\nprovider_routing = { zdr = true }\n',
    )
    providers = build_providers(settings, {})
    assert providers["claude"].max_tokens == 2048  # type: ignore[attr-defined]
    assert providers["claude2"].max_tokens == 512  # type: ignore[attr-defined]
    assert providers["or"].provider_routing == ProviderRouting.of({"zdr": True})  # type: ignore[attr-defined]
