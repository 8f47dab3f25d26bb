"""Structured output: the JSON Schema an answer must match, and the error for an answer that does not.

A `Schema` is built from a JSON Schema dict, a pydantic model class (anything with
``model_json_schema()``; pydantic itself is never imported) or JSON text, checked
before any request is sent, and kept as compact JSON text, so the value stays
hashable.  Key order is kept: a constrained model writes properties in the order
the schema lists them, so two orders are two different requests.

The answer being checked is a model's, so checking is bounded and touches nothing
outside the process:

* No schema causes network or file access.  A ``$ref`` must point inside the schema
  (a ``#`` fragment, or the ``$id`` of one of its own subschemas) or at a meta-schema
  jsonschema ships; any other is refused when the schema is built, and references are
  resolved from a registry that never retrieves.
* One check takes at most `CHECK_STEPS` steps (keyword applications, pattern steps,
  items compared) on at most `MAX_ANSWER_CHARS` characters, and stops at the first
  problem.  ``pattern`` runs on a linear-time matcher (`opencode_lab.core.patterns`),
  ``uniqueItems`` hashes instead of comparing every pair, and the keywords whose
  jsonschema implementation is quadratic (``unevaluatedItems``,
  ``unevaluatedProperties``) are refused with the schema.

``jsonschema`` is imported where used, so ``import opencode_lab`` stays light.
"""

from __future__ import annotations

import contextvars
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Protocol
from urllib.parse import urldefrag, urljoin

from .errors import InvalidRequestError, SchemaMismatchError, bounded
from .patterns import Budget, OverBudget, UnsupportedPattern, compile_pattern, search

#: the longest schema accepted, as compact JSON text
MAX_SCHEMA_CHARS = 1_000_000
#: how deeply a schema may nest (pydantic's schemas nest a few levels: they share definitions through $ref)
MAX_SCHEMA_DEPTH = 64
#: the longest answer checked against a schema (a longer one is a mismatch, its text kept)
MAX_ANSWER_CHARS = 1_000_000
#: the steps one check may take: a few seconds of jsonschema's work at most, off the event loop
CHECK_STEPS = 1_000_000

_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_DATA = frozenset({"enum", "const", "default", "examples", "dependentRequired"})  # values that are data
_NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})  # name -> schema
_REFUSED = {
    "unevaluatedItems": "use items or prefixItems",
    "unevaluatedProperties": "use additionalProperties",
}
_BUDGET: contextvars.ContextVar[Budget] = contextvars.ContextVar("schema_check_budget")


@dataclass(frozen=True)
class Schema:
    """A checked JSON Schema, kept as compact JSON ``text`` under a wire-safe ``name`` (from its title)."""

    text: str
    name: str = "response"

    @classmethod
    def of(cls, value: object, what: str = "schema") -> Schema:
        """A `Schema` from a dict, a pydantic model class, JSON text or a `Schema`; `InvalidRequestError`
        naming the problem (not JSON, not a schema, a reference outside it, a pattern or keyword that cannot
        be checked in bounded time) otherwise."""
        if isinstance(value, Schema):
            return value
        document = _document(value, what)
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        if len(text) > MAX_SCHEMA_CHARS:
            raise InvalidRequestError(f"{what} is {len(text)} characters of JSON, over the {MAX_SCHEMA_CHARS} limit")
        problem = _check(text)
        if problem:
            raise InvalidRequestError(f"{what} {problem}")
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

    def errors(self, data: object) -> list[str]:
        """Why *data* does not match: its first problem (``path: message``), or ``[]``.  Checking stops at the
        first problem and within `CHECK_STEPS` steps, so a huge or hostile answer costs no more than that."""
        from jsonschema.exceptions import best_match
        from referencing.exceptions import Unresolvable

        token = _BUDGET.set(Budget(CHECK_STEPS))
        try:
            found = next(_checker()(self.document, registry=_registry()).iter_errors(data), None)
        except OverBudget:
            return [f"(root): the answer is too costly to check (more than {CHECK_STEPS} steps)"]
        except RecursionError:
            return ["(root): the answer is nested too deeply to check"]
        except Unresolvable as exc:  # refused when the schema was built; kept out here too
            return [f"(root): the schema's reference {str(exc)[:200]} is not resolved here"]
        finally:
            _BUDGET.reset(token)
        if found is None:
            return []
        error = best_match([found])
        return [bounded(f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}", 500)]

    def valid(self, data: object) -> bool:
        """Whether *data* matches (bounded as `errors` is)."""
        return not self.errors(data)

    def parse(self, text: str, **where: Any) -> Any:
        """The answer's JSON value (a code fence around it is allowed), validated; `SchemaMismatchError`
        (keeping *text*) when it is not JSON, does not match or is too large to check.  *where* (``provider``,
        ``model``) goes into the error."""
        if len(text) > MAX_ANSWER_CHARS:
            raise SchemaMismatchError(
                f"the answer is {len(text)} characters, more than the {MAX_ANSWER_CHARS} a schema check reads",
                text=text,
                **where,
            )
        try:
            data = json.loads(unfenced(text))
        except ValueError as exc:
            raise SchemaMismatchError(f"the answer is not JSON ({exc})", text=text, **where) from None
        except RecursionError:
            raise SchemaMismatchError("the answer is JSON nested too deeply to read", text=text, **where) from None
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
    except (ValueError, RecursionError):
        return None


def unfenced(text: str) -> str:
    """*text* without a surrounding Markdown code fence (models often wrap JSON in one), in linear time:
    a fence is "```", an optional language tag, the body and "```" at the very end."""
    stripped = text.strip()
    if len(stripped) < 6 or not (stripped.startswith("```") and stripped.endswith("```")):
        return stripped
    body = stripped[3:-3]
    tag = len(body) - len(body.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))
    return body[tag:].strip()


