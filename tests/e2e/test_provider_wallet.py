"""The studio wallet API (ProviderWalletService) through a live hub, on both databases: every row of
DESIGN.md's semantics table as a studio drives it, duplicate and out-of-order deliveries, BetAndWin,
PromoWin, EndRound, the studio's key (every RPC, enumerated from the descriptor, refused without a valid
one), tenancy between studios and operators, and many concurrent calls on one player.

The studio here is the fake studio's ("fake"): the session token is the game_session_id of a LaunchGame of
"fake:coin-flip", which the hub handed the studio in its launch call.
"""

import asyncio
import contextlib
import json
import os
import pathlib
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import create_engine, update

from casinohub.provider.v1 import provider_wallet_service_pb2 as pb, provider_wallet_service_pb2_grpc
from casinohub.v1 import (
    admin_service_pb2 as apb,
    admin_service_pb2_grpc,
    common_pb2,
    game_service_pb2 as gpb,
    wallet_service_pb2 as wpb,
)
from hub.ledger.check import check
from hub.ledger.schema import game_sessions, players, rounds
from hub.server import SERVICE_DESCRIPTORS, create_server
from tests.e2e.play_client import launch
from tests.errors import error_info, reason_of
from tests.fakes import FakeStudio
from tests.support import Client, bearer, hub_config, signed, start_hub

ADMIN_TOKEN = "admin-" + "s" * 40
ADMIN = bearer(ADMIN_TOKEN)
SERVICE = pb.DESCRIPTOR.services_by_name["ProviderWalletService"]
PATH = f"/{SERVICE.full_name}/"
OPEN, SETTLED, ROLLED_BACK = gpb.ROUND_STATUS_OPEN, gpb.ROUND_STATUS_SETTLED, gpb.ROUND_STATUS_ROLLED_BACK


def usd(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency="USD", amount_minor=amount)


@dataclass
class Studio:
    """A studio's side of the API: each call signed with its key over the request's bytes."""

    channel: grpc.aio.Channel
    key_id: str
    private_key: Ed25519PrivateKey
    token: str = ""  # the session token (a game_session_id) and its player, for the calls below
    player_id: str = ""

    async def call(self, name: str, request: Message, **signing: Any) -> Any:
        stub = provider_wallet_service_pb2_grpc.ProviderWalletServiceStub(self.channel)
        metadata = signed(PATH + name, request.SerializeToString(), self.key_id, self.private_key, **signing)
        return await getattr(stub, name)(request, metadata=metadata)

    async def bet(self, tx: str, round_id: str, amount: int, **extra: Any) -> Any:
        return await self.call("Bet", pb.BetRequest(session_token=self.token, player_id=self.player_id,
                                                    transaction_id=tx, round_id=round_id, amount=usd(amount), **extra))

    async def win(self, tx: str, round_id: str, amount: int, **extra: Any) -> Any:
        return await self.call("Win", pb.WinRequest(session_token=self.token, player_id=self.player_id,
                                                    transaction_id=tx, round_id=round_id, amount=usd(amount), **extra))

    async def rollback(self, tx: str, bet_tx: str, **extra: Any) -> Any:
        return await self.call("Rollback", pb.RollbackRequest(session_token=self.token, player_id=self.player_id,
                                                              transaction_id=tx, bet_transaction_id=bet_tx, **extra))

    async def end_round(self, round_id: str) -> Any:
        return await self.call("EndRound", pb.EndRoundRequest(session_token=self.token, player_id=self.player_id,
                                                              round_id=round_id))

    async def balance(self) -> int:
        reply = await self.call("GetBalance", pb.GetBalanceRequest(session_token=self.token, player_id=self.player_id))
        return int(reply.balance.amount_minor)


@dataclass
class World:
    hub: Client
    studio: Studio
    known: dict[str, str] = field(default_factory=dict)


async def studio_key(hub: Client, studio_id: str) -> tuple[str, Ed25519PrivateKey]:
    admin = admin_service_pb2_grpc.AdminServiceStub(hub.channel)
    created = await admin.CreateStudioKey(apb.CreateStudioKeyRequest(studio_id=studio_id, generate_signing_key=True),
                                          metadata=ADMIN)
    private = serialization.load_pem_private_key(created.private_key_pem.encode(), None)
    assert isinstance(private, Ed25519PrivateKey)
    return created.studio_key.key_id, private


@pytest.fixture
async def world(database_url: str, studio: FakeStudio) -> AsyncIterator[World]:
    hub = await start_hub(database_url, {"fake": studio}, admin_token=ADMIN_TOKEN)
    key_id, private = await studio_key(hub, "fake")
    player_id, token = await hub.new_player(deposit=10_000)
    session = await launch(hub, token)
    yield World(hub, Studio(hub.channel, key_id, private, session, player_id))
    await hub.channel.close()
    await hub.server.stop(grace=1)


