"""Cascades replayed on collected results: escalate when the cheap answer fails the check."""

from __future__ import annotations

import pytest

from opencode_lab import InvalidRequestError
from opencode_lab.evals.cascade import cascade, simulate
from opencode_lab.evals.scorers import Score
from opencode_lab.evals.selector import learn_selector


def test_a_perfect_check_reaches_the_strong_quality_at_the_cheap_cost_plus_escalations(make_task) -> None:
    frame = make_task(scores=lambda rng, arithmetic: (1.0, float(not arithmetic)))  # A right everywhere
    selector = learn_selector(frame)
    replay = simulate(cascade(["B", "A"], accept="score"), selector.data, frame, "score")
    escalated = (selector.data.quality[:, 1] < 1).mean()
    assert replay.quality.mean() == 1.0
    assert replay.cost.mean() == pytest.approx(1.0 + 2.0 * escalated)
    assert replay.escalations.mean() == pytest.approx(escalated)
    report = selector.evaluate(cascade=cascade(["B", "A"], accept="score", name="B then A"), bootstrap=20)
    point = report.points.query("system == 'B then A' and setting == 1.0").iloc[0]
    assert point.quality == 1.0 and point.cost == pytest.approx(1.0 + 2.0 * escalated)
    lenient = report.points.query("system == 'B then A' and setting == -inf").iloc[0]  # accepts every first answer
    cheap = report.points.query("system == 'B'").iloc[0]
    assert (lenient.cost, lenient.quality) == (cheap.cost, cheap.quality)


def test_the_check_reads_the_answer_and_a_failed_or_raising_check_escalates(make_task) -> None:
    frame = make_task(n=6)
    frame.loc[frame.model == "B", "response"] = ["fine", None, "fine", "boom", "fine", "fine"]
    frame.loc[(frame.model == "B") & (frame.response.isna()), "error_type"] = "ServerError"

    def check(row):
        if row["response"] == "boom":
            raise ValueError("a check that breaks")
        return Score(1.0 if row["response"] == "fine" else 0.0)

    replay = simulate(cascade(["B", "A"], accept=check), learn_selector(frame, k=1).data, frame, "score")
    assert list(replay.escalations) == [0, 1, 0, 1, 0, 0]


def test_a_cascade_is_refused_when_it_cannot_work(make_task) -> None:
    with pytest.raises(InvalidRequestError, match="at least two"):
        cascade(["A"], accept="score")
    with pytest.raises(InvalidRequestError, match="twice"):
        cascade(["A", "A"], accept="score")
    with pytest.raises(InvalidRequestError, match="accept must be"):
        cascade(["A", "B"], accept=3)
    frame = make_task(n=4)
    with pytest.raises(InvalidRequestError, match="'C' is not in the results"):
        simulate(cascade(["A", "C"], accept="score"), learn_selector(frame, k=1).data, frame, "score")
