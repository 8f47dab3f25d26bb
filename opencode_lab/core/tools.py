"""Tools a model may call, and the calls it makes: one shape whatever the provider.

A `Tool` is declared the OpenAI way (``{"type": "function", "function": {"name",
"description", "parameters"}}``), in the flat form (``{"name", "description",
"parameters"}``) or as a plain Python function whose type hints and docstring
become the JSON schema.  Each provider translates `Tool` into its own form and
the calls it gets back into `ToolCall`, so a results row reads the same for
every provider.  A tool's parameters are checked as a `Schema` once, before
anything is sent (``{"type": "str"}`` fails the same way in ``chat`` and
``compare``), and a call's arguments are checked against it with the same bounds
as a ``schema=`` answer.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .errors import InvalidRequestError
from .structured import Schema

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")  # what OpenAI, Anthropic and Gemini all accept


@dataclass(frozen=True)
class Tool:
    """A function the model may call: name, description and a JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}}, hash=False)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions form."""
        function = {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}
        return {"type": "function", "function": function}

    def canonical(self) -> list[Any]:
        """A JSON-able form that is equal exactly when two tools are (what a cache key holds)."""
        return [self.name, self.description, json.loads(json.dumps(self.parameters, sort_keys=True))]

    @cached_property
    def schema(self) -> Schema:
        """The parameters as a checked `Schema`; `InvalidRequestError` naming the tool when they are not one."""
        return Schema.of(dict(self.parameters), f"tool {self.name!r} parameters")


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for.

    ``arguments`` is the parsed JSON object, or None when what the model sent
    (kept verbatim in ``raw_arguments``) is not a JSON object: a wrong call is
    data for a comparison, not an exception.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] | None = field(default=None, hash=False)
    raw_arguments: str = ""

    @classmethod
    def parse(cls, id: str, name: str, raw: str | Mapping[str, Any] | None) -> ToolCall:
        """A call from the JSON text (OpenAI, Anthropic streams) or the object (Anthropic, Gemini) a vendor sent."""
        if raw is None or isinstance(raw, Mapping):
            arguments = dict(raw or {})
            return cls(id, name, arguments, json.dumps(arguments, ensure_ascii=False))
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError:
            parsed = None
        return cls(id, name, parsed if isinstance(parsed, dict) else None, raw)

    def to_openai(self) -> dict[str, Any]:
        arguments = self.raw_arguments or json.dumps(self.arguments or {}, ensure_ascii=False)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}}

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "name", "arguments"}``: what a results row and the cache keep."""
        return {"id": self.id, "name": self.name, "arguments": self.arguments, "raw_arguments": self.raw_arguments}

    @classmethod
    def of(cls, item: object, where: str) -> ToolCall:
        """A call given back in a conversation: a `ToolCall`, its `to_dict` form or the OpenAI form."""
        if isinstance(item, ToolCall):
            return item
        if isinstance(item, Mapping):
            function = item.get("function", item)
            if isinstance(function, Mapping) and isinstance(function.get("name"), str):
                raw = function.get("arguments", item.get("raw_arguments"))
                if isinstance(raw, str | Mapping) or raw is None:
                    return cls.parse(str(item.get("id") or ""), function["name"], raw)
        expected = "{'id', 'function': {'name', 'arguments'}}"
        raise InvalidRequestError(f"{where} is not a tool call (expected {expected})")


def calls_valid(calls: Iterable[ToolCall], offered: Iterable[Tool]) -> bool:
    """Whether the model called tools correctly: at least one call, each to an offered tool, with arguments
    that are a JSON object matching that tool's schema (a bounded check, as `Schema.errors` is)."""
    tools = {t.name: t for t in offered}
    calls = list(calls)
    return bool(calls) and all(
        c.name in tools and c.arguments is not None and tools[c.name].schema.valid(dict(c.arguments)) for c in calls
    )


