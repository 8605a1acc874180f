"""Overload: past its configured capacity the hub refuses at once with RESOURCE_EXHAUSTED / OVERLOADED and a
retry pushback, never grpc core's INTERNAL; work whose caller's deadline passed while it queued is never
applied; health and reflection answer throughout."""

import asyncio
import collections
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from casinohub.v1 import common_pb2, game_service_pb2 as pb, game_service_pb2_grpc, wallet_service_pb2
from hub.servicers.admission import PUSHBACK_HEADER
from tests.e2e.play_client import PlayStream, kinds, launch, opened_stream
from tests.errors import error_info, reason_of
from tests.fakes import FakeStudio
from tests.support import Client, start_hub

CALLS, STREAMS, PUSHBACK_MS = 3, 4, 50


@pytest.fixture
async def small_hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    """A hub with room for a few calls and streams, and one database worker a test can hold."""
    client = await start_hub(database_url, {"fake": studio}, max_calls_in_flight=CALLS, max_play_streams=STREAMS,
                             overload_pushback_ms=PUSHBACK_MS, db_workers=1)
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)


@contextlib.asynccontextmanager
async def held_database_worker(hub: Client) -> AsyncIterator[None]:
    """The hub's only database worker is busy until the block ends: everything else queues behind it."""
    started, release = threading.Event(), threading.Event()

    def _hold(_uow: object) -> None:
        started.set()
        release.wait(30)

    holder = asyncio.create_task(hub.server.hub.db.run(_hold))
    await until(started.is_set)
    try:
        yield
    finally:
        release.set()
        await holder


@contextlib.asynccontextmanager
async def held_settlement_engine(hub: Client) -> AsyncIterator[None]:
    """The settlement engine's writer is busy until the block ends: every money command queues behind it."""
    started, release = threading.Event(), threading.Event()

    def _hold(_book: object, _command: None) -> None:
        started.set()
        release.wait(30)

    holder = asyncio.create_task(hub.server.hub.engine.submit(_hold, None))
    await until(started.is_set)
    try:
        yield
    finally:
        release.set()
        await holder


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, "condition never became true"
        await asyncio.sleep(0.01)


def deposit(hub: Client, player_id: str, amount: int, key: str, timeout: float | None = None):  # type: ignore[no-untyped-def]
    return hub.wallet.Deposit(wallet_service_pb2.DepositRequest(
        player_id=player_id, amount=common_pb2.Money(currency="USD", amount_minor=amount), idempotency_key=key),
        metadata=hub.metadata, timeout=timeout)


def assert_overloaded(err: grpc.aio.AioRpcError) -> None:
    assert reason_of(err) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
    assert dict(error_info(err).metadata) == {"retryable": "true", "state": "NOT_APPLIED"}
    pushback = dict(err.trailing_metadata() or ())[PUSHBACK_HEADER]
    assert PUSHBACK_MS <= int(pushback) <= 2 * PUSHBACK_MS


async def assert_health_and_reflection_answer(hub: Client) -> None:
    health = await health_pb2_grpc.HealthStub(hub.channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                                 timeout=2)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(hub.channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=2)
    async for answer in reflection:
        assert "casinohub.v1.WalletService" in {s.name for s in answer.list_services_response.service}
        break


async def test_calls_past_capacity_are_refused_at_once_and_served_again_when_it_frees(small_hub: Client) -> None:
    hub = small_hub
    player_id, _ = await hub.new_player(deposit=100)
    key = str(uuid.uuid4())
    async with held_database_worker(hub):
        waiting = [asyncio.create_task(hub.balance(player_id)) for _ in range(CALLS)]
        await until(lambda: hub.server.admission.calls == CALLS)
        asked = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await deposit(hub, player_id, 5, key)
        assert time.monotonic() - asked < 1  # refused at once, not queued behind the held worker
        assert_overloaded(err.value)
        await assert_health_and_reflection_answer(hub)  # load balancers still get answers
    assert await asyncio.gather(*waiting) == [100] * CALLS
    assert await hub.balance(player_id) == 100  # the refused deposit changed nothing
    assert (await deposit(hub, player_id, 5, key)).balance.amount_minor == 105
    assert hub.server.admission.calls == 0


async def test_a_flood_of_streams_past_capacity_gets_overloaded_never_internal(
        small_hub: Client, studio: FakeStudio) -> None:
    """Scaled down from the incident: many more Play streams than the limit, at once, over several
    connections, each sending its first message at once; every refused one is OVERLOADED."""
    hub = small_hub
    _, token = await hub.new_player(deposit=100)
    admitted = [await opened_stream(hub, token) for _ in range(STREAMS)]
    game_session_id = await launch(hub, token)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{hub.port}", options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(8)]

    async def one(i: int) -> str:
        async def requests() -> AsyncIterator[pb.PlayRequest]:
            yield pb.PlayRequest(open=pb.OpenAction(game_session_id=game_session_id, session_token=token))
            await asyncio.sleep(30)  # an admitted stream would stay open (none is expected)

        call = game_service_pb2_grpc.GameServiceStub(channels[i % len(channels)]).Play(
            requests(), metadata=hub.metadata, timeout=20)
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert_overloaded(err)
            return err.code().name
        return "OK"

    try:
        outcomes = collections.Counter(await asyncio.gather(*(one(i) for i in range(120))))
        assert outcomes == {"RESOURCE_EXHAUSTED": 120}
        await assert_health_and_reflection_answer(hub)
        await admitted.pop().close()
        await until(lambda: hub.server.admission.streams == STREAMS - 1)
        stream = await opened_stream(hub, token)  # a freed slot is taken again
        stream.bet(10, str(uuid.uuid4()))
        assert kinds(await stream.until("settled"))[-1] == "settled"
        admitted.append(stream)
    finally:
        for stream in admitted:
            await stream.close()
        for channel in channels:
            await channel.close()


async def test_a_deposit_whose_deadline_passes_while_queued_is_not_applied(small_hub: Client) -> None:
    hub = small_hub
    player_id, _ = await hub.new_player(deposit=100)
    before = hub.ledger_counts()
    key = str(uuid.uuid4())
    async with held_settlement_engine(hub):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await deposit(hub, player_id, 7, key, timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.sleep(0.1)  # the deadline has passed on the server too
    assert await hub.balance(player_id) == 100
    assert hub.ledger_counts() == before
    first = await deposit(hub, player_id, 7, key)
    again = await deposit(hub, player_id, 7, key)
    assert first == again and first.balance.amount_minor == 107
    assert hub.ledger_counts()[0] == before[0] + 1


async def test_a_bet_whose_stream_deadline_passes_while_queued_is_not_applied(
        small_hub: Client, studio: FakeStudio) -> None:
    """The bet runs in a task the stream does not own: the deadline must reach it, not only the stream."""
    hub = small_hub
    player_id, token = await hub.new_player(deposit=100)
    key = str(uuid.uuid4())
    stream = PlayStream(hub, timeout=1.0)
    stream.open(await launch(hub, token), token)
    assert (await stream.next()).WhichOneof("event") == "session_opened"
    async with held_settlement_engine(hub):
        stream.bet(10, key)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stream.next()
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.sleep(0.1)
    await stream.close()
    assert await hub.balance(player_id) == 100 and studio.plays == []
    retry = await opened_stream(hub, token)
    retry.bet(10, key)
    assert kinds(await retry.until("settled")) == ["round_opened", "bet_accepted", "outcome", "settled"]
    await retry.close()
    assert await hub.balance(player_id) == 90 and len(studio.plays) == 1
