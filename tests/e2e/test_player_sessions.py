"""Player sessions through the gRPC API, on SQLite and MariaDB: token expiry, idle logout, refresh rotation,
reuse detection revoking the whole login, the session cap (the oldest ends), Logout and ListSessions.
Time moves through the hub's clock (hub.clock.travel), never by sleeping."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import grpc
import pytest

from casinohub.v1 import common_pb2, player_service_pb2 as ppb, wallet_service_pb2 as wpb
from hub import clock
from tests.e2e.play_client import launch, opened_stream
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, start_hub

PASSWORD = "correct-horse"


@pytest.fixture
def travel() -> Iterator[object]:
    yield clock.travel
    clock.reset()


@pytest.fixture
async def hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    """Minutes-long tokens and idle time, a cap of 3 sessions for this operator (the default is 5)."""
    operator_id = f"op-{uuid.uuid4().hex[:12]}"
    client = await start_hub(database_url, {"fake": studio}, sandbox_operator_id=operator_id, session_ttl_s=300,
                             session_idle_s=600, session_max_s=3_600, session_caps={operator_id: 3})
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)


async def register(hub: Client) -> str:
    username = f"p{uuid.uuid4().hex[:10]}"
    await hub.players.RegisterPlayer(ppb.RegisterPlayerRequest(username=username, password=PASSWORD),
                                     metadata=hub.metadata)
    return username


async def login(hub: Client, username: str) -> ppb.LoginResponse:
    return await hub.players.Login(ppb.LoginRequest(username=username, password=PASSWORD), metadata=hub.metadata)


async def refresh(hub: Client, refresh_token: str) -> ppb.RefreshSessionResponse:
    return await hub.players.RefreshSession(ppb.RefreshSessionRequest(refresh_token=refresh_token),
                                            metadata=hub.metadata)


async def refused(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return reason_of(err.value)


async def live(hub: Client, player_id: str, page_size: int = 0) -> list[str]:
    ids, token = [], ""
    while True:
        page = await hub.players.ListSessions(ppb.ListSessionsRequest(player_id=player_id, page_size=page_size,
                                                                      page_token=token), metadata=hub.metadata)
        ids += [s.session_id for s in page.sessions]
        if not (token := page.next_page_token):
            return ids


UNAUTH = grpc.StatusCode.UNAUTHENTICATED


async def test_login_returns_a_short_lived_session_token_and_a_refresh_token(hub: Client, travel) -> None:  # type: ignore[no-untyped-def]
    first = await login(hub, await register(hub))
    assert first.session_token.startswith("chs_") and first.refresh_token.startswith("chr_")
    assert (first.expires_at.ToDatetime() - first.refresh_expires_at.ToDatetime()) < timedelta(seconds=-3_000)
    await launch(hub, first.session_token)  # what LaunchGame and Play accept
    travel(timedelta(seconds=301))  # past the token's 300 s, within the login's idle 600 s
    assert await refused(launch(hub, first.session_token)) == (UNAUTH, "SESSION_EXPIRED")
    second = await refresh(hub, first.refresh_token)
    assert second.session_id == first.session_id and second.player_id == first.player_id
    await launch(hub, second.session_token)
    travel(timedelta(seconds=3_600))  # past the login's hard end: the refresh token dies with it
    assert await refused(refresh(hub, second.refresh_token)) == (UNAUTH, "SESSION_EXPIRED")


async def test_a_session_unused_for_the_idle_timeout_ends(hub: Client, travel) -> None:  # type: ignore[no-untyped-def]
    session = await login(hub, await register(hub))
    travel(timedelta(seconds=250))
    await launch(hub, session.session_token)  # a use: the idle clock starts again
    travel(timedelta(seconds=250))
    session = await refresh(hub, session.refresh_token)  # 500 s after Login, 250 s after its last use
    travel(timedelta(seconds=290))
    await launch(hub, session.session_token)
    travel(timedelta(seconds=599))
    session = await refresh(hub, session.refresh_token)  # idle 1 s short of the timeout
    assert await live(hub, session.player_id) == [session.session_id]
    travel(timedelta(seconds=600))  # idle exactly the timeout: ended
    assert await refused(refresh(hub, session.refresh_token)) == (UNAUTH, "SESSION_EXPIRED")
    assert await refused(launch(hub, session.session_token)) == (UNAUTH, "SESSION_EXPIRED")
    assert await live(hub, session.player_id) == []


async def test_refresh_rotates_and_the_old_pair_stops_working(hub: Client) -> None:
    first = await login(hub, await register(hub))
    second = await refresh(hub, first.refresh_token)
    assert {second.session_token, second.refresh_token}.isdisjoint({first.session_token, first.refresh_token})
    assert await refused(launch(hub, first.session_token)) == (UNAUTH, "SESSION_REVOKED")
    third = await refresh(hub, second.refresh_token)
    await launch(hub, third.session_token)


async def test_a_reused_refresh_token_revokes_every_token_of_its_login(hub: Client) -> None:
    username = await register(hub)
    stolen = await login(hub, username)
    other_login = await login(hub, username)
    player = await refresh(hub, stolen.refresh_token)  # the player rotates; the thief kept the old one
    thief = await refresh(hub, player.refresh_token)  # ...or the thief rotates first: either way
    assert await refused(refresh(hub, stolen.refresh_token)) == (UNAUTH, "REFRESH_TOKEN_REUSED")
    for token in (player.session_token, thief.session_token):
        assert await refused(launch(hub, token)) == (UNAUTH, "SESSION_REVOKED")
    assert await refused(refresh(hub, thief.refresh_token)) == (UNAUTH, "SESSION_REVOKED")
    assert await refused(refresh(hub, player.refresh_token)) == (UNAUTH, "REFRESH_TOKEN_REUSED")
    # Only that login: the player's other one goes on.
    await launch(hub, other_login.session_token)
    assert await live(hub, other_login.player_id) == [other_login.session_id]


async def test_two_concurrent_exchanges_of_one_refresh_token_are_a_reuse(hub: Client) -> None:
    session = await login(hub, await register(hub))
    results = await asyncio.gather(refresh(hub, session.refresh_token), refresh(hub, session.refresh_token),
                                   return_exceptions=True)
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(errors) >= 1 and all(reason_of(e) == (UNAUTH, "REFRESH_TOKEN_REUSED") for e in errors)
    assert await live(hub, session.player_id) == []  # the winner's new pair is revoked too


async def test_at_the_cap_the_oldest_session_ends(hub: Client, travel) -> None:  # type: ignore[no-untyped-def]
    username = await register(hub)
    sessions = []
    for _ in range(3):
        sessions.append(await login(hub, username))
        travel(timedelta(seconds=1))
    player_id = sessions[0].player_id
    assert await live(hub, player_id) == [s.session_id for s in reversed(sessions)]
    fourth = await login(hub, username)  # the cap is 3 for this operator
    assert await refused(launch(hub, sessions[0].session_token)) == (UNAUTH, "SESSION_REVOKED")
    assert await refused(refresh(hub, sessions[0].refresh_token)) == (UNAUTH, "SESSION_REVOKED")
    for s in (*sessions[1:], fourth):
        await launch(hub, s.session_token)
    assert await live(hub, player_id, page_size=2) == [s.session_id for s in (fourth, sessions[2], sessions[1])]


async def test_concurrent_logins_never_pass_the_cap(hub: Client) -> None:
    username = await register(hub)
    logins = await asyncio.gather(*(login(hub, username) for _ in range(6)))
    assert len(await live(hub, logins[0].player_id)) == 3


async def test_logout_ends_the_session_and_its_refresh_token(hub: Client) -> None:
    username = await register(hub)
    session, other = await login(hub, username), await login(hub, username)
    await hub.players.Logout(ppb.LogoutRequest(session_token=session.session_token), metadata=hub.metadata)
    await hub.players.Logout(ppb.LogoutRequest(session_token=session.session_token), metadata=hub.metadata)  # again: OK
    assert await refused(launch(hub, session.session_token)) == (UNAUTH, "SESSION_REVOKED")
    assert await refused(refresh(hub, session.refresh_token)) == (UNAUTH, "SESSION_REVOKED")
    assert await live(hub, session.player_id) == [other.session_id]
    assert await refused(hub.players.Logout(ppb.LogoutRequest(session_token="chs_" + "x" * 43),
                                            metadata=hub.metadata)) == (UNAUTH, "INVALID_SESSION")


async def test_list_sessions_pages_and_refuses_a_foreign_page_token(hub: Client) -> None:
    username, other = await register(hub), await register(hub)
    mine = [await login(hub, username) for _ in range(3)]
    theirs = await login(hub, other)
    assert sorted(await live(hub, mine[0].player_id, page_size=1)) == sorted(s.session_id for s in mine)
    page = await hub.players.ListSessions(ppb.ListSessionsRequest(player_id=mine[0].player_id, page_size=1),
                                          metadata=hub.metadata)
    assert page.sessions[0].idle_expires_at.ToDatetime() > page.sessions[0].last_used_at.ToDatetime()
    assert await refused(hub.players.ListSessions(ppb.ListSessionsRequest(
        player_id=theirs.player_id, page_token=page.next_page_token), metadata=hub.metadata)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
    assert await refused(hub.players.ListSessions(ppb.ListSessionsRequest(player_id="nobody"),
                                                  metadata=hub.metadata)) == (grpc.StatusCode.NOT_FOUND,
                                                                              "PLAYER_NOT_FOUND")



async def deposit(hub: Client, player_id: str, amount: int) -> None:
    await hub.wallet.Deposit(wpb.DepositRequest(player_id=player_id, idempotency_key=f"d-{uuid.uuid4()}",
                                                amount=common_pb2.Money(currency="USD", amount_minor=amount)),
                             metadata=hub.metadata)


async def test_after_logout_an_open_play_stream_takes_no_more_bets(hub: Client) -> None:
    session = await login(hub, await register(hub))
    await deposit(hub, session.player_id, 1_000)
    stream = await opened_stream(hub, session.session_token)
    stream.bet(100, "before")
    assert (await stream.until("settled", "error"))[-1].WhichOneof("event") == "settled"
    await hub.players.Logout(ppb.LogoutRequest(session_token=session.session_token), metadata=hub.metadata)
    stream.bet(100, "after")
    refusal = (await stream.until("settled", "error"))[-1].error
    assert refusal.error.reason == "SESSION_REVOKED"
    await stream.close()
    assert await hub.balance(session.player_id) == refusal.balance.amount_minor


async def test_bets_on_a_play_stream_keep_the_session_from_idling(hub: Client, travel) -> None:  # type: ignore[no-untyped-def]
    session = await login(hub, await register(hub))
    await deposit(hub, session.player_id, 1_000)
    stream = await opened_stream(hub, session.session_token)
    for _ in range(3):  # 1,200 s in all, never 600 s without a bet
        travel(timedelta(seconds=400))
        stream.bet(10, f"b-{uuid.uuid4()}")
        assert (await stream.until("settled", "error"))[-1].WhichOneof("event") == "settled"
    session = await refresh(hub, session.refresh_token)  # alive: the bets were uses
    travel(timedelta(seconds=600))  # now idle for the whole timeout
    stream.bet(10, f"b-{uuid.uuid4()}")
    assert (await stream.until("settled", "error"))[-1].error.error.reason == "SESSION_EXPIRED"
    await stream.close()
