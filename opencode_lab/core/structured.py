"""Structured output: the JSON Schema an answer must match, and the error for an answer that does not.

A `Schema` is built from a JSON Schema dict, a pydantic model class (anything with
``model_json_schema()``; pydantic itself is never imported) or JSON text, checked with
``jsonschema`` before any request is sent, and kept as compact JSON text, so the
value stays hashable.  Key order is kept: a constrained model writes properties in
the order the schema lists them, so two orders are two different requests.
``jsonschema`` is imported where used, so ``import opencode_lab`` stays light.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from .errors import InvalidRequestError, SchemaMismatchError

_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class Schema:
    """A checked JSON Schema, kept as compact JSON ``text`` under a wire-safe ``name`` (from its title)."""

    text: str
    name: str = "response"

    @classmethod
    def of(cls, value: Any, what: str = "schema") -> Schema:
        """A `Schema` from a dict, a pydantic model class, JSON text or a `Schema`; `InvalidRequestError`
        naming the problem (not JSON, not a schema, or a schema ``jsonschema`` refuses) otherwise."""
        if isinstance(value, Schema):
            return value
        document = _document(value, what)
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        from jsonschema.exceptions import SchemaError

        try:
            _check(text)
        except SchemaError as exc:
            raise InvalidRequestError(f"{what} is not a valid JSON Schema: {exc.message}") from None
        title = document.get("title") if isinstance(document, dict) else None
        name = _NAME.sub("_", title)[:64] if isinstance(title, str) and title.strip() else "response"
        return cls(text, name)

    @cached_property
    def document(self) -> Any:
        """The schema as a JSON value (what the wire and the cache key carry)."""
        return json.loads(self.text)

    def response_format(self) -> dict[str, Any]:
        """OpenAI's ``response_format`` for this schema (``strict`` left off: not every schema qualifies,
        and the answer is validated here in any case)."""
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.document}}

    def errors(self, data: Any) -> list[str]:
        """Why *data* does not match, one line per problem (``path: message``), most relevant first."""
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import relevance

        found = sorted(Draft202012Validator(self.document).iter_errors(data), key=relevance)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in found]

    def parse(self, text: str, **where: Any) -> Any:
        """The answer's JSON value (a code fence around it is allowed), validated; `SchemaMismatchError`
        (keeping *text*) when it is not JSON or does not match.  *where* (``provider``, ``model``) goes into
        the error."""
        try:
            data = json.loads(unfenced(text))
        except ValueError as exc:
            raise SchemaMismatchError(f"the answer is not JSON ({exc})", text=text, **where) from None
        problems = self.errors(data)
        if problems:
            raise SchemaMismatchError(f"the answer does not match the schema: {problems[0]}", text=text, **where)
        return data


def json_value(text: str | None) -> Any:
    """The JSON value of *text* (inside a code fence too); None when there is no text or it is not JSON."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(unfenced(text))
    except ValueError:
        return None


def unfenced(text: str) -> str:
    """*text* without a surrounding Markdown code fence (models often wrap JSON in one)."""
    stripped = text.strip()
    match = _FENCE.match(stripped)
    return match.group(1).strip() if match else stripped


@lru_cache(maxsize=256)
def _check(text: str) -> None:
    """Check a schema once per text: compare() builds one request per prompt and model from the same one."""
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(json.loads(text))


def _document(value: Any, what: str) -> Any:
    if isinstance(value, type) and callable(getattr(value, "model_json_schema", None)):
        return value.model_json_schema()  # a pydantic model class
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidRequestError(f"{what} is not JSON ({exc}): {value[:80]!r}") from None
    if isinstance(value, dict):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"{what} is not a JSON value: {exc}") from None
        return value
    raise InvalidRequestError(
        f"{what} must be a JSON Schema dict, a pydantic model class or JSON text, not {type(value).__name__}"
    )