def tools(items: object) -> tuple[Tool, ...]:
    """Validate ``tools=``: a list of declarations or functions, with distinct names."""
    if items is None:
        return ()
    if isinstance(items, Mapping | str) or callable(items) or not isinstance(items, Iterable):
        raise InvalidRequestError("tools must be a list of tool declarations or functions")
    out = tuple(_tool(i, item) for i, item in enumerate(items))
    for tool in out:
        tool.schema  # noqa: B018 - checked now, before anything is sent, not at the first call
    names = [t.name for t in out]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise InvalidRequestError(f"tools has two tools named {dupes[0]!r}")
    return out


def _tool(index: int, item: object) -> Tool:
    where = f"tools[{index}]"
    if isinstance(item, Tool):
        return item
    if isinstance(item, Mapping):
        spec = item.get("function", item) if item.get("type", "function") == "function" else None
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise InvalidRequestError(f"{where} must be {{'type': 'function', 'function': {{'name', 'parameters'}}}}")
        parameters = spec.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, Mapping) or parameters.get("type", "object") != "object":
            raise InvalidRequestError(f"{where} parameters must be a JSON schema of type 'object'")
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise InvalidRequestError(f"{where} description must be a string")
        return Tool(_name(spec["name"], where), description, dict(parameters))
    if callable(item):
        return tool_from_function(item)
    raise InvalidRequestError(f"{where} must be a tool declaration (a dict) or a function, not {type(item).__name__}")


def _name(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequestError(f"{where} name {name!r} must be letters, digits, '_' or '-' (at most 64)")
    return name


def tool_from_function(fn: Callable[..., Any]) -> Tool:
    """A `Tool` from a function's signature, type hints and docstring (first paragraph, ``Args:`` lines)."""
    name = getattr(fn, "__name__", type(fn).__name__)
    where = f"tool function {name!r}"
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # a hint naming something undefined
        raise InvalidRequestError(f"{where} has type hints that cannot be resolved: {exc}") from None
    summary, described = _docstring(inspect.getdoc(fn) or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name not in hints:
            raise InvalidRequestError(f"{where}: parameter {param.name!r} needs a type hint to become a schema")
        schema, optional = _schema(hints[param.name], f"{where}: parameter {param.name!r}")
        if param.name in described:
            schema["description"] = described[param.name]
        properties[param.name] = schema
        if param.default is param.empty and not optional:
            required.append(param.name)
    parameters = {"type": "object", "properties": properties, "required": required}
    return Tool(_name(name, where), summary, parameters)


_SCALAR = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema(hint: object, where: str) -> tuple[dict[str, Any], bool]:
    """The JSON schema of a type hint, and whether the hint allows None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _schema(rest[0], where)[0], len(rest) < len(args)
        return {"anyOf": [_schema(a, where)[0] for a in rest]}, len(rest) < len(args)
    if origin is typing.Literal:
        return {"enum": list(args)}, False
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple, set, frozenset):
        items = _schema(args[0], where)[0] if args and args[0] is not Ellipsis else {}
        return ({"type": "array", "items": items} if items else {"type": "array"}), False
    if origin is dict or hint is dict:
        return {"type": "object"}, False
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}, False
    if hint in _SCALAR:
        return {"type": _SCALAR[hint]}, False
    raise InvalidRequestError(
        f"{where} has type {hint!r}, which has no JSON schema here (use str, int, float, "
        "bool, list, dict, Literal, an Enum or Optional of these)"
    )


def _docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary paragraph and the ``Args:`` (Google) or ``:param x:`` (Sphinx) descriptions."""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    described: dict[str, str] = {}
    for match in re.finditer(r"^\s*:param\s+(\w+):\s*(.+)$", doc, re.MULTILINE):
        described[match.group(1)] = match.group(2).strip()
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.+\n?)+)", doc, re.MULTILINE)
    if section:
        for match in re.finditer(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", section.group(1), re.MULTILINE):
            described[match.group(1)] = match.group(2).strip()
    return summary, described
