"""RateLimiter: sliding-window RPM/TPM, Retry-After pauses, concurrency slots, cancellation."""

from __future__ import annotations

import asyncio
import random

import pytest

from opencode_lab.routing.clock import ManualClock
from opencode_lab.routing.ratelimit import RateLimiter

from ._support import busiest_window, spin


def test_sends_at_once_while_under_the_request_budget(clock, run):
    limiter = RateLimiter(rpm=3, clock=clock)

    async def main():
        for _ in range(3):
            assert limiter.delay() == 0.0
            await limiter.acquire()

    run(main())
    assert clock.now() == 0.0
    assert limiter.in_flight == 3


def test_delay_is_the_time_until_the_oldest_send_leaves_the_window(clock, run):
    limiter = RateLimiter(rpm=2, window_s=10.0, clock=clock)
    run(limiter.acquire())
    limiter.release()
    clock.advance(4.0)
    run(limiter.acquire())
    limiter.release()
    assert limiter.delay() == 6.0
    clock.advance(6.0)
    assert limiter.delay() == 0.0


def test_delay_counts_the_requests_already_waiting_for_the_budget(clock, run):
    """A newcomer is served after the waiters ahead of it: its wait is for the budget they leave."""
    limiter = RateLimiter(rpm=3, max_in_flight=1, window_s=10.0, clock=clock)

    async def main():
        for _ in range(2):
            await limiter.acquire()
            limiter.release()
            clock.advance(1.0)  # sends logged at 0 and 1; now 2
        await limiter.acquire()  # in flight: the waiters below wait for its slot
        assert limiter.delay() == 8.0  # the send at 0 leaves the window at 10
        first = asyncio.create_task(limiter.acquire())
        await spin()
        assert limiter.delay() == 9.0  # the first waiter takes that; the send at 1 leaves at 11
        second = asyncio.create_task(limiter.acquire())
        await spin()
        assert limiter.delay() == 10.0  # all taken: at least a window after a release yet to come
        for waiter in (first, second):
            waiter.cancel()
        await asyncio.gather(first, second, return_exceptions=True)

    run(main())


def test_acquire_over_budget_sleeps_on_the_clock_until_the_window_frees(clock, run):
    limiter = RateLimiter(rpm=1, window_s=10.0, clock=clock)
    run(limiter.acquire())
    limiter.release()
    run(limiter.acquire())
    assert clock.now() == 10.0


def test_a_send_still_in_flight_holds_its_share_of_the_budget(clock, run):
    """A slow request counts until a window after it completes: the server may receive it late."""
    limiter = RateLimiter(rpm=1, window_s=10.0, clock=clock)
    run(limiter.acquire())
    clock.advance(30.0)
    assert limiter.saturated
    limiter.release()
    assert limiter.delay() == 10.0


@pytest.mark.parametrize(("rpm", "window_s"), [(60, 60.0), (20, 1.0), (7, 0.25)])
def test_no_window_of_any_start_time_holds_more_than_rpm_sends(run, rpm, window_s):
    clock = ManualClock(start=1000.0)
    limiter = RateLimiter(rpm=rpm, window_s=window_s, clock=clock)
    rng = random.Random(7)
    sends: list[tuple[float, int]] = []

    async def client():
        for _ in range(10):
            async with limiter.slot():
                sends.append((clock.now(), 1))
                await clock.sleep(rng.uniform(0.0, window_s / 50))

    async def main():
        await asyncio.gather(*(client() for _ in range(50)))

    run(main())
    assert len(sends) == 500
    assert busiest_window(sends, window_s) == rpm  # reaches the limit, never passes it


def test_no_window_of_any_start_time_holds_more_than_tpm_tokens(clock, run):
    limiter = RateLimiter(tpm=1000, window_s=60.0, clock=clock)
    rng = random.Random(11)
    sends: list[tuple[float, int]] = []

    async def client():
        for _ in range(10):
            tokens = rng.randint(1, 400)
            async with limiter.slot(tokens):
                sends.append((clock.now(), tokens))
                await clock.sleep(rng.uniform(0.0, 1.0))

    async def main():
        await asyncio.gather(*(client() for _ in range(20)))

    run(main())
    assert len(sends) == 200
    assert 900 < busiest_window(sends, 60.0) <= 1000


def test_a_request_larger_than_tpm_goes_alone_through_an_empty_window(clock, run):
    limiter = RateLimiter(tpm=100, window_s=60.0, clock=clock)
    run(limiter.acquire(500))
    assert clock.now() == 0.0
    assert limiter.delay(1) == 60.0
    run(limiter.acquire(1))
    assert clock.now() == 60.0


def test_a_request_without_a_token_estimate_is_not_held_by_tpm(clock, run):
    limiter = RateLimiter(tpm=100, clock=clock)
    run(limiter.acquire(100))
    assert limiter.delay(0) == 0.0
    assert limiter.delay(1) == 60.0


def test_pause_blocks_every_acquire_until_it_ends(clock, run):
    limiter = RateLimiter(clock=clock)
    limiter.pause(5.0)
    assert limiter.is_paused()
    assert limiter.paused_until == 5.0
    assert limiter.delay() == 5.0
    run(limiter.acquire())
    assert clock.now() == 5.0
    assert not limiter.is_paused()


def test_pause_is_extended_but_never_shortened(clock):
    limiter = RateLimiter(clock=clock)
    assert limiter.paused_until == 0.0
    limiter.pause(10.0)
    limiter.pause(3.0)
    assert limiter.paused_until == 10.0
    clock.advance(2.0)
    limiter.pause(20.0)
    assert limiter.paused_until == 22.0


