"""OpenRouter provider preferences: every key and value checked before sending, merged level by level."""

from __future__ import annotations

import pytest

from opencode_lab import InvalidRequestError
from opencode_lab.core.provider_routing import FIELDS, ProviderRouting, merged


def test_every_documented_field_is_accepted_and_given_back_as_sent() -> None:
    document = {
        "order": ["anthropic", "openai"],
        "allow_fallbacks": False,
        "require_parameters": True,
        "data_collection": "deny",
        "zdr": True,
        "enforce_distillable_text": False,
        "only": ["anthropic"],
        "ignore": ["deepinfra"],
        "quantizations": ["int4", "bf16"],
        "sort": "latency",
        "max_price": {"prompt": 0.5, "completion": 1, "request": 0, "image": 2},
    }
    assert set(document) == set(FIELDS)
    assert ProviderRouting.of(document).body() == document


def test_json_text_is_read_as_the_table_it_holds() -> None:
    assert ProviderRouting.of('{"sort": "price"}') == ProviderRouting.of({"sort": "price"})


def test_one_name_is_a_list_of_one() -> None:
    assert ProviderRouting.of({"only": "anthropic"}).body() == {"only": ["anthropic"]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"orderr": ["a"]}, "unknown key 'orderr'; did you mean 'order'"),
        ({"sort": "cheapest"}, "provider_routing.sort must be one of 'price', 'throughput', 'latency'"),
        ({"data_collection": True}, "provider_routing.data_collection must be one of 'allow', 'deny'"),
        ({"allow_fallbacks": "false"}, "allow_fallbacks must be true or false"),
        ({"order": []}, "order must be a non-empty list of names"),
        ({"ignore": ["ok", ""]}, "ignore must hold non-empty names"),
        ({"quantizations": ["q4"]}, "quantizations has 'q4'"),
        ({"max_price": {"prompt": -1}}, r"max_price.prompt must be a price of at least 0"),
        ({"max_price": {"prompt": float("nan")}}, r"max_price.prompt must be a price of at least 0"),
        ({"max_price": {"tokens": 1}}, "max_price has unknown key 'tokens'"),
        (["sort", "price"], "must be a table"),
        ("{not json", "must be a table or JSON object text"),
    ],
)
def test_a_bad_key_or_value_is_named(value: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        ProviderRouting.of(value)


def test_levels_merge_key_by_key_the_later_winning_and_keeping_the_rest() -> None:
    provider = ProviderRouting.of({"sort": "price", "data_collection": "allow"})
    model = ProviderRouting.of({"data_collection": "deny"})
    call = ProviderRouting.of({"order": ["openai"]})
    assert merged(provider, None, model, call) == ProviderRouting.of(
        {"sort": "price", "data_collection": "deny", "order": ["openai"]}
    )
    assert merged(None, None) is None


def test_preferences_are_hashable_values() -> None:
    a = ProviderRouting.of({"only": ["a", "b"], "max_price": {"prompt": 1}})
    b = ProviderRouting.of({"only": ["a", "b"], "max_price": {"prompt": 1}})
    assert a == b and hash(a) == hash(b)
