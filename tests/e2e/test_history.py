"""A player's history (ListTransactions) in the order the ledger applied it, under concurrent writers.

Each transaction records the wallet right after it, so the listing proves its own order: read oldest
to newest, every transaction's balances are the previous one's plus its amounts, starting from zero.
A transaction listed out of order, or missing, or listed twice breaks that chain.
"""

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy import create_engine, select

from casinohub.v1 import common_pb2, wallet_service_pb2 as pb
from hub.ledger import postings
from hub.ledger.db import make_engine
from hub.ledger.schema import accounts, ledger_transactions
from tests.e2e.play_client import opened_stream
from tests.e2e.test_promotions import grant_bonus
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, start_hub

USD = "USD"


def usd(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency=USD, amount_minor=amount)


async def history(hub: Client, player_id: str, page_size: int, between_pages: float = 0) -> list[pb.Transaction]:
    """Every page of the player's history, newest first, as a client pages through it."""
    listed: list[pb.Transaction] = []
    token = ""
    while True:
        page = await hub.wallet.ListTransactions(pb.ListTransactionsRequest(
            player_id=player_id, page_size=page_size, page_token=token), metadata=hub.metadata)
        listed += page.transactions
        if not (token := page.next_page_token):
            return listed
        await asyncio.sleep(between_pages)


def chain_breaks(listed: list[pb.Transaction]) -> list[str]:
    """Where, read oldest to newest, a transaction's balances do not follow from the previous one's."""
    breaks, cash, bonus = [], 0, 0
    for t in reversed(listed):
        expected = (cash + t.amount.amount_minor, bonus + t.bonus_amount.amount_minor)
        actual = (t.balance_after.amount_minor, t.bonus_balance_after.amount_minor)
        if actual != expected:
            breaks.append(f"{pb.TransactionKind.Name(t.kind)} {t.transaction_id}: {actual}, expected {expected}")
        cash, bonus = actual
    return breaks


def transaction_ids(hub: Client, player_id: str) -> set[str]:
    """The player's ledger transactions, read straight from the database."""
    engine = create_engine(hub.database_url)
    with engine.connect() as conn:
        ids = set(conn.execute(select(ledger_transactions.c.transaction_id).where(
            ledger_transactions.c.operator_id == hub.operator_id,
            ledger_transactions.c.player_id == player_id)).scalars())
    engine.dispose()
    return ids


@pytest.fixture
async def bonus_first_hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    """Bets spend bonus money first, so bets and wins move both balances."""
    client = await start_hub(database_url, {"fake": studio}, bonus_spending="bonus_first")
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)


async def test_history_chains_after_concurrent_bets_wins_deposits_and_withdrawals(
        bonus_first_hub: Client, studio: FakeStudio) -> None:
    hub = bonus_first_hub
    studio.win = lambda bet: bet * 2 if bet % 2 else 0
    player_id, token = await hub.new_player(deposit=20_000)
    await grant_bonus(hub, player_id, 3_000, "welcome", wagering=4_000)  # converts to cash mid-run
    streams = await asyncio.gather(*(opened_stream(hub, token) for _ in range(50)))

    async def play(i: int) -> None:
        streams[i].bet(100 + i, f"bet-{i}")
        assert (await streams[i].until("settled", "error"))[-1].WhichOneof("event") == "settled"

    async def deposit(i: int) -> None:
        await hub.wallet.Deposit(pb.DepositRequest(player_id=player_id, amount=usd(70 + i),
                                                   idempotency_key=f"dep-{i}"), metadata=hub.metadata)

    async def withdraw_and_pay(i: int) -> None:  # the payout moves the hold, not cash: its balance_after is read
        out = await hub.wallet.Withdraw(pb.WithdrawRequest(player_id=player_id, amount=usd(30 + i),
                                                           idempotency_key=f"wd-{i}"), metadata=hub.metadata)
        await hub.wallet.ApproveWithdrawal(pb.ApproveWithdrawalRequest(withdrawal_id=out.withdrawal_id),
                                           metadata=hub.metadata)

    await asyncio.gather(*(play(i) for i in range(50)), *(deposit(i) for i in range(15)),
                         *(withdraw_and_pay(i) for i in range(15)))
    for stream in streams:
        await stream.close()

    listed = await history(hub, player_id, page_size=7)
    assert len(listed) == len({t.transaction_id for t in listed})
    assert {t.transaction_id for t in listed} == transaction_ids(hub, player_id)
    assert {t.kind for t in listed} >= {pb.TRANSACTION_KIND_BET, pb.TRANSACTION_KIND_WIN,
                                        pb.TRANSACTION_KIND_BONUS_CONVERTED, pb.TRANSACTION_KIND_WITHDRAWAL_PAID}
    assert chain_breaks(listed) == []
    assert listed[0].balance_after.amount_minor == await hub.balance(player_id)