def test_max_in_flight_bounds_concurrency(clock, run):
    limiter = RateLimiter(max_in_flight=3, clock=clock)
    active = peak = 0

    async def client():
        nonlocal active, peak
        async with limiter.slot():
            active += 1
            peak = max(peak, active)
            await clock.sleep(1.0)
            await spin(3)
            active -= 1

    async def main():
        await asyncio.gather(*(client() for _ in range(20)))

    run(main())
    assert peak == 3
    assert limiter.in_flight == 0


def test_delay_ignores_in_flight_and_saturated_reports_it(clock, run):
    limiter = RateLimiter(max_in_flight=1, clock=clock)
    assert not limiter.saturated
    run(limiter.acquire())
    assert limiter.saturated
    assert limiter.delay() == 0.0


def test_waiting_for_a_slot_neither_polls_nor_moves_the_clock(clock, run):
    limiter = RateLimiter(max_in_flight=1, clock=clock)

    async def main():
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await spin(50)
        assert not waiter.done()
        assert clock.now() == 0.0
        limiter.release()
        await waiter

    run(main())
    assert limiter.in_flight == 1


def test_a_cancelled_slot_waiter_does_not_leak_a_slot(clock, run):
    limiter = RateLimiter(max_in_flight=1, clock=clock)

    async def main():
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await spin()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert limiter.in_flight == 1
        limiter.release()
        await limiter.acquire()  # the freed slot is really free

    run(main())
    assert limiter.in_flight == 1


def test_a_waiter_cancelled_as_the_slot_frees_hands_it_to_the_next(clock, run):
    limiter = RateLimiter(max_in_flight=1, clock=clock)

    async def main():
        await limiter.acquire()
        first = asyncio.create_task(limiter.acquire())
        second = asyncio.create_task(limiter.acquire())
        await spin()
        limiter.release()
        first.cancel()  # same tick: woken and cancelled before it runs
        await spin()
        assert first.cancelled()
        assert second.done()

    run(main())
    assert limiter.in_flight == 1


def test_a_waiter_cancelled_in_the_queue_keeps_the_others_in_order(clock, run):
    limiter = RateLimiter(max_in_flight=1, clock=clock)
    served: list[str] = []

    async def client(name: str):
        await limiter.acquire()
        served.append(name)

    async def main():
        await limiter.acquire()
        tasks = {name: asyncio.create_task(client(name)) for name in "abc"}
        await spin()
        tasks["b"].cancel()
        for _ in range(2):
            limiter.release()
            await spin()

    run(main())
    assert served == ["a", "c"]


def test_a_waiter_cancelled_while_sleeping_for_budget_records_no_send(clock, run):
    limiter = RateLimiter(rpm=1, window_s=10.0, clock=clock)

    async def main():
        await limiter.acquire()
        limiter.release()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)  # the waiter starts its budget sleep
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    run(main())
    assert limiter.in_flight == 0
    assert limiter.delay() == 0.0  # had the waiter sent at t=10, the window would be full


def test_waiters_are_served_in_arrival_order(clock, run):
    limiter = RateLimiter(rpm=1, window_s=1.0, clock=clock)
    served: list[int] = []

    async def client(i: int):
        async with limiter.slot():
            served.append(i)

    async def main():
        await asyncio.gather(*(client(i) for i in range(10)))

    run(main())
    assert served == list(range(10))


def test_slot_releases_when_the_body_raises(clock, run):
    limiter = RateLimiter(max_in_flight=1, clock=clock)

    async def main():
        with pytest.raises(RuntimeError):
            async with limiter.slot():
                raise RuntimeError("provider failed")

    run(main())
    assert limiter.in_flight == 0


def test_release_without_acquire_is_an_error(clock):
    with pytest.raises(RuntimeError):
        RateLimiter(clock=clock).release()


@pytest.mark.parametrize("kwargs", [{"rpm": 0}, {"tpm": -1}, {"max_in_flight": 0}, {"window_s": 0.0}])
def test_non_positive_limits_are_rejected(kwargs):
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


def test_the_same_limiter_works_across_event_loops(clock):
    limiter = RateLimiter(max_in_flight=1, clock=clock)

    async def contended():
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await spin()
        limiter.release()
        await waiter
        limiter.release()

    asyncio.run(contended())
    asyncio.run(contended())
    assert limiter.in_flight == 0


def test_resume_ends_a_pause_but_keeps_the_request_window(clock, run):
    limiter = RateLimiter(rpm=1, window_s=10.0, clock=clock)
    limiter.pause(3600.0)
    limiter.resume()
    assert not limiter.is_paused()
    run(limiter.acquire())
    limiter.release()
    assert limiter.delay() == 10.0


def test_a_raised_in_flight_limit_lets_a_waiting_request_in(clock, run):
    """A cluster that gains a worker serves the request queued behind the busy one at once."""
    limiter = RateLimiter(max_in_flight=1, clock=clock)

    async def main():
        await limiter.acquire()
        waiting = asyncio.ensure_future(limiter.acquire())
        await spin(3)
        assert not waiting.done()
        limiter.set_max_in_flight(2)
        await asyncio.wait_for(waiting, 1.0)
        return limiter.in_flight

    assert run(main()) == 2


def test_an_in_flight_limit_must_be_positive(clock):
    with pytest.raises(ValueError, match="must be positive"):
        RateLimiter(clock=clock).set_max_in_flight(0)
