"""The conformance kit for a studio that pushes money calls in its own HTTP wallet protocol: instanthouse,
against a live hub (its adapter registered by entry point and built from the provider config, as `hub serve`
builds it) and its mock studio, on both databases.

Catalog, launch, demo launch, a winning and a losing round, duplicate delivery, rollback before bet, win
before bet, a late win after the session expired, a timeout with unknown outcome (resent, or rolled back),
a bad, a stale and a replayed signature, an amount whose scale needs exact conversion and one that cannot be
converted. After each test the ledger checks clean and the player's balance is what the studio settled.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from sqlalchemy import create_engine, update

from adapters import registry
from casinohub.v1 import game_service_pb2 as gpb
from hub.config import ProviderSettings
from hub.ledger.check import check
from hub.ledger.schema import game_sessions
from mock_providers.instanthouse.server import STUDIO, Studio, start_server
from tests.support import Client, start_hub

INSTANT_STUDIOS = ("instanthouse",)  # the adapters this kit covers (one so far: the cases name its games)
SECRET = "instant-kit-secret"
DEPOSIT = 10_000  # 100.00 USD


@dataclass
class World:
    hub: Client
    studio: Studio
    studio_url: str
    http: aiohttp.ClientSession
    player_id: str = ""
    token: str = ""  # the player's session token at the operator
    game_session: str = ""  # the launched game's session: the studio's token at the hub

    async def launch(self, game: str = "instanthouse:crash", demo: bool = False) -> gpb.LaunchGameResponse:
        return await self.hub.games.LaunchGame(gpb.LaunchGameRequest(
            session_token=self.token, game_id=game, currency="USD", demo=demo), metadata=self.hub.metadata)

    async def play(self, bet: str = "1.00", token: str | None = None, **extra: str) -> dict[str, Any]:
        async with self.http.post(f"{self.studio_url}/play", json={
                "token": token or self.game_session, "bet": bet, **extra}) as response:
            assert response.status == 200, await response.text()
            return await response.json()  # type: ignore[no-any-return]

    async def call(self, method: str, **fields: object) -> dict[str, object]:
        """A wallet call as the studio signs it, for this player's game session."""
        payload = {"token": self.game_session, "userId": self.player_id, **fields}
        signing = {k: fields.pop(k) for k in ("secret", "nonce", "timestamp") if k in fields}
        payload = {k: v for k, v in payload.items() if k not in signing}
        return await self.studio.call(method, payload, **signing)  # type: ignore[arg-type]

    async def balance(self) -> int:
        return await self.hub.balance(self.player_id)

    def studio_net_minor(self) -> int:
        net = self.studio.net().get(self.player_id, {}).get("USD", "0")
        return int(Decimal(net) * 100)

    async def settled(self) -> None:
        """Late deliveries landed; the ledger is clean; the player holds what the studio settled."""
        for _ in range(200):
            if not self.studio.pending:
                break
            await asyncio.sleep(0.05)
        assert self.studio.pending == 0
        report, = check(self.hub.database_url, self.hub.operator_id)
        assert report.ok, report.render()
        assert await self.balance() == DEPOSIT + self.studio_net_minor()


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    runner, port = await start_server(port=0, secret=SECRET, wallet_url="http://127.0.0.1:9/unset")
    studio_url = f"http://127.0.0.1:{port}"
    provider = ProviderSettings(name="instanthouse", adapter="instanthouse", url=studio_url, secret=SECRET)
    hub = await start_hub(database_url, None, providers=(provider,), inbound_listen="127.0.0.1:0")
    studio = runner.app[STUDIO]
    studio.wallet_url = f"http://127.0.0.1:{hub.server.inbound_port}/instanthouse"
    http = aiohttp.ClientSession()
    world = World(hub, studio, studio_url, http)
    world.player_id, world.token = await hub.new_player(deposit=DEPOSIT)
    world.game_session = (await world.launch()).game_session_id
    yield world
    await http.close()
    await hub.channel.close()
    await hub.server.stop(grace=1)
    await runner.cleanup()


def usd(minor: int) -> str:
    return f"{Decimal(minor) / 100:.2f}"


def expire(hub: Client, game_session_id: str) -> None:
    engine = create_engine(hub.database_url)
    with engine.begin() as conn:
        conn.execute(update(game_sessions).where(game_sessions.c.game_session_id == game_session_id)
                     .values(expires_at=datetime(2020, 1, 1)))
    engine.dispose()


