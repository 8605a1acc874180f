"""Every row of DESIGN.md's idempotency and rollback table, as its own test, on SQLite and MariaDB.

Each test drives hub.ledger.rounds directly (as a push-style provider's callbacks would), then checks
balances and that the ledger check still passes for the operator.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from hub.clock import utcnow
from hub.errors import DomainError, Reason, State
from hub.ledger.rounds import Bet
from hub.ledger.schema import game_sessions, players, rounds
from hub.money import Money
from hub.page_tokens import PageTokens
from hub.wallet import Wallet
from tests.books import USD, Books, open_books, refused


@pytest.fixture
async def books(database_url: str) -> AsyncIterator[Books]:
    async with open_books(database_url) as opened:
        yield opened


async def test_same_key_same_request_returns_the_stored_receipt_without_a_second_effect(books: Books) -> None:
    first = await books.bet("b1", 100)
    count = await books.transactions()
    again = await books.bet("b1", 100)
    assert again.encode() == first.encode() and again.replayed and not first.replayed
    assert await books.transactions() == count and await books.balance() == 900
    books.assert_ledger_ok()


async def test_same_key_different_request_is_idempotency_key_reused(books: Books) -> None:
    await books.bet("b1", 100)
    err = await refused(books.bet("b1", 101), Reason.IDEMPOTENCY_KEY_REUSED)
    assert (err.reason.retryable, err.state) == (False, State.NOT_APPLIED)
    assert await books.balance() == 900


async def test_insufficient_funds_applies_nothing(books: Books) -> None:
    count = await books.transactions()
    err = await refused(books.bet("b1", 1_001), Reason.INSUFFICIENT_FUNDS)
    assert not err.reason.retryable
    assert (await books.balance(), await books.transactions()) == (1_000, count)
    await books.bet("b1", 1_000)  # the key stayed free: nothing was applied under it
    assert await books.balance() == 0


async def test_win_for_an_unknown_round_is_bet_not_found(books: Books) -> None:
    await refused(books.win("w1", 50, round_id="never-opened"), Reason.BET_NOT_FOUND)


async def test_win_for_an_unknown_bet_is_bet_not_found(books: Books) -> None:
    await books.bet("b1", 100)
    await refused(books.win("w1", 50, bet_id="b-unknown"), Reason.BET_NOT_FOUND)
    assert await books.balance() == 900


async def test_bet_or_win_on_a_closed_round_is_round_closed(books: Books) -> None:
    await books.bet("b1", 100)
    await books.win("w1", 250)
    assert await books.close() == "SETTLED"
    await refused(books.bet("b2", 100), Reason.ROUND_CLOSED)
    await refused(books.win("w2", 100), Reason.ROUND_CLOSED)
    assert await books.balance() == 1_150
    assert await books.close() == "SETTLED"  # closing again is harmless
    books.assert_ledger_ok()


async def test_rollback_of_an_unknown_bet_is_ok_with_balance_and_tombstones_the_id(books: Books) -> None:
    receipt = await books.rollback("b-late", "rb1")
    assert (receipt.balance, receipt.transaction_id) == (1_000, "")
    err = await refused(books.bet("b-late", 100), Reason.TRANSACTION_ROLLED_BACK)
    assert not err.reason.retryable
    assert await books.balance() == 1_000
    assert (await books.rollback("b-late", "rb1")).encode() == receipt.encode()  # replay


async def test_win_after_the_bet_was_rolled_back_is_transaction_rolled_back(books: Books) -> None:
    await books.bet("b1", 100)
    await books.rollback("b1", "rb1")
    await refused(books.win("w1", 300, bet_id="b1"), Reason.TRANSACTION_ROLLED_BACK)
    await refused(books.win("w2", 300), Reason.TRANSACTION_ROLLED_BACK)  # no bet left standing
    assert await books.balance() == 1_000
    books.assert_ledger_ok()


async def test_rollback_after_the_round_settled_is_round_already_settled(books: Books) -> None:
    await books.bet("b1", 100)
    await books.close()
    await refused(books.rollback("b1", "rb1"), Reason.ROUND_ALREADY_SETTLED)
    assert await books.balance() == 900


async def test_rolling_back_one_bet_of_a_multi_bet_round_leaves_the_others(books: Books) -> None:
    await books.bet("main", 100)
    await books.bet("side", 30)
    await books.bet("double", 100)
    assert await books.balance() == 770
    await books.rollback("side", "rb-side")
    await books.win("w-main", 400, bet_id="main")
    await books.rollback("side", "rb-side-again")  # a second rollback of the same bet moves nothing
    assert await books.balance() == 1_200
    assert await books.close() == "SETTLED"
    row = await books.db.run(lambda uow: uow.conn.execute(select(rounds).where(
        rounds.c.round_id == "r1", rounds.c.operator_id == books.operator_id)).one())
    assert (row.bet_amount, row.win_amount, row.status) == (230, 400, "SETTLED")
    books.assert_ledger_ok()


async def test_a_round_whose_bets_were_all_rolled_back_closes_as_rolled_back(books: Books) -> None:
    await books.bet("b1", 100)
    await books.rollback("b1", "rb1")
    assert await books.close() == "ROLLED_BACK"
    assert await books.balance() == 1_000


async def test_blocked_player_cannot_bet_but_wins_and_rollbacks_are_paid(books: Books) -> None:
    await books.bet("b1", 100)
    await books.bet("b2", 50)
    await books.tx(lambda uow: uow.conn.execute(update(players).where(players.c.player_id == books.player_id)
                                                .values(status="blocked")))
    await refused(books.bet("b3", 10), Reason.PLAYER_BLOCKED)
    await books.win("w1", 300, bet_id="b1")
    await books.rollback("b2", "rb2")
    assert await books.balance() == 1_000 - 100 + 300
    books.assert_ledger_ok()


async def test_expired_session_refuses_bets_but_wins_are_paid(books: Books) -> None:
    session_id = str(uuid.uuid4())
    await books.tx(lambda uow: uow.conn.execute(game_sessions.insert().values(
        game_session_id=session_id, operator_id=books.operator_id, player_id=books.player_id,
        game_id="fake:coin-flip", currency=USD, client_seed="c", server_seed_hash="0" * 64, last_seq=0,
        created_at=utcnow(), expires_at=utcnow() + timedelta(hours=1))))
    await books.bet("b1", 100, session=session_id)
    await books.tx(lambda uow: uow.conn.execute(update(game_sessions).where(
        game_sessions.c.game_session_id == session_id).values(expires_at=utcnow() - timedelta(seconds=1))))
    await refused(books.bet("b2", 100, session=session_id), Reason.GAME_SESSION_CLOSED)
    await books.win("w1", 500)
    assert await books.balance() == 1_400
    books.assert_ledger_ok()


async def test_bets_of_another_player_cannot_join_a_round(books: Books) -> None:
    await books.bet("b1", 100)
    other = Bet(books.operator_id, "someone-else", USD, "r1", "fake:coin-flip", "b2", 10)
    with pytest.raises(DomainError):
        await books.engine.submit(books.rounds.bet, other)
    assert await books.balance() == 900


async def test_round_totals_cannot_overflow_int64(books: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the state machine: a bet, its rollback and a second bet of int64 max each overflowed
    rounds.bet_amount (a raw database error on MariaDB, a float on SQLite). The ledger guards it even
    where no per-transaction maximum would (here lifted to int64 max)."""
    from hub.money import INT64_MAX, MAX_TRANSACTION_MINOR

    monkeypatch.setitem(MAX_TRANSACTION_MINOR, USD, INT64_MAX)
    await Wallet(books.db, books.engine, 8, PageTokens(b"test")).deposit(books.operator_id, books.player_id, Money(USD, INT64_MAX - 1_000), "top-up")
    await books.bet("huge-1", INT64_MAX)
    await books.rollback("huge-1", "rb-huge-1")
    await refused(books.bet("huge-2", INT64_MAX), Reason.INVALID_AMOUNT)
    assert await books.balance() == INT64_MAX
    books.assert_ledger_ok()
