"""Per-operator abuse limits (OperatorLimits in hub/servicers/admission.py): a token bucket of calls a second
and a cap on open Play streams, each refusal RESOURCE_EXHAUSTED with its own reason and a retry pushback,
nothing applied, logged; another operator is not affected. The figures come from the configuration or, per
operator, from AdminService.SetOperatorLimits (validated, read by every hub process within its TTL, split
across worker processes; the session cap too); studio keys have buckets of their own."""

import asyncio
import dataclasses
import math
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from structlog.testing import capture_logs

from casinohub.v1 import (
    admin_service_pb2 as apb,
    admin_service_pb2_grpc,
    auth_service_pb2 as tpb,
    auth_service_pb2_grpc,
    common_pb2,
    game_service_pb2 as pb,
    player_service_pb2 as ppb,
    wallet_service_pb2 as wpb,
)
from hub.operator_limits import InForce
from hub.servicers.admission import PUSHBACK_HEADER, Buckets, Share, TokenBucket, share_of
from tests.e2e.play_client import PlayStream, kinds, launch, opened_stream
from tests.e2e.test_provider_wallet import ADMIN, ADMIN_TOKEN, Studio, studio_key
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


# -- limits set through AdminService -------------------------------------------------------------------------

def admin_of(hub: Client) -> admin_service_pb2_grpc.AdminServiceStub:
    return admin_service_pb2_grpc.AdminServiceStub(hub.channel)


async def set_limits(hub: Client, operator_id: str, **figures: float) -> apb.SetOperatorLimitsResponse:
    return await admin_of(hub).SetOperatorLimits(apb.SetOperatorLimitsRequest(
        operator_id=operator_id, limits=apb.OperatorLimits(**figures)), metadata=ADMIN)  # type: ignore[arg-type]


async def deposits_until_refused(client: Client, player_id: str, most: int) -> tuple[int, grpc.aio.AioRpcError | None]:
    for attempt in range(most):
        try:
            await client.wallet.Deposit(wpb.DepositRequest(
                player_id=player_id, amount=common_pb2.Money(currency="USD", amount_minor=1),
                idempotency_key=f"dep-{uuid.uuid4()}"), metadata=client.metadata)
        except grpc.aio.AioRpcError as err:
            return attempt, err
    return most, None


@pytest.fixture
async def admin_hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    async for client in limited(database_url, studio, admin_token=ADMIN_TOKEN, session_cap=4):
        yield client


async def test_limits_unset_fall_back_to_the_defaults_and_set_ones_replace_them(admin_hub: Client) -> None:
    hub = admin_hub
    got = await admin_of(hub).GetOperatorLimits(apb.GetOperatorLimitsRequest(operator_id=hub.operator_id),
                                                metadata=ADMIN)
    assert got.limits == apb.OperatorLimits()  # nothing set
    assert got.effective == apb.OperatorLimits(rate_per_s=1000, burst=2000, max_play_streams=0, session_cap=4)
    changed = await set_limits(hub, hub.operator_id, rate_per_s=2.5, max_play_streams=0)
    assert changed.limits.HasField("max_play_streams") and not changed.limits.HasField("burst")  # 0 is set
    assert changed.effective == apb.OperatorLimits(rate_per_s=2.5, burst=2000, max_play_streams=0, session_cap=4)
    got = await admin_of(hub).GetOperatorLimits(apb.GetOperatorLimitsRequest(operator_id=hub.operator_id),
                                                metadata=ADMIN)
    assert (got.limits, got.effective) == (changed.limits, changed.effective)
    cleared = await set_limits(hub, hub.operator_id)  # every field absent: back to the defaults
    assert cleared.limits == apb.OperatorLimits() and cleared.effective.rate_per_s == 1000


@pytest.mark.parametrize(("field", "value"), [
    ("rate_per_s", -0.5), ("rate_per_s", 100_001.0), ("rate_per_s", math.nan), ("rate_per_s", math.inf),
    ("burst", 0), ("burst", 1_000_001), ("burst", -1), ("max_play_streams", -1), ("max_play_streams", 100_001),
    ("session_cap", 0), ("session_cap", 1_001)])