async def refusal(call: Any) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    info = error_info(err.value)
    return err.value.code(), info.reason, dict(info.metadata)


def ledger_clean(hub: Client) -> None:
    report, = check(hub.database_url, hub.operator_id)
    assert report.ok, report.render()


def expire(hub: Client, game_session_id: str) -> None:
    engine = create_engine(hub.database_url)
    with engine.begin() as conn:
        conn.execute(update(game_sessions).where(game_sessions.c.game_session_id == game_session_id)
                     .values(expires_at=datetime(2020, 1, 1)))
    engine.dispose()


# -- sessions and balances -----------------------------------------------------------------------------------

async def test_authenticate_names_the_player_currency_and_balance(world: World) -> None:
    s = world.studio
    reply = await s.call("Authenticate", pb.AuthenticateRequest(session_token=s.token))
    assert (reply.player_id, reply.currency, reply.game_id) == (s.player_id, "USD", "fake:coin-flip")
    assert reply.balance == usd(10_000) and reply.bonus_balance == usd(0)
    assert await s.balance() == 10_000
    expire(world.hub, s.token)
    code, reason, meta = await refusal(s.call("Authenticate", pb.AuthenticateRequest(session_token=s.token)))
    assert (code, reason, meta["balance_minor"], meta["currency"]) == (
        grpc.StatusCode.FAILED_PRECONDITION, "GAME_SESSION_CLOSED", "10000", "USD")
    assert await s.balance() == 10_000  # the balance is still there for the studio after expiry


# -- the semantics table ---------------------------------------------------------------------------------------

async def test_a_round_of_bets_and_wins_settles_and_shows_in_the_operators_history(world: World) -> None:
    s = world.studio
    bet = await s.bet("b1", "r1", 300)
    assert (bet.balance.amount_minor, bet.round_status) == (9_700, OPEN) and bet.transaction_id
    assert (await s.bet("b2", "r1", 200)).balance.amount_minor == 9_500
    win = await s.win("w1", "r1", 1_000, bet_transaction_id="b1")
    assert (win.balance.amount_minor, win.round_status) == (10_500, OPEN)
    ended = await s.end_round("r1")
    assert (ended.balance.amount_minor, ended.round_status) == (10_500, SETTLED)
    assert (await s.end_round("r1")).round_status == SETTLED  # idempotent
    assert await world.hub.balance(s.player_id) == 10_500
    listed = await world.hub.wallet.ListTransactions(wpb.ListTransactionsRequest(player_id=s.player_id),
                                                     metadata=world.hub.metadata)
    kinds = [t.kind for t in listed.transactions]
    assert kinds[:3] == [wpb.TRANSACTION_KIND_WIN, wpb.TRANSACTION_KIND_BET, wpb.TRANSACTION_KIND_BET]
    round_id = listed.transactions[0].round_id
    got = await world.hub.games.GetRound(gpb.GetRoundRequest(round_id=round_id), metadata=world.hub.metadata)
    assert (got.round.status, got.round.bet.amount_minor, got.round.win.amount_minor) == (SETTLED, 500, 1_000)
    assert got.round.game_session_id == s.token
    ledger_clean(world.hub)


async def test_duplicate_delivery_answers_the_stored_answer_and_a_reused_id_is_refused(world: World) -> None:
    s = world.studio
    first = await s.bet("dup", "r1", 100)
    again = await s.bet("dup", "r1", 100)
    assert again == first and await s.balance() == 9_900
    won = await s.win("dup-w", "r1", 50, round_closed=True)
    assert await s.win("dup-w", "r1", 50, round_closed=True) == won and await s.balance() == 9_950
    for call in (s.bet("dup", "r1", 101), s.bet("dup", "r2", 100), s.win("dup-w", "r1", 51),
                 s.bet("dup", "r1", 100, round_closed=True), s.win("dup-w", "r1", 50),  # round_closed differs
                 s.win("dup", "r1", 100), s.rollback("dup", "dup")):  # the id of another kind of call
        code, reason, meta = await refusal(call)
        assert (code, reason, meta["balance_minor"]) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED",
                                                         "9950")
    assert await world.hub.balance(s.player_id) == 9_950
    ledger_clean(world.hub)


async def test_insufficient_funds_applies_nothing_and_answers_the_balance(world: World) -> None:
    s = world.studio
    code, reason, meta = await refusal(s.bet("big", "r1", 10_001))
    assert (code, reason, meta) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS", {
        "balance_minor": "10000", "bonus_balance_minor": "0", "currency": "USD", "retryable": "false",
        "state": "NOT_APPLIED"})
    assert (await s.bet("big", "r1", 10_000)).balance.amount_minor == 0  # the id was not spent by the refusal


