"""The studio guard: which failures are retried, and the circuit breaker's states."""

import asyncio

import pytest

from adapters.base import (
    PlayInput,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RoundStatusInput,
    RoundStatusResult,
)
from hub.studio_guard import Breaker, CircuitOpen, GuardedAdapter, GuardPolicy
from tests.fakes import FakeStudio

FAST = GuardPolicy(attempts=3, backoff_s=0.001, max_backoff_s=0.002, failures_to_open=3, open_s=0.2)


def spin(round_id: str = "r-1") -> PlayInput:
    return PlayInput(round_id=round_id, game_session_id="gs", provider_game_id="coin-flip", operator_id="op",
                     player_id="p", currency="USD", bet_minor=100)


class Flaky(FakeStudio):
    """Fails the next `failures` calls with `error`, then plays."""

    def __init__(self, failures: int, error: Exception):
        super().__init__()
        self.failures, self.error, self.calls = failures, error, 0

    async def play(self, request: PlayInput):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise self.error
        return await super().play(request)


async def test_an_unreachable_studio_is_retried_with_the_same_key_until_it_answers() -> None:
    studio = Flaky(2, ProviderUnavailable("connection refused"))
    result = await GuardedAdapter(studio, FAST).play(spin())
    assert studio.calls == 3 and result.provider_round_id == "p-r-1"
    assert [p.round_id for p in studio.plays] == ["r-1"]  # only the answered try reached the game


@pytest.mark.parametrize("error", [ProviderTimeout("no answer"), ProviderRejected("BET_OUT_OF_LIMITS")])
async def test_a_timeout_or_a_refusal_is_never_retried(error: Exception) -> None:
    studio = Flaky(1, error)
    with pytest.raises(type(error)):
        await GuardedAdapter(studio, FAST).play(spin())
    assert studio.calls == 1


async def test_an_error_the_adapter_marks_retryable_is_retried() -> None:
    slow_down = ProviderRejected("RATE_LIMITED")
    slow_down.retryable = True
    studio = Flaky(1, slow_down)
    await GuardedAdapter(studio, FAST).play(spin())
    assert studio.calls == 2


async def test_a_call_without_its_key_is_never_retried() -> None:
    studio = Flaky(1, ProviderUnavailable("connection refused"))
    with pytest.raises(ProviderUnavailable):
        await GuardedAdapter(studio, FAST).play(spin(round_id=""))
    assert studio.calls == 1


async def test_the_circuit_opens_fails_fast_then_one_probe_closes_it() -> None:
    studio = Flaky(3, ProviderTimeout("no answer"))
    guard = GuardedAdapter(studio, FAST)
    for _ in range(3):
        with pytest.raises(ProviderTimeout):
            await guard.play(spin())
    assert guard.breaker.state == Breaker.OPEN and not guard.accepting()
    with pytest.raises(CircuitOpen):
        await guard.play(spin())
    assert studio.calls == 3  # the open circuit sent nothing

    await asyncio.sleep(FAST.open_s)
    assert guard.accepting()
    studio.delay = 0.05
    probe = asyncio.ensure_future(guard.play(spin()))
    await asyncio.sleep(0.01)
    with pytest.raises(CircuitOpen):  # while the probe is out, others still fail fast
        await guard.play(spin("r-2"))
    await probe
    assert guard.breaker.state == Breaker.CLOSED and studio.calls == 4
    await guard.play(spin("r-3"))


async def test_a_failed_probe_opens_the_circuit_again() -> None:
    studio = Flaky(10, ProviderUnavailable("connection refused"))
    guard = GuardedAdapter(studio, GuardPolicy(attempts=1, failures_to_open=2, open_s=0.1))
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await guard.play(spin())
    await asyncio.sleep(0.1)
    with pytest.raises(ProviderUnavailable) as probe:
        await guard.play(spin())
    assert not isinstance(probe.value, CircuitOpen) and studio.calls == 3  # the probe went out, and failed
    assert guard.breaker.state == Breaker.OPEN
    with pytest.raises(CircuitOpen):
        await guard.play(spin())


async def test_refusals_keep_the_circuit_closed() -> None:
    studio = Flaky(10, ProviderRejected("SESSION_MISMATCH"))
    guard = GuardedAdapter(studio, FAST)
    for _ in range(10):
        with pytest.raises(ProviderRejected):
            await guard.play(spin())
    assert guard.breaker.state == Breaker.CLOSED


async def test_each_studio_has_its_own_circuit() -> None:
    down, up = Flaky(10, ProviderUnavailable("refused")), FakeStudio(name="up")
    policy = GuardPolicy(attempts=1, failures_to_open=1, open_s=60)
    guards = GuardedAdapter(down, policy), GuardedAdapter(up, policy)
    with pytest.raises(ProviderUnavailable):
        await guards[0].play(spin())
    assert not guards[0].accepting() and guards[1].accepting()
    await guards[1].play(spin())
    up.statuses["r-9"] = RoundStatusResult(status="settled", win_minor=5)
    assert (await guards[1].round_status(RoundStatusInput("r-9", "op"))).win_minor == 5
