"""Built-in scorers on hand-made rows: a score in [0, 1], or NaN with the reason it could not score."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from opencode_lab import InvalidRequestError
from opencode_lab.evals.scorers import (
    Score,
    contains,
    describe,
    exact,
    first_number,
    json_schema,
    json_valid,
    numeric,
    one_of,
    regex,
    rouge_l,
    score_row,
    scorer_table,
    similarity,
    token_f1,
    tokens,
    with_scores,
)


def row(response: str | None, expected: object = None, **extra: object) -> dict[str, object]:
    return {"response": response, "expected": expected, "error_type": None, **extra}


def nan_because(score: Score, reason: str) -> bool:
    return math.isnan(score.value) and reason in (score.reason or "")


def test_exact_ignores_surrounding_and_repeated_whitespace_by_default() -> None:
    assert exact()(row(" Paris\n", "Paris")) == Score(1.0)
    assert exact()(row("Paris  is", "Paris is")).value == 1.0
    assert exact(ignore_whitespace=False)(row(" Paris", "Paris")).value == 0.0


def test_exact_respects_case_unless_told_otherwise() -> None:
    assert exact()(row("paris", "Paris")) == Score(0.0, "answer differs from 'Paris'")
    assert exact(ignore_case=True)(row("PARIS", "Paris")).value == 1.0


def test_a_numeric_reference_read_from_csv_compares_as_its_text() -> None:
    assert exact()(row("7", 7.0)).value == 1.0


def test_a_missing_reference_column_is_nan_naming_the_column() -> None:
    assert nan_because(exact(reference="answer")(row("Paris", "Paris")), "no 'answer' column")


def test_a_missing_reference_value_is_nan() -> None:
    assert nan_because(contains()(row("Paris", None)), "no reference in 'expected'")
    assert nan_because(contains()(row("Paris", math.nan)), "no reference in 'expected'")
    assert nan_because(contains()(row("Paris", pd.NA)), "no reference in 'expected'")


def test_no_answer_is_nan() -> None:
    assert nan_because(exact()(row(None, "Paris")), "no answer to score")


def test_contains_finds_the_reference_inside_the_answer() -> None:
    assert contains()(row("The capital is Paris.", "Paris")).value == 1.0
    assert contains()(row("The capital is Lyon.", "Paris")) == Score(0.0, "'Paris' not in the answer")
    assert contains()(row("the sky is\n  blue", "is blue")).value == 1.0
    assert contains()(row("Blue", "blue")).value == 0.0
    assert contains(ignore_case=True)(row("Blue", "blue")).value == 1.0


def test_regex_searches_the_answer_with_a_given_pattern() -> None:
    scorer = regex(r"\bH2O\b", ignore_case=True)
    assert scorer(row("It is h2o.")).value == 1.0
    assert scorer(row("It is water.")) == Score(0.0, "no match for " + repr(r"\bH2O\b"))


def test_regex_without_a_pattern_reads_one_per_row_from_the_reference() -> None:
    assert regex()(row("answer: 42", r"\d+")).value == 1.0
    assert nan_because(regex()(row("answer", "(")), "regex pattern '(' is invalid")


def test_a_bad_regex_pattern_is_refused_when_the_scorer_is_made() -> None:
    with pytest.raises(InvalidRequestError, match="regex pattern '\\[' is invalid"):
        regex("[")


def test_one_of_accepts_any_listed_choice() -> None:
    scorer = one_of(["yes", "no"], ignore_case=True)
    assert scorer(row("Yes")).value == 1.0
    assert scorer(row("maybe")) == Score(0.0, "answer is not one of ['no', 'yes']")


def test_one_of_reads_choices_from_the_reference_as_text_or_list() -> None:
    assert one_of()(row("Jupiter", "Jupiter|jupiter")).value == 1.0
    assert one_of()(row("Mars", ["Jupiter", "Saturn"])).value == 0.0
    assert nan_because(one_of()(row("Mars", None)), "no reference")


def test_one_of_refuses_a_string_as_its_choices() -> None:
    with pytest.raises(InvalidRequestError, match="list of strings"):
        one_of("yes")


def test_numeric_compares_the_first_number_within_a_tolerance() -> None:
    assert numeric()(row("There are 7 days.", "7")).value == 1.0
    assert numeric(tolerance=0.01)(row("about 3.14159", 3.1)).value == 0.0
    assert numeric(tolerance=0.05)(row("about 3.14159", 3.1)).value == 1.0
    assert numeric(tolerance=0.01, relative=True)(row("1,005 people", "1000")).value == 1.0
    assert numeric()(row("8", "7")) == Score(0.0, "8 is not within 0 of 7")


def test_numeric_without_a_number_in_the_answer_is_nan_not_zero() -> None:
    assert nan_because(numeric()(row("seven", "7")), "no number in the answer")
    assert nan_because(numeric()(row("7", "many")), "reference 'many' is not a number")


def test_numeric_refuses_a_negative_tolerance() -> None:
    with pytest.raises(InvalidRequestError, match="tolerance must be a non-negative number"):
        numeric(tolerance=-1)


@pytest.mark.parametrize(
    ("text", "number"),
    [("-12.5 degrees", -12.5), ("1,234,567 stars", 1234567.0), ("x=1e3", 1000.0), ("none", None), (".5", 0.5)],
)
def test_first_number_reads_signs_decimals_exponents_and_thousands(text: str, number: float | None) -> None:
    assert first_number(text) == number


def test_json_valid_accepts_json_and_json_in_a_code_fence() -> None:
    assert json_valid()(row('{"a": 1}')).value == 1.0
    assert json_valid()(row('```json\n{"a": 1}\n```')).value == 1.0
    assert json_valid(fences=False)(row('```json\n{"a": 1}\n```')).value == 0.0
    score = json_valid()(row("{a: 1}"))
    assert score.value == 0.0 and score.reason.startswith("not JSON: Expecting property name")


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


def test_json_schema_validates_the_answer_and_names_the_first_problem() -> None:
    scorer = json_schema(PERSON)
    assert scorer(row('{"name": "Ada", "age": 36}')).value == 1.0
    assert scorer(row('{"name": "Ada", "age": -1}')) == Score(0.0, "age: -1 is less than the minimum of 0")
    assert scorer(row('{"name": "Ada"}')) == Score(0.0, "(root): 'age' is a required property")
    assert scorer(row("Ada, 36")).reason.startswith("not JSON")


def test_json_schema_takes_a_pydantic_model_class() -> None:
    import pydantic

    class Person(pydantic.BaseModel):
        name: str
        age: int

    assert json_schema(Person)(row('{"name": "Ada", "age": 36}')).value == 1.0
    assert json_schema(Person)(row('{"name": "Ada"}')).value == 0.0


def test_json_schema_refuses_an_invalid_schema_at_once() -> None:
    with pytest.raises(InvalidRequestError, match="not a valid JSON Schema"):
        json_schema({"type": "no-such-type"})


def test_token_f1_matches_the_squad_definition() -> None:
    assert tokens("The Eiffel Tower, in Paris!") == ["eiffel", "tower", "in", "paris"]
    # answer "paris france" vs reference "paris": precision 1/2, recall 1 -> F1 2/3
    assert token_f1(["paris", "france"], ["paris"]) == pytest.approx(2 / 3)
    assert token_f1(["lyon"], ["paris"]) == 0.0


def test_rouge_l_uses_the_longest_common_subsequence() -> None:
    # LCS of "a b c d" and "a c d e" is "a c d": precision 3/4, recall 3/4
    assert rouge_l(["a", "b", "c", "d"], ["a", "c", "d", "e"]) == pytest.approx(0.75)
    assert rouge_l([], ["a"]) == 0.0


def test_similarity_scores_lexical_overlap_and_nan_for_an_empty_reference() -> None:
    assert similarity()(row("Paris, France", "Paris")).value == pytest.approx(2 / 3)
    # "the sky is blue" -> [sky, is, blue]; LCS with [sky, blue] is 2: precision 2/3, recall 1 -> 0.8
    assert similarity(method="rouge_l")(row("the sky is blue", "sky blue")).value == pytest.approx(0.8)
    assert nan_because(similarity()(row("Paris", "the")), "has no words")


def test_similarity_refuses_an_unknown_method() -> None:
    with pytest.raises(InvalidRequestError, match="similarity method must be one of"):
        similarity(method="bleu")


def test_builtins_read_a_pandas_row_as_compare_gives_it() -> None:
    frame = pd.DataFrame({"response": ["Paris"], "expected": ["Paris"], "error_type": [None]})
    assert exact()(frame.iloc[0]).value == 1.0


def test_a_scorer_that_raises_marks_its_row_nan_with_the_error_text() -> None:
    def broken(r: object) -> float:
        raise KeyError("gold")

    assert nan_because(score_row(broken, row("x")), "scorer raised KeyError: 'gold'")


def test_a_scorer_returning_something_else_than_a_number_is_nan_with_the_value() -> None:
    assert nan_because(score_row(lambda r: "good", row("x")), "scorer returned 'good', not a number")


def test_a_plain_callable_may_return_a_bool_or_none() -> None:
    assert score_row(lambda r: True, row("x")) == Score(1.0)
    assert math.isnan(score_row(lambda r: None, row("x")).value)


def test_a_failed_call_gets_nan_without_calling_the_scorer() -> None:
    calls = []
    score = score_row(lambda r: calls.append(r) or 1.0, {"response": None, "error_type": "timeout"})
    assert math.isnan(score.value) and score.reason is None and calls == []


def test_scorer_table_names_one_callable_none_and_keeps_a_dicts_names() -> None:
    f = exact()
    assert scorer_table(f) == {None: f}
    assert list(scorer_table({"exact": f, "has": contains()})) == ["exact", "has"]


@pytest.mark.parametrize(
    ("scorer", "message"),
    [
        ("exact", "scorer must be a callable"),
        ({}, "scorer is an empty dict"),
        ({"not a name": exact()}, "scorer name 'not a name' must be an identifier"),
        ({"ok": 3}, "scorer 'ok' must be a callable"),
        ({"ok": exact}, "scorer 'ok' is the class exact; call it: exact()"),
    ],
)
def test_scorer_table_refuses_bad_scorers_naming_the_culprit(scorer: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scorer_table(scorer)


def test_describe_records_a_builtins_options_and_a_functions_name() -> None:
    assert describe(contains(ignore_case=True)) == (
        "contains(reference='expected', ignore_case=True, ignore_whitespace=True)"
    )

    def mine(r: object) -> float:
        return 1.0

    assert describe(mine).endswith("mine")


def test_with_scores_puts_scores_after_the_response_and_reasons_at_the_end() -> None:
    frame = pd.DataFrame({"prompt": ["p", "q"], "response": ["a", "b"], "model": ["m", "m"]})
    out = with_scores(frame, {"ok": [Score(1.0), Score(0.0, "wrong")], "f1": [Score(0.5), Score(0.25)]})
    assert list(out.columns) == ["prompt", "response", "score_ok", "score_f1", "model", "reason_ok"]
    assert list(out.reason_ok) == [None, "wrong"]


def test_with_scores_replaces_an_earlier_grading() -> None:
    frame = pd.DataFrame({"response": ["a"], "score": [0.0], "reason": ["old"]})
    out = with_scores(frame, {None: [Score(1.0)]})
    assert list(out.columns) == ["response", "score"] and out.score[0] == 1.0