async def test_the_adapter_is_registered_and_the_catalog_lists_instant_games_in_three_languages(
        world: World) -> None:
    assert "instanthouse" in registry.available()
    names = {}
    for locale in ("en", "de", "ja"):
        listed = await world.hub.games.ListGames(gpb.ListGamesRequest(game_type=gpb.GAME_TYPE_INSTANT, locale=locale),
                                                 metadata=world.hub.metadata)
        names[locale] = {g.game_id: g.name for g in listed.games}
        assert {g.game_type for g in listed.games} == {gpb.GAME_TYPE_INSTANT}
        assert {g.game_id: g.rtp_basis_points for g in listed.games} == {
            "instanthouse:crash": 9700, "instanthouse:scratch": 9600}
    assert names["en"]["instanthouse:crash"] == "Rocket Crash"
    assert names["de"]["instanthouse:scratch"] == "Glücksrubbellos"
    assert names["ja"]["instanthouse:crash"] == "ロケットクラッシュ"


async def test_launch_returns_the_studios_game_url_with_the_session_token(world: World) -> None:
    launched = await world.launch("instanthouse:scratch")
    assert launched.launch_url == f"{world.studio_url}/games/scratch?token={launched.game_session_id}"
    assert len(launched.server_seed_hash) == 64
    authenticated = await world.call("authenticate")
    assert authenticated == {"status": "OK", "currency": "USD", "balance": usd(DEPOSIT), "bonusBalance": "0.00",
                             "userId": world.player_id}


async def test_a_demo_launch_plays_on_the_studios_fun_balance_and_moves_no_money(world: World) -> None:
    launched = await world.launch(demo=True)
    assert launched.demo_balance.amount_minor > 0
    counts = world.hub.ledger_counts()
    for _ in range(5):
        round_ = await world.play(token=launched.game_session_id)
        assert round_["status"] == "OK"
    assert Decimal(str(round_["balance"])) != Decimal(usd(DEPOSIT))  # the studio's fun balance, not the wallet
    assert world.hub.ledger_counts() == counts
    assert world.studio.settled == []
    await world.settled()


async def test_winning_and_losing_rounds_settle_exactly_what_the_studio_says(world: World) -> None:
    outcomes = set()
    for _ in range(40):
        round_ = await world.play("1.00", target="2")
        assert round_["status"] == "OK"
        assert round_["win"] in ("0.00", "2.00")
        outcomes.add(round_["win"])
        if len(outcomes) == 2:
            break
    assert outcomes == {"0.00", "2.00"}  # a loss and a win (each 48.5% a round: 40 rounds without both ~1e-11)
    assert Decimal(str(round_["balance"])) * 100 == await world.balance()
    await world.settled()


async def test_a_duplicate_delivery_is_answered_from_the_record_and_moves_money_once(world: World) -> None:
    debit = {"transactionId": "dup-1", "roundId": "r-dup", "amount": "2.00", "currency": "USD", "roundClosed": True}
    first = await world.call("debit", **debit)
    again = await world.call("debit", **debit)  # a fresh nonce and signature: the same call resent
    assert first["status"] == "OK" and again == first
    assert await world.balance() == DEPOSIT - 200
    changed = await world.call("debit", **{**debit, "amount": "3.00"})
    assert changed["status"] == "DUPLICATE_TRANSACTION" and changed["balance"] == usd(DEPOSIT - 200)
    world.studio.faults.update({"duplicate_rate": 1.0})
    for _ in range(3):
        assert (await world.play())["status"] == "OK"
    assert world.studio.faults_seen["duplicate"] >= 3 and "duplicate_answered_differently" not in world.studio.faults_seen
    assert await world.balance() == DEPOSIT - 200 + world.studio_net_minor()


async def test_a_rollback_before_its_bet_refunds_nothing_and_refuses_the_late_bet(world: World) -> None:
    rolled = await world.call("rollback", transactionId="rb-1", rollbackTransactionId="never-1", roundId="r-rb")
    assert rolled["status"] == "OK" and rolled["balance"] == usd(DEPOSIT)
    late = await world.call("debit", transactionId="never-1", roundId="r-rb", amount="1.00", currency="USD")
    assert late["status"] == "TRANSACTION_ROLLED_BACK" and late["balance"] == usd(DEPOSIT)
    assert await world.balance() == DEPOSIT
    await world.settled()


async def test_a_win_before_its_bet_is_refused_and_paid_once_the_bet_arrives(world: World) -> None:
    credit = {"transactionId": "w-1", "roundId": "r-w", "amount": "5.00", "currency": "USD",
              "debitTransactionId": "b-1", "roundClosed": True}
    early = await world.call("credit", **credit)
    assert early["status"] == "TRANSACTION_NOT_FOUND" and early["balance"] == usd(DEPOSIT)
    assert (await world.call("debit", transactionId="b-1", roundId="r-w", amount="1.00", currency="USD"))[
        "status"] == "OK"
    assert (await world.call("credit", **credit))["status"] == "OK"
    assert await world.balance() == DEPOSIT - 100 + 500
    # The mock's out-of-order knob: every winning round sends its credit first, then both in order.
    world.studio.faults.update({"out_of_order_rate": 1.0})
    for _ in range(12):
        assert (await world.play("1.00", target="2"))["status"] == "OK"
    assert await world.balance() == DEPOSIT + 400 + world.studio_net_minor()


