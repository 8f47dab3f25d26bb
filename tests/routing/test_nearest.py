"""The ``nearest`` strategy ranks by home region, then by measured latency, and re-measures the others now and then."""

from __future__ import annotations

from opencode_lab.routing.strategies import Candidate, Nearest, make_strategy


def keys(ranked: list[Candidate]) -> list[str]:
    return [c.key for c in ranked]


def test_it_is_registered_by_name() -> None:
    assert isinstance(make_strategy("nearest"), Nearest)


def test_each_deployment_goes_first_once_then_the_fastest_leads() -> None:
    nearest = Nearest(explore_every=100)
    unknown = [Candidate("a"), Candidate("b"), Candidate("c")]
    assert [keys(nearest.rank(unknown, "g"))[0] for _ in range(3)] == ["a", "b", "c"]
    measured = [Candidate("a", latency_s=0.3), Candidate("b", latency_s=0.1), Candidate("c", latency_s=0.2)]
    assert keys(nearest.rank(measured, "g")) == ["b", "c", "a"]


def test_the_home_region_leads_whatever_its_latency() -> None:
    nearest = Nearest()
    for _ in range(3):
        nearest.rank([Candidate("far"), Candidate("home")], "g")
    ranked = nearest.rank([Candidate("far", latency_s=0.01), Candidate("home", latency_s=0.5, home=True)], "g")
    assert keys(ranked) == ["home", "far"]


def test_requests_in_flight_weigh_on_the_latency() -> None:
    nearest = Nearest(explore_every=100)
    for _ in range(2):
        nearest.rank([Candidate("a"), Candidate("b")], "g")
    busy = [Candidate("a", latency_s=0.1, in_flight=3), Candidate("b", latency_s=0.3)]
    assert keys(nearest.rank(busy, "g")) == ["b", "a"]


def test_a_deployment_not_first_for_explore_every_requests_is_measured_again() -> None:
    nearest = Nearest(explore_every=4)
    measured = [Candidate("fast", latency_s=0.1), Candidate("slow", latency_s=0.5)]
    nearest.rank([Candidate("fast"), Candidate("slow")], "g")
    nearest.rank([Candidate("fast"), Candidate("slow")], "g")
    firsts = [keys(nearest.rank(measured, "g"))[0] for _ in range(10)]
    assert firsts == ["fast"] * 4 + ["slow"] + ["fast"] * 4 + ["slow"]
