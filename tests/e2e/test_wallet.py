"""WalletService over a live hub on port 0, through the generated stubs, on SQLite and MariaDB."""

import asyncio
import uuid

import grpc
import pytest

from casinohub.v1 import common_pb2, wallet_service_pb2 as pb
from hub.money import INT64_MAX, MAX_TRANSACTION_MINOR, max_transaction
from tests.errors import error_info, reason_of
from tests.support import Client, access_token, bearer

USD = "USD"


def deposit(player_id: str, amount: int, key: str, currency: str = USD) -> pb.DepositRequest:
    return pb.DepositRequest(player_id=player_id, idempotency_key=key,
                             amount=common_pb2.Money(currency=currency, amount_minor=amount))


async def test_deposit_replay_returns_identical_response_and_moves_money_once(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    first = await hub.wallet.Deposit(deposit(player_id, 2_500, "dep-1"), metadata=hub.metadata)
    counts = hub.ledger_counts()
    again = await hub.wallet.Deposit(deposit(player_id, 2_500, "dep-1"), metadata=hub.metadata)
    assert again.SerializeToString() == first.SerializeToString()
    assert first.balance.amount_minor == 2_500
    assert await hub.balance(player_id) == 2_500
    assert hub.ledger_counts() == counts == (1, 2)


async def test_concurrent_duplicates_of_one_deposit_apply_once(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    responses = await asyncio.gather(*(
        hub.wallet.Deposit(deposit(player_id, 700, "same-key"), metadata=hub.metadata) for _ in range(10)))
    assert len({r.transaction_id for r in responses}) == 1
    assert await hub.balance(player_id) == 700


async def test_same_key_different_amount_is_refused_and_changes_nothing(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    await hub.wallet.Deposit(deposit(player_id, 1_000, "dep-x"), metadata=hub.metadata)
    counts = hub.ledger_counts()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.Deposit(deposit(player_id, 1_001, "dep-x"), metadata=hub.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert error_info(err.value).metadata["retryable"] == "false"
    assert await hub.balance(player_id) == 1_000
    assert hub.ledger_counts() == counts


async def test_withdraw_debits_and_refuses_overdraft(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=1_000)
    out = await hub.wallet.Withdraw(pb.WithdrawRequest(
        player_id=player_id, idempotency_key="w-1", amount=common_pb2.Money(currency=USD, amount_minor=400)),
        metadata=hub.metadata)
    assert out.balance.amount_minor == 600
    counts = hub.ledger_counts()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.Withdraw(pb.WithdrawRequest(
            player_id=player_id, idempotency_key="w-2", amount=common_pb2.Money(currency=USD, amount_minor=601)),
            metadata=hub.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")
    assert error_info(err.value).metadata["state"] == "NOT_APPLIED"
    assert await hub.balance(player_id) == 600
    assert hub.ledger_counts() == counts
    assert hub.posting_sums() == {USD: 0}


@pytest.mark.parametrize("amount,currency,key,expected", [
    (0, USD, "k", (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")),
    (-5, USD, "k", (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")),
    (100, "XXX", "k", (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_CURRENCY")),
    (100, "", "k", (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_CURRENCY")),
    (100, USD, "", (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_IDEMPOTENCY_KEY")),
    (100, USD, "k" * 129, (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG")),
    (100, "U" * 5000, "k", (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG")),
    (2**63 - 1, USD, "k", (grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_ABOVE_MAXIMUM")),
])
async def test_bad_deposits_are_refused_precisely_and_change_nothing(
        hub: Client, amount: int, currency: str, key: str, expected: tuple[grpc.StatusCode, str]) -> None:
    player_id, _ = await hub.new_player(deposit=50)
    counts = hub.ledger_counts()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.Deposit(deposit(player_id, amount, key, currency), metadata=hub.metadata)
    assert reason_of(err.value) == expected
    assert await hub.balance(player_id) == 50
    assert hub.ledger_counts() == counts


async def test_one_transaction_moves_at_most_the_currency_maximum(hub: Client) -> None:
    """One player's int64-max deposit used to fill the operator's external account, so every later
    deposit in that currency, anyone's, overflowed it. Now no transaction can move that much."""
    greedy, _ = await hub.new_player()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.Deposit(deposit(greedy, INT64_MAX, "big-1"), metadata=hub.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_ABOVE_MAXIMUM")
    most = max_transaction(USD)
    assert error_info(err.value).metadata["max_amount_minor"] == str(most) == str(10**11)  # $1bn by default
    await hub.wallet.Deposit(deposit(greedy, most, "big-2"), metadata=hub.metadata)
    other, _ = await hub.new_player()
    await hub.wallet.Deposit(deposit(other, 100, "small-1"), metadata=hub.metadata)
    assert (await hub.balance(greedy), await hub.balance(other)) == (most, 100)


async def test_the_maximum_is_configurable_per_currency(hub: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MAX_TRANSACTION_MINOR, USD, 5_000)  # what `max_transaction_minor` config sets
    player_id, _ = await hub.new_player(deposit=5_000)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.Withdraw(pb.WithdrawRequest(
            player_id=player_id, idempotency_key="w", amount=common_pb2.Money(currency=USD, amount_minor=5_001)),
            metadata=hub.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_ABOVE_MAXIMUM")
    assert await hub.balance(player_id) == 5_000


async def test_unknown_player_and_unknown_operator(hub: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.Deposit(deposit("no-such-player", 100, "k1"), metadata=hub.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "PLAYER_NOT_FOUND")
    with pytest.raises(grpc.aio.AioRpcError) as err:  # a key of an operator the hub does not know
        await hub.wallet.GetBalance(pb.GetBalanceRequest(player_id="x", currency=USD),
                                    metadata=bearer(access_token(hub.database_url, "nobody")))
    assert reason_of(err.value) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the header no longer chooses the operator
        await hub.wallet.GetBalance(pb.GetBalanceRequest(player_id="x", currency=USD),
                                    metadata=(*hub.metadata, ("x-operator-id", "nobody")))
    assert reason_of(err.value) == (grpc.StatusCode.PERMISSION_DENIED, "OPERATOR_MISMATCH")


async def test_another_operators_player_is_refused_and_an_unknown_one_not_found(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=100)
    await hub.server.hub.operators.ensure("other-operator", "Other")
    other = bearer(access_token(hub.database_url, "other-operator"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.GetBalance(pb.GetBalanceRequest(player_id=player_id, currency=USD), metadata=other)
    assert reason_of(err.value) == (grpc.StatusCode.PERMISSION_DENIED, "OBJECT_OF_ANOTHER_OPERATOR")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.GetBalance(pb.GetBalanceRequest(player_id=str(uuid.uuid4()), currency=USD), metadata=other)
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "PLAYER_NOT_FOUND")


async def test_list_transactions_pages_newest_first(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    for i in range(5):
        await hub.wallet.Deposit(deposit(player_id, 10 + i, f"page-{i}"), metadata=hub.metadata)
    seen, token = [], ""
    while True:
        page = await hub.wallet.ListTransactions(
            pb.ListTransactionsRequest(player_id=player_id, page_size=2, page_token=token), metadata=hub.metadata)
        seen += [t.amount.amount_minor for t in page.transactions]
        token = page.next_page_token
        if not token:
            break
    assert seen == [14, 13, 12, 11, 10]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.ListTransactions(pb.ListTransactionsRequest(player_id=player_id, page_token="%%%"),
                                          metadata=hub.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_list_transactions_filters_by_round_kind_time_and_player(hub: Client) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from tests.e2e.play_client import opened_stream

    player_id, token = await hub.new_player(deposit=1_000)
    other_id, _ = await hub.new_player(deposit=500)
    stream = await opened_stream(hub, token)
    stream.bet(100, "f-1")
    first_round = (await stream.until("settled"))[-1].settled.round_id
    stream.bet(200, "f-2")
    await stream.until("settled")
    await stream.close()

    async def listed(**filters: object) -> list[pb.Transaction]:
        return list((await hub.wallet.ListTransactions(pb.ListTransactionsRequest(**filters),  # type: ignore[arg-type]
                                                       metadata=hub.metadata)).transactions)

    round_txs = await listed(player_id=player_id, round_id=first_round)
    assert [(t.kind, t.amount.amount_minor) for t in round_txs] == [(pb.TRANSACTION_KIND_BET, -100)]
    assert [t.amount.amount_minor for t in await listed(player_id=player_id, kind=pb.TRANSACTION_KIND_BET)] == [
        -200, -100]
    everyone = await listed(kind=pb.TRANSACTION_KIND_DEPOSIT)  # operator-wide
    assert {(t.player_id, t.amount.amount_minor) for t in everyone} == {(player_id, 1_000), (other_id, 500)}

    newest = (await listed(player_id=player_id))[0].created_at
    assert await listed(player_id=player_id, created_after=newest) == [(await listed(player_id=player_id))[0]]
    assert len(await listed(player_id=player_id, created_before=newest)) == 2  # deposit and first bet
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await listed(player_id=player_id, created_after=newest, created_before=newest)
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await listed(kind=99)
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await listed(created_after=Timestamp(seconds=2**62))
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
