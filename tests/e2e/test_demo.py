"""Demo launches against the live Reelhouse studio: fun money, real rounds at the studio, and not one row
written to the hub's database (every operator-scoped table counted before and after), on both databases."""

import dataclasses
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy import create_engine, func, select

from casinohub.v1 import admin_service_pb2 as admin_pb, admin_service_pb2_grpc, game_service_pb2 as pb
from hub.config import ProviderSettings
from hub.ledger.schema import metadata
from mock_providers.reelhouse.server import STUDIO, Studio, start_server
from tests.e2e.play_client import PlayStream, kinds
from tests.errors import reason_of
from tests.support import Client, start_hub

SECRET = "demo-e2e-secret"
ADMIN_TOKEN = "demo-admin-" + "t" * 32
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
GAME = "reelhouse:fruit-classic"
FUN = 100 * 10_000  # 100 of fruit-classic's largest USD bet (100.00)


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[tuple[Client, Studio]]:
    runner, port = await start_server(port=0, secret=SECRET)
    provider = ProviderSettings(name="reelhouse", adapter="reelhouse", url=f"http://127.0.0.1:{port}",
                                secret=SECRET, timeout_s=0.5)
    hub = await start_hub(database_url, None, providers=(provider,), admin_token=ADMIN_TOKEN)
    yield hub, runner.app[STUDIO]
    await hub.channel.close()
    await hub.server.stop(grace=1)
    await runner.cleanup()


def rows(hub: Client) -> dict[str, int]:
    """Rows of this operator in every table that has an operator (all but hub_keys)."""
    engine = create_engine(hub.database_url)
    with engine.connect() as conn:
        counted = {t.name: conn.execute(select(func.count()).select_from(t).where(
            t.c.operator_id == hub.operator_id)).scalar_one()
            for t in metadata.sorted_tables if "operator_id" in t.c}
    engine.dispose()
    assert {"ledger_transactions", "postings", "idempotency_keys", "rounds", "bets", "game_sessions",
            "play_events"} <= counted.keys()
    return counted


async def demo_launch(hub: Client, token: str = "", game_id: str = GAME) -> pb.LaunchGameResponse:
    return await hub.games.LaunchGame(pb.LaunchGameRequest(session_token=token, game_id=game_id, currency="USD",
                                                           demo=True), metadata=hub.metadata)


async def play_demo(hub: Client, launched: pb.LaunchGameResponse, token: str = "") -> list[pb.PlayResponse]:
    """Five bets, one repeated key, one out of limits, then Close; returns every event."""
    stream = PlayStream(hub)
    stream.open(launched.game_session_id, token)
    events = [await stream.next()]
    for key in ("b1", "b2", "b3", "b4", "b5"):
        stream.bet(100, key)
        events += await stream.until("settled", "error")
    stream.bet(100, "b2")  # a replay: copies, no second stake
    events += await stream.until("settled", "error")
    stream.bet(5, "too-small")
    events += await stream.until("error")
    stream.send(pb.PlayRequest(close=pb.CloseAction()))
    events += await stream.until("session_closed")
    await stream.close()
    return events


