"""One error tree for everything opencode_lab raises.

::

    LabError
    ├── ConfigError                 bad environment variable or TOML file
    ├── InvalidRequestError         bad input caught before any request is sent
    ├── ModelNotFoundError          unknown / ambiguous model spec (with suggestions)
    ├── BudgetExceededError         a compare() budget would be passed
    ├── RunMismatchError            a named run resumed with another specification
    ├── RunInterruptedError         a compare() row not finished when Ctrl-C came
    ├── ProviderError               anything a provider answered or failed to answer
    │   ├── AuthenticationError     401 / 403
    │   ├── PaymentRequiredError    402, out of credit
    │   ├── RateLimitError          429 (carries retry_after)
    │   ├── BadRequestError         400 caused by the request itself
    │   ├── ContextWindowError      prompt longer than the model's context
    │   ├── ModelUnavailableError   404 / the provider does not serve that model
    │   ├── CircuitOpenError        every candidate is cooling down after repeated failures
    │   ├── ServerError             5xx
    │   ├── ProviderTimeout         no answer within the timeout
    │   ├── ProviderConnectionError refused / reset connection
    │   ├── MalformedResponseError  a body we could not understand
    │   ├── SchemaMismatchError     an answer to a schema= request that does not match it (keeps the text)
    │   └── StreamInterruptedError  a stream cut after its first token (carries partial_text)
    └── AllAttemptsFailedError      the router ran out of retries and candidates
        └── ResidencyError          no deployment inside a request's allowed regions could answer

Behaviour is declared on the classes, once: ``retryable`` (the same deployment
may succeed later), ``rotate`` (another deployment may succeed now),
``trips_breaker`` (the deployment itself looks unhealthy) and ``error_type``
(the name a results row shows).  `STATUS_ERRORS` / `error_for_status` map HTTP
statuses (and the codes of error objects inside a 200) to classes, once.

Every message passes through `opencode_lab.core.secrets.redact`, so no registered API
key survives into ``str(error)`` even if a vendor echoed it back, and then through
`bounded`: a vendor's 10 MB error body becomes a message of a few thousand characters
plus the size and hash of what was cut, and so does everything made from the message
(a results row, the run log, a display).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .secrets import redact

if TYPE_CHECKING:
    from .attempt import Attempt

#: the longest message an error keeps (a schema mismatch quotes up to 1,000 characters of the answer)
MAX_MESSAGE_CHARS = 4000


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """*text*, or its first *limit* characters followed by what was cut: its length and SHA-256, so two long
    messages that differ only past the cut can still be told apart."""
    if len(text) <= limit:
        return text
    rest = text[limit:]
    digest = hashlib.sha256(rest.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[:limit]}… [{len(text)} characters in all; the last {len(rest)} cut, sha256 {digest}]"


class LabError(Exception):
    """Root of every error opencode_lab raises on purpose.

    ``attempts`` lists what the router tried before giving up (empty for errors
    raised before any request was sent).
    """

    attempts: tuple[Attempt, ...] = ()
    error_type = "error"

    def __init__(self, message: str) -> None:
        super().__init__(bounded(redact(message)))  # redacted first: a cut must not leave half a key

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(LabError):
    """A configuration value or file is invalid; the message names the variable or file:line."""

    error_type = "config"


class InvalidRequestError(LabError, ValueError):
    """The caller's input cannot make a valid request (empty prompt, temperature -1, n=0...)."""

    error_type = "invalid_request"


class BudgetExceededError(LabError):
    """Spending would pass the budget the caller set."""

    error_type = "budget_exceeded"


class RunMismatchError(LabError, ValueError):
    """A named run exists with another specification; resuming it would mix two experiments.

    ``differences`` maps each differing field to ``(stored, requested)``.
    """

    error_type = "run_mismatch"

    def __init__(self, run: str, differences: dict[str, tuple[Any, Any]]) -> None:
        self.run = run
        self.differences = differences
        changes = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differences.items())
        super().__init__(
            f"run {run!r} was started with another specification ({changes}); pass resume='new' to start a "
            f"fresh run under this name (the old one is kept as '{run}@<run id>'), or choose another run name"
        )


