"""Provider types are looked up by name: TOML ``type = "..."`` picks one, users and packages add their own."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from collections.abc import Collection
from pathlib import Path

import pytest

import opencode_lab
from opencode_lab import ConfigError, Lab, register_provider_type
from opencode_lab.providers.local import LocalProvider
from opencode_lab.providers.openai_compat import OpenAICompatibleProvider
from opencode_lab.providers.registry import provider_factory, provider_types
from opencode_lab.providers.vendors import ROWS

PACKAGE = Path(opencode_lab.__file__).parent

PLUGIN = '''
from opencode_lab import Completion, Provider, Usage


class Shout(Provider):
    """Answers in capitals, without a network: a stand-in for a third-party provider package."""

    def __init__(self, name):
        self.name = name

    async def complete(self, model, request):
        return Completion(request.messages[-1].content.upper(), model, "stop", Usage(1, 1))

    def stream(self, model, request):
        raise NotImplementedError

    async def list_models(self):
        return []


def factory(config, settings):
    return Shout(config.name)
'''


def test_the_built_in_types_are_registered() -> None:
    assert {"openai", "openrouter"} <= set(provider_types())
    assert provider_factory("openai").__module__ == "opencode_lab.providers.openai_compat"


def test_an_unknown_type_names_the_closest_one(make_lab, fault) -> None:
    with pytest.raises(ConfigError, match=r"unknown provider type 'opnai'.*did you mean 'openai'"):
        make_lab(f'[providers.f]\ntype = "opnai"\nbase_url = "{fault.base_url}"\n')


def test_a_registered_type_builds_the_provider_named_in_toml(make_lab, fault) -> None:
    built = []

    def factory(config, settings):
        built.append((config.name, config.base_url, settings.timeout_s))
        return OpenAICompatibleProvider(config.name, config.base_url)

    register_provider_type("recording", factory)
    lab = make_lab(
        f'[lab]\ntimeout_s = 7\n[providers.r]\ntype = "recording"\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n'
    )
    assert built == [("r", fault.base_url, 7.0)]
    assert lab.chat("hello", "r/x").text == "echo: hello"


@pytest.mark.slow
def test_a_package_registers_a_type_through_its_entry_point(tmp_path: Path) -> None:
    """Installed metadata with an ``opencode_lab.providers`` entry point is all a plugin needs."""
    (tmp_path / "shout_plugin.py").write_text(PLUGIN)
    info = tmp_path / "shout_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[opencode_lab.providers]\nshout = shout_plugin:factory\n")
    (tmp_path / "lab.toml").write_text(
        '[providers.s]\ntype = "shout"\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["m"]\n'
    )
    script = textwrap.dedent("""
        from opencode_lab import Lab
        with Lab.from_file("lab.toml") as lab:
            print(lab.chat("quiet please", "s/m", cache=False).text)
    """)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "OC_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "QUIET PLEASE"


def test_a_type_name_must_be_a_plain_word() -> None:
    with pytest.raises(ValueError, match="plain word"):
        register_provider_type("not a word", lambda config, settings: None)  # type: ignore[arg-type,return-value]


def test_lab_refuses_an_unknown_type_before_anything_is_sent(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text('[providers.x]\ntype = "nope"\nbase_url = "http://127.0.0.1:9/v1"\n')
    with pytest.raises(ConfigError, match="unknown provider type 'nope'"):
        Lab.from_file(tmp_path / "lab.toml")


# -- provider names stay inside providers/ ------------------------------------------------------------


def names_used(source: str, names: Collection[str]) -> list[tuple[int, str]]:
    """``(line, name)`` of every string constant in *source* that is one of *names*."""
    tree = ast.parse(source)
    found = [(node.lineno, node.value) for node in ast.walk(tree) if isinstance(node, ast.Constant)]
    return sorted((line, value) for line, value in found if isinstance(value, str) and value in names)


def test_no_module_outside_providers_names_a_provider() -> None:
    """What a provider can do is its `Capabilities`; which vendors exist is the vendor table.  So no other
    layer, the test servers included (they speak wire formats, not provider names), has a reason to spell
    a provider's type or name; the tests may, as users do."""
    names = {*provider_types(), *(row.name for row in ROWS), LocalProvider.name}
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {value!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "providers"
        for line, value in names_used(path.read_text(), names)
    ]
    assert found == []


def test_the_name_finder_sees_a_comparison_a_key_and_an_argument_but_not_prose() -> None:
    source = textwrap.dedent("""
        \"\"\"The local models; see openrouter/auto.\"\"\"
        if dep.provider == "local":
            table = {"openrouter": 1, "local/model": 2}
            build("gemini", f"openrouter/{model}")
    """)
    assert names_used(source, {"local", "openrouter", "gemini"}) == [(3, "local"), (4, "openrouter"), (5, "gemini")]
