"""ReportService.GetLedgerTotals over a live hub, on SQLite and MariaDB: the house as the sum of its shards,
checked against the accounts table read directly."""

import dataclasses
import uuid
from collections import defaultdict

import grpc
import pytest
from sqlalchemy import create_engine, select

from casinohub.v1 import common_pb2, report_service_pb2 as pb, report_service_pb2_grpc, wallet_service_pb2
from hub.clock import utcnow
from hub.ledger import postings
from hub.ledger.book import Book
from hub.ledger.schema import accounts
from tests.e2e.play_client import opened_stream
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, access_token, bearer

USD, JPY = "USD", "JPY"
LISTED = ("house", "player_cash", "player_hold", "player_bonus", "promotion", "external")


async def totals(hub: Client, currency: str = "", operator_id: str | None = None) -> list[pb.CurrencyTotals]:
    stub = report_service_pb2_grpc.ReportServiceStub(hub.channel)
    response = await stub.GetLedgerTotals(pb.GetLedgerTotalsRequest(currency=currency),
                                          metadata=bearer(access_token(hub.database_url, operator_id))
                                          if operator_id else hub.metadata)
    return list(response.totals)


def account_rows(hub: Client, currency: str) -> dict[str, list[int]]:
    """Balances by account kind, read straight from the accounts table (this operator only)."""
    engine = create_engine(hub.database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(accounts.c.kind, accounts.c.balance).where(
            accounts.c.operator_id == hub.operator_id, accounts.c.currency == currency)).all()
    engine.dispose()
    by_kind: dict[str, list[int]] = defaultdict(list)
    for kind, balance in rows:
        by_kind[kind].append(balance)
    return by_kind


async def post(hub: Client, player_id: str, legs: list[postings.Leg]) -> None:
    """A balanced ledger transaction straight through the ledger (no RPC grants bonuses yet)."""

    def _post(book: Book, _command: None) -> None:
        postings.post(book, operator_id=hub.operator_id, transaction_id=str(uuid.uuid4()), kind="test",
                      player_id=player_id, currency=USD, round_id=None, idempotency_key=str(uuid.uuid4()),
                      legs=legs, now=utcnow())

    await hub.server.hub.engine.submit(_post, None)


async def busy_ledger(hub: Client, studio: FakeStudio) -> list[str]:
    """Players spread over at least three house shards, each playing rounds; a pending withdrawal, a paid
    one, a bonus from the promotion budget and a second currency. Returns the player ids."""
    studio.win = lambda bet: 3 * bet if bet % 2 else 0  # odd bets win: some shards end up negative
    shards = hub.server.hub.config.house_shards
    players: list[str] = []
    used: set[str] = set()
    for _ in range(40):  # crc32 spreads players evenly: three shards take a handful of players
        player_id, token = await hub.new_player(deposit=10_000)
        players.append(player_id)
        used.add(postings.house(player_id, USD, shards).owner)
        stream = await opened_stream(hub, token)
        for i, amount in enumerate((100 + len(players), 250)):
            stream.bet(amount, f"bet-{player_id}-{i}")
            assert (await stream.until("settled", "error"))[-1].WhichOneof("event") == "settled"
        await stream.close()
        if len(used) >= 3 and len(players) >= 4:
            break
    assert len(used) >= 3

    def withdraw(player_id: str, amount: int) -> wallet_service_pb2.WithdrawRequest:
        return wallet_service_pb2.WithdrawRequest(player_id=player_id, idempotency_key=str(uuid.uuid4()),
                                                  amount=common_pb2.Money(currency=USD, amount_minor=amount))

    await hub.wallet.Withdraw(withdraw(players[0], 700), metadata=hub.metadata)  # stays pending: a hold
    paid = await hub.wallet.Withdraw(withdraw(players[1], 300), metadata=hub.metadata)
    await hub.wallet.ApproveWithdrawal(wallet_service_pb2.ApproveWithdrawalRequest(
        withdrawal_id=paid.withdrawal_id), metadata=hub.metadata)
    promotion, bonus = postings.AccountRef(postings.PROMOTION, "", USD), postings.AccountRef(
        postings.PLAYER_BONUS, players[2], USD)
    await post(hub, players[2], [postings.Leg(promotion, -400), postings.Leg(bonus, 400)])
    await hub.new_player(deposit=5_000, currency=JPY)
    return players


async def test_house_is_the_sum_of_its_shards_and_everything_nets_to_zero(
        hub: Client, studio: FakeStudio) -> None:
    await busy_ledger(hub, studio)
    usd, = await totals(hub, USD)
    rows = account_rows(hub, USD)
    assert usd.currency == USD
    assert usd.house.amount_minor == sum(rows["house"]) and usd.house_shards == len(rows["house"]) >= 3
    assert usd.player_cash.amount_minor == sum(rows["player_cash"])
    assert usd.player_hold.amount_minor == sum(rows["player_hold"]) == 700
    assert usd.player_bonus.amount_minor == sum(rows["player_bonus"]) == 400
    assert usd.promotion.amount_minor == sum(rows["promotion"]) == -400
    assert usd.external.amount_minor == sum(rows["external"])
    assert {getattr(usd, f).currency for f in (*LISTED, "net")} == {USD}
    assert usd.net.amount_minor == 0 == sum(getattr(usd, f).amount_minor for f in LISTED)
    assert usd.house.amount_minor != 0  # bets and wins did move money through the shards


async def test_currency_filter_and_order(hub: Client, studio: FakeStudio) -> None:
    await busy_ledger(hub, studio)
    every = await totals(hub)
    assert [t.currency for t in every] == [JPY, USD]
    assert [t.currency for t in await totals(hub, JPY)] == [JPY]
    jpy = every[0]
    assert (jpy.player_cash.amount_minor, jpy.external.amount_minor, jpy.house_shards) == (5_000, -5_000, 0)
    assert jpy.net.amount_minor == 0
    assert await totals(hub, "EUR") == []  # a known currency without accounts


@pytest.mark.parametrize("currency", ["XXX", "usd"])
async def test_unknown_currency_is_refused(hub: Client, currency: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await totals(hub, currency)
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_CURRENCY")


async def test_another_operators_money_is_not_included(hub: Client) -> None:
    await hub.new_player(deposit=1_000)
    other = dataclasses.replace(hub, operator_id=f"op-{uuid.uuid4().hex[:12]}")
    await hub.server.hub.operators.ensure(other.operator_id, "Other")
    await other.new_player(deposit=987_654)
    mine, = await totals(hub)
    theirs, = await totals(hub, operator_id=other.operator_id)
    assert (mine.player_cash.amount_minor, mine.external.amount_minor) == (1_000, -1_000)
    assert (theirs.player_cash.amount_minor, theirs.external.amount_minor) == (987_654, -987_654)


async def test_an_unlisted_account_kind_still_counts_in_net(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=1_000)
    await post(hub, player_id, [postings.Leg(postings.player_cash(player_id, USD), -250),
                                postings.Leg(postings.AccountRef("suspense", "", USD), 250)])
    usd, = await totals(hub, USD)
    assert usd.player_cash.amount_minor == 750 and usd.external.amount_minor == -1_000
    assert sum(getattr(usd, f).amount_minor for f in LISTED) == -250  # the suspense account is in no field
    assert usd.net.amount_minor == 0  # ... but it is in net