class RunInterruptedError(LabError):
    """A batch was interrupted (Ctrl-C) before this row finished; rerun the same ``run=`` to resume."""

    error_type = "interrupted"


class ModelNotFoundError(LabError, LookupError):
    """A model spec matches no known model, or more than one."""

    error_type = "model_not_found"

    def __init__(self, spec: str, suggestions: Sequence[str] = (), *, reason: str = "unknown model") -> None:
        self.spec = spec
        self.suggestions = tuple(suggestions)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"{reason} {spec!r}{hint}")

    @classmethod
    def for_spec(cls, spec: str, known: Iterable[str], *, limit: int = 5) -> ModelNotFoundError:
        """Build the error with the closest known ids (by similarity, then by shared suffix)."""
        known = list(known)
        close = difflib.get_close_matches(spec, known, n=limit, cutoff=0.5)
        tail = spec.rsplit("/", 1)[-1].lower()
        for candidate in known:
            if len(close) >= limit:
                break
            if candidate not in close and tail and tail in candidate.lower():
                close.append(candidate)
        if not close:
            by_tail = {k.rsplit("/", 1)[-1]: k for k in known}
            close = [by_tail[m] for m in difflib.get_close_matches(tail, list(by_tail), n=limit, cutoff=0.5)]
        return cls(spec, close)


class ProviderError(LabError):
    """A provider failed to give a usable completion (also: an unexpected status such as a 3xx).

    ``retryable`` tells the router whether the same deployment may succeed on a
    later attempt; ``rotate`` whether another deployment may succeed at once;
    ``trips_breaker`` whether the failure counts against the deployment's health.
    ``partial_text`` is the text a stream delivered before it failed, whatever the
    failure (None: not a stream, or no text had come).
    """

    retryable = False
    rotate = True
    trips_breaker = False
    error_type = "provider_error"
    partial_text: str | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status_code = status_code
        where = "/".join(p for p in (provider, model) if p)
        status = f" (HTTP {status_code})" if status_code else ""
        super().__init__(f"{where}: {message}{status}" if where else f"{message}{status}")


class AuthenticationError(ProviderError):
    trips_breaker = True
    error_type = "auth"


class PaymentRequiredError(ProviderError):
    trips_breaker = True
    error_type = "payment_required"


class RateLimitError(ProviderError):
    retryable = True
    error_type = "rate_limit"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class BadRequestError(ProviderError):
    """The request itself is wrong: another deployment would refuse it too."""

    rotate = False
    error_type = "bad_request"


class ContextWindowError(ProviderError):
    error_type = "context_window"


class ModelUnavailableError(ProviderError):
    error_type = "model_unavailable"


class CircuitOpenError(ProviderError):
    """Every candidate deployment's circuit is open: nothing was sent, try again after the cool-down."""

    error_type = "circuit_open"


class ServerError(ProviderError):
    retryable = True
    trips_breaker = True
    error_type = "server_error"


class ProviderTimeout(ProviderError):
    retryable = True
    trips_breaker = True
    error_type = "timeout"


class ProviderConnectionError(ProviderError):
    retryable = True
    trips_breaker = True
    error_type = "connection"


class MalformedResponseError(ProviderError):
    retryable = True
    trips_breaker = True
    error_type = "malformed_response"


class SchemaMismatchError(ProviderError):
    """An answer to a ``schema=`` request that is not JSON or does not match the schema.

    ``text`` keeps the raw answer.  Not retried and not failed over: the same model
    asked the same way answers the same way, and the deployment itself is healthy.
    """

    rotate = False
    error_type = "schema_mismatch"

    def __init__(self, message: str, *, text: str, **kw: Any) -> None:
        self.text = text
        super().__init__(f"{bounded(message, 1000)}; raw answer: {bounded(text, 1000)!r}", **kw)


