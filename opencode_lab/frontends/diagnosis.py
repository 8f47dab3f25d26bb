"""Diagnosis in one line: what failed, where, and what happens next.

``connection refused at http://127.0.0.1:8102/v1 after 2 attempts (circuit open, next try in 24 s)``

Built only from what an error carries (its root cause, its attempts, the provider
and model it names) plus, when a Lab is at hand, where that provider lives and the
state of the deployment's circuit now.  The router's own wording ("all 2
attempt(s) for 'm' failed: #1 …; last error: …") puts the cause last, where a
table cell or a terminal line cuts it off; here it comes first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import error_type_of
from ..core.secrets import redact

if TYPE_CHECKING:
    from ..routing.health import HealthSnapshot
    from ..session.session import Session

_LAST_ERROR = "; last error: "
_WHERE = re.compile(r"^[\w.\-]+(?:/[\w.:\-]+)+: ")  # "provider/model: " that our errors start with


@dataclass(frozen=True)
class Context:
    """What a Lab knows beyond the error: provider URLs and each deployment's circuit, read once."""

    urls: Mapping[str, str]
    health: Mapping[str, HealthSnapshot]

    @classmethod
    def of(cls, lab: Session) -> Context:
        urls = {name: str(url) for name, p in lab.providers.items() if (url := getattr(p, "base_url", None))}
        return cls(urls, lab.router.health())


def root_cause(exc: BaseException) -> BaseException:
    """The error worth showing: the last attempt's when the router gave up (followed through nested causes)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        last = getattr(exc, "last", None)
        if not isinstance(last, BaseException):
            break
        exc = last
    return exc


def short_error(text: str) -> str:
    """An error message as stored in a results row, cause first: the router's preamble and the
    ``provider/model:`` prefix dropped (``all 1 attempt(s) for 'm' failed: #1 …; last error: x`` -> ``x``)."""
    text = redact(str(text))
    if _LAST_ERROR in text:
        text = text.rsplit(_LAST_ERROR, 1)[1]
    return _WHERE.sub("", text, count=1)


def phrase(error_type: str, message: str) -> str:
    """The cause in a few words; the message itself when it already says it best."""
    text = short_error(message)
    low = text.lower()
    if error_type == "connection":
        if "connecterror" in low or "refused" in low:
            return "connection refused"
        if "reset" in low:
            return "connection reset"
        return text
    if error_type == "timeout":
        return f"timed out ({text})" if "timed out" not in low else text
    return text or error_type


def explain(exc: BaseException, context: Context | None = None) -> str:
    """One line naming the cause and where (see the module doc); *context* adds URLs and circuit states."""
    root = root_cause(exc)
    attempts = getattr(exc, "attempts", ()) or ()
    failed = [a for a in attempts if a.status != "ok"]
    deployment = failed[-1].deployment if failed else _deployment(root)
    provider = failed[-1].provider if failed else getattr(root, "provider", None)
    line = phrase(error_type_of(root), str(root))
    url = context.urls.get(provider) if context is not None and provider else None
    if url and url not in line:
        line += f" at {redact(url)}"
    elif deployment and deployment not in line:
        line += f" at {deployment}"
    if len(attempts) > 1:
        line += f" after {len(attempts)} attempts"
    state = _state(context.health.get(deployment)) if context is not None and deployment else None
    return f"{line} ({state})" if state else line


def _deployment(error: BaseException) -> str | None:
    parts = [p for p in (getattr(error, "provider", None), getattr(error, "model", None)) if p]
    return "/".join(parts) if len(parts) == 2 else None


def _state(snapshot: HealthSnapshot | None) -> str | None:
    """What the deployment's circuit or rate limit does next, when that is not simply "try again"."""
    return snapshot.caution() if snapshot is not None else None
