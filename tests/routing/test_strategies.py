"""Balancing strategies: the order each one proposes, and what every one must guarantee."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from opencode_lab.core.errors import InvalidRequestError
from opencode_lab.routing.strategies import (
    Candidate,
    LeastLatency,
    make_strategy,
    register_strategy,
    strategy_names,
)


def keys(ranked: list[Candidate]) -> list[str]:
    return [c.key for c in ranked]


ABC = [Candidate("a"), Candidate("b"), Candidate("c")]


@pytest.mark.parametrize("name", strategy_names())
def test_every_strategy_ranks_every_candidate_exactly_once(name):
    strategy = make_strategy(name, rng=random.Random(1))
    candidates = [
        Candidate("a", weight=0.0, in_flight=2, latency_s=0.5, price_per_mtok=None),
        Candidate("b", weight=2.0, in_flight=0, latency_s=None, price_per_mtok=1.0),
        Candidate("c", weight=1.0, in_flight=2, latency_s=0.5, price_per_mtok=1.0),
        Candidate("d", weight=5.0, in_flight=1, latency_s=0.1, price_per_mtok=0.2),
    ]
    for _ in range(20):
        assert sorted(keys(strategy.rank(candidates, "g"))) == ["a", "b", "c", "d"]
    assert strategy.name == name


@pytest.mark.parametrize("name", strategy_names())
def test_every_strategy_accepts_zero_or_one_candidate(name):
    strategy = make_strategy(name)
    assert strategy.rank([], "g") == []
    assert keys(strategy.rank([Candidate("only")], "g")) == ["only"]


def test_round_robin_starts_each_call_at_the_next_candidate():
    strategy = make_strategy("round_robin")
    orders = [keys(strategy.rank(ABC, "m")) for _ in range(4)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_round_robin_keeps_one_rotation_per_group():
    strategy = make_strategy("round_robin")
    assert keys(strategy.rank(ABC, "x"))[0] == "a"
    assert keys(strategy.rank(ABC, "y"))[0] == "a"
    assert keys(strategy.rank(ABC, "x"))[0] == "b"


def test_weighted_first_pick_follows_the_weights_within_5_points():
    strategy = make_strategy("weighted", rng=random.Random(42))
    candidates = [Candidate("a", weight=1.0), Candidate("b", weight=2.0), Candidate("c", weight=7.0)]
    firsts = Counter(strategy.rank(candidates, "m")[0].key for _ in range(1000))
    for key, share in {"a": 0.1, "b": 0.2, "c": 0.7}.items():
        assert abs(firsts[key] / 1000 - share) <= 0.05, (key, firsts)


def test_weighted_second_pick_samples_the_rest_by_weight():
    strategy = make_strategy("weighted", rng=random.Random(3))
    candidates = [Candidate("a", weight=1.0), Candidate("b", weight=3.0), Candidate("c", weight=6.0)]
    orders = [keys(strategy.rank(candidates, "m")) for _ in range(2000)]
    after_c = Counter(order[1] for order in orders if order[0] == "c")
    assert abs(after_c["b"] / after_c.total() - 0.75) <= 0.05  # b holds 3 of the 4 remaining weight


def test_weighted_never_puts_a_non_positive_weight_first():
    strategy = make_strategy("weighted", rng=random.Random(5))
    candidates = [Candidate("off", weight=0.0), Candidate("neg", weight=-1.0), Candidate("on", weight=0.01)]
    assert all(strategy.rank(candidates, "m")[0].key == "on" for _ in range(500))


def test_weighted_with_all_weights_non_positive_picks_uniformly():
    strategy = make_strategy("weighted", rng=random.Random(9))
    candidates = [Candidate("a", weight=0.0), Candidate("b", weight=0.0)]
    firsts = Counter(strategy.rank(candidates, "m")[0].key for _ in range(1000))
    assert abs(firsts["a"] / 1000 - 0.5) <= 0.05


def least_latency(seed: int = 0, **kwargs) -> LeastLatency:
    return LeastLatency(random.Random(seed), **kwargs)


def test_least_latency_puts_the_cheaper_of_two_random_draws_first_and_the_rest_cheapest_first():
    candidates = [
        Candidate("slow", latency_s=2.0),
        Candidate("fast", latency_s=0.3),
        Candidate("mid", latency_s=1.0),
        Candidate("busy", latency_s=0.2, in_flight=14),  # cost 3.0: requests in flight count
    ]
    firsts = Counter()
    for seed in range(300):
        first, *rest = least_latency(seed).rank(candidates, "m")
        firsts[first.key] += 1
        assert keys(rest) == [k for k in ("fast", "mid", "slow", "busy") if k != first.key]
    assert "busy" not in firsts  # the costliest loses to whichever it is drawn with
    assert firsts["fast"] > firsts["mid"] > firsts["slow"] > 0  # wins 3, 2 and 1 of the 6 possible pairs


def test_least_latency_shares_equal_deployments_evenly_one_request_at_a_time():
    strategy = least_latency()
    candidates = [Candidate("a", latency_s=0.020), Candidate("b", latency_s=0.021)]  # within the tolerance
    firsts = Counter(strategy.rank(candidates, "m")[0].key for _ in range(40))
    assert firsts == {"a": 20, "b": 20}


def test_least_latency_spreads_a_burst_by_requests_in_flight():
    strategy = least_latency()
    in_flight = {"a": 0, "b": 0}
    for _ in range(20):  # twenty concurrent requests: none finishes before the next is ranked
        first = strategy.rank([Candidate(k, latency_s=0.5, in_flight=n) for k, n in in_flight.items()], "m")[0]
        in_flight[first.key] += 1
    assert in_flight == {"a": 10, "b": 10}


def test_least_latency_sends_a_clearly_slower_deployment_only_the_odd_request_to_re_measure_it():
    strategy = least_latency(tolerance=0.2)
    candidates = [Candidate("fast", latency_s=0.02), Candidate("slow", latency_s=0.06)]
    firsts = Counter(strategy.rank(candidates, "m")[0].key for _ in range(100))
    assert firsts["slow"] == 10  # 0.06 x 0.9**9 is within 20% of 0.02: one request in ten


def test_an_old_slow_sample_decays_until_the_deployment_is_tried_again():
    strategy = least_latency(decay=0.9)
    candidates = [Candidate("unlucky", latency_s=0.1), Candidate("steady", latency_s=0.02)]
    firsts = [strategy.rank(candidates, "m")[0].key for _ in range(40)]
    # 0.1 x 0.9**14 = 0.023 is within 20% of 0.02: re-measured every 15th request, never starved, rarely paid for
    assert [i for i, key in enumerate(firsts) if key == "unlucky"] == [14, 29]


def test_an_unknown_latency_counts_as_the_mean_of_the_known_ones():
    strategy = least_latency()
    ranked = strategy.rank([Candidate("new", in_flight=1), Candidate("a", latency_s=0.1)], "m")
    assert keys(ranked) == ["a", "new"]  # taken as 0.1 s, but one in flight doubles it: not flooded
    ranked = strategy.rank([Candidate("new"), Candidate("a", latency_s=0.1, in_flight=1)], "m")
    assert keys(ranked) == ["new", "a"]  # a new deployment is tried as soon as it is the cheaper


def test_least_latency_rejects_impossible_settings():
    with pytest.raises(ValueError):
        least_latency(decay=0.0)
    with pytest.raises(ValueError):
        least_latency(tolerance=-0.1)


def test_least_busy_prefers_fewest_in_flight():
    strategy = make_strategy("least_busy")
    candidates = [Candidate("a", in_flight=3), Candidate("b", in_flight=0), Candidate("c", in_flight=1)]
    assert keys(strategy.rank(candidates, "m")) == ["b", "c", "a"]


def test_least_busy_rotates_through_equally_busy_candidates():
    strategy = make_strategy("least_busy")
    firsts = [strategy.rank(ABC, "m")[0].key for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]


def test_cost_prefers_the_cheapest_and_ranks_unknown_prices_last():
    strategy = make_strategy("cost")
    candidates = [
        Candidate("unknown", price_per_mtok=None),
        Candidate("pricey", price_per_mtok=15.0),
        Candidate("free", price_per_mtok=0.0),
        Candidate("cheap", price_per_mtok=0.5),
    ]
    assert keys(strategy.rank(candidates, "m")) == ["free", "cheap", "pricey", "unknown"]


def test_cost_breaks_ties_round_robin():
    strategy = make_strategy("cost")
    candidates = [Candidate("a", price_per_mtok=1.0), Candidate("b", price_per_mtok=1.0), Candidate("c")]
    orders = [keys(strategy.rank(candidates, "m")) for _ in range(2)]
    assert orders == [["a", "b", "c"], ["b", "a", "c"]]


def test_rank_does_not_modify_the_callers_sequence():
    strategy = make_strategy("least_busy")
    candidates = [Candidate("a", in_flight=1), Candidate("b")]
    strategy.rank(candidates, "m")
    assert keys(candidates) == ["a", "b"]


def test_make_strategy_accepts_dashes_and_any_case():
    assert make_strategy("Least-Latency").name == "least_latency"


def test_make_strategy_names_the_valid_choices_for_an_unknown_one():
    with pytest.raises(InvalidRequestError, match="unknown routing strategy 'fastest'") as caught:
        make_strategy("fastest")
    for name in ("round_robin", "weighted", "least_latency", "least_busy", "cost"):
        assert name in str(caught.value)


def test_make_strategy_suggests_the_closest_name():
    with pytest.raises(InvalidRequestError, match="did you mean 'least_latency'"):
        make_strategy("least_latncy")


def test_a_registered_strategy_can_be_made_by_name():
    class Reverse:
        name = "reverse"

        def rank(self, candidates, group):
            return list(reversed(candidates))

    register_strategy("reverse", lambda rng: Reverse())
    ranked = make_strategy("reverse").rank([Candidate("a"), Candidate("b")], "g")
    assert [c.key for c in ranked] == ["b", "a"]