class StreamInterruptedError(ProviderError):
    """The stream broke after text was already delivered; ``partial_text`` holds it."""

    retryable = False
    rotate = False
    error_type = "stream_interrupted"

    def __init__(self, message: str, *, partial_text: str = "", **kw: Any) -> None:
        self.partial_text = partial_text
        super().__init__(message, **kw)


class AllAttemptsFailedError(LabError):
    """Every retry and candidate failed; ``attempts`` lists each one and ``last`` the final error."""

    error_type = "all_attempts_failed"

    def __init__(self, spec: str, attempts: Sequence[Attempt], last: BaseException | None) -> None:
        self.spec = spec
        self.attempts = tuple(attempts)
        self.last = last
        tried = "; ".join(f"#{a.number} {a.deployment}: {a.error_type}" for a in self.attempts)
        detail = f"; last error: {last}" if last is not None else ""
        super().__init__(f"all {len(self.attempts)} attempt(s) for {spec!r} failed: {tried or 'none made'}{detail}")

    @property
    def root_error_type(self) -> str:
        """The error type of the last attempt: what a results row reports."""
        return getattr(self.last, "error_type", None) or self.error_type


class ResidencyError(AllAttemptsFailedError):
    """A residency rule (``regions = [...]``) left no deployment that could answer: none lies inside it, or
    every one inside failed.  Deployments outside were never sent a byte; ``attempts`` lists the ones inside."""

    error_type = "residency"

    def __init__(
        self, spec: str, rules: str, outside: Sequence[str], attempts: Sequence[Attempt], last: BaseException | None
    ) -> None:
        self.spec, self.attempts, self.last = spec, tuple(attempts), last
        tried = "; ".join(f"#{a.number} {a.deployment}: {a.error_type}" for a in self.attempts)
        inside = f"every deployment inside failed ({tried}); last error: {last}" if tried else "no deployment is inside"
        kept_out = f"; kept out: {', '.join(outside)}" if outside else ""
        LabError.__init__(self, f"{spec!r} under residency rule {rules}: {inside}{kept_out}")

    @property
    def root_error_type(self) -> str:
        """A row says the rule stopped it, whatever the last deployment inside did."""
        return self.error_type


def error_type_of(exc: BaseException) -> str:
    """What a results row calls this error: the root cause for an exhausted request."""
    if isinstance(exc, AllAttemptsFailedError):
        return exc.root_error_type
    return getattr(exc, "error_type", None) or type(exc).__name__


#: HTTP statuses with a meaning of their own; other 4xx are `BadRequestError`, other 5xx `ServerError`
STATUS_ERRORS: dict[int, type[ProviderError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: AuthenticationError,
    404: ModelUnavailableError,
    408: ProviderTimeout,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}

_CONTEXT_HINTS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",  # Anthropic
    "exceeds the maximum number of tokens",  # Gemini
    "input is too long",  # Bedrock
)


def error_for_status(
    status: int | None, message: str, *, retry_after: float | None = None, **kw: Any
) -> ProviderError:
    """The error an HTTP status (or an error object's ``code``; None when it has none) means.

    *kw* go to `ProviderError`.  An error without a usable status is taken as a server-side failure.
    """
    cls = STATUS_ERRORS.get(status) if status is not None else ServerError
    if cls is None:
        assert status is not None
        cls = ServerError if status >= 500 else BadRequestError if status >= 400 else ProviderError
    if cls is BadRequestError and any(h in message.lower() for h in _CONTEXT_HINTS):
        cls = ContextWindowError
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, status_code=status, **kw)
    if cls is ProviderError:
        message = f"unexpected response status: {message}"
    return cls(message, status_code=status, **kw)