async def test_a_late_win_after_the_session_expired_is_still_paid(world: World) -> None:
    assert (await world.call("debit", transactionId="b-late", roundId="r-late", amount="1.00",
                             currency="USD"))["status"] == "OK"
    expire(world.hub, world.game_session)
    refused = await world.call("debit", transactionId="b-after", roundId="r-after", amount="1.00", currency="USD")
    assert refused["status"] == "SESSION_EXPIRED" and refused["balance"] == usd(DEPOSIT - 100)
    paid = await world.call("credit", transactionId="w-late", roundId="r-late", amount="3.00", currency="USD",
                            debitTransactionId="b-late", roundClosed=True)
    assert paid["status"] == "OK" and paid["balance"] == usd(DEPOSIT + 200)


async def test_a_late_credit_from_the_studio_lands_after_the_round_answered(world: World) -> None:
    world.studio.faults.update({"late_credit_s": 0.3})
    for _ in range(40):
        if (await world.play("1.00", target="2"))["win"] == "2.00":
            break
    assert world.studio.faults_seen.get("late_credit") == 1
    expire(world.hub, world.game_session)  # the credit arrives after the session ended: paid all the same
    await world.settled()


async def test_a_timeout_with_unknown_outcome_is_resent_or_rolled_back_never_guessed(world: World) -> None:
    call = {"transactionId": "t-unknown", "roundId": "r-unknown", "debitAmount": "2.00", "creditAmount": "4.00",
            "currency": "USD", "roundClosed": True}
    first = await world.call("debitAndCredit", **call)  # suppose this answer was lost on the way back
    resent = await world.call("debitAndCredit", **call)
    assert resent == first and first["status"] == "OK"
    assert await world.balance() == DEPOSIT + 200
    # A debit whose answer never came, that the studio gives up on: its rollback refunds it exactly once.
    assert (await world.call("debit", transactionId="t-lost", roundId="r-lost", amount="5.00",
                             currency="USD"))["status"] == "OK"
    rolled = await world.call("rollback", transactionId="t-lost-rb", rollbackTransactionId="t-lost", roundId="r-lost",
                              roundClosed=True)
    assert rolled["status"] == "OK" and await world.balance() == DEPOSIT + 200
    # The mock's knob: answers dropped after the hub acted, the studio resends with the same transactionId.
    world.studio.faults.update({"drop_answer_rate": 0.5, "seed": 7})
    for _ in range(6):
        assert (await world.play())["status"] == "OK"
    assert world.studio.faults_seen["answer_dropped"] > 0
    assert await world.balance() == DEPOSIT + 200 + world.studio_net_minor()


async def test_a_bad_a_stale_and_a_replayed_signature_are_refused_and_move_nothing(world: World) -> None:
    debit = {"roundId": "r-sig", "amount": "1.00", "currency": "USD"}
    assert await world.call("debit", transactionId="s-1", secret="not-the-key", **debit) == {
        "status": "INVALID_SIGNATURE"}
    assert await world.call("debit", transactionId="s-2", timestamp=1_600_000_000, **debit) == {
        "status": "STALE_REQUEST"}
    nonce = uuid.uuid4().hex
    assert (await world.call("debit", transactionId="s-3", nonce=nonce, **debit))["status"] == "OK"
    assert await world.call("debit", transactionId="s-3", nonce=nonce, **debit) == {"status": "REPLAYED_REQUEST"}
    assert await world.balance() == DEPOSIT - 100
    world.studio.faults.update({"bad_signature_rate": 1.0})
    assert (await world.play())["status"] == "OK"  # refused first, then sent correctly
    assert world.studio.faults_seen["bad_signature"] >= 1 and "bad_signature_accepted" not in world.studio.faults_seen
    assert await world.balance() == DEPOSIT - 100 + world.studio_net_minor()


async def test_amounts_convert_exactly_or_are_refused_with_the_balance_and_nothing_moved(world: World) -> None:
    exact = await world.call("debit", transactionId="a-1", roundId="r-a", amount="1.500", currency="USD")
    assert exact["status"] == "OK" and exact["balance"] == usd(DEPOSIT - 150)
    counts = world.hub.ledger_counts()
    for amount in ("1.505", "0.001", "-1.00", "1e2"):
        refused = await world.call("debit", transactionId=f"a-{amount}", roundId="r-b", amount=amount, currency="USD")
        assert refused == {"status": "INVALID_AMOUNT", "currency": "USD", "balance": usd(DEPOSIT - 150),
                           "bonusBalance": "0.00"}
    assert world.hub.ledger_counts() == counts
    world.studio.faults.update({"bad_amount_rate": 1.0})
    assert (await world.play())["status"] == "OK"  # the studio's one-decimal-too-many attempt is refused first
    assert world.studio.faults_seen["bad_amount"] >= 1 and "bad_amount_accepted" not in world.studio.faults_seen
    assert await world.balance() == DEPOSIT - 150 + world.studio_net_minor()
