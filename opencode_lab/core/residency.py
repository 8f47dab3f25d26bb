"""Data residency: which regions a request may reach, as glob patterns (``eu-*``), checked as a hard rule.

A rule is a tuple of patterns; a region satisfies it when it matches one of them
(case-insensitively, so ``EU-*`` and ``eu-*`` agree).  Several rules can apply to one
request (the lab's, each asked-for model's, the call's): a deployment must satisfy
every one.  A deployment with no declared region satisfies none: where it runs is
unknown, so a request under a rule must never be sent there.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from .errors import InvalidRequestError

_PATTERN = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")


def patterns(name: str, value: object) -> tuple[str, ...]:
    """A rule from a string or a list of strings (``()``: no rule); `InvalidRequestError` names the culprit."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise InvalidRequestError(f"{name} must be a region pattern or a list of them (e.g. ['eu-*']), got {value!r}")
    out = []
    for item in items:
        if not isinstance(item, str) or not _PATTERN.match(item.strip()):
            raise InvalidRequestError(
                f"{name} must hold region names or glob patterns (letters, digits, - _ . * ? []), got {item!r}"
            )
        out.append(item.strip().lower())
    return tuple(dict.fromkeys(out))


def satisfies(region: str | None, rule: Iterable[str]) -> bool:
    """*region* matches one of *rule*'s patterns; an unknown region matches none."""
    if region is None:
        return False
    region = region.lower()
    return any(fnmatch.fnmatchcase(region, pattern) for pattern in rule)


def allowed(region: str | None, rules: Iterable[tuple[str, ...]]) -> bool:
    """*region* satisfies every rule (no rule: anywhere, a region or none)."""
    return all(satisfies(region, rule) for rule in rules)


def describe(rule: Iterable[str]) -> str:
    """A rule as an error message shows it: ``regions = ["eu-*", "europe-*"]``."""
    return "regions = [" + ", ".join(f'"{p}"' for p in rule) + "]"