async def test_a_win_before_its_bet_is_bet_not_found_then_paid_once_the_bet_arrives(world: World) -> None:
    s = world.studio
    code, reason, meta = await refusal(s.win("early-w", "r1", 500, bet_transaction_id="late-b"))
    assert (code, reason, meta["balance_minor"]) == (grpc.StatusCode.NOT_FOUND, "BET_NOT_FOUND", "10000")
    await s.bet("other", "r0", 10)  # a bet of another round does not make it found
    assert (await refusal(s.win("early-w", "r1", 500)))[1] == "BET_NOT_FOUND"
    await s.bet("late-b", "r1", 100)
    paid = await s.win("early-w", "r1", 500, bet_transaction_id="late-b", round_closed=True)
    assert (paid.balance.amount_minor, paid.round_status) == (10_390, SETTLED)
    ledger_clean(world.hub)


async def test_a_rollback_before_its_bet_tombstones_the_bet(world: World) -> None:
    s = world.studio
    rolled = await s.rollback("rb1", "never-seen")
    assert (rolled.balance.amount_minor, rolled.transaction_id) == (10_000, "")
    assert await s.rollback("rb1", "never-seen") == rolled
    code, reason, meta = await refusal(s.bet("never-seen", "r1", 100))
    assert (code, reason, meta["balance_minor"]) == (grpc.StatusCode.FAILED_PRECONDITION, "TRANSACTION_ROLLED_BACK",
                                                     "10000")
    assert await world.hub.balance(s.player_id) == 10_000
    ledger_clean(world.hub)


async def test_a_rollback_refunds_and_a_win_after_it_is_refused(world: World) -> None:
    s = world.studio
    await s.bet("b1", "r1", 400)
    refunded = await s.rollback("rb1", "b1", round_id="r1", round_closed=True)
    assert (refunded.balance.amount_minor, refunded.round_status) == (10_000, ROLLED_BACK) and refunded.transaction_id
    assert (await s.rollback("rb2", "b1")).transaction_id == ""  # already refunded: nothing moves again
    await s.bet("b2", "r2", 100)
    await s.rollback("rb3", "b2")
    code, reason, _ = await refusal(s.win("w2", "r2", 300, bet_transaction_id="b2"))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TRANSACTION_ROLLED_BACK")
    assert (await refusal(s.win("w3", "r2", 300)))[1] == "TRANSACTION_ROLLED_BACK"  # every bet of the round
    assert await world.hub.balance(s.player_id) == 10_000
    ledger_clean(world.hub)


async def test_closed_rounds_refuse_bets_wins_and_rollbacks(world: World) -> None:
    s = world.studio
    closed = await s.bet("b1", "r1", 100, round_closed=True)  # a lost round, closed with its bet
    assert (closed.balance.amount_minor, closed.round_status) == (9_900, SETTLED)
    code, reason, meta = await refusal(s.bet("b2", "r1", 100))
    assert (code, reason, meta["balance_minor"]) == (grpc.StatusCode.FAILED_PRECONDITION, "ROUND_CLOSED", "9900")
    assert (await refusal(s.win("w1", "r1", 100)))[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "ROUND_CLOSED")
    code, reason, _ = await refusal(s.rollback("rb1", "b1"))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ROUND_ALREADY_SETTLED")
    assert (await refusal(s.end_round("no-such-round")))[:2] == (grpc.StatusCode.NOT_FOUND, "ROUND_NOT_FOUND")
    assert await world.hub.balance(s.player_id) == 9_900
    ledger_clean(world.hub)


async def test_an_expired_session_refuses_bets_but_pays_wins_and_rollbacks(world: World) -> None:
    s = world.studio
    await s.bet("b1", "r1", 100)
    await s.bet("b2", "r2", 100)
    expire(world.hub, s.token)
    code, reason, meta = await refusal(s.bet("b3", "r1", 100))
    assert (code, reason, meta["balance_minor"]) == (grpc.StatusCode.FAILED_PRECONDITION, "GAME_SESSION_CLOSED",
                                                     "9800")
    assert (await s.win("w1", "r1", 700, round_closed=True)).balance.amount_minor == 10_500  # the late win is paid
    assert (await s.rollback("rb2", "b2", round_id="r2", round_closed=True)).balance.amount_minor == 10_600
    ledger_clean(world.hub)


async def test_a_blocked_player_cannot_bet_but_is_paid(world: World) -> None:
    s = world.studio
    await s.bet("b1", "r1", 100)
    engine = create_engine(world.hub.database_url)
    with engine.begin() as conn:
        conn.execute(update(players).where(players.c.player_id == s.player_id).values(status="blocked"))
    engine.dispose()
    assert (await refusal(s.bet("b2", "r1", 100)))[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "PLAYER_BLOCKED")
    assert (await s.win("w1", "r1", 300, round_closed=True)).balance.amount_minor == 10_200
    promo = await s.call("PromoWin", pb.PromoWinRequest(session_token=s.token, player_id=s.player_id,
                                                        transaction_id="p1", amount=usd(5),
                                                        kind=pb.PROMO_KIND_JACKPOT, campaign_id="j"))
    assert promo.balance.amount_minor == 10_205


