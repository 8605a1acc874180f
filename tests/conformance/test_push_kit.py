"""The push-style conformance kit: every studio in push_studios.PUSH_STUDIOS, its adapter created through its
entry point, its mock studio calling a live hub's ProviderWalletService with its own studio key, on both
databases. A push studio is done when it passes every test here: the catalog in three languages, launch,
demo, won and lost rounds, and the faults a studio's deliveries suffer, after each of which the player's
balance is exactly what the studio's record says and the ledger check is clean."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import grpc
import pytest
from sqlalchemy import create_engine, update

from adapters import registry
from adapters.base import ProviderConfig
from casinohub.v1 import game_service_pb2 as gpb
from hub.ledger.check import check
from hub.ledger.schema import game_sessions
from tests.conformance.push_studios import (
    PUSH_STUDIOS,
    SECRET,
    Played,
    PushStudioUnderTest,
    Record,
    studio_key,
)
from tests.errors import reason_of
from tests.support import Client, start_hub

DEPOSIT = 10_000


@dataclass
class Kit:
    hub: Client
    studio: PushStudioUnderTest
    url: str

    @property
    def game_id(self) -> str:
        return f"{self.studio.adapter}:{self.studio.game.game_id}"

    async def seat(self, deposit: int = DEPOSIT, currency: str | None = None, player: tuple[str, str] | None = None,
                   ) -> tuple[str, str]:
        """A player (new, or the one given) launched into the game: (player id, the studio's session token)."""
        currency = currency or self.studio.game.currency
        player_id, token = player or await self.hub.new_player(deposit=deposit, currency=currency)
        launched = await self.hub.games.LaunchGame(gpb.LaunchGameRequest(
            session_token=token, game_id=self.game_id, currency=currency), metadata=self.hub.metadata)
        return player_id, launched.game_session_id

    async def balance_matches_the_studios_record(self, player_id: str, deposit: int = DEPOSIT,
                                                 currency: str | None = None) -> None:
        currency = currency or self.studio.game.currency
        record = await self.studio.record(player_id, currency)
        assert await self.hub.balance(player_id, currency) == deposit + record.net_minor, record

    async def play_and_settle(self, session: str, pick: str) -> Played:
        played = await self.studio.play(session, pick)
        assert not played.refused, played
        await self.studio.settled(played)
        return played


@pytest.fixture(params=sorted(PUSH_STUDIOS))
async def kit(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Kit]:
    studio = PUSH_STUDIOS[request.param]()
    key_id, pem = await studio_key(database_url, studio.adapter)
    url = await studio.start(key_id, pem)
    adapter = registry.create(studio.adapter, ProviderConfig(studio.adapter, url, SECRET, timeout_s=2.0))
    hub = await start_hub(database_url, {studio.adapter: adapter})
    studio.connect(f"127.0.0.1:{hub.port}")
    try:
        yield Kit(hub, studio, url)
        report, = check(hub.database_url, hub.operator_id)
        assert report.ok, report.render()
    finally:
        await studio.stop()
        await hub.channel.close()
        await hub.server.stop(grace=1)


def standing(record: Record) -> int:
    """Bets the hub took and kept: a bet the hub took as its betting window closed is refunded (and the kit's
    play() bets again in the next window), which a loaded machine makes happen now and then."""
    return record.bets - record.rollbacks


def expire(kit: Kit, game_session_id: str) -> None:
    engine = create_engine(kit.hub.database_url)
    with engine.begin() as conn:
        conn.execute(update(game_sessions).where(game_sessions.c.game_session_id == game_session_id)
                     .values(expires_at=datetime(2020, 1, 1)))
    engine.dispose()


async def test_the_catalog_lists_the_game_in_english_german_and_japanese(kit: Kit) -> None:
    names = {}
    for locale in ("en", "de", "ja"):
        found = await kit.hub.games.ListGames(gpb.ListGamesRequest(locale=locale, provider=kit.studio.adapter),
                                              metadata=kit.hub.metadata)
        game, = (g for g in found.games if g.game_id == kit.game_id)
        assert game.game_type == kit.studio.game.game_type
        names[locale] = game.name
    assert len(set(names.values())) == 3 and all(names.values()), names


async def test_launch_seats_the_player_and_answers_the_studios_stream_url(kit: Kit) -> None:
    player_id, token = await kit.hub.new_player(deposit=DEPOSIT)
    launched = await kit.hub.games.LaunchGame(gpb.LaunchGameRequest(
        session_token=token, game_id=kit.game_id, currency=kit.studio.game.currency), metadata=kit.hub.metadata)
    assert launched.launch_url.startswith(kit.url) and launched.game_session_id in launched.launch_url
    assert not launched.demo


async def test_demo_launch_plays_or_is_refused_with_its_reason(kit: Kit) -> None:
    _, token = await kit.hub.new_player()
    request = gpb.LaunchGameRequest(session_token=token, game_id=kit.game_id, currency=kit.studio.game.currency,
                                    demo=True)
    if kit.studio.demo_play:
        launched = await kit.hub.games.LaunchGame(request, metadata=kit.hub.metadata)
        assert launched.demo and launched.demo_balance.amount_minor > 0
        return
    calls = (await kit.studio.counters())["wallet_calls"]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await kit.hub.games.LaunchGame(request, metadata=kit.hub.metadata)
    assert reason_of(refused.value) == (grpc.StatusCode.FAILED_PRECONDITION, "DEMO_NOT_AVAILABLE")
    assert (await kit.studio.counters())["wallet_calls"] == calls


async def test_winning_and_losing_rounds_settle_as_the_studio_says(kit: Kit) -> None:
    player_id, session = await kit.seat()
    picks = kit.studio.game.picks
    for n in range(30):  # fair games: both come long before this
        await kit.play_and_settle(session, picks[n % len(picks)])
        record = await kit.studio.record(player_id, kit.studio.game.currency)
        await kit.balance_matches_the_studios_record(player_id)
        if record.wins and standing(record) > record.wins:
            break
    assert record.wins and standing(record) > record.wins, record


async def test_a_duplicate_delivery_moves_money_once(kit: Kit) -> None:
    player_id, session = await kit.seat()
    await kit.studio.arm("duplicate", 3)  # the bet, and the round's result
    await kit.play_and_settle(session, kit.studio.game.picks[0])
    assert (await kit.studio.counters())["faults_injected"]["duplicate"] >= 2
    assert standing(await kit.studio.record(player_id, kit.studio.game.currency)) == 1
    await kit.balance_matches_the_studios_record(player_id)


async def test_a_rollback_before_its_bet_refunds_nothing_and_the_bet_is_refused(kit: Kit) -> None:
    player_id, session = await kit.seat()
    await kit.studio.arm("rollback_before_bet")
    played = await kit.studio.play(session, kit.studio.game.picks[0])
    assert played.refused == "TRANSACTION_ROLLED_BACK", played
    assert await kit.hub.balance(player_id) == DEPOSIT
    assert (await kit.studio.record(player_id, kit.studio.game.currency)).voided == 1
    await kit.balance_matches_the_studios_record(player_id)


async def test_a_win_before_its_bet_is_paid_once_the_bet_arrives(kit: Kit) -> None:
    player_id, session = await kit.seat()
    picks = kit.studio.game.picks
    for n in range(30):  # until a win was sent before its bet
        await kit.studio.arm("win_before_bet")
        await kit.play_and_settle(session, picks[n % len(picks)])
        if (await kit.studio.counters())["refusals"].get("BET_NOT_FOUND"):
            break
    assert (await kit.studio.counters())["refusals"]["BET_NOT_FOUND"] == 1
    assert (await kit.studio.record(player_id, kit.studio.game.currency)).wins == 1
    await kit.balance_matches_the_studios_record(player_id)


async def test_a_late_win_after_the_session_expired_is_paid(kit: Kit) -> None:
    player = await kit.hub.new_player(deposit=DEPOSIT)
    picks = kit.studio.game.picks
    await kit.studio.delay_results(0.5)
    for n in range(30):  # until a round won: its win arrives after the session's end
        player_id, session = await kit.seat(player=player)
        played = await kit.studio.play(session, picks[n % len(picks)])
        assert not played.refused, played
        expire(kit, session)
        await kit.studio.settled(played)
        if (await kit.studio.record(player_id, kit.studio.game.currency)).wins:
            break
    assert (await kit.studio.record(player_id, kit.studio.game.currency)).wins == 1
    await kit.balance_matches_the_studios_record(player_id)


async def test_a_timeout_with_unknown_outcome_is_resolved_by_resending_the_same_call(kit: Kit) -> None:
    player_id, session = await kit.seat()
    await kit.studio.arm("timeout")  # the hub takes the bet; the studio never hears so and sends it again
    await kit.play_and_settle(session, kit.studio.game.picks[0])
    assert (await kit.studio.counters())["faults_injected"]["timeout"] == 1
    record = await kit.studio.record(player_id, kit.studio.game.currency)
    assert standing(record) == 1 and record.net_minor in (-kit.studio.game.stake_minor, kit.studio.game.stake_minor)
    await kit.balance_matches_the_studios_record(player_id)


@pytest.mark.parametrize(("fault", "reason"), [("bad_signature", "SIGNATURE_INVALID"), ("replay", "NONCE_REUSED")])
async def test_a_bad_or_replayed_signature_is_refused_and_moves_nothing(kit: Kit, fault: str, reason: str) -> None:
    player_id, session = await kit.seat()
    await kit.studio.arm(fault)
    await kit.play_and_settle(session, kit.studio.game.picks[0])
    counters = await kit.studio.counters()
    assert counters["faults_injected"][fault] == 1 and counters["refusals"][reason] == 1, counters
    assert standing(await kit.studio.record(player_id, kit.studio.game.currency)) == 1
    await kit.balance_matches_the_studios_record(player_id)


async def test_amounts_convert_exactly_or_are_refused_before_the_hub_hears_of_them(kit: Kit) -> None:
    currency, stake, minor = kit.studio.exact
    player_id, session = await kit.seat(deposit=100 * minor, currency=currency)
    calls = (await kit.studio.counters())["wallet_calls"]
    refused = await kit.studio.play(session, kit.studio.game.picks[0], stake=kit.studio.inexact)
    assert refused.refused == "AMOUNT_NOT_REPRESENTABLE", refused
    assert (await kit.studio.counters())["wallet_calls"] == calls
    played = await kit.studio.play(session, kit.studio.game.picks[0], stake=stake)
    assert not played.refused, played
    await kit.studio.settled(played)
    record = await kit.studio.record(player_id, currency)
    assert standing(record) == 1 and record.net_minor in (-minor, minor), record  # exactly the stake, lost or won
    await kit.balance_matches_the_studios_record(player_id, deposit=100 * minor, currency=currency)
