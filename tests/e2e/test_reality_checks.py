"""Reality checks through the gRPC API, on SQLite and MariaDB (PlayerService.SetRealityCheckInterval,
hub.reality): a Play stream gets a RealityCheck every interval of the login's play time, with the time
played, the net result and the bet count since Login; it has seq 0, is not stored (Resume never repeats it)
and blocks nothing, while the session time limit still stops play. Time moves through the hub's clock
(hub.clock.travel); an idle stream sees a check within reality_check_poll_s (50 ms here)."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from casinohub.v1 import game_service_pb2 as gpb, player_service_pb2 as ppb
from hub import clock
from tests.e2e.play_client import PlayStream, kinds, launch
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, start_hub

PASSWORD = "correct-horse"


@pytest.fixture
async def hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    client = await start_hub(database_url, {"fake": studio}, session_ttl_s=7_200, session_idle_s=7_200,
                             session_max_s=86_400, reality_check_poll_s=0.05)
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)


@pytest.fixture(autouse=True)
def restore_clock() -> Iterator[None]:
    yield
    clock.reset()


async def player(hub: Client, minutes: int, deposit: int = 10_000) -> tuple[str, str, datetime]:
    """A funded player with a reality-check interval, logged in: (player_id, session token, login time)."""
    player_id, token = await hub.new_player(deposit=deposit)
    if minutes:
        answer = await hub.players.SetRealityCheckInterval(ppb.SetRealityCheckIntervalRequest(
            player_id=player_id, minutes=minutes), metadata=hub.metadata)
        assert answer.reality_check.minutes == minutes
    sessions = await hub.players.ListSessions(ppb.ListSessionsRequest(player_id=player_id), metadata=hub.metadata)
    return player_id, token, sessions.sessions[0].created_at.ToDatetime(UTC).replace(tzinfo=None)


def travel_to(when: datetime) -> None:
    clock.travel(when - clock.utcnow())


async def opened(hub: Client, token: str, game_session_id: str = "") -> PlayStream:
    stream = PlayStream(hub)
    stream.open(game_session_id or await launch(hub, token), token)
    assert (await stream.next()).WhichOneof("event") == "session_opened"
    return stream


async def bet(stream: PlayStream, amount: int) -> list[gpb.PlayResponse]:
    stream.bet(amount, f"bet-{uuid.uuid4()}")
    return await stream.until("settled", "error")


async def test_a_stream_gets_a_reality_check_every_interval_and_plays_on(hub: Client, studio: FakeStudio) -> None:
    studio.win = lambda stake: 3 * stake if stake == 300 else 0
    player_id, token, logged_in = await player(hub, minutes=30, deposit=10_000)
    limits = await hub.players.GetPlayerLimits(ppb.GetPlayerLimitsRequest(player_id=player_id), metadata=hub.metadata)
    assert limits.reality_check.minutes == 30
    game_session_id = await launch(hub, token)
    stream = await opened(hub, token, game_session_id)
    assert kinds(await bet(stream, 100)) == ["round_opened", "bet_accepted", "outcome", "settled"]  # lost 100
    travel_to(logged_in + timedelta(minutes=29, seconds=50))
    assert "reality_check" not in kinds(await bet(stream, 300))  # won 600 net: not due yet

    travel_to(logged_in + timedelta(minutes=30))
    check = await stream.next(timeout=5)  # the idle stream: within reality_check_poll_s
    assert check.WhichOneof("event") == "reality_check" and (check.seq, check.replay_of_seq) == (0, 0)
    assert 1_800 <= check.reality_check.elapsed_seconds < 1_800 + 30
    assert (check.reality_check.net_result.currency, check.reality_check.net_result.amount_minor) == ("USD", 500)
    assert (check.reality_check.bet_count, check.reality_check.interval_minutes) == (2, 30)

    # The next is due at 60 minutes: looked for before each message, so it comes ahead of the bet's events.
    travel_to(logged_in + timedelta(minutes=59))
    assert "reality_check" not in kinds(await bet(stream, 200))  # lost 200
    travel_to(logged_in + timedelta(minutes=61))
    events = await bet(stream, 100)
    assert kinds(events) == ["reality_check", "round_opened", "bet_accepted", "outcome", "settled"]
    assert 3_660 <= events[0].reality_check.elapsed_seconds < 3_660 + 30
    assert (events[0].reality_check.net_result.amount_minor, events[0].reality_check.bet_count) == (300, 3)
    assert await hub.balance(player_id) == 10_000 + 300 - 100  # play went on: the last bet lost too

    # A check is not a stored event: the session's log has no gap and no check, and a Resume repeats none.
    await stream.close()
    resumed = PlayStream(hub)
    resumed.resume(game_session_id, token, 0)
    replayed = [await resumed.next() for _ in range(1 + 4 * 4 + 1)]  # opened, 4 rounds, then opened again
    await resumed.close()
    assert "reality_check" not in kinds(replayed)
    assert [e.seq for e in replayed] == list(range(1, 19)) and kinds(replayed[-1:]) == ["session_opened"]


async def test_a_stream_opened_later_shows_the_next_check_and_the_time_limit_still_stops_play(
        hub: Client) -> None:
    player_id, token, logged_in = await player(hub, minutes=20)
    await hub.players.SetSessionTimeLimit(ppb.SetSessionTimeLimitRequest(player_id=player_id, minutes=45),
                                          metadata=hub.metadata)
    travel_to(logged_in + timedelta(minutes=25))  # the 20-minute check fell due with no stream open
    stream = await opened(hub, token)
    assert "reality_check" not in kinds(await bet(stream, 100))  # not shown late: the next is at 40
    travel_to(logged_in + timedelta(minutes=40))
    assert (await stream.next(timeout=5)).reality_check.elapsed_seconds >= 2_400
    travel_to(logged_in + timedelta(minutes=45))
    refused = await bet(stream, 100)
    assert refused[-1].error.error.reason == "SESSION_TIME_LIMIT_REACHED"  # the hard stop, not the check
    await stream.close()


async def test_without_an_interval_or_once_it_is_off_no_check_is_sent(hub: Client) -> None:
    no_interval_id, no_interval_token, logged_in = await player(hub, minutes=0)
    limits = await hub.players.GetPlayerLimits(ppb.GetPlayerLimitsRequest(player_id=no_interval_id),
                                               metadata=hub.metadata)
    assert not limits.HasField("reality_check")
    off_id, off_token, _ = await player(hub, minutes=10)
    off = await hub.players.SetRealityCheckInterval(ppb.SetRealityCheckIntervalRequest(
        player_id=off_id, minutes=0), metadata=hub.metadata)
    assert off.reality_check.minutes == 0
    limits = await hub.players.GetPlayerLimits(ppb.GetPlayerLimitsRequest(player_id=off_id), metadata=hub.metadata)
    assert not limits.HasField("reality_check")
    streams = [await opened(hub, no_interval_token), await opened(hub, off_token)]
    travel_to(logged_in + timedelta(hours=3))
    for stream in streams:
        assert "reality_check" not in kinds(await bet(stream, 100))
        await stream.close()


async def test_an_open_stream_follows_a_change_of_interval_at_its_next_check(hub: Client) -> None:
    player_id, token, logged_in = await player(hub, minutes=10)
    stream = await opened(hub, token)
    await hub.players.SetRealityCheckInterval(ppb.SetRealityCheckIntervalRequest(player_id=player_id, minutes=0),
                                              metadata=hub.metadata)
    travel_to(logged_in + timedelta(minutes=10))
    await asyncio.sleep(0.3)  # a few polls: the idle stream finds the check due, then the interval off
    assert "reality_check" not in kinds(await bet(stream, 100))  # and still reads its next message
    travel_to(logged_in + timedelta(minutes=30))
    assert "reality_check" not in kinds(await bet(stream, 100))
    await stream.close()


async def test_the_interval_changes_at_once_either_way_and_bad_values_are_refused(hub: Client) -> None:
    player_id, _, _ = await player(hub, minutes=60)
    for minutes in (10, 120, 5, 1_440):  # lowering and raising alike: a reminder has no cooling-off
        answer = await hub.players.SetRealityCheckInterval(ppb.SetRealityCheckIntervalRequest(
            player_id=player_id, minutes=minutes), metadata=hub.metadata)
        limits = await hub.players.GetPlayerLimits(ppb.GetPlayerLimitsRequest(player_id=player_id),
                                                   metadata=hub.metadata)
        assert answer.reality_check.minutes == limits.reality_check.minutes == minutes
    for minutes in (-1, 1, 4, 1_441):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await hub.players.SetRealityCheckInterval(ppb.SetRealityCheckIntervalRequest(
                player_id=player_id, minutes=minutes), metadata=hub.metadata)
        assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"), minutes
    other = await start_hub(hub.database_url, {"fake": FakeStudio()})  # another operator on the same database
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await other.players.SetRealityCheckInterval(ppb.SetRealityCheckIntervalRequest(
                player_id=player_id, minutes=30), metadata=other.metadata)
        assert reason_of(err.value) == (grpc.StatusCode.PERMISSION_DENIED, "OBJECT_OF_ANOTHER_OPERATOR")
    finally:
        await other.channel.close()
        await other.server.stop(grace=1)
    limits = await hub.players.GetPlayerLimits(ppb.GetPlayerLimitsRequest(player_id=player_id), metadata=hub.metadata)
    assert limits.reality_check.minutes == 1_440  # nothing refused changed it
