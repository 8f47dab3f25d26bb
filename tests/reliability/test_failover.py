"""Issue 12, routing half: a 429 never blocks failover, no breaker cliff, health that means health, and a
provider's own exception stays inside its cells.  Loopback fault servers only; every wait is bounded."""

from __future__ import annotations

import re
import socket
import time

import pytest

from opencode_lab import AllAttemptsFailedError, Lab, ModelNotFoundError, RateLimitError, Settings
from opencode_lab.core.errors import CircuitOpenError, ProviderError
from opencode_lab.routing.router import BreakerSettings

OFF = '[cache]\nmode = "off"\n'


def two_models(good, bad, *, lab: str = "") -> str:
    """Providers ``a`` (on *bad*) and ``b`` (on *good*), each serving ``m``: the models ``a/m`` and ``b/m``."""
    return (
        f'[providers.a]\nbase_url = "{bad.base_url}"\nmodels = ["m"]\n'
        f'[providers.b]\nbase_url = "{good.base_url}"\nmodels = ["m"]\n'
        f"{OFF}[lab]\n{lab}"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- 1. a 429 never blocks failover ---------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [1, 86400])
def test_a_429_on_the_first_model_fails_over_at_once_on_every_call(faults, make_lab, retry_after) -> None:
    faults[0].configure(mix={"rate_limit": 1.0}, retry_after=retry_after)
    lab = make_lab(two_models(faults[1], faults[0]))
    started = time.monotonic()
    results = [lab.chat(f"q{i}", ["a/m", "b/m"]) for i in range(5)]
    elapsed = time.monotonic() - started
    assert {r.served_by for r in results} == {"b/m"}
    assert [a.error_type for a in results[0].attempts] == ["rate_limit", None]
    assert faults[0].count() == 1  # paused: later calls go straight to b, nobody waits for a
    assert elapsed < 4.0  # waiting out even one Retry-After per call would take 5 s (86400: fail)


@pytest.mark.parametrize(
    ("spec", "config"),
    [
        ("fast", '[aliases]\nfast = ["a/m", "b/m"]\n'),
        (None, 'default_models = ["a/m", "b/m"]\n'),
    ],
    ids=["alias", "rotation-pool"],
)
def test_an_alias_or_the_rotation_pool_fails_over_past_a_paused_model(faults, make_lab, spec, config) -> None:
    faults[0].configure(mix={"rate_limit": 1.0}, retry_after=86400)
    toml = two_models(faults[1], faults[0], lab=config if spec is None else "")
    lab = make_lab(toml if spec is None else config + toml)
    assert {lab.chat(f"q{i}", spec).served_by for i in range(4)} == {"b/m"}
    assert faults[0].count() <= 1


@pytest.mark.slow
def test_retry_after_is_capped_by_the_setting(fault, make_lab, fault_toml) -> None:
    fault.configure(queue=["rate_limit"], retry_after=86400)
    lab = make_lab(fault_toml(fault) + f"{OFF}[lab]\nretry_after_cap_s = 0.3\n")
    result = lab.chat("wait briefly", "m")
    assert result.text == "echo: wait briefly"
    first, second = fault.log
    assert 0.3 <= second["t"] - first["t"] < 30


def test_a_lone_model_paused_past_the_deadline_fails_at_once_naming_the_pause(fault, make_lab, fault_toml) -> None:
    fault.configure(queue=["rate_limit"], retry_after=86400)
    lab = make_lab(fault_toml(fault) + f"{OFF}[lab]\ndeadline_s = 60\n")
    with pytest.raises(AllAttemptsFailedError) as first:
        lab.chat("first", "m")
    assert [a.error_type for a in first.value.attempts] == ["rate_limit"]
    started = time.monotonic()
    with pytest.raises(RateLimitError) as second:
        lab.chat("second", "m")
    assert time.monotonic() - started < 5.0
    assert fault.count() == 1  # nothing more was sent
    message = str(second.value)
    assert re.search(r"paused or rate-limited for (29\d\.\d|300\.0)s", message)  # Retry-After 86400, capped at 300 s
    assert "last error: rate_limit" in message and "none made" not in message


def test_reset_ends_a_pause(fault, make_lab, fault_toml) -> None:
    fault.configure(queue=["rate_limit"], retry_after=86400)
    lab = make_lab(fault_toml(fault) + OFF)
    with pytest.raises(AllAttemptsFailedError):
        lab.chat("first", "m")
    assert lab.reset("m") == ["f0/fault-model"]
    assert lab.health().loc["f0/fault-model", "paused_for_s"] == 0.0
    assert lab.chat("after the reset", "m").text == "echo: after the reset"


