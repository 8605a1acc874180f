"""Responsible gaming through the gRPC API, on SQLite and MariaDB: self-exclusion (bets and deposits
refused, wins and refunds paid), deposit and loss limits at their boundaries, concurrent bets against a
loss limit, lowering at once and raising after the cooling-off, and the session time limit. Time moves
through the hub's clock (hub.clock.travel), never by sleeping."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import grpc
import pytest

from adapters.base import PlayInput, PlayResult, ProviderUnavailable
from casinohub.v1 import common_pb2, player_service_pb2 as ppb, wallet_service_pb2 as wpb
from hub import clock
from tests.e2e.play_client import PlayStream, opened_stream
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, start_hub

PASSWORD = "correct-horse"
DAY, WEEK, MONTH = ppb.LIMIT_PERIOD_DAY, ppb.LIMIT_PERIOD_WEEK, ppb.LIMIT_PERIOD_MONTH
REFUSED = grpc.StatusCode.FAILED_PRECONDITION


@dataclass
class GatedStudio(FakeStudio):
    """Rounds wait for the test to open the gate: a round can be in play while the player is excluded."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    failing_players: set[str] = field(default_factory=set)  # their rounds fail at the studio

    async def play(self, request: PlayInput) -> PlayResult:
        await self.gate.wait()
        if request.player_id in self.failing_players:
            raise ProviderUnavailable("down")
        return await super().play(request)


@pytest.fixture
def studio() -> GatedStudio:
    studio = GatedStudio()
    studio.gate.set()
    return studio


@pytest.fixture
async def hub(database_url: str, studio: GatedStudio) -> AsyncIterator[Client]:
    client = await start_hub(database_url, {"fake": studio}, session_ttl_s=7_200, session_idle_s=7_200,
                             session_max_s=86_400)
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)


@pytest.fixture(autouse=True)
def restore_clock() -> Iterator[None]:
    yield
    clock.reset()


def travel_to(when: datetime) -> None:
    clock.travel(when - clock.utcnow())


def start_of_month_2nd() -> datetime:
    """00:00 UTC on the 2nd of next month: a day, week or month window boundary is hours away at most
    on one side and a day away on the other, so tests land where they mean to."""
    now = clock.utcnow()
    first = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first + timedelta(days=1)


def usd(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency="USD", amount_minor=amount)


@dataclass
class Player:
    player_id: str
    username: str
    token: str


async def new_player(hub: Client, deposit: int = 0) -> Player:
    username = f"p{uuid.uuid4().hex[:10]}"
    await hub.players.RegisterPlayer(ppb.RegisterPlayerRequest(username=username, password=PASSWORD),
                                     metadata=hub.metadata)
    login = await hub.players.Login(ppb.LoginRequest(username=username, password=PASSWORD), metadata=hub.metadata)
    player = Player(login.player_id, username, login.session_token)
    if deposit:
        await pay_in(hub, player, deposit)
    return player


async def log_in(hub: Client, player: Player) -> str:
    login = await hub.players.Login(ppb.LoginRequest(username=player.username, password=PASSWORD),
                                    metadata=hub.metadata)
    return login.session_token


async def pay_in(hub: Client, player: Player, amount: int) -> wpb.DepositResponse:
    return await hub.wallet.Deposit(wpb.DepositRequest(player_id=player.player_id, amount=usd(amount),
                                                       idempotency_key=f"d-{uuid.uuid4()}"), metadata=hub.metadata)