async def test_limits_out_of_range_are_refused_and_change_nothing(admin_hub: Client, field: str, value: float) -> None:
    hub = admin_hub
    await set_limits(hub, hub.operator_id, rate_per_s=7)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_limits(hub, hub.operator_id, **{"session_cap": 10, field: value})  # one bad figure of two
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "LIMIT_OUT_OF_RANGE")
    assert error_info(err.value).metadata["field"] == field
    got = await admin_of(hub).GetOperatorLimits(apb.GetOperatorLimitsRequest(operator_id=hub.operator_id),
                                                metadata=ADMIN)
    assert got.limits == apb.OperatorLimits(rate_per_s=7)


async def test_limits_of_an_unknown_operator_are_not_found(admin_hub: Client) -> None:
    for call in (set_limits(admin_hub, "no-such-operator", rate_per_s=1),
                 admin_of(admin_hub).GetOperatorLimits(apb.GetOperatorLimitsRequest(operator_id="no-such-operator"),
                                                       metadata=ADMIN)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "OPERATOR_NOT_FOUND")


async def test_a_low_rate_set_on_one_hub_process_limits_that_operator_on_another_within_the_ttl(
        admin_hub: Client, studio: FakeStudio) -> None:
    """The figure is set through one process and enforced by another (which reads it within its TTL, here
    0.5 s); operator B on the same process is not slowed."""
    other = await start_hub(admin_hub.database_url, {"fake": studio}, sandbox_operator_id=admin_hub.operator_id,
                            operator_limits_ttl_s=0.5, overload_pushback_ms=PUSHBACK_MS)
    try:
        a = other
        b = await other_operator(other)
        a_player, _ = await a.new_player()
        b_player, _ = await b.new_player()
        assert (await deposits_until_refused(a, a_player, 5))[1] is None  # the default: no refusal
        await set_limits(admin_hub, a.operator_id, rate_per_s=0.01, burst=2)
        started, refusal = time.monotonic(), None
        while refusal is None and time.monotonic() - started < 5:
            _, refusal = await deposits_until_refused(a, a_player, 5)
        assert refusal is not None, "the other process never applied the new rate"
        assert reason_of(refusal) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
        assert error_info(refusal).metadata["limit_per_s"] == "0.01" and pushback_ms(refusal) >= 1
        assert (await deposits_until_refused(b, b_player, 20))[1] is None
    finally:
        await other.channel.close()
        await other.server.stop(grace=1)


async def test_the_figures_are_split_across_worker_processes(database_url: str, studio: FakeStudio) -> None:
    """With --workers 2 a process enforces half of each figure: of a burst of 6, 3 calls here."""
    assert share_of(InForce(rate_per_s=10, burst=5, max_play_streams=3, session_cap=9), 4) == Share(2.5, 1, 1)
    assert share_of(InForce(rate_per_s=0, burst=2000, max_play_streams=0, session_cap=1), 3) == Share(0, 666, 0)
    async for hub in limited(database_url, studio, admin_token=ADMIN_TOKEN, workers=2):
        player_id, _ = await hub.new_player()
        await set_limits(hub, hub.operator_id, rate_per_s=0.02, burst=8)
        applied, refusal = await deposits_until_refused(hub, player_id, 10)
        assert applied == 4 and refusal is not None  # the fixed burst, halved
        assert error_info(refusal).metadata["limit_per_s"] == "0.01"