def test_reset_closes_open_circuits_of_one_model_or_of_all(faults, make_lab, fault_toml) -> None:
    for server in faults[:2]:
        server.configure(queue=["server_error"])
    lab = make_lab(fault_toml(faults[0], faults[1]) + f"{OFF}[lab]\nbreaker_failures = 1\nmax_retries = 0\n")
    with pytest.raises(AllAttemptsFailedError):
        lab.chat("both fail once", "m")
    ids = ["f0/fault-model", "f1/fault-model"]
    assert list(lab.health().loc[ids, "state"]) == ["open", "open"]
    lab.reset("f0/fault-model")
    assert list(lab.health().loc[ids, "state"]) == ["closed", "open"]
    lab.reset()
    assert list(lab.health().loc[ids, "state"]) == ["closed", "closed"]
    with pytest.raises(ModelNotFoundError):
        lab.reset("no-such-model")


# -- 2. no breaker cliff --------------------------------------------------------------------------------------------


def test_when_every_circuit_of_a_model_is_open_the_request_is_still_sent(faults, make_lab, fault_toml) -> None:
    for server in faults[:2]:
        server.configure(queue=["server_error"])
    lab = make_lab(fault_toml(faults[0], faults[1]) + f"{OFF}[lab]\nbreaker_failures = 1\nmax_retries = 0\n")
    with pytest.raises(AllAttemptsFailedError):
        lab.chat("both fail once", "m")
    result = lab.chat("sent anyway", "m")
    assert result.text == "echo: sent anyway"
    assert lab.health().loc[result.served_by, "state"] == "closed"  # the request was its circuit's probe


@pytest.mark.slow
def test_an_open_circuit_gets_one_attempt_per_request_and_reports_the_real_error(fault, make_lab, fault_toml) -> None:
    fault.configure(mix={"server_error": 1.0}, seed=1)
    lab = make_lab(fault_toml(fault) + f"{OFF}[lab]\nbreaker_failures = 1\n")
    with pytest.raises(AllAttemptsFailedError):
        lab.chat("opens the circuit", "m")
    before = fault.count()
    with pytest.raises(AllAttemptsFailedError) as info:
        lab.chat("probe once", "m")
    assert fault.count() == before + 1  # not max_retries + 1: a dead deployment costs one fast attempt
    assert [a.error_type for a in info.value.attempts] == ["server_error"]


@pytest.mark.slow
def test_a_flaky_deployment_keeps_serving_while_its_breaker_trips(faults, make_lab, fault_toml) -> None:
    """Breakers isolate dead deployments, not flaky ones: a hair-trigger breaker on two half-failing servers
    opens again and again, yet every request is sent and nearly all succeed."""
    for i, server in enumerate(faults[:2]):
        server.configure(mix={"server_error": 0.5}, seed=40 + i)
    lab = make_lab(
        fault_toml(faults[0], faults[1])
        + f'{OFF}[lab]\nbreaker_failures = 1\nbreaker_cooldown_s = 60\nrunlog = "off"\n'
    )
    frame = lab.compare([f"q{i}" for i in range(60)], "m", progress=False)
    assert "circuit_open" not in set(frame["error_type"].dropna())
    assert frame["error_type"].isna().mean() >= 0.9


def test_every_breaker_setting_reaches_the_router(fault, make_lab, fault_toml, monkeypatch) -> None:
    monkeypatch.setenv("OC_BREAKER_FAILURE_RATE", "0.9")
    lab = make_lab(
        fault_toml(fault) + "[lab]\nbreaker_failures = 7\nbreaker_window = 30\nbreaker_min_calls = 12\n"
        "breaker_cooldown_s = 4.5\nretry_after_cap_s = 9\n"
    )
    assert lab.router.breaker == BreakerSettings(7, 0.9, 30, 12, 4.5)
    assert lab.router.retry_after_cap_s == 9.0
    breaker = lab.router.slot(lab.catalog.deployments["f0/fault-model"]).health.breaker
    assert (breaker.consecutive_failures, breaker.failure_rate, breaker.window) == (7, 0.9, 30)


# -- 4. health that means health ------------------------------------------------------------------------------------


def test_a_chat_health_check_sees_a_model_that_fails_every_chat(fault, make_lab, fault_toml) -> None:
    fault.configure(mix={"server_error": 1.0}, seed=1)
    lab = make_lab(fault_toml(fault) + OFF)
    assert bool(lab.health_check(models="m").loc["f0", "ok"])  # /models still answers
    frame = lab.health_check(chat=True, models="m")
    row = frame.loc["f0/fault-model"]
    assert not bool(row.ok)
    assert row.error.startswith("server_error")
    assert row.last_error.startswith("server_error")
    assert fault.log[-1]["sampling"]["max_tokens"] == 1  # one token: the cheapest real chat


def test_a_chat_health_check_reports_when_an_open_circuit_retries(fault, make_lab, fault_toml) -> None:
    fault.configure(mix={"server_error": 1.0}, seed=1)
    lab = make_lab(fault_toml(fault) + f"{OFF}[lab]\nbreaker_failures = 1\nbreaker_cooldown_s = 120\n")
    row = lab.health_check(chat=True, models="m").loc["f0/fault-model"]
    assert row.state == "open"
    assert 100 < row.open_for_s <= 120
    assert lab.health().loc["f0/fault-model", "open_for_s"] > 100


