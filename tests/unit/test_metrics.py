"""The places that count refusals (hub.metrics): `refuse` in hub.servicers.calls (every unary and stream call
refused, the interceptors' refusals included), Play's error events, the inbound HTTP server's WalletRefused and
503. Each refusal adds exactly one to its (rpc, code, reason); an answered call adds nothing, and an INTERNAL is
counted as an internal error, never as a refusal. The interceptors' refusals through a live hub: tests/e2e/test_metrics.py."""

import asyncio
from typing import Any

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from adapters.base import WalletCall, WalletRefused
from hub.errors import DomainError, Reason, State
from hub.events import BetAccepted, PlayError
from hub.inbound import HubStudioWallet, InFlightLimit
from hub.money import Money
from hub.servicers.admission import PUSHBACK_HEADER, abort_with_pushback
from hub.servicers.calls import answered
from hub.servicers.game import answer


def refusals() -> dict[tuple[str, str, str], float]:
    """Every casinohub_refusals_total sample of this process: (rpc, code, reason) -> count."""
    return {(s.labels["rpc"], s.labels["code"], s.labels["reason"]): s.value
            for family in REGISTRY.collect() if family.name == "casinohub_refusals"
            for s in family.samples if s.name == "casinohub_refusals_total"}


def internal_errors() -> dict[str, float]:
    return {s.labels["rpc"]: s.value for family in REGISTRY.collect() if family.name == "casinohub_internal_errors"
            for s in family.samples if s.name == "casinohub_internal_errors_total"}


def added(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value != before.get(key, 0.0)}


class Aborted(Exception):
    pass


class Context:
    """What the edge uses of a grpc.aio.ServicerContext: abort, which ends the call (raises)."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.trailing: tuple[tuple[str, str], ...] = ()

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self.code, self.trailing = code, tuple(trailing_metadata)
        raise Aborted(details)


async def answer_of(work: Any) -> tuple[Context, dict[tuple[str, str, str], float], dict[str, float]]:
    """Run work through calls.answered as "Deposit"; returns the context and what each counter gained."""
    context, before, errors_before = Context(), refusals(), internal_errors()
    try:
        await answered(context, "Deposit", work)  # type: ignore[arg-type]
    except Aborted:
        pass
    return context, added(before, refusals()), added(errors_before, internal_errors())


async def test_a_refused_call_counts_once_under_its_rpc_code_and_reason() -> None:
    async def work() -> None:
        raise DomainError(Reason.INSUFFICIENT_FUNDS, "no")

    context, gained, errors = await answer_of(work())
    assert context.code == grpc.StatusCode.FAILED_PRECONDITION
    assert gained == {("Deposit", "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"): 1.0} and errors == {}


async def test_an_answered_call_counts_nothing() -> None:
    async def work() -> str:
        return "ok"

    context, gained, errors = await answer_of(work())
    assert context.code is None and gained == {} and errors == {}


async def test_an_internal_error_is_no_refusal_and_counts_as_an_internal_error() -> None:
    async def work() -> None:
        raise RuntimeError("a hub bug")

    context, gained, errors = await answer_of(work())
    assert context.code == grpc.StatusCode.INTERNAL
    assert gained == {} and errors == {"Deposit": 1.0}


async def test_the_database_unreachable_is_a_refusal_with_its_reason() -> None:
    async def work() -> None:
        raise OperationalError("SELECT 1", None, ConnectionRefusedError())

    context, gained, errors = await answer_of(work())
    assert context.code == grpc.StatusCode.UNAVAILABLE
    assert gained == {("Deposit", "UNAVAILABLE", "HUB_UNAVAILABLE"): 1.0} and errors == {}


async def test_a_refusal_with_a_pushback_counts_once_and_keeps_its_trailer() -> None:
    context, before = Context(), refusals()
    with pytest.raises(Aborted):
        await abort_with_pushback(context, "Play", DomainError(Reason.TOO_MANY_STREAMS, "full"), 50)  # type: ignore[arg-type]
    assert added(before, refusals()) == {("Play", "RESOURCE_EXHAUSTED", "TOO_MANY_STREAMS"): 1.0}
    assert (PUSHBACK_HEADER, "50") in context.trailing


def test_a_play_error_event_counts_once_and_its_replay_and_other_events_not_at_all() -> None:
    usd = Money("USD", 0)
    refused = PlayError(7, "bet-1", "", Reason.INSUFFICIENT_FUNDS, "no", State.NOT_APPLIED, usd)
    before = refusals()
    assert answer(refused).error.error.reason == "INSUFFICIENT_FUNDS"
    assert added(before, refusals()) == {("Play", "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"): 1.0}
    before = refusals()
    answer(PlayError(9, "bet-1", "", Reason.INSUFFICIENT_FUNDS, "no", State.NOT_APPLIED, usd, replay_of_seq=7))
    answer(BetAccepted(8, "r-1", "tx-1", Money("USD", 100), usd, usd, free_round=False, free_rounds_left=0))
    assert added(before, refusals()) == {}


class RefusingWallet:
    """The ProviderWallet calls HubStudioWallet makes, refusing (the domain refusing an inbound studio call)."""

    async def balance(self, studio_id: str, token: str, player_id: str) -> None:
        raise DomainError(Reason.INVALID_SESSION, f"{studio_id}: no session {token}")


async def test_an_inbound_studio_call_refused_counts_under_the_studio() -> None:
    wallet = HubStudioWallet(RefusingWallet(), "instanthouse")  # type: ignore[arg-type]
    before = refusals()
    with pytest.raises(WalletRefused):
        await wallet.balance(WalletCall(session_token="t", player_id="p"))
    assert added(before, refusals()) == {("inbound:instanthouse", "UNAUTHENTICATED", "INVALID_SESSION"): 1.0}


async def test_inbound_calls_past_the_cap_count_as_overloaded_and_answered_ones_not() -> None:
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": True})

    limit = InFlightLimit("studio-m", 1)
    app = web.Application(middlewares=[limit.middleware])
    app.router.add_post("/held", held)
    async with TestClient(TestServer(app)) as client:
        first = asyncio.create_task(client.post("/held"))
        while limit.in_flight < 1:
            await asyncio.sleep(0.01)
        before = refusals()
        assert [(await client.post("/held")).status for _ in range(2)] == [503, 503]
        assert added(before, refusals()) == {("inbound:studio-m", "RESOURCE_EXHAUSTED", "OVERLOADED"): 2.0}
        release.set()
        assert (await first).status == 200
        before = refusals()
        assert (await client.post("/held")).status == 200
        assert added(before, refusals()) == {}