# -- BetAndWin, PromoWin -------------------------------------------------------------------------------------

async def test_bet_and_win_is_one_call_all_or_nothing(world: World) -> None:
    s = world.studio

    def bet_and_win(tx: str, bet: int, win: int, closed: bool = True) -> Any:
        return s.call("BetAndWin", pb.BetAndWinRequest(session_token=s.token, player_id=s.player_id,
                                                       transaction_id=tx, round_id=f"i-{tx}", bet=usd(bet),
                                                       win=usd(win), round_closed=closed))

    won = await bet_and_win("t1", 100, 250)
    assert (won.balance.amount_minor, won.round_status) == (10_150, SETTLED) and won.transaction_id
    assert await bet_and_win("t1", 100, 250) == won  # a duplicate: the stored answer
    assert (await refusal(bet_and_win("t1", 100, 251)))[1] == "IDEMPOTENCY_KEY_REUSED"
    lost = await bet_and_win("t2", 150, 0)
    assert (lost.balance.amount_minor, lost.round_status) == (10_000, SETTLED)
    assert (await refusal(bet_and_win("t2", 150, 50)))[1] == "IDEMPOTENCY_KEY_REUSED"  # no win added later
    assert (await refusal(bet_and_win("t2", 150, 0, closed=False)))[1] == "IDEMPOTENCY_KEY_REUSED"
    code, reason, meta = await refusal(bet_and_win("t3", 10_001, 20_000))
    assert (code, reason, meta["balance_minor"]) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS",
                                                     "10000")
    assert (await refusal(bet_and_win("t4", 100, -1)))[1] == "INVALID_AMOUNT"
    assert await world.hub.balance(s.player_id) == 10_000  # neither refusal left its bet behind
    ledger_clean(world.hub)


