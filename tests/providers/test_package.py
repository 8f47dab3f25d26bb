"""The providers package's shape: vendors stand on the shared HTTP edge, and no module borrows another's privates."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import opencode_lab.providers as providers
from opencode_lab.providers.anthropic import AnthropicProvider
from opencode_lab.providers.gemini import GeminiProvider
from opencode_lab.providers.http import HTTPProvider
from opencode_lab.providers.openai_api import OpenAIProvider
from opencode_lab.providers.openai_compat import OpenAICompatibleProvider
from opencode_lab.providers.openrouter import OpenRouterProvider

FOLDER = Path(providers.__file__).parent


def private_borrowings(source: str) -> list[str]:
    """Private names *source* takes from a sibling: ``from .x import _y``, or ``x._y`` after ``from . import x``."""
    tree = ast.parse(source)
    siblings: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            found += [
                f"from {'.' * node.level}{node.module or ''} import {a.name}" for a in node.names if _private(a.name)
            ]
            siblings |= {a.asname or a.name for a in node.names} if node.module is None else set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in siblings:
            found += [f"{node.value.id}.{node.attr}"] if _private(node.attr) else []
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_provider_module_borrows_a_private_name_from_another() -> None:
    found = {path.name: private_borrowings(path.read_text()) for path in sorted(FOLDER.glob("*.py"))}
    assert {name: names for name, names in found.items() if names} == {}


def test_the_borrowing_finder_sees_both_spellings() -> None:
    source = textwrap.dedent("""
        from . import openai_wire as wire
        from .openai_compat import OpenAICompatibleProvider, _cut
        from .http import __doc__
        wire._kind(1)
        wire.loads("{}")
    """)
    assert private_borrowings(source) == ["from .openai_compat import _cut", "wire._kind"]


@pytest.mark.parametrize(
    "cls", [OpenAICompatibleProvider, OpenAIProvider, OpenRouterProvider, AnthropicProvider, GeminiProvider]
)
def test_every_http_vendor_stands_on_the_shared_edge_and_writes_no_chat_loop_of_its_own(
    cls: type[HTTPProvider],
) -> None:
    assert issubclass(cls, HTTPProvider)
    assert cls.complete is HTTPProvider.complete and cls.stream is HTTPProvider.stream


def test_the_native_formats_are_not_openai_compatible_providers() -> None:
    assert not issubclass(AnthropicProvider, OpenAICompatibleProvider)
    assert not issubclass(GeminiProvider, OpenAICompatibleProvider)