async def refused(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return reason_of(err.value)


async def bet(stream: PlayStream, amount: int) -> str:
    """"settled", or the reason the bet was refused."""
    stream.bet(amount, f"b-{uuid.uuid4()}")
    last = (await stream.until("settled", "error"))[-1]
    return "settled" if last.WhichOneof("event") == "settled" else last.error.error.reason


async def set_deposit_limit(hub: Client, player: Player, period: int, amount: int) -> ppb.MoneyLimit:
    return (await hub.players.SetDepositLimit(ppb.SetDepositLimitRequest(
        player_id=player.player_id, period=period, amount=usd(amount)), metadata=hub.metadata)).limit


async def set_loss_limit(hub: Client, player: Player, period: int, amount: int) -> ppb.MoneyLimit:
    return (await hub.players.SetLossLimit(ppb.SetLossLimitRequest(
        player_id=player.player_id, period=period, amount=usd(amount)), metadata=hub.metadata)).limit


async def limits(hub: Client, player: Player) -> ppb.GetPlayerLimitsResponse:
    return await hub.players.GetPlayerLimits(ppb.GetPlayerLimitsRequest(player_id=player.player_id),
                                             metadata=hub.metadata)


async def self_exclude(hub: Client, player: Player, days: int = 0) -> ppb.SelfExclusion:
    return (await hub.players.SelfExclude(ppb.SelfExcludeRequest(player_id=player.player_id, days=days,
                                                                 indefinite=not days),
                                          metadata=hub.metadata)).self_exclusion


# -- self-exclusion -----------------------------------------------------------------------------------------

async def test_a_self_excluded_player_cannot_bet_or_deposit_but_wins_and_refunds_are_paid(
        hub: Client, studio: GatedStudio) -> None:
    player = await new_player(hub, deposit=1_000)
    stream = await opened_stream(hub, player.token)
    studio.win = lambda stake: 3 * stake
    studio.gate.clear()  # the next two rounds stay in play until the player has excluded themself
    stream.bet(100, "won-later")
    assert (await stream.until("bet_accepted"))[-1].bet_accepted.balance.amount_minor == 900
    other = await new_player(hub, deposit=1_000)
    other_stream = await opened_stream(hub, other.token)
    other_stream.bet(100, "refunded-later")
    await other_stream.until("bet_accepted")

    exclusion = await self_exclude(hub, player, days=30)
    assert exclusion.ends_at.ToDatetime() - exclusion.started_at.ToDatetime() == timedelta(days=30)
    await self_exclude(hub, other)  # indefinitely

    studio.failing_players.add(other.player_id)
    studio.gate.set()
    assert (await stream.until("settled"))[-1].settled.balance.amount_minor == 1_200  # the win is paid
    await other_stream.until("error")  # the round failed at the studio: the stake is refunded
    assert await hub.balance(other.player_id) == 1_000

    counts = hub.ledger_counts()
    assert await bet(stream, 100) == "SELF_EXCLUDED"
    assert await refused(pay_in(hub, player, 100)) == (REFUSED, "SELF_EXCLUDED")
    assert await refused(pay_in(hub, other, 100)) == (REFUSED, "SELF_EXCLUDED")
    assert hub.ledger_counts() == counts and await hub.balance(player.player_id) == 1_200
    # Login stays open (to see the balance and withdraw); a withdrawal works.
    await hub.players.Login(ppb.LoginRequest(username=player.username, password=PASSWORD), metadata=hub.metadata)
    await hub.wallet.Withdraw(wpb.WithdrawRequest(player_id=player.player_id, amount=usd(200),
                                                  idempotency_key=f"w-{uuid.uuid4()}"), metadata=hub.metadata)
    await stream.close()
    await other_stream.close()

    # Never shortened: asking for a day answers the 30 days in force.
    assert (await self_exclude(hub, player, days=1)).ends_at == exclusion.ends_at
    assert (await limits(hub, player)).self_exclusion.ends_at == exclusion.ends_at
    clock.travel(timedelta(days=30))
    assert not (await limits(hub, player)).HasField("self_exclusion")
    await pay_in(hub, player, 100)
    assert await bet(await opened_stream(hub, await log_in(hub, player)), 100) == "settled"
    assert (await limits(hub, other)).self_exclusion.indefinite
    assert await refused(pay_in(hub, other, 100)) == (REFUSED, "SELF_EXCLUDED")


# -- deposit and loss limits at their boundaries ---------------------------------------------------------

@pytest.mark.parametrize("period", [DAY, WEEK, MONTH])
async def test_deposits_up_to_the_limit_are_accepted_and_one_minor_unit_more_is_refused(
        hub: Client, period: int) -> None:
    travel_to(start_of_month_2nd() + timedelta(hours=1))
    player = await new_player(hub)
    await set_deposit_limit(hub, player, period, 1_000)
    await pay_in(hub, player, 600)
    await pay_in(hub, player, 400)  # exactly at the limit
    assert await refused(pay_in(hub, player, 1)) == (REFUSED, "DEPOSIT_LIMIT_EXCEEDED")
    assert await hub.balance(player.player_id) == 1_000
    clock.travel({DAY: timedelta(days=1), WEEK: timedelta(days=7), MONTH: timedelta(days=31)}[period])
    await pay_in(hub, player, 1_000)  # a new window


@pytest.mark.parametrize("period", [DAY, WEEK, MONTH])
async def test_bets_up_to_the_loss_limit_are_accepted_and_one_minor_unit_more_is_refused(
        hub: Client, studio: GatedStudio, period: int) -> None:
    travel_to(start_of_month_2nd() + timedelta(hours=1))
    player = await new_player(hub, deposit=10_000)
    await set_loss_limit(hub, player, period, 300)
    stream = await opened_stream(hub, player.token)
    studio.win = lambda stake: 2 * stake if stake == 50 else 0
    assert await bet(stream, 50) == "settled"  # won 100 for 50: the loss so far is -50
    assert await bet(stream, 100) == "settled"  # lost: 50
    assert await bet(stream, 250) == "settled"  # lost: exactly 300
    assert await bet(stream, 1) == "LOSS_LIMIT_EXCEEDED"
    assert await hub.balance(player.player_id) == 10_000 - 300
    await stream.close()
    clock.travel({DAY: timedelta(days=1), WEEK: timedelta(days=7), MONTH: timedelta(days=31)}[period])
    assert await bet(await opened_stream(hub, await log_in(hub, player)), 300) == "settled"  # a new window


async def test_concurrent_bets_never_overshoot_a_loss_limit(hub: Client) -> None:
    player = await new_player(hub, deposit=100_000)
    await set_loss_limit(hub, player, DAY, 1_000)
    streams = [await opened_stream(hub, player.token) for _ in range(6)]

    async def bets(stream: PlayStream) -> list[str]:
        return [await bet(stream, 100) for _ in range(5)]

    outcomes = [o for batch in await asyncio.gather(*(bets(s) for s in streams)) for o in batch]
    assert outcomes.count("settled") == 10 and outcomes.count("LOSS_LIMIT_EXCEEDED") == 20
    assert await hub.balance(player.player_id) == 100_000 - 1_000
    for stream in streams:
        await stream.close()


# -- lowering at once, raising after the cooling-off ----------------------------------------------------

async def test_a_limit_is_lowered_at_once_and_raised_only_after_the_cooling_off(hub: Client) -> None:
    travel_to(start_of_month_2nd())
    player = await new_player(hub)
    limit = await set_deposit_limit(hub, player, MONTH, 1_000)
    assert limit.amount.amount_minor == 1_000 and not limit.HasField("pending_amount")
    assert (await set_deposit_limit(hub, player, MONTH, 500)).amount.amount_minor == 500  # lowered: at once
    raised = await set_deposit_limit(hub, player, MONTH, 2_000)
    assert (raised.amount.amount_minor, raised.pending_amount.amount_minor) == (500, 2_000)
    assert raised.pending_from.ToDatetime() == clock.utcnow().replace(microsecond=0) + timedelta(days=1) or \
        abs(raised.pending_from.ToDatetime() - (clock.utcnow() + timedelta(days=1))) < timedelta(seconds=5)
    shown = (await limits(hub, player)).deposit_limits
    assert [(m.period, m.amount.amount_minor, m.pending_amount.amount_minor) for m in shown] == [(MONTH, 500, 2_000)]
    await pay_in(hub, player, 500)
    assert await refused(pay_in(hub, player, 1)) == (REFUSED, "DEPOSIT_LIMIT_EXCEEDED")
    clock.travel(timedelta(hours=23, minutes=59))
    assert await refused(pay_in(hub, player, 1)) == (REFUSED, "DEPOSIT_LIMIT_EXCEEDED")  # still cooling off
    clock.travel(timedelta(minutes=1))
    await pay_in(hub, player, 1_500)  # the raise is in force: 2,000 this month
    assert await refused(pay_in(hub, player, 1)) == (REFUSED, "DEPOSIT_LIMIT_EXCEEDED")
    shown = (await limits(hub, player)).deposit_limits
    assert [(m.amount.amount_minor, m.HasField("pending_amount")) for m in shown] == [(2_000, False)]
    # Removing a limit is a raise too; lowering cancels a pending raise.
    removal = await set_deposit_limit(hub, player, MONTH, 0)
    assert (removal.amount.amount_minor, removal.pending_amount.amount_minor) == (2_000, 0)
    kept = await set_deposit_limit(hub, player, MONTH, 2_000)
    assert (kept.amount.amount_minor, kept.HasField("pending_amount")) == (2_000, False)
    await set_loss_limit(hub, player, DAY, 100)
    assert (await set_loss_limit(hub, player, DAY, 0)).amount.amount_minor == 100


async def test_limits_refuse_bad_arguments_and_other_operators_players(hub: Client) -> None:
    player = await new_player(hub)
    assert await refused(set_deposit_limit(hub, player, ppb.LIMIT_PERIOD_UNSPECIFIED, 100)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert await refused(set_loss_limit(hub, player, DAY, -1)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")
    assert await refused(self_exclude(hub, player, days=3651)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert await refused(hub.players.SetSessionTimeLimit(ppb.SetSessionTimeLimitRequest(
        player_id=player.player_id, minutes=1441), metadata=hub.metadata)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    nobody = Player("nobody", "", "")
    assert await refused(limits(hub, nobody)) == (grpc.StatusCode.NOT_FOUND, "PLAYER_NOT_FOUND")


# -- session time limit -------------------------------------------------------------------------------------

async def test_at_the_session_time_limit_the_session_ends(hub: Client) -> None:
    player = await new_player(hub, deposit=1_000)
    limit = (await hub.players.SetSessionTimeLimit(ppb.SetSessionTimeLimitRequest(
        player_id=player.player_id, minutes=30), metadata=hub.metadata)).limit
    assert limit.minutes == 30 and not limit.HasField("pending_from")
    login = await hub.players.Login(ppb.LoginRequest(username=player.username, password=PASSWORD),
                                    metadata=hub.metadata)
    stream = await opened_stream(hub, login.session_token)
    assert await bet(stream, 100) == "settled"
    clock.travel(timedelta(minutes=29, seconds=59))
    assert await bet(stream, 100) == "settled"
    clock.travel(timedelta(seconds=1))  # exactly 30 minutes after Login
    assert await bet(stream, 100) == "SESSION_TIME_LIMIT_REACHED"
    await stream.close()
    assert await refused(hub.players.RefreshSession(ppb.RefreshSessionRequest(refresh_token=login.refresh_token),
                                                    metadata=hub.metadata)) == (REFUSED, "SESSION_TIME_LIMIT_REACHED")
    sessions = await hub.players.ListSessions(ppb.ListSessionsRequest(player_id=player.player_id),
                                              metadata=hub.metadata)
    assert login.session_id not in [s.session_id for s in sessions.sessions]
    # Raising it waits the cooling-off, like every limit.
    raised = (await hub.players.SetSessionTimeLimit(ppb.SetSessionTimeLimitRequest(
        player_id=player.player_id, minutes=60), metadata=hub.metadata)).limit
    assert (raised.minutes, raised.pending_minutes) == (30, 60)