def check_fun_money(events: list[pb.PlayResponse]) -> None:
    """The fun balance moves exactly as the originals' stakes and wins say; replays move nothing."""
    assert events[0].session_opened.balance.amount_minor == FUN
    balance = FUN
    originals = [e for e in events if not e.replay_of_seq]
    for event in originals:
        kind = event.WhichOneof("event")
        if kind == "bet_accepted":
            balance -= event.bet_accepted.amount.amount_minor
            assert event.bet_accepted.balance.amount_minor == balance
            assert event.bet_accepted.transaction_id == ""
        elif kind == "settled":
            balance += event.settled.win.amount_minor
            assert event.settled.balance.amount_minor == balance
            assert list(event.settled.transaction_ids) == []
    assert kinds(originals).count("settled") == 5
    replays = [e for e in events if e.replay_of_seq]
    assert kinds(replays) == ["round_opened", "bet_accepted", "outcome", "settled"]
    assert replays[0].round_opened.idempotency_key == "b2"
    refused = [e for e in events if e.WhichOneof("event") == "error"]
    assert [e.error.error.reason for e in refused] == ["BET_OUT_OF_LIMITS"]
    assert refused[0].error.balance.amount_minor == balance
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_an_anonymous_demo_plays_real_rounds_and_writes_nothing(live: tuple[Client, Studio]) -> None:
    hub, studio = live
    before = rows(hub)
    launched = await demo_launch(hub)
    assert launched.demo and launched.demo_balance.amount_minor == FUN and launched.launch_url
    events = await play_demo(hub, launched)
    check_fun_money(events)
    assert rows(hub) == before
    assert studio.sessions[launched.game_session_id].player_id.startswith("demo-")
    assert sum(1 for request, _ in studio.rounds.values()
               if request["session_id"] == launched.game_session_id) == 5


async def test_a_players_demo_leaves_the_wallet_and_the_ledger_alone(live: tuple[Client, Studio]) -> None:
    hub, _ = live
    player_id, token = await hub.new_player(deposit=5_000)
    before, ledger = rows(hub), hub.ledger_counts()
    launched = await demo_launch(hub, token)
    check_fun_money(await play_demo(hub, launched, token))
    assert rows(hub) == before and hub.ledger_counts() == ledger
    assert await hub.balance(player_id) == 5_000
    # A player's demo needs that player's token.
    _, other_token = await hub.new_player()
    stream = PlayStream(hub)
    stream.open(launched.game_session_id, other_token)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream.next()
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "GAME_SESSION_NOT_FOUND")


async def test_a_demo_resumes_and_stays_with_its_operator(live: tuple[Client, Studio]) -> None:
    hub, _ = live
    launched = await demo_launch(hub)
    stream = PlayStream(hub)
    stream.open(launched.game_session_id, "")
    await stream.next()
    stream.bet(200, "r1")
    first = await stream.until("settled", "error")
    await stream.close()
    resumed = PlayStream(hub)
    resumed.resume(launched.game_session_id, "", 1)
    again = [await resumed.next() for _ in range(len(first) + 1)]
    assert [e.seq for e in again] == [e.seq for e in first] + [first[-1].seq + 1]
    assert kinds(again)[-1] == "session_opened"
    assert again[-1].session_opened.balance == first[-1].settled.balance
    await resumed.close()
    # Operator B cannot reach A's demo session.
    operator_b = f"op-b-{uuid.uuid4().hex[:8]}"
    await admin_service_pb2_grpc.AdminServiceStub(hub.channel).CreateOperator(
        admin_pb.CreateOperatorRequest(operator_id=operator_b), metadata=ADMIN)
    b = dataclasses.replace(hub, operator_id=operator_b)
    foreign = PlayStream(b)
    foreign.open(launched.game_session_id, "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await foreign.next()
    assert reason_of(err.value)[1] in ("GAME_SESSION_NOT_FOUND", "INVALID_SESSION")


async def test_a_demo_obeys_the_operators_catalog_settings(live: tuple[Client, Studio]) -> None:
    hub, _ = live
    await admin_service_pb2_grpc.AdminServiceStub(hub.channel).SetStudioEnabled(admin_pb.SetStudioEnabledRequest(
        operator_id=hub.operator_id, studio="reelhouse", enabled=False), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await demo_launch(hub)
    assert reason_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "STUDIO_DISABLED")


async def test_demo_sessions_per_process_are_bounded(live: tuple[Client, Studio], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    hub, _ = live
    monkeypatch.setattr("hub.demo.MAX_SESSIONS", 2)
    await demo_launch(hub)
    await demo_launch(hub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await demo_launch(hub)
    assert reason_of(err.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
