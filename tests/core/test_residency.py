"""Residency rules: glob patterns over region names, and a deployment with no region satisfies none."""

from __future__ import annotations

import pytest

from opencode_lab import InvalidRequestError
from opencode_lab.core.residency import allowed, describe, patterns, satisfies


def test_patterns_are_glob_and_case_blind() -> None:
    rule = patterns("regions", ["EU-*", "europe-west?"])
    assert rule == ("eu-*", "europe-west?")
    assert satisfies("eu-central-1", rule) and satisfies("europe-west4", rule) and satisfies("EU-WEST-1", rule)
    assert not satisfies("us-east-1", rule) and not satisfies("europe-west10", rule)


def test_an_undeclared_region_satisfies_no_rule_not_even_everywhere() -> None:
    assert not satisfies(None, ("*",))
    assert allowed(None, [])  # no rule at all: anywhere
    assert not allowed(None, [("*",)])


def test_every_rule_must_hold() -> None:
    assert allowed("eu-central-1", [("eu-*",), ("*-central-*",)])
    assert not allowed("eu-west-1", [("eu-*",), ("*-central-*",)])


@pytest.mark.parametrize("bad", [5, [""], ["eu west"], ["eu-*", None], {"eu": 1}])
def test_a_bad_pattern_is_refused_naming_the_setting(bad: object) -> None:
    with pytest.raises(InvalidRequestError, match="regions must"):
        patterns("regions", bad)


def test_a_rule_reads_as_the_toml_that_sets_it() -> None:
    assert describe(("eu-*", "europe-*")) == 'regions = ["eu-*", "europe-*"]'
