"""Per-operator abuse limits (OperatorLimits in hub/servicers/admission.py): a token bucket of calls a second
and a cap on open Play streams, each refusal RESOURCE_EXHAUSTED with its own reason and a retry pushback,
nothing applied, logged; another operator is not affected."""

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from structlog.testing import capture_logs

from casinohub.v1 import (
    auth_service_pb2 as tpb,
    auth_service_pb2_grpc,
    common_pb2,
    game_service_pb2 as pb,
    wallet_service_pb2 as wpb,
)
from hub.servicers.admission import PUSHBACK_HEADER, Buckets, TokenBucket
from tests.e2e.play_client import PlayStream, kinds, launch, opened_stream
from tests.errors import error_info, reason_of
from tests.fakes import FakeStudio
from tests.support import Client, access_token, start_hub

RATE, BURST, STREAMS, PUSHBACK_MS = 0.5, 6, 2, 50  # a token every 2 s


async def other_operator(hub: Client) -> Client:
    """A second operator on the same hub, with its own credentials (and so its own limits)."""
    operator_id = f"op-b-{uuid.uuid4().hex[:8]}"
    await hub.server.hub.operators.ensure(operator_id, "Operator B")
    other = dataclasses.replace(hub, operator_id=operator_id)
    other.token = await asyncio.to_thread(access_token, hub.database_url, operator_id)
    return other


def pushback_ms(err: grpc.aio.AioRpcError) -> int:
    return int(dict(err.trailing_metadata() or ())[PUSHBACK_HEADER])


async def limited(database_url: str, studio: FakeStudio, **limits: object) -> AsyncIterator[Client]:
    client = await start_hub(database_url, {"fake": studio}, overload_pushback_ms=PUSHBACK_MS, **limits)
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)


@pytest.fixture
async def rate_limited_hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    async for client in limited(database_url, studio, rate_limit_per_s=RATE, rate_limit_burst=BURST):
        yield client


@pytest.fixture
async def stream_limited_hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    async for client in limited(database_url, studio, rate_limit_per_s=0, max_play_streams_per_operator=STREAMS):
        yield client