# -- checking a schema, once per text -----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _check(text: str) -> str | None:
    """What is wrong with the schema *text* (completing "schema ..."), or None: checked once per text, as
    compare() builds one request per prompt and model from the same schema."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    document = json.loads(text)
    try:
        Draft202012Validator.check_schema(document)
    except SchemaError as exc:
        return f"is not a valid JSON Schema: {exc.message}"
    except RecursionError:
        return f"nests more than {MAX_SCHEMA_DEPTH} levels deep"
    ids: set[str] = set()
    refs: list[tuple[str, str]] = []
    for node, base in _schemas(document):
        if isinstance(node.get("$id"), str):
            base = urldefrag(urljoin(base, node["$id"])).url
            ids.add(base)
        for keyword in ("$ref", "$dynamicRef"):
            if isinstance(node.get(keyword), str):
                refs.append((node[keyword], urldefrag(urljoin(base, node[keyword])).url))
        for keyword, instead in _REFUSED.items():
            if keyword in node:
                return f"uses {keyword}, which cannot be checked in bounded time here; {instead}"
        patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        if isinstance(node.get("patternProperties"), dict):
            patterns += list(node["patternProperties"])
        for pattern in patterns:
            try:
                compile_pattern(pattern)
            except UnsupportedPattern as exc:
                return f"cannot be checked: {exc}"
    for ref, target in refs:
        if target and target not in ids and not _shipped(target):
            return (
                f"refers to {ref[:200]!r}, outside the schema: references are never fetched; put what it names "
                "under $defs and refer to it as '#/$defs/...'"
            )
    return None


def _schemas(document: object) -> Iterator[tuple[dict[str, Any], str]]:
    """Every schema object in *document* with the base URI it sits under (iteratively: depth is capped
    by `_document`, but a walk must not lean on the recursion limit)."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        node, base = stack.pop()
        if isinstance(node, dict):
            yield node, base
            if isinstance(node.get("$id"), str):
                base = urldefrag(urljoin(base, node["$id"])).url
            for key, value in node.items():
                if key in _NAMED and isinstance(value, dict):
                    stack += [(schema, base) for schema in value.values()]
                elif key not in _DATA:
                    stack.append((value, base))
        elif isinstance(node, list):
            stack += [(item, base) for item in node]


def _shipped(uri: str) -> bool:
    """Whether *uri* is a meta-schema jsonschema ships (resolved offline)."""
    from jsonschema_specifications import REGISTRY

    return uri in REGISTRY or uri + "#" in REGISTRY


def _document(value: object, what: str) -> dict[str, Any]:
    model = value if isinstance(value, type) else None
    describe = getattr(model, "model_json_schema", None) if model is not None else None
    if model is not None and callable(describe):
        try:
            value = describe()  # a pydantic model class
        except Exception as exc:  # a field pydantic cannot describe (a Callable, say)
            raise InvalidRequestError(
                f"{what}: {model.__name__} has no JSON Schema ({type(exc).__name__}: {exc})"
            ) from None
    elif isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:  # the text itself is never echoed: it may come from a file the user named
            raise InvalidRequestError(f"{what} is not JSON ({exc})") from None
        except RecursionError:
            raise InvalidRequestError(f"{what} nests more than {MAX_SCHEMA_DEPTH} levels deep") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"{what} must be a JSON Schema dict, a pydantic model class or JSON text, not {type(value).__name__}"
        )
    _check_shape(value, what)
    return value