async def test_a_stream_cap_set_through_admin_refuses_that_operator_only(admin_hub: Client) -> None:
    hub = admin_hub
    await set_limits(hub, hub.operator_id, max_play_streams=1)
    _, token = await hub.new_player(deposit=100)
    b = await other_operator(hub)
    _, b_token = await b.new_player(deposit=100)
    streams = [await opened_stream(hub, token)]
    try:
        refused = PlayStream(hub)
        refused.open(await launch(hub, token), token)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await refused.next()
        await refused.close()
        assert reason_of(err.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS")
        assert error_info(err.value).metadata["limit"] == "1" and pushback_ms(err.value) >= PUSHBACK_MS
        streams += [await opened_stream(b, b_token), await opened_stream(b, b_token)]  # B: no cap
    finally:
        for stream in streams:
            await stream.close()


async def test_a_session_cap_set_through_admin_overrides_the_configured_one(
        database_url: str, studio: FakeStudio) -> None:
    operator_id = f"op-{uuid.uuid4().hex[:12]}"
    async for hub in limited(database_url, studio, admin_token=ADMIN_TOKEN, sandbox_operator_id=operator_id,
                             session_caps={operator_id: 3}):
        username = f"p{uuid.uuid4().hex[:10]}"
        await hub.players.RegisterPlayer(ppb.RegisterPlayerRequest(username=username, password="correct-horse"),
                                         metadata=hub.metadata)
        assert (await set_limits(hub, operator_id, session_cap=1)).effective.session_cap == 1
        login = ppb.LoginRequest(username=username, password="correct-horse")
        first = await hub.players.Login(login, metadata=hub.metadata)
        second = await hub.players.Login(login, metadata=hub.metadata)  # past the cap of 1: the oldest login ends
        await launch(hub, second.session_token)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await launch(hub, first.session_token)
        assert reason_of(err.value) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_REVOKED")
        sessions = await hub.players.ListSessions(ppb.ListSessionsRequest(player_id=second.player_id),
                                                  metadata=hub.metadata)
        assert [s.session_id for s in sessions.sessions] == [second.session_id]


async def test_studio_calls_are_limited_per_studio_key(database_url: str, studio: FakeStudio) -> None:
    """ProviderWalletService: each studio key has its own bucket; another key and the operators are not
    slowed."""
    async for hub in limited(database_url, studio, admin_token=ADMIN_TOKEN, studio_rate_limit_per_s=0.01,
                             studio_rate_limit_burst=3):
        player_id, token = await hub.new_player(deposit=100)
        session = await launch(hub, token)
        keys = [await studio_key(hub, "fake") for _ in range(2)]
        first, second = (Studio(hub.channel, key_id, private, session, player_id) for key_id, private in keys)
        outcomes = []
        with capture_logs() as logs:
            for _ in range(5):
                try:
                    outcomes.append((await first.balance(), ""))
                except grpc.aio.AioRpcError as err:
                    outcomes.append((0, reason_of(err)[1]))
                    refusal = err
        assert outcomes == [(100, "")] * 3 + [(0, "RATE_LIMITED")] * 2
        assert reason_of(refusal)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED and pushback_ms(refusal) >= 1
        assert [(r["reason"], r["caller"], r["refused"]) for r in logs if r["event"] == "rpc.operator_limited"] == [
            ("RATE_LIMITED", f"studio key {first.key_id}", 1)]  # a count: the second refusal in the same second
        assert await second.balance() == 100
        assert await hub.balance(player_id) == 100


def test_a_bucket_whose_figures_change_keeps_what_it_saved_up_to_the_new_burst() -> None:
    buckets = Buckets()
    bucket = TokenBucket(rate=1.0, burst=10, now=0.0)
    bucket.take(0.0)  # 9 left
    bucket.change(rate=0.5, burst=4, now=2.0)  # refilled to 10 at the old rate, then cut to the new burst
    assert bucket.tokens == 4 and bucket.rate == 0.5
    assert [bucket.take(2.0) for _ in range(4)] == [0.0] * 4 and bucket.take(2.0) == pytest.approx(2.0)
    assert buckets.wait_s("op", 0.001, 1) == 0.0 and buckets.wait_s("op", 0.001, 1) > 0
    assert buckets.wait_s("op", 0, 1) == 0.0  # set to no limit: served at once