async def test_paging_while_new_transactions_commit_never_skips_nor_repeats(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=1_000)
    stop = asyncio.Event()

    async def writer() -> None:
        while not stop.is_set():
            await hub.wallet.Deposit(pb.DepositRequest(player_id=player_id, amount=usd(1),
                                                       idempotency_key=str(uuid.uuid4())), metadata=hub.metadata)

    writers = [asyncio.create_task(writer()) for _ in range(12)]
    try:
        while len(transaction_ids(hub, player_id)) < 30:
            await asyncio.sleep(0.05)
        listed = await history(hub, player_id, page_size=4, between_pages=0.02)
    finally:
        stop.set()
        await asyncio.gather(*writers)

    assert len(listed) == len({t.transaction_id for t in listed}) >= 30
    # Starting from zero, so the walk is the whole history up to its first page: nothing skipped, and
    # nothing committed after the first page slipped into a later one.
    assert chain_breaks(listed) == []


async def test_a_payout_waits_for_the_players_wallet(hub: Client) -> None:
    """A payout moves the withdrawal hold, not cash, but records the cash balance: it must wait for a
    transaction of the player in flight (here, one holding the wallet's rows) or its balance_after misses
    that transaction's change, listed before it."""
    player_id, _ = await hub.new_player(deposit=1_000)
    withdrawal_id = (await hub.wallet.Withdraw(pb.WithdrawRequest(
        player_id=player_id, amount=usd(100), idempotency_key="wd"), metadata=hub.metadata)).withdrawal_id
    engine = make_engine(hub.database_url)  # SQLite: BEGIN IMMEDIATE, the database's one write lock
    with engine.connect() as in_flight, in_flight.begin():
        in_flight.execute(select(accounts.c.account_id).where(
            accounts.c.operator_id == hub.operator_id, accounts.c.owner == player_id,
            accounts.c.kind.in_([postings.PLAYER_CASH, postings.PLAYER_BONUS])).with_for_update()).all()
        payout = asyncio.ensure_future(hub.wallet.ApproveWithdrawal(
            pb.ApproveWithdrawalRequest(withdrawal_id=withdrawal_id), metadata=hub.metadata))
        await asyncio.sleep(0.5)
        assert not payout.done()
    assert (await payout).status == pb.WITHDRAWAL_STATUS_APPROVED
    engine.dispose()


async def test_page_tokens_are_signed_and_bound_to_their_query(hub: Client) -> None:
    """A token only continues the listing that issued it; page_size alone may change between pages."""
    player_id, _ = await hub.new_player(deposit=100)
    other, _ = await hub.new_player(deposit=100)
    for i in range(3):
        await hub.wallet.Deposit(pb.DepositRequest(player_id=player_id, idempotency_key=f"more-{i}",
                                                   amount=common_pb2.Money(currency="USD", amount_minor=1)),
                                 metadata=hub.metadata)
    first = await hub.wallet.ListTransactions(pb.ListTransactionsRequest(player_id=player_id, page_size=1),
                                              metadata=hub.metadata)
    token = first.next_page_token
    rest = await hub.wallet.ListTransactions(pb.ListTransactionsRequest(
        player_id=player_id, page_size=10, page_token=token), metadata=hub.metadata)
    assert len(rest.transactions) == 3 and not rest.next_page_token
    forged = [base64.urlsafe_b64encode(p).decode() for p in (b"0", b"7", b"2026-01-01T00:00:00|tx", b"\xff")]
    for request in [pb.ListTransactionsRequest(player_id=other, page_token=token),
                    pb.ListTransactionsRequest(player_id=player_id, currency="USD", page_token=token),
                    pb.ListTransactionsRequest(page_token=token),
                    pb.ListTransactionsRequest(player_id=player_id, page_token=token[:-1] + "A"),
                    pb.ListTransactionsRequest(player_id=player_id, page_token=token.swapcase()),
                    *(pb.ListTransactionsRequest(player_id=player_id, page_token=f) for f in forged)]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await hub.wallet.ListTransactions(request, metadata=hub.metadata)
        assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"), request