def _check_shape(value: object, what: str) -> None:
    """Refuse what JSON cannot carry, before any recursive encoder meets it: nesting past `MAX_SCHEMA_DEPTH`
    (a dict that contains itself nests forever), NaN and infinities, keys that are not strings."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise InvalidRequestError(f"{what} nests more than {MAX_SCHEMA_DEPTH} levels deep (or contains itself)")
        if isinstance(node, dict):
            if not all(isinstance(k, str) for k in node):
                raise InvalidRequestError(f"{what} is not a JSON value: it has a key that is not a string")
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list | tuple):
            stack += [(v, depth + 1) for v in node]
        elif isinstance(node, float) and not math.isfinite(node):
            raise InvalidRequestError(f"{what} is not a JSON value: it holds {node!r}")
        elif node is not None and not isinstance(node, str | int | float | bool):
            raise InvalidRequestError(f"{what} is not a JSON value: it holds a {type(node).__name__}")


# -- checking an answer, bounded ---------------------------------------------------------------------------------


def _registry() -> Any:
    """References resolve inside the schema (and jsonschema's meta-schemas) only: retrieval is refused."""
    from referencing import Registry
    from referencing.exceptions import NoSuchResource

    def refuse(uri: str) -> Any:
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class its stubs do not describe

    return Registry(retrieve=refuse)  # type: ignore[call-arg]


@lru_cache(maxsize=1)
def _checker() -> Any:
    """Draft 2020-12 with every keyword charged to the check's budget, and the keywords that would use
    Python's backtracking `re` or compare every pair of items replaced by bounded ones."""
    from jsonschema import Draft202012Validator, validators

    table = {**Draft202012Validator.VALIDATORS, **_BOUNDED}
    return validators.extend(Draft202012Validator, {k: _charged(f) for k, f in table.items()})


class _Validator(Protocol):
    """What the bounded keywords below use of a jsonschema validator."""

    def descend(
        self, instance: object, schema: object, path: str | None = None, schema_path: str | None = None
    ) -> Iterator[Any]: ...


#: a keyword's implementation: (validator, the keyword's value, the instance, the schema holding the keyword)
Keyword = Callable[[_Validator, Any, object, dict[str, Any]], Any]


def _charged(keyword: Keyword) -> Keyword:
    def apply(validator: _Validator, value: object, instance: object, schema: dict[str, Any]) -> Any:
        _BUDGET.get().spend()
        return keyword(validator, value, instance, schema)

    return apply


# these implement Draft 2020-12, whose type checker is exactly isinstance: "string" is str, "object" dict,
# "array" list (jsonschema's own keywords call validator.is_type, which means the same here)


def _pattern(validator: _Validator, pattern: str, instance: object, schema: dict[str, Any]) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not search(pattern, instance, _BUDGET.get()):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: _Validator, patterns: dict[str, Any], instance: object, schema: dict[str, Any]
) -> Iterator[Any]:
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if search(pattern, key, _BUDGET.get()):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: _Validator, extra: object, instance: object, schema: dict[str, Any]
) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not isinstance(instance, dict):
        return
    known, patterns = schema.get("properties", {}), list(schema.get("patternProperties", {}))
    extras = [k for k in instance if k not in known and not any(search(p, k, _BUDGET.get()) for p in patterns)]
    if isinstance(extra, dict):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        shown = ", ".join(repr(k) for k in sorted(extras)[:10]) + (", ..." if len(extras) > 10 else "")
        yield ValidationError(
            f"Additional properties are not allowed ({shown} {'was' if len(extras) == 1 else 'were'} unexpected)"
        )


def _unique_items(validator: _Validator, unique: object, instance: object, schema: dict[str, Any]) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not unique or not isinstance(instance, list):
        return
    seen: dict[Any, int] = {}
    for index, item in enumerate(instance):
        first = seen.setdefault(_frozen(item, _BUDGET.get()), index)
        if first != index:
            yield ValidationError(f"has non-unique elements: item {index} repeats item {first}")
            return


def _frozen(value: object, budget: Budget) -> object:
    """A hashable value equal exactly when two JSON values are equal as JSON Schema sees them
    (``1 == 1.0``, ``true != 1``, objects unordered)."""
    budget.spend()
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dict):
        return ("object", frozenset((k, _frozen(v, budget)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_frozen(v, budget) for v in value))
    return value


_BOUNDED: dict[str, Keyword] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}