async def test_promo_wins_are_paid_from_the_operators_promotion_account(world: World) -> None:
    s = world.studio

    def promo(tx: str, amount: int, kind: int = pb.PROMO_KIND_TOURNAMENT) -> Any:
        return s.call("PromoWin", pb.PromoWinRequest(session_token=s.token, player_id=s.player_id, transaction_id=tx,
                                                     amount=usd(amount), kind=kind, campaign_id="spring-cup"))

    paid = await promo("p1", 2_500)
    assert paid.balance.amount_minor == 12_500 and paid.transaction_id
    assert await promo("p1", 2_500) == paid
    assert (await refusal(promo("p1", 2_501)))[1] == "IDEMPOTENCY_KEY_REUSED"
    assert (await refusal(promo("p2", 0)))[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")
    assert (await refusal(promo("p3", 10, pb.PROMO_KIND_UNSPECIFIED)))[1] == "INVALID_ARGUMENT"
    expire(world.hub, s.token)
    assert (await promo("p4", 500, pb.PROMO_KIND_FREE_SPINS)).balance.amount_minor == 13_000  # after expiry too
    listed = await world.hub.wallet.ListTransactions(wpb.ListTransactionsRequest(player_id=s.player_id),
                                                     metadata=world.hub.metadata)
    assert [t.kind for t in listed.transactions[:2]] == [wpb.TRANSACTION_KIND_PROMO_WIN] * 2
    ledger_clean(world.hub)


async def test_amounts_in_another_currency_are_refused(world: World) -> None:
    s = world.studio
    request = pb.BetRequest(session_token=s.token, player_id=s.player_id, transaction_id="eur", round_id="r1",
                            amount=common_pb2.Money(currency="EUR", amount_minor=100))
    assert (await refusal(s.call("Bet", request)))[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "CURRENCY_MISMATCH")
    request.amount.currency = "XXX"
    assert (await refusal(s.call("Bet", request)))[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_CURRENCY")


# -- tenancy ------------------------------------------------------------------------------------------------

async def test_another_studios_key_or_another_players_id_reaches_nothing(world: World) -> None:
    """Studio "other" with A's session (a "fake" game's) gets GAME_SESSION_NOT_FOUND; the right studio naming
    another operator's player, or another player of the operator, gets PLAYER_NOT_FOUND: nothing changes."""
    other_key, other_private = await studio_key(world.hub, "other")
    other = Studio(world.hub.channel, other_key, other_private, world.studio.token, world.studio.player_id)
    b_hub = await start_hub(world.hub.database_url, {"fake": FakeStudio()})
    try:
        b_player, _ = await b_hub.new_player(deposit=500)
    finally:
        await b_hub.channel.close()
        await b_hub.server.stop(grace=1)
    neighbour, _ = await world.hub.new_player(deposit=500)
    wrong = {
        "another studio's key": (other, ("NOT_FOUND", "GAME_SESSION_NOT_FOUND")),
        "another operator's player": (Studio(world.hub.channel, world.studio.key_id, world.studio.private_key,
                                             world.studio.token, b_player), ("NOT_FOUND", "PLAYER_NOT_FOUND")),
        "another player": (Studio(world.hub.channel, world.studio.key_id, world.studio.private_key,
                                  world.studio.token, neighbour), ("NOT_FOUND", "PLAYER_NOT_FOUND")),
        "no such session": (Studio(world.hub.channel, world.studio.key_id, world.studio.private_key,
                                   str(uuid.uuid4()), world.studio.player_id), ("NOT_FOUND", "GAME_SESSION_NOT_FOUND")),
    }
    before = (await world.hub.balance(world.studio.player_id), world.hub.ledger_counts())
    for attack, (studio, (code, reason)) in wrong.items():
        for method in SERVICE.methods:
            if reason == "PLAYER_NOT_FOUND" and "player_id" not in method.input_type.fields_by_name:
                continue  # Authenticate names no player: the session does
            got = await refusal(studio.call(method.name, valid_request(method, studio)))
            assert (got[0].name, got[1]) == (code, reason), (attack, method.name)
            assert "balance_minor" not in got[2], (attack, method.name)  # nothing told of a wallet not its own
    assert (await world.hub.balance(world.studio.player_id), world.hub.ledger_counts()) == before


# -- the studio's key ------------------------------------------------------------------------------------------

def valid_request(method: MethodDescriptor, studio: Studio) -> Message:
    """A well-formed request of the RPC on the studio's session."""
    request = pb.DESCRIPTOR.message_types_by_name[method.input_type.name]
    message: Any = getattr(pb, request.name)()
    for f in request.fields:
        if f.name == "session_token":
            message.session_token = studio.token
        elif f.name == "player_id":
            message.player_id = studio.player_id
        elif f.name in ("transaction_id", "round_id", "bet_transaction_id", "campaign_id"):
            setattr(message, f.name, f"{f.name[:2]}-{uuid.uuid4().hex[:8]}")
        elif f.message_type is not None and f.message_type.name == "Money":
            getattr(message, f.name).CopyFrom(usd(100))
        elif f.name == "kind":
            message.kind = pb.PROMO_KIND_JACKPOT
    return message  # type: ignore[no-any-return]


async def test_every_rpc_refuses_calls_without_the_studios_valid_signature(world: World) -> None:
    s = world.studio
    admin = admin_service_pb2_grpc.AdminServiceStub(world.hub.channel)
    revoked_key, revoked_private = await studio_key(world.hub, "fake")
    await admin.RevokeStudioKey(apb.RevokeStudioKeyRequest(key_id=revoked_key), metadata=ADMIN)
    operator_key = await admin.CreateApiKey(apb.CreateApiKeyRequest(operator_id=world.hub.operator_id,
                                                                     generate_signing_key=True), metadata=ADMIN)
    operator_private = serialization.load_pem_private_key(operator_key.private_key_pem.encode(), None)
    assert isinstance(operator_private, Ed25519PrivateKey)
    stranger = Ed25519PrivateKey.generate()
    window = world.hub.server.authenticator.window_s
    unauthenticated, denied = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED

    def attacks(path: str, body: bytes) -> dict[str, tuple[tuple[tuple[str, str], ...], grpc.StatusCode, str]]:
        replayed = signed(path, body, s.key_id, s.private_key)
        return {
            "no signature": ((), unauthenticated, "CREDENTIALS_MISSING"),
            "wrong signature": (signed(path, body, s.key_id, stranger), unauthenticated, "SIGNATURE_INVALID"),
            "another body": (signed(path, body + b"\x08\x01", s.key_id, s.private_key), unauthenticated,
                             "SIGNATURE_INVALID"),
            "another method": (signed(PATH + "Ping", body, s.key_id, s.private_key), unauthenticated,
                               "SIGNATURE_INVALID"),
            "stale timestamp": (signed(path, body, s.key_id, s.private_key, timestamp=int(time.time()) - window - 30),
                                unauthenticated, "TIMESTAMP_OUT_OF_WINDOW"),
            "future timestamp": (signed(path, body, s.key_id, s.private_key, timestamp=int(time.time()) + window + 30),
                                 unauthenticated, "TIMESTAMP_OUT_OF_WINDOW"),
            "unknown key": (signed(path, body, "sk_0000000000000000", s.private_key), unauthenticated,
                            "INVALID_CLIENT_CREDENTIALS"),
            "revoked key": (signed(path, body, revoked_key, revoked_private), unauthenticated, "API_KEY_REVOKED"),
            "operator's token": (world.hub.metadata, denied, "SCOPE_MISSING"),
            "administrator's token": (ADMIN, denied, "SCOPE_MISSING"),
            "operator's signature": (signed(path, body, operator_key.api_key.key_id, operator_private), denied,
                                     "SCOPE_MISSING"),
            "replayed nonce": (replayed, unauthenticated, "NONCE_REUSED"),
        }

    before = (await world.hub.balance(s.player_id), world.hub.ledger_counts())
    wrong = []
    for method in SERVICE.methods:
        request = valid_request(method, s)
        path, body = PATH + method.name, request.SerializeToString()
        unary = world.hub.channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        for attack, (metadata, code, reason) in attacks(path, body).items():
            if attack == "replayed nonce":  # accepted once (a Win of no bet is then refused BET_NOT_FOUND)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await unary(body, metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await unary(body, metadata=metadata)
            if reason_of(err.value) != (code, reason):
                wrong.append((method.name, attack, reason_of(err.value)))
    assert wrong == []
    # Only the accepted first sends of the replayed calls moved money: Bet, BetAndWin (bet 1.00, win 1.00)
    # and PromoWin; their Win, Rollback and EndRound named rounds and bets that do not exist.
    assert await world.hub.balance(s.player_id) == before[0] - 100 + 100
    ledger_clean(world.hub)


async def test_a_studio_key_reaches_none_of_the_operators_services(world: World) -> None:
    s = world.studio
    operator_methods = [m for d in SERVICE_DESCRIPTORS if d is not SERVICE for m in d.methods
                        if not m.client_streaming and m.name != "IssueToken"]
    assert len(operator_methods) > 20
    for method in operator_methods:
        path = f"/{method.containing_service.full_name}/{method.name}"
        unary = world.hub.channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await unary(b"", metadata=signed(path, b"", s.key_id, s.private_key))
        assert reason_of(err.value) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING"), method.name
    play = f"/{gpb.DESCRIPTOR.services_by_name['GameService'].full_name}/Play"
    stream = world.hub.channel.stream_stream(play, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stream(iter([b""]), metadata=signed(play, None, s.key_id, s.private_key)):
            pass
    assert reason_of(err.value) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")


async def test_the_administrator_manages_studio_keys(world: World) -> None:
    admin = admin_service_pb2_grpc.AdminServiceStub(world.hub.channel)
    studio_id = f"s-{uuid.uuid4().hex[:12]}"  # the database may be shared: a studio of this test's own
    first, _ = await studio_key(world.hub, studio_id)
    second, _ = await studio_key(world.hub, studio_id)
    listed = await admin.ListStudioKeys(apb.ListStudioKeysRequest(studio_id=studio_id), metadata=ADMIN)
    assert {k.key_id for k in listed.studio_keys} == {first, second} and listed.studio_keys[0].public_key
    for bad in (apb.CreateStudioKeyRequest(studio_id="Fake", generate_signing_key=True),
                apb.CreateStudioKeyRequest(studio_id="fake:x", generate_signing_key=True),
                apb.CreateStudioKeyRequest(studio_id="fake"),
                apb.CreateStudioKeyRequest(studio_id="fake", public_key="bm90LWEta2V5")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin.CreateStudioKey(bad, metadata=ADMIN)
        assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.RevokeStudioKey(apb.RevokeStudioKeyRequest(key_id="sk_0000000000000000"), metadata=ADMIN)
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND")
    revoked = await admin.RevokeStudioKey(apb.RevokeStudioKeyRequest(key_id=world.studio.key_id), metadata=ADMIN)
    assert revoked.studio_key.HasField("revoked_at")
    assert (await refusal(world.studio.bet("b1", "r1", 100)))[:2] == (grpc.StatusCode.UNAUTHENTICATED,
                                                                      "API_KEY_REVOKED")


async def test_a_studio_keys_ip_allowlist_refuses_calls_from_elsewhere(world: World) -> None:
    """Every RPC signed with a key whose allowlist leaves out the caller: PERMISSION_DENIED / IP_NOT_ALLOWED, as
    an operator's wrong address is, logged, no money moved; the studio's other key is not affected; allowing
    the loopback network (or clearing the list) lets the same key in again."""
    admin = admin_service_pb2_grpc.AdminServiceStub(world.hub.channel)
    s = world.studio
    other_key, other_private = await studio_key(world.hub, "fake")
    fenced = await admin.SetStudioKeyIpAllowlist(apb.SetStudioKeyIpAllowlistRequest(
        key_id=s.key_id, cidrs=["203.0.113.0/24", " 2001:db8::1 "]), metadata=ADMIN)
    assert list(fenced.studio_key.ip_allowlist) == ["203.0.113.0/24", "2001:db8::1/128"]
    listed = await admin.ListStudioKeys(apb.ListStudioKeysRequest(studio_id="fake"), metadata=ADMIN)
    assert {k.key_id: list(k.ip_allowlist) for k in listed.studio_keys}[other_key] == []
    before = (await world.hub.balance(s.player_id), world.hub.ledger_counts())
    wrong = []
    for method in SERVICE.methods:
        with structlog.testing.capture_logs() as logs:
            got = await refusal(s.call(method.name, valid_request(method, s)))
        logged = [e for e in logs if e["event"] == "auth.refused" and e["reason"] == "IP_NOT_ALLOWED"]
        if got[:2] != (grpc.StatusCode.PERMISSION_DENIED, "IP_NOT_ALLOWED") or not logged:
            wrong.append((method.name, got))
    assert wrong == []
    assert (await world.hub.balance(s.player_id), world.hub.ledger_counts()) == before
    neighbour = Studio(world.hub.channel, other_key, other_private, s.token, s.player_id)
    assert await neighbour.balance() == before[0]
    await admin.SetStudioKeyIpAllowlist(apb.SetStudioKeyIpAllowlistRequest(
        key_id=s.key_id, cidrs=["203.0.113.0/24", "127.0.0.0/8", "::1"]), metadata=ADMIN)
    assert await s.balance() == before[0]
    await admin.SetStudioKeyIpAllowlist(apb.SetStudioKeyIpAllowlistRequest(
        key_id=s.key_id, cidrs=["203.0.113.0/24"]), metadata=ADMIN)
    cleared = await admin.SetStudioKeyIpAllowlist(apb.SetStudioKeyIpAllowlistRequest(key_id=s.key_id), metadata=ADMIN)
    assert list(cleared.studio_key.ip_allowlist) == [] and await s.balance() == before[0]
    invalid = (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    for cidrs in (["10.0.0.0/33"], ["not-an-address"], [f"10.0.{i}.0/24" for i in range(51)]):
        got = await refusal(admin.SetStudioKeyIpAllowlist(apb.SetStudioKeyIpAllowlistRequest(
            key_id=s.key_id, cidrs=cidrs), metadata=ADMIN))
        assert got[:2] == invalid, cidrs
    got = await refusal(admin.SetStudioKeyIpAllowlist(apb.SetStudioKeyIpAllowlistRequest(
        key_id="sk_0000000000000000", cidrs=["127.0.0.1"]), metadata=ADMIN))
    assert got[:2] == (grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND")
    got = await refusal(admin.SetStudioKeyIpAllowlist(apb.SetStudioKeyIpAllowlistRequest(
        key_id=s.key_id, cidrs=["203.0.113.0/24"]), metadata=world.hub.metadata))  # an operator may not
    assert got[:2] == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
    assert await s.balance() == before[0]  # the refused calls changed nothing


# -- concurrency -----------------------------------------------------------------------------------------------

async def test_many_concurrent_studio_calls_on_one_player_leave_the_exact_balance(world: World) -> None:
    """40 rounds at once on one player, each a bet, a duplicate of it, a win or a rollback and a close; plus
    BetAndWins and promo wins: the balance is exactly what the calls say, and the ledger checks clean."""
    s = world.studio
    count = 40

    async def round_(n: int) -> int:
        await asyncio.gather(s.bet(f"b{n}", f"r{n}", 100), s.bet(f"b{n}", f"r{n}", 100))
        if n % 3 == 0:
            await s.rollback(f"rb{n}", f"b{n}", round_id=f"r{n}", round_closed=True)
            return 0
        if n % 3 == 1:
            await s.win(f"w{n}", f"r{n}", 250, round_closed=True)
            return 150
        await s.call("BetAndWin", pb.BetAndWinRequest(session_token=s.token, player_id=s.player_id,
                                                      transaction_id=f"i{n}", round_id=f"i{n}", bet=usd(50),
                                                      win=usd(20), round_closed=True))
        await s.call("PromoWin", pb.PromoWinRequest(session_token=s.token, player_id=s.player_id,
                                                    transaction_id=f"p{n}", amount=usd(7),
                                                    kind=pb.PROMO_KIND_FREE_SPINS, campaign_id="c"))
        await s.end_round(f"r{n}")
        return -100 - 30 + 7

    changes = await asyncio.gather(*(round_(n) for n in range(count)))
    assert await s.balance() == 10_000 + sum(changes)
    assert await world.hub.balance(s.player_id) == 10_000 + sum(changes)
    ledger_clean(world.hub)


# -- hostile input -----------------------------------------------------------------------------------------

HOSTILE_TEXT = st.one_of(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=70),
                         st.sampled_from(["", " ", "x" * 65, "É" * 37, "\u0000", "r1", "b1"]))
HOSTILE_INT = st.sampled_from([0, -1, 1, 100, 2**63 - 1, -(2**63), 10**17])


@pytest.mark.timeout(300)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
async def test_no_hostile_studio_request_breaks_the_hub(world: World, data: st.DataObject) -> None:
    """Any RPC, correctly signed by the studio, with one field set to a hostile value: never INTERNAL or
    UNKNOWN, every refusal with an ErrorInfo reason, and the ledger stays balanced."""
    s = world.studio
    method = data.draw(st.sampled_from(list(SERVICE.methods)))
    request: Any = valid_request(method, s)
    if "transaction_id" in method.input_type.fields_by_name:  # sometimes a key an earlier example used
        request.transaction_id = data.draw(st.sampled_from(["t-shared", request.transaction_id]))
    field_ = data.draw(st.sampled_from(list(method.input_type.fields)))
    if field_.message_type is not None:  # an amount
        money = getattr(request, field_.name)
        money.amount_minor = data.draw(HOSTILE_INT)
        money.currency = data.draw(st.sampled_from(["USD", "EUR", "", "usd", "XXX"]))
    elif field_.type == field_.TYPE_STRING:
        setattr(request, field_.name, data.draw(HOSTILE_TEXT))
    elif field_.type == field_.TYPE_BOOL:
        setattr(request, field_.name, data.draw(st.booleans()))
    else:  # an enum
        setattr(request, field_.name, data.draw(st.sampled_from([0, -1, 4, 2**31 - 1])))
    try:
        await s.call(method.name, request)
    except grpc.aio.AioRpcError as err:
        assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (method.name, err.details())
        assert error_info(err).reason, method.name
    assert sum(world.hub.posting_sums().values()) == 0


# -- the README ------------------------------------------------------------------------------------------------

ROOT = pathlib.Path(__file__).resolve().parents[2]


async def test_readme_studio_wallet_block_runs_as_printed(world: World, tmp_path: pathlib.Path) -> None:
    """The README's grpcurl block, `hub sign` included, against a live hub: grpcurl's bytes for the JSON are
    the bytes `hub sign` signed."""
    block = re.search(r"<!-- studio-wallet:start -->\n```bash\n(.*?)```\n<!-- studio-wallet:end -->",
                      (ROOT / "README.md").read_text(), re.S)
    assert block, "README studio wallet block not found"
    pem = tmp_path / "fake.pem"
    pem.write_bytes(world.studio.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key = await admin_service_pb2_grpc.AdminServiceStub(world.hub.channel).CreateApiKey(
        apb.CreateApiKeyRequest(operator_id=world.hub.operator_id), metadata=ADMIN)
    env = {**os.environ, "HUB": f"127.0.0.1:{world.hub.port}", "GAME": "fake:coin-flip",
           "STUDIO_KEY_ID": world.studio.key_id, "STUDIO_KEY_FILE": str(pem), "KEY_ID": key.api_key.key_id,
           "SECRET": key.secret, "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = await asyncio.create_subprocess_exec(  # async: the hub under test serves from this event loop
        "bash", "-euo", "pipefail", "-c", block.group(1), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, err.decode() + out.decode()
    answers = [json.loads(a) for a in re.findall(r"^\{.*?^\}", out.decode(), re.S | re.M)]
    assert [a.get("balance", {}).get("amount_minor") for a in answers] == ["2000", "1900", "1900", "2150", "2150"]
    assert answers[1] == answers[2]  # the duplicate bet: the stored answer
    assert answers[3]["round_status"] == "ROUND_STATUS_SETTLED"
    ledger_clean(world.hub)


async def test_the_reconciler_leaves_a_studios_open_rounds_to_the_studio(world: World) -> None:
    """A pushed round stays OPEN however old: the hub never asks a pull adapter about it, nor refunds it
    behind the studio's back (its late win would then be refused)."""
    s = world.studio
    await s.bet("b1", "r1", 100)
    engine = create_engine(world.hub.database_url)
    with engine.begin() as conn:
        conn.execute(update(rounds).where(rounds.c.operator_id == world.hub.operator_id)
                     .values(opened_at=datetime(2020, 1, 1)))
    engine.dispose()
    report = await world.hub.server.hub.reconciler.run_once(world.hub.operator_id)
    assert report.examined == 0
    assert (await s.win("w1", "r1", 300, round_closed=True)).balance.amount_minor == 10_200


async def test_a_studio_nonce_replayed_to_another_hub_process_is_refused(world: World) -> None:
    """Seen nonces live in the database: a second hub server on it (its own authenticator) refuses the replay."""
    s = world.studio
    config = hub_config(world.hub.database_url, admin_token=ADMIN_TOKEN)
    second, port = await create_server(config, {"fake": FakeStudio()})
    await second.start()
    other = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        request = pb.BetRequest(session_token=s.token, player_id=s.player_id, transaction_id="once", round_id="r1",
                                amount=usd(100))
        metadata = signed(PATH + "Bet", request.SerializeToString(), s.key_id, s.private_key)
        await provider_wallet_service_pb2_grpc.ProviderWalletServiceStub(world.hub.channel).Bet(
            request, metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await provider_wallet_service_pb2_grpc.ProviderWalletServiceStub(other).Bet(request, metadata=metadata)
        assert reason_of(err.value) == (grpc.StatusCode.UNAUTHENTICATED, "NONCE_REUSED")
        assert await s.balance() == 9_900
    finally:
        await other.close()
        await second.stop(grace=1)
