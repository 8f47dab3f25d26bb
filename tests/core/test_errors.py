"""One error tree; messages name the problem and never carry a key."""

from __future__ import annotations

import logging

import pytest

from opencode_lab import (
    AllAttemptsFailedError,
    LabError,
    ModelNotFoundError,
    ProviderError,
    RateLimitError,
)
from opencode_lab.core.secrets import Secret, get_logger, redact
from opencode_lab.core.types import Attempt


def test_every_error_is_a_lab_error() -> None:
    assert issubclass(RateLimitError, ProviderError)
    assert issubclass(ProviderError, LabError)
    assert issubclass(ModelNotFoundError, LabError)


def test_model_not_found_suggests_close_ids() -> None:
    error = ModelNotFoundError.for_spec("smollm-135m", ["local/smollm2-135m", "local/gemma-3-270m"])
    assert "local/smollm2-135m" in str(error)
    assert error.suggestions[0] == "local/smollm2-135m"


def test_an_exhausted_request_names_each_attempt() -> None:
    attempts = [
        Attempt(1, "a/m", "a", "m", "error", 0.1, 0.0, error_type="server_error"),
        Attempt(2, "b/m", "b", "m", "error", 0.1, 0.0, error_type="timeout"),
    ]
    error = AllAttemptsFailedError("m", attempts, RateLimitError("slow down"))
    assert "#1 a/m: server_error" in str(error) and "#2 b/m: timeout" in str(error)
    assert error.root_error_type == "rate_limit"


def test_registered_secrets_are_masked_in_error_messages() -> None:
    key = Secret("sk-or-v1-ERRORS-0123456789")
    error = ProviderError(f"server echoed Authorization: Bearer {key.reveal()}", provider="openrouter")
    assert key.reveal() not in str(error)
    assert "***" in str(error)


def test_log_records_are_redacted_including_arguments(caplog: pytest.LogCaptureFixture) -> None:
    key = Secret("sk-or-v1-LOGGING-0123456789")
    log = get_logger("opencode_lab.test_errors")
    with caplog.at_level(logging.DEBUG, logger="opencode_lab.test_errors"):
        log.debug("sending with %s", key.reveal())
    assert key.reveal() not in caplog.text
    assert "sending with ***" in caplog.text


def test_a_short_value_that_is_not_a_key_is_not_treated_as_a_secret() -> None:
    Secret("abc", mask_short=False)  # a header value such as "v1"; a short key is masked (see test_secrets)
    assert redact("abc def") == "abc def"


def test_a_long_message_keeps_its_head_its_size_and_a_hash_of_the_rest() -> None:
    from opencode_lab.core.errors import MAX_MESSAGE_CHARS

    error = ProviderError("x" * 10_000_000 + "tail", provider="p", model="m")
    message = str(error)
    assert len(message) < MAX_MESSAGE_CHARS + 120 and message.startswith("p/m: xxx")
    assert "10000009 characters in all" in message and "sha256 " in message
    other = str(ProviderError("x" * 10_000_000 + "TAIL", provider="p", model="m"))
    assert other != message  # the hash tells two long messages apart


def test_a_secret_is_masked_before_a_message_is_cut() -> None:
    key = "sk-cut-here-0123456789abcdef"
    Secret(key)
    message = str(LabError("y" * 3990 + key + "z" * 100))
    assert key[:10] not in message
