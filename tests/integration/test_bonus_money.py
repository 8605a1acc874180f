"""Bonus money and free rounds in the round ledger, on SQLite and MariaDB: how bets spend cash and bonus,
how wins split, where refunds go, wagering, conversion, expiry, forfeits and free-round grants.
Every test ends with the ledger check passing for its operator."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from hub.clock import utcnow
from hub.errors import DomainError, Reason
from hub.ledger import bonuses, free_rounds, postings
from hub.ledger.schema import bonuses as bonus_table, free_round_grants, ledger_transactions
from hub.promotions import Promotions
from tests.books import GAME, SHARDS, USD, Books, open_books, refused


@pytest.fixture
async def books(database_url: str) -> AsyncIterator[Books]:
    async with open_books(database_url) as opened:
        yield opened
    opened.assert_ledger_ok()


async def grant(books: Books, amount: int = 500, wagering: int = 2_000, key: str = "bonus-1",
                expires_in: timedelta = timedelta(days=7)) -> str:
    row = await books.command(lambda book: bonuses.grant(
        book, operator_id=books.operator_id, player_id=books.player_id, currency=USD, amount=amount,
        wagering_required=wagering, expires_at=utcnow() + expires_in, key=key, now=utcnow(), shards=SHARDS))
    return str(row["bonus_id"])


async def bonus_row(books: Books, bonus_id: str):  # type: ignore[no-untyped-def]
    row = await books.db.run(lambda uow: bonuses.load(uow, books.operator_id, bonus_id))
    return SimpleNamespace(**row)


async def promotion_total(books: Books) -> int:
    return sum([await books.db.run(lambda uow, s=s: postings.read_balance(
        uow, books.operator_id, postings.AccountRef(postings.PROMOTION, str(s), USD))) for s in range(SHARDS)])


async def test_a_grant_moves_promotion_money_into_the_bonus_balance(books: Books) -> None:
    bonus_id = await grant(books)
    assert (await books.balance(), await books.bonus(), await promotion_total(books)) == (1_000, 500, -500)
    row = await bonus_row(books, bonus_id)
    assert (row.status, row.wagered, row.wagering_required) == (bonuses.ACTIVE, 0, 2_000)
    await refused(grant(books, key="bonus-2"), Reason.BONUS_ALREADY_ACTIVE)
    assert await books.bonus() == 500


async def test_bets_spend_cash_first_then_bonus(books: Books) -> None:
    await grant(books)
    receipt = await books.bet("b1", 1_200)
    assert (receipt.balance, receipt.bonus_balance) == (0, 300)
    assert (await books.balance(), await books.bonus()) == (0, 300)
    await refused(books.bet("b2", 301, round_id="r2"), Reason.INSUFFICIENT_FUNDS)
    assert (await books.balance(), await books.bonus()) == (0, 300)


async def test_bonus_first_spending_is_configurable(database_url: str) -> None:
    async with open_books(database_url, bonus_spending=bonuses.BONUS_FIRST) as books:
        await grant(books)
        receipt = await books.bet("b1", 700)
        assert (receipt.balance, receipt.bonus_balance) == (800, 0)
        books.assert_ledger_ok()


async def test_a_win_splits_in_proportion_to_what_the_bets_spent(books: Books) -> None:
    await grant(books)
    await books.bet("b1", 1_200)  # 1000 cash + 200 bonus
    receipt = await books.win("w1", 600)
    assert (receipt.balance, receipt.bonus_balance) == (500, 400)  # 1/6 of the win is bonus money


async def test_a_win_share_rounds_down_for_bonus_so_cash_gets_the_remainder(database_url: str) -> None:
    async with open_books(database_url, cash=1) as books:
        await grant(books, amount=2)
        await books.bet("b1", 3)  # 1 cash + 2 bonus
        receipt = await books.win("w1", 10)  # bonus share 20/3 = 6.67 -> 6
        assert (receipt.balance, receipt.bonus_balance) == (4, 6)
        books.assert_ledger_ok()


async def test_a_win_naming_one_bet_splits_by_that_bet_alone(books: Books) -> None:
    await grant(books)
    await books.bet("cash-bet", 1_000)  # all cash
    await books.bet("bonus-bet", 400)  # all bonus
    receipt = await books.win("w1", 800, bet_id="bonus-bet")
    assert (receipt.balance, receipt.bonus_balance) == (0, 900)


async def test_a_rollback_returns_each_part_where_it_came_from(books: Books) -> None:
    await grant(books)
    await books.bet("b1", 1_200)
    receipt = await books.rollback("b1", "rb1")
    assert (receipt.balance, receipt.bonus_balance) == (1_000, 500)


async def test_settled_stakes_count_toward_wagering_and_convert_the_bonus(books: Books) -> None:
    bonus_id = await grant(books, wagering=1_500)
    await books.bet("b1", 800)
    assert (await bonus_row(books, bonus_id)).wagered == 0  # counted when the round settles
    await books.close()
    assert (await bonus_row(books, bonus_id)).wagered == 800
    await books.bet("rolled-back", 700, round_id="r2")
    await books.rollback("rolled-back", "rb")
    await books.close("r2")
    assert (await bonus_row(books, bonus_id)).wagered == 800  # a rolled-back bet wagers nothing
    await books.bet("b3", 700, round_id="r3")  # 200 cash + 500 bonus
    await books.win("w3", 1_400, round_id="r3")  # 1000 cash + 400 bonus
    await books.close("r3")
    row = await bonus_row(books, bonus_id)
    assert (row.status, row.wagered) == (bonuses.CONVERTED, 1_500)
    assert (await books.balance(), await books.bonus()) == (1_400, 0)
    kind = await books.db.run(lambda uow: uow.conn.execute(select(ledger_transactions.c.kind).where(
        ledger_transactions.c.transaction_id == row.closing_transaction_id)).scalar_one())
    assert kind == "bonus_converted"


async def test_money_returning_to_a_converted_bonus_is_cash(books: Books) -> None:
    bonus_id = await grant(books, wagering=100)
    await books.bet("open-bet", 1_100, round_id="still-open")  # 1000 cash + 100 bonus, round stays open
    await books.bet("b2", 100, round_id="r2")
    await books.close("r2")  # wagering met: the remaining bonus (300) converts
    assert (await bonus_row(books, bonus_id)).status == bonuses.CONVERTED
    assert (await books.balance(), await books.bonus()) == (300, 0)
    receipt = await books.rollback("open-bet", "rb")
    assert (receipt.balance, receipt.bonus_balance) == (1_400, 0)


async def test_forfeit_returns_the_bonus_and_later_returns_follow_it(books: Books) -> None:
    bonus_id = await grant(books)
    await books.bet("b1", 1_500)  # 1000 cash + 500 bonus
    row = await books.command(lambda book: bonuses.forfeit(book, books.operator_id, bonus_id, utcnow(), SHARDS))
    assert row["status"] == bonuses.FORFEITED
    again = await books.command(lambda book: bonuses.forfeit(book, books.operator_id, bonus_id, utcnow(), SHARDS))
    assert again["closing_transaction_id"] == row["closing_transaction_id"]  # asked again: the same answer
    receipt = await books.win("w1", 3_000)  # a third of it belongs to the forfeited bonus
    assert (receipt.balance, receipt.bonus_balance) == (2_000, 0)
    assert await promotion_total(books) == -500 + 1_000  # granted 500, got back the bonus share of the win
    await refused(books.command(lambda book: bonuses.forfeit(book, books.operator_id, "nope", utcnow(), SHARDS)),
                  Reason.BONUS_NOT_FOUND)


async def test_a_converted_bonus_cannot_be_forfeited(books: Books) -> None:
    bonus_id = await grant(books, wagering=100)
    await books.bet("b1", 100)
    await books.close()
    await refused(books.command(lambda book: bonuses.forfeit(book, books.operator_id, bonus_id, utcnow(), SHARDS)),
                  Reason.BONUS_NOT_ACTIVE)


async def test_an_expired_bonus_is_not_spent_and_returns_to_promotion(books: Books) -> None:
    bonus_id = await grant(books)
    await books.tx(lambda uow: uow.conn.execute(update(bonus_table).where(
        bonus_table.c.operator_id == books.operator_id, bonus_table.c.bonus_id == bonus_id,
    ).values(expires_at=utcnow() - timedelta(seconds=1))))
    await refused(books.bet("b1", 1_200), Reason.INSUFFICIENT_FUNDS)  # only the 1000 cash is spendable
    assert (await bonus_row(books, bonus_id)).status == bonuses.ACTIVE  # the refused bet changed nothing
    receipt = await books.bet("b2", 1_000)
    assert (receipt.balance, receipt.bonus_balance) == (0, 0)
    row = await bonus_row(books, bonus_id)
    assert row.status == bonuses.EXPIRED and await promotion_total(books) == 0
    await grant(books, key="bonus-2")  # the wallet may hold a new bonus now


async def test_the_sweep_expires_bonuses_nobody_touched(books: Books) -> None:
    bonus_id = await grant(books, expires_in=timedelta(milliseconds=1))
    await asyncio.sleep(0.01)
    promotions = Promotions(books.db, books.engine, catalog=None, house_shards=SHARDS)  # type: ignore[arg-type]
    assert await promotions.expire_due() >= 1
    row = await bonus_row(books, bonus_id)
    assert row.status == bonuses.EXPIRED and row.closing_transaction_id
    assert (await books.bonus(), await promotion_total(books)) == (0, 0)
    assert await promotions.expire_due() == 0


async def grant_free_rounds(books: Books, rounds: int = 3, bet: int = 100,
                            expires_in: timedelta = timedelta(days=1)) -> str:
    row = await books.command(lambda book: free_rounds.grant(
        book, operator_id=books.operator_id, player_id=books.player_id, game_id=GAME, currency=USD,
        bet_amount=bet, rounds=rounds, expires_at=utcnow() + expires_in, now=utcnow()))
    return str(row["grant_id"])


async def rounds_left(books: Books, grant_id: str) -> int:
    return await books.db.run(lambda uow: uow.conn.execute(select(free_round_grants.c.rounds_left).where(
        free_round_grants.c.operator_id == books.operator_id, free_round_grants.c.grant_id == grant_id)).scalar_one())


async def test_free_rounds_are_used_before_the_balance_and_paid_by_the_operator(books: Books) -> None:
    grant_id = await grant_free_rounds(books)
    receipt = await books.bet("f1", 100, free_rounds=True)
    assert receipt.free_round and (receipt.balance, receipt.bonus_balance) == (1_000, 0)
    assert await rounds_left(books, grant_id) == 2 and await promotion_total(books) == -100
    await refused(books.bet("f2", 200, round_id="r2", free_rounds=True), Reason.FREE_ROUND_BET_MISMATCH)
    win = await books.win("w1", 250)  # free-round winnings are cash
    assert (win.balance, win.bonus_balance) == (1_250, 0)
    plain = await books.bet("p1", 100, round_id="r3")  # a bet not from Play (a push provider) pays itself
    assert not plain.free_round and plain.balance == 1_150


async def test_a_rolled_back_free_round_is_given_back(books: Books) -> None:
    grant_id = await grant_free_rounds(books, rounds=1)
    await books.bet("f1", 100, free_rounds=True)
    assert await rounds_left(books, grant_id) == 0
    receipt = await books.rollback("f1", "rb1")
    assert receipt.balance == 1_000 and await rounds_left(books, grant_id) == 1
    assert await promotion_total(books) == 0
    again = await books.bet("f2", 100, round_id="r2", free_rounds=True)
    assert again.free_round and await rounds_left(books, grant_id) == 0
    after = await books.bet("f3", 300, round_id="r3", free_rounds=True)  # none left: cash again
    assert not after.free_round and after.balance == 700


async def test_expired_free_rounds_are_not_used(books: Books) -> None:
    await grant_free_rounds(books, expires_in=timedelta(seconds=-1))
    receipt = await books.bet("b1", 300, free_rounds=True)
    assert not receipt.free_round and receipt.balance == 700


async def test_concurrent_grants_to_one_wallet_leave_one_active_bonus(books: Books) -> None:
    results = await asyncio.gather(*(grant(books, amount=100 + i, key=f"race-{i}") for i in range(6)),
                                   return_exceptions=True)
    granted = [r for r in results if isinstance(r, str)]
    assert len(granted) == 1, results
    assert all(isinstance(r, DomainError) and r.reason is Reason.BONUS_ALREADY_ACTIVE
               for r in results if not isinstance(r, str))
    active = await books.db.run(lambda uow: uow.conn.execute(select(bonus_table.c.amount).where(
        bonus_table.c.operator_id == books.operator_id, bonus_table.c.status == bonuses.ACTIVE)).scalars().all())
    assert [await books.bonus()] == active
