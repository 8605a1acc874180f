"""A test's own set of books: an operator, one funded player and the round ledger, driven directly (as a
push-style provider's callbacks would), on whichever database the test runs against."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from sqlalchemy import select

from hub.clock import utcnow
from hub.errors import DomainError, Reason
from hub.ledger import bonuses, postings
from hub.ledger.book import Book
from hub.ledger.check import check
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import Bet, Receipt, Rollback, RoundLedger, Win
from hub.ledger.schema import ledger_transactions, players
from hub.ledger.uow import UnitOfWork
from hub.money import Money
from hub.operators import Operators
from hub.page_tokens import PageTokens
from hub.wallet import Wallet

T = TypeVar("T")
USD = "USD"
GAME = "fake:coin-flip"
SHARDS = 8


@dataclass
class Books:
    url: str
    db: Database
    engine: SettlementEngine
    rounds: RoundLedger
    operator_id: str
    player_id: str

    async def tx(self, fn: Callable[[UnitOfWork], T]) -> T:
        def _run(uow: UnitOfWork) -> T:
            result = fn(uow)
            uow.commit()
            return result

        return await self.db.run(_run)

    async def command(self, fn: Callable[[Book], T]) -> T:
        """fn(book) as one command of the settlement engine."""
        return await self.engine.submit(lambda book, _: fn(book), None)

    async def bet(self, bet_id: str, amount: int, round_id: str = "r1", session: str | None = None,
                  free_rounds: bool = False) -> Receipt:
        cmd = Bet(self.operator_id, self.player_id, USD, round_id, GAME, bet_id, amount, session, free_rounds)
        return await self.engine.submit(self.rounds.bet, cmd)

    async def win(self, win_id: str, amount: int, round_id: str = "r1", bet_id: str = "") -> Receipt:
        return await self.engine.submit(self.rounds.win, Win(self.operator_id, round_id, win_id, amount, bet_id))

    async def rollback(self, bet_id: str, rollback_id: str) -> Receipt:
        cmd = Rollback(self.operator_id, self.player_id, USD, bet_id, rollback_id)
        return await self.engine.submit(self.rounds.rollback, cmd)

    async def close(self, round_id: str = "r1") -> str:
        return await self.command(lambda book: self.rounds.close(book, self.operator_id, round_id))

    async def balance(self) -> int:
        return await self.db.run(lambda uow: postings.read_balance(
            uow, self.operator_id, postings.player_cash(self.player_id, USD)))

    async def bonus(self) -> int:
        return await self.db.run(lambda uow: postings.read_balance(
            uow, self.operator_id, postings.player_bonus(self.player_id, USD)))

    async def transactions(self) -> int:
        return len(await self.db.run(lambda uow: uow.conn.execute(select(ledger_transactions.c.transaction_id).where(
            ledger_transactions.c.operator_id == self.operator_id)).all()))

    def assert_ledger_ok(self) -> None:
        report, = check(self.url, self.operator_id)
        assert report.ok, report.render()


@contextlib.asynccontextmanager
async def open_books(database_url: str, cash: int = 1_000,
                     bonus_spending: str = bonuses.CASH_FIRST) -> AsyncIterator[Books]:
    db = Database.from_url(database_url, workers=2)
    operator_id = f"op-{uuid.uuid4().hex[:12]}"
    await Operators(db).ensure(operator_id, "test")
    player_id = str(uuid.uuid4())

    def _player(uow: UnitOfWork) -> None:
        uow.conn.execute(players.insert().values(player_id=player_id, operator_id=operator_id, username="p",
                                                 password_hash="-", status="active", created_at=utcnow()))
        uow.commit()

    await db.run(_player)
    engine = SettlementEngine(db)
    try:
        if cash:
            await Wallet(db, engine, SHARDS, PageTokens(b"test")).deposit(operator_id, player_id, Money(USD, cash),
                                                                          "funding")
        yield Books(database_url, db, engine, RoundLedger(SHARDS, bonus_spending), operator_id, player_id)
    finally:
        engine.close()
        db.close()


async def refused(call: "object", reason: Reason) -> DomainError:
    with pytest.raises(DomainError) as err:
        await call  # type: ignore[misc]
    assert err.value.reason is reason, err.value
    return err.value
