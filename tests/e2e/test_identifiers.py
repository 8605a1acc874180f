"""Identifiers compare byte for byte on both databases: a key, id, username or operator id that differs
from another only in case or by a trailing space is a different one. (MariaDB's default collation is
case-insensitive and ignores trailing spaces: it would answer one request with another's money.)

Session tokens are not here: the hub looks them up by their SHA-256, which already tells variants apart.
"""

import uuid

import grpc

from casinohub.v1 import (
    common_pb2,
    game_service_pb2 as game_pb,
    player_service_pb2 as player_pb,
    wallet_service_pb2 as pb,
)
from tests.e2e.play_client import PlayStream, launch, opened_stream
from tests.e2e.test_promotions import grant_bonus
from tests.errors import reason_of
from tests.support import Client, access_token, bearer

USD = "USD"


def variants(identifier: str) -> list[str]:
    """Other identifiers that a case-insensitive, trailing-space-insensitive comparison takes for this one."""
    return sorted({identifier.upper(), identifier.lower(), identifier.swapcase(), identifier + " "} - {identifier})


def usd(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency=USD, amount_minor=amount)


async def answer(call) -> tuple[grpc.StatusCode, str] | str:  # type: ignore[no-untyped-def]
    """The refusal's (code, reason), or "OK"."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return reason_of(err)
    return "OK"


async def test_deposit_keys_differing_in_case_or_trailing_space_are_different_deposits(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    responses = [await hub.wallet.Deposit(pb.DepositRequest(player_id=player_id, amount=usd(100), idempotency_key=key),
                                          metadata=hub.metadata)
                 for key in ("CaseKey-x", "casekey-x", "CaseKey-x ")]
    assert len({r.transaction_id for r in responses}) == 3
    assert [r.balance.amount_minor for r in responses] == [100, 200, 300]
    assert await hub.balance(player_id) == 300
    assert hub.ledger_counts() == (3, 6)


async def test_bet_keys_differing_in_case_or_trailing_space_are_different_bets(hub: Client) -> None:
    player_id, token = await hub.new_player(deposit=1_000)
    stream = await opened_stream(hub, token)
    rounds = []
    for key in ("Bet-K", "bet-k", "Bet-K "):
        stream.bet(100, key)
        settled = (await stream.until("settled", "error"))[-1]
        assert settled.WhichOneof("event") == "settled", settled
        rounds.append(settled.settled.round_id)
    await stream.close()
    assert len(set(rounds)) == 3
    assert await hub.balance(player_id) == 700


async def test_operator_id_variants_are_unknown_operators(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=100)
    request = pb.GetBalanceRequest(player_id=player_id, currency=USD)
    # Credentials of a key filed under a variant of the operator's id name no known operator.
    answers = {operator_id: await answer(hub.wallet.GetBalance(
        request, metadata=bearer(access_token(hub.database_url, operator_id)))) for operator_id in variants(hub.operator_id)}
    assert answers == dict.fromkeys(answers, (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"))


async def test_username_variants_are_other_players(hub: Client) -> None:
    username, password = f"Alice-{uuid.uuid4().hex[:8]}", "correct-horse"

    async def login(name: str):  # type: ignore[no-untyped-def]
        return await hub.players.Login(player_pb.LoginRequest(username=name, password=password), metadata=hub.metadata)

    async def register(name: str) -> str:
        return (await hub.players.RegisterPlayer(player_pb.RegisterPlayerRequest(username=name, password=password),
                                                 metadata=hub.metadata)).player_id

    alice = await register(username)
    answers = {name: await answer(login(name)) for name in variants(username)}
    assert answers == dict.fromkeys(answers, (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS"))
    shouting = await register(username.upper())
    assert shouting != alice
    assert (await login(username)).player_id == alice
    assert (await login(username.upper())).player_id == shouting


async def test_id_variants_name_nothing(hub: Client) -> None:
    player_id, token = await hub.new_player(deposit=1_000)
    game_session_id = await launch(hub, token)
    stream = await opened_stream(hub, token)
    stream.bet(100, "a-bet")
    round_id = (await stream.until("settled"))[-1].settled.round_id
    await stream.close()
    withdrawal_id = (await hub.wallet.Withdraw(pb.WithdrawRequest(
        player_id=player_id, amount=usd(100), idempotency_key="a-withdrawal"), metadata=hub.metadata)).withdrawal_id
    bonus_id = (await grant_bonus(hub, player_id, 50, "a-bonus")).bonus.bonus_id

    answers = {}
    for variant in variants(player_id):
        answers["player", variant] = await answer(hub.wallet.GetBalance(
            pb.GetBalanceRequest(player_id=variant, currency=USD), metadata=hub.metadata))
    for variant in variants(round_id):
        answers["round", variant] = await answer(hub.games.GetRound(
            game_pb.GetRoundRequest(round_id=variant), metadata=hub.metadata))
    for variant in variants(withdrawal_id):
        answers["withdrawal", variant] = await answer(hub.wallet.ApproveWithdrawal(
            pb.ApproveWithdrawalRequest(withdrawal_id=variant), metadata=hub.metadata))
    for variant in variants(bonus_id):
        answers["bonus", variant] = await answer(hub.wallet.ForfeitBonus(
            pb.ForfeitBonusRequest(bonus_id=variant), metadata=hub.metadata))
    for variant in variants(game_session_id):
        stream = PlayStream(hub)
        stream.open(variant, token)
        answers["game session", variant] = await answer(stream.next())
        await stream.close()
    not_found = {"player": "PLAYER_NOT_FOUND", "round": "ROUND_NOT_FOUND", "withdrawal": "WITHDRAWAL_NOT_FOUND",
                 "bonus": "BONUS_NOT_FOUND", "game session": "GAME_SESSION_NOT_FOUND"}
    # A padded uuid is longer than an id can be: the edge refuses it before any lookup.
    assert answers == {(kind, variant): (grpc.StatusCode.NOT_FOUND, not_found[kind]) if len(variant) <= 36
                       else (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG") for kind, variant in answers}
    # Nothing above touched the real ones.
    assert (await hub.wallet.GetBonus(pb.GetBonusRequest(bonus_id=bonus_id), metadata=hub.metadata)
            ).bonus.status == pb.BONUS_STATUS_ACTIVE
    approved = await hub.wallet.ApproveWithdrawal(pb.ApproveWithdrawalRequest(withdrawal_id=withdrawal_id),
                                                  metadata=hub.metadata)
    assert approved.status == pb.WITHDRAWAL_STATUS_APPROVED
    assert await hub.balance(player_id) == 800