def test_a_successful_chat_probe_closes_an_open_circuit(fault, make_lab, fault_toml) -> None:
    fault.configure(queue=["server_error"])
    lab = make_lab(fault_toml(fault) + f"{OFF}[lab]\nbreaker_failures = 1\nmax_retries = 0\n")
    with pytest.raises(AllAttemptsFailedError):
        lab.chat("fails once", "m")
    assert lab.health().loc["f0/fault-model", "state"] == "open"
    row = lab.health_check(chat=True, models="m").loc["f0/fault-model"]
    assert bool(row.ok) and row.state == "closed" and row.error is None


def test_a_chat_health_check_does_not_wait_for_a_paused_deployment(fault, make_lab, fault_toml) -> None:
    fault.configure(queue=["rate_limit"], retry_after=86400)
    lab = make_lab(fault_toml(fault) + OFF)
    with pytest.raises(AllAttemptsFailedError):
        lab.chat("paused", "m")
    row = lab.health_check(chat=True, models="m").loc["f0/fault-model"]
    assert not bool(row.ok) and "not sent: paused" in row.error
    assert fault.count() == 1


def test_a_circuit_open_error_names_the_underlying_error(make_lab) -> None:
    """Nothing can be sent (circuit open, request budget spent): the error says why, with the real last error."""
    port = closed_port()
    lab = make_lab(
        f'[providers.gone]\nbase_url = "http://127.0.0.1:{port}/v1"\n'
        '[models.m]\nprovider = "gone"\nupstream = "x"\nrpm = 1\n'
        f"{OFF}[lab]\nbreaker_failures = 1\nrate_window_s = 100000\n"
    )
    with pytest.raises(AllAttemptsFailedError):
        lab.chat("refused", "m")
    with pytest.raises(CircuitOpenError) as info:
        lab.chat("again", "m")
    message = str(info.value)
    assert "circuit open" in message and "last error: connection" in message
    assert "none made" not in message


# -- 7. a provider's own exception stays in its cells ---------------------------------------------------------------


def broken_provider(where: str):
    from opencode_lab import Completion, ModelInfo, Provider, StreamChunk, Usage

    class Broken(Provider):
        """A user's provider with a bug: raises a plain RuntimeError from *where*."""

        name = "bad"

        async def prepare(self, model):
            if where == "prepare":
                raise RuntimeError("weights missing")

        async def complete(self, model, request):
            if where == "complete":
                raise RuntimeError("boom")
            if where == "returns":
                return {"text": "not a Completion"}
            return Completion("fine", model, "stop", Usage(1, 1))

        async def stream(self, model, request):
            yield StreamChunk("partial? ")
            raise RuntimeError("stream boom")

        async def list_models(self):
            return [ModelInfo("m")]

    return Broken()


def lab_with_broken(fault, tmp_path, where: str) -> Lab:
    config = tmp_path / "lab.toml"
    config.write_text(
        f'[providers.fault]\nbase_url = "{fault.base_url}"\nmodels = ["fault-model"]\n'
        '[models.broken]\nprovider = "bad"\nupstream = "m"\n'
        f'{OFF}[lab]\nrunlog = "off"\n'
    )
    return Lab(Settings.load(config), providers={"bad": broken_provider(where)})


@pytest.mark.parametrize("where", ["complete", "prepare", "returns"])
def test_a_provider_raising_a_foreign_exception_gives_error_rows_for_its_own_cells(fault, tmp_path, where) -> None:
    with lab_with_broken(fault, tmp_path, where) as lab:
        frame = lab.compare(["p1", "p2"], ["fault/fault-model", "broken"], progress=False)
    assert len(frame) == 4
    by_model = frame.groupby("model")["error_type"]
    assert by_model.apply(lambda s: s.isna().all())["fault/fault-model"]
    assert set(frame.loc[frame["model"] == "broken", "error_type"]) == {"provider_error"}


def test_a_foreign_exception_is_a_provider_error_chained_to_the_original(fault, tmp_path) -> None:
    with lab_with_broken(fault, tmp_path, "complete") as lab, pytest.raises(AllAttemptsFailedError) as info:
        lab.chat("q", "broken")
    last = info.value.last
    assert isinstance(last, ProviderError) and "RuntimeError: boom" in str(last)
    assert isinstance(last.__cause__, RuntimeError)


def test_a_foreign_exception_rotates_to_the_next_model(fault, tmp_path) -> None:
    with lab_with_broken(fault, tmp_path, "complete") as lab:
        result = lab.chat("q", ["broken", "fault/fault-model"])
    assert result.served_by == "fault/fault-model"
    assert [a.error_type for a in result.attempts] == ["provider_error", None]


def test_a_foreign_exception_in_a_stream_is_a_lab_error(fault, tmp_path) -> None:
    with lab_with_broken(fault, tmp_path, "stream") as lab, pytest.raises(AllAttemptsFailedError) as info:
        list(lab.stream("q", "broken"))
    assert "RuntimeError: stream boom" in str(info.value)