async def test_an_operator_past_its_rate_is_refused_with_a_pushback_and_nothing_applied(
        rate_limited_hub: Client) -> None:
    hub = rate_limited_hub
    b = await other_operator(hub)
    started = time.monotonic()
    player_id, _ = await b.new_player()  # two calls of B's burst
    applied = 0
    with capture_logs() as logs:
        for attempt in range(BURST + 20):
            try:
                await b.wallet.Deposit(wpb.DepositRequest(
                    player_id=player_id, amount=common_pb2.Money(currency="USD", amount_minor=10),
                    idempotency_key=f"dep-{attempt}"), metadata=b.metadata)
                applied += 1
            except grpc.aio.AioRpcError as err:
                refusal = err
                break
        else:
            raise AssertionError("never rate limited")
    # The burst, less the two set-up calls, and the tokens that came meanwhile (one every 2 s).
    assert BURST - 2 <= applied <= BURST - 2 + int((time.monotonic() - started) * RATE)
    assert reason_of(refusal) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert dict(error_info(refusal).metadata) == {"retryable": "true", "state": "NOT_APPLIED", "limit_per_s": "0.5"}
    assert 1 <= pushback_ms(refusal) <= 2000  # when the next token is there
    assert [(r["reason"], r["caller"]) for r in logs if r["event"] == "rpc.operator_limited"] == [
        ("RATE_LIMITED", b.operator_id)]
    # A Play stream opened by B now is refused the same way.
    stream = PlayStream(b)
    stream.send(pb.PlayRequest(open=pb.OpenAction(game_session_id=str(uuid.uuid4()), session_token="t")))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream.next()
    assert reason_of(err.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    await stream.close()
    # Operator A is not slowed by B.
    a_player, _ = await hub.new_player(deposit=100)
    assert await hub.balance(a_player) == 100
    # After the pushback B is served again, and only the deposits it was told were applied are.
    await asyncio.sleep(pushback_ms(err.value) / 1000)
    assert await b.balance(player_id) == 10 * applied


async def test_an_operator_past_its_open_streams_is_refused_until_one_closes(stream_limited_hub: Client) -> None:
    hub = stream_limited_hub
    _, token = await hub.new_player(deposit=100)
    open_streams = [await opened_stream(hub, token) for _ in range(STREAMS)]
    game_session_id = await launch(hub, token)
    try:
        with capture_logs() as logs:
            refused = PlayStream(hub)
            refused.open(game_session_id, token)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await refused.next()
            await refused.close()
        assert reason_of(err.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS")
        assert error_info(err.value).metadata["limit"] == str(STREAMS)
        assert PUSHBACK_MS <= pushback_ms(err.value) <= 2 * PUSHBACK_MS
        assert [(r["reason"], r["caller"]) for r in logs if r["event"] == "rpc.operator_limited"] == [
            ("TOO_MANY_STREAMS", hub.operator_id)]
        # Another operator still opens its own.
        b = await other_operator(hub)
        _, b_token = await b.new_player(deposit=100)
        b_stream = await opened_stream(b, b_token)
        open_streams.append(b_stream)
        # One of A's closes: A may open one again, and it plays.
        await open_streams.pop(0).close()
        for _ in range(100):
            if hub.server.operator_limits.streams[hub.operator_id] < STREAMS:
                break
            await asyncio.sleep(0.02)
        stream = await opened_stream(hub, token)
        open_streams.append(stream)
        stream.bet(10, str(uuid.uuid4()))
        assert kinds(await stream.until("settled"))[-1] == "settled"
    finally:
        for stream in open_streams:
            await stream.close()


def test_the_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # a token every half second
    assert bucket.take(100.25) == pytest.approx(0.25)  # refused calls take nothing
    assert bucket.take(100.5) == 0.0
    assert bucket.take(200.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # never more than the burst saved


async def test_token_issuing_is_limited_per_address(database_url: str, studio: FakeStudio) -> None:
    """IssueToken has no operator until it has hashed the secret: it is limited per peer address instead."""
    async for hub in limited(database_url, studio, token_issue_per_s=0.01, token_issue_burst=3):
        auth = auth_service_pb2_grpc.AuthServiceStub(hub.channel)
        outcomes = []
        with capture_logs() as logs:
            for _ in range(5):
                try:
                    await auth.IssueToken(tpb.IssueTokenRequest(key_id="ck_0000000000000000", secret="guess"))
                except grpc.aio.AioRpcError as err:
                    outcomes.append(reason_of(err)[1])
        assert outcomes[:3] == ["INVALID_CLIENT_CREDENTIALS"] * 3 and outcomes[3:] == ["RATE_LIMITED"] * 2
        assert [(r["reason"], r["caller"]) for r in logs if r["event"] == "rpc.operator_limited"] == [
            ("RATE_LIMITED", "peer 127.0.0.1")]
        # An authenticated operator's calls from the same address have their own bucket.
        assert (await hub.games.ListGames(pb.ListGamesRequest(), metadata=hub.metadata)).games


def test_buckets_past_their_key_limit_drop_only_the_refilled_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Buckets, "MAX_KEYS", 3)
    buckets = Buckets(rate_per_s=0.001, burst=1)
    assert [buckets.wait_s(k) for k in ("a", "b", "c")] == [0.0, 0.0, 0.0]  # each used its one token
    assert buckets.wait_s("d") == 0.0  # past the limit: nothing had refilled, nothing was dropped
    assert buckets.wait_s("a") > 0  # so "a" is still limited
    fast = Buckets(rate_per_s=1e9, burst=1)  # refilled again at once: the same as new buckets
    for key in ("a", "b", "c", "d"):
        fast.wait_s(key)
    assert set(fast._buckets) == {"d"}
    assert Buckets(rate_per_s=0, burst=1).wait_s("x") == 0.0  # rate 0: no limit
