"""Secrets: registered keys and URL credentials are masked in text, in reprs and in answers arriving in pieces."""

from __future__ import annotations

import pytest

from opencode_lab.core.secrets import MASK, Secret, SecretURL, StreamRedactor, redact

KEY = "sk-unit-DISTINCTIVE-3141592653"


@pytest.fixture(autouse=True)
def _key() -> None:
    Secret(KEY)  # registered for the whole process, as a loaded configuration would


def test_a_registered_key_is_masked_anywhere_in_a_text() -> None:
    assert redact(f"invalid key: Bearer {KEY}.") == f"invalid key: Bearer {MASK}."


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GET https://alice:pw@host/v1 failed", "GET https://***@host/v1 failed"),
        ("http://token@h:8080/v1", "http://***@h:8080/v1"),
        ("http://u:p@ss@h/v1", "http://***@h/v1"),
        ("mail me at alice@example.org, see https://example.org/@alice", None),
    ],
)
def test_url_user_info_is_masked_whatever_its_length(text: str, masked: str | None) -> None:
    assert redact(text) == (masked or text)


def test_answers_keep_urls_as_the_model_wrote_them() -> None:
    text = "connect with postgres://user:pw@localhost/db"
    assert redact(text, urls=False) == text


def test_a_secret_url_is_itself_but_its_repr_masks_the_user_info() -> None:
    url = SecretURL("https://alice:pw@host/v1")
    assert url == "https://alice:pw@host/v1" and url.rstrip("/") == "https://alice:pw@host/v1"
    assert repr(url) == "'https://***@host/v1'"
    assert repr(SecretURL("https://host/v1")) == "'https://host/v1'"


def test_a_stream_redactor_masks_a_key_split_across_pieces_and_shows_no_part_of_it() -> None:
    redactor = StreamRedactor()
    shown = [redactor.feed(p) for p in ("your key: ", KEY[:5], KEY[5:12], KEY[12:] + " end")] + [redactor.flush()]
    assert "".join(shown) == f"your key: {MASK} end"
    assert not any(KEY[:5] in piece for piece in shown)


def test_a_stream_redactor_holds_back_only_what_could_start_a_key() -> None:
    redactor = StreamRedactor()  # pieces end in "." where nothing is held: no key starts with one
    assert redactor.feed("ordinary text.") == "ordinary text."
    assert redactor.feed(" then sk-un") == " then "
    assert redactor.feed("related.") == "sk-unrelated."
    assert redactor.flush() == ""


def test_a_stream_redactor_gives_back_a_held_tail_at_the_end() -> None:
    redactor = StreamRedactor()
    assert redactor.feed("ends with sk") == "ends with "
    assert redactor.flush() == "sk"


def test_a_key_shorter_than_eight_characters_is_masked_as_a_word() -> None:
    Secret("Qz7pK")
    assert redact("Authorization: Bearer Qz7pK was refused") == "Authorization: Bearer *** was refused"
    assert redact('{"key": "Qz7pK"}') == '{"key": "***"}'
    assert redact("Qz7pKing is not the key") == "Qz7pKing is not the key"  # not inside another word


def test_a_short_key_is_masked_in_error_messages(fault, make_lab, monkeypatch) -> None:
    monkeypatch.setenv("SHORT_KEY", "k3y")
    lab = make_lab(
        f'[providers.f]\nbase_url = "{fault.base_url}"\napi_key_env = "SHORT_KEY"\nmodels = ["fault-model"]\n'
    )
    from opencode_lab import ProviderError

    error = ProviderError("the server said: invalid key k3y (HTTP 401)")
    assert "k3y" not in str(error) and lab.providers["f"] is not None


def test_a_short_header_value_is_not_a_masked_word(make_lab) -> None:
    lab = make_lab('[providers.h]\nbase_url = "http://127.0.0.1:9/v1"\nheaders = {"X-Api-Version" = "v1"}\n')
    assert redact("http://127.0.0.1:9/v1/chat/completions") == "http://127.0.0.1:9/v1/chat/completions"
    assert lab.providers["h"] is not None


def test_a_short_key_split_across_stream_pieces_is_still_masked() -> None:
    Secret("Ab9")
    stream = StreamRedactor()
    shown = stream.feed("the key is A") + stream.feed("b9 indeed") + stream.flush()
    assert shown == "the key is *** indeed"
