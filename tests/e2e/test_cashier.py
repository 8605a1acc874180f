"""Two-phase withdrawals and cashier limits over a live hub, on SQLite and MariaDB."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from casinohub.v1 import common_pb2, wallet_service_pb2 as pb
from hub.config import CashierLimit
from hub.ledger import postings
from hub.ledger.check import check
from tests.errors import reason_of
from tests.support import Client, start_hub

USD = "USD"


@pytest.fixture
async def cashier(database_url: str) -> AsyncIterator[Client]:
    operator_id = f"op-{uuid.uuid4().hex[:12]}"
    limits = (CashierLimit(operator_id, USD, daily_deposit_minor=10_000, max_withdrawal_minor=5_000),)
    client = await start_hub(database_url, {}, sandbox_operator_id=operator_id, cashier_limits=limits)
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)


async def withdraw(hub: Client, player_id: str, amount: int, key: str | None = None) -> pb.WithdrawResponse:
    return await hub.wallet.Withdraw(pb.WithdrawRequest(
        player_id=player_id, idempotency_key=key or str(uuid.uuid4()),
        amount=common_pb2.Money(currency=USD, amount_minor=amount)), metadata=hub.metadata)


async def hold_of(hub: Client, player_id: str) -> int:
    return await hub.server.hub.db.run(lambda uow: postings.read_balance(
        uow, hub.operator_id, postings.player_hold(player_id, USD)))


def assert_ledger_ok(hub: Client) -> None:
    report, = check(hub.database_url, hub.operator_id)
    assert report.ok, report.render()


async def test_withdrawal_is_held_then_paid_out_once(cashier: Client) -> None:
    player_id, _ = await cashier.new_player(deposit=3_000)
    requested = await withdraw(cashier, player_id, 1_200)
    assert requested.status == pb.WITHDRAWAL_STATUS_PENDING and requested.balance.amount_minor == 1_800
    assert (await cashier.balance(player_id), await hold_of(cashier, player_id)) == (1_800, 1_200)
    approve = pb.ApproveWithdrawalRequest(withdrawal_id=requested.withdrawal_id)
    paid = await cashier.wallet.ApproveWithdrawal(approve, metadata=cashier.metadata)
    again = await cashier.wallet.ApproveWithdrawal(approve, metadata=cashier.metadata)
    assert paid == again and paid.status == pb.WITHDRAWAL_STATUS_APPROVED
    assert (await cashier.balance(player_id), await hold_of(cashier, player_id)) == (1_800, 0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cashier.wallet.RejectWithdrawal(pb.RejectWithdrawalRequest(withdrawal_id=requested.withdrawal_id),
                                              metadata=cashier.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "WITHDRAWAL_NOT_PENDING")
    assert cashier.posting_sums() == {USD: 0}
    assert_ledger_ok(cashier)


async def test_rejected_withdrawal_returns_to_cash(cashier: Client) -> None:
    player_id, _ = await cashier.new_player(deposit=3_000)
    requested = await withdraw(cashier, player_id, 2_000)
    reject = pb.RejectWithdrawalRequest(withdrawal_id=requested.withdrawal_id)
    released = await cashier.wallet.RejectWithdrawal(reject, metadata=cashier.metadata)
    assert released.status == pb.WITHDRAWAL_STATUS_REJECTED and released.balance.amount_minor == 3_000
    assert (await cashier.wallet.RejectWithdrawal(reject, metadata=cashier.metadata)).transaction_id == \
        released.transaction_id
    assert (await cashier.balance(player_id), await hold_of(cashier, player_id)) == (3_000, 0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cashier.wallet.ApproveWithdrawal(pb.ApproveWithdrawalRequest(withdrawal_id=requested.withdrawal_id),
                                               metadata=cashier.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "WITHDRAWAL_NOT_PENDING")
    assert_ledger_ok(cashier)


async def test_racing_approve_and_reject_decide_once(cashier: Client) -> None:
    player_id, _ = await cashier.new_player(deposit=3_000)
    requested = await withdraw(cashier, player_id, 1_000)
    outcomes = await asyncio.gather(
        cashier.wallet.ApproveWithdrawal(pb.ApproveWithdrawalRequest(withdrawal_id=requested.withdrawal_id),
                                         metadata=cashier.metadata),
        cashier.wallet.RejectWithdrawal(pb.RejectWithdrawalRequest(withdrawal_id=requested.withdrawal_id),
                                        metadata=cashier.metadata),
        return_exceptions=True)
    assert sum(isinstance(o, grpc.aio.AioRpcError) for o in outcomes) == 1
    assert await hold_of(cashier, player_id) == 0
    assert await cashier.balance(player_id) in (2_000, 3_000)
    assert_ledger_ok(cashier)


async def test_withdrawal_above_the_operator_maximum_is_refused(cashier: Client) -> None:
    player_id, _ = await cashier.new_player(deposit=9_000)
    counts = cashier.ledger_counts()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await withdraw(cashier, player_id, 5_001)
    assert reason_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "WITHDRAWAL_LIMIT_EXCEEDED")
    assert cashier.ledger_counts() == counts and await cashier.balance(player_id) == 9_000
    await withdraw(cashier, player_id, 5_000)


async def test_daily_deposit_limit_holds_under_concurrent_deposits(cashier: Client) -> None:
    player_id, _ = await cashier.new_player()
    results = await asyncio.gather(*(cashier.wallet.Deposit(pb.DepositRequest(
        player_id=player_id, idempotency_key=str(uuid.uuid4()), amount=common_pb2.Money(currency=USD, amount_minor=3_000)),
        metadata=cashier.metadata) for _ in range(5)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 2  # 3 x 3,000 fit under 10,000; a fourth would not
    assert {reason_of(r) for r in refused} == {(grpc.StatusCode.FAILED_PRECONDITION, "DEPOSIT_LIMIT_EXCEEDED")}
    assert await cashier.balance(player_id) == 9_000
    assert_ledger_ok(cashier)


async def test_unknown_withdrawal_is_not_found(cashier: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cashier.wallet.ApproveWithdrawal(pb.ApproveWithdrawalRequest(withdrawal_id="nope"),
                                               metadata=cashier.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "WITHDRAWAL_NOT_FOUND")
