"""Cashier operations on a player's cash wallet: deposit, withdraw, balance, history.

Each money movement is one command of the settlement engine: idempotency record, balanced postings and
the stored receipt commit together or not at all.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import and_, select

from hub import records
from hub.clock import utcnow
from hub.config import CashierLimit
from hub.errors import DomainError, Reason, quote
from hub.ledger import bonuses, free_rounds, idempotency, limits, postings
from hub.ledger.book import Book
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import require_player
from hub.ledger.schema import ledger_transactions, rounds, withdrawals
from hub.ledger.uow import UnitOfWork
from hub.money import Money, exponent, positive_amount
from hub.page_tokens import PageTokens
from hub.players import require_player as require_player_now
from hub.promotions import bonus_view, grant_view
from hub.receipts import Bonus, DepositReceipt, FreeRoundGrant, WithdrawalReceipt

R = TypeVar("R", DepositReceipt, WithdrawalReceipt)
# Ledger transaction kinds, as ListTransactions filters and shows them.
KINDS = ("deposit", "withdrawal", "withdrawal_paid", "withdrawal_released", "bet", "win", "rollback",
         "bonus_granted", "bonus_converted", "bonus_expired", "bonus_forfeited", "promo_win")
PENDING, APPROVED, REJECTED = "PENDING", "APPROVED", "REJECTED"


@dataclass(frozen=True)
class WithdrawalDecision:
    transaction_id: str  # the payout (APPROVED) or the release back to cash (REJECTED)
    status: str
    balance: Money  # the player's cash after it


@dataclass(frozen=True)
class Balance:
    cash: Money
    bonus: Money  # zero unless a bonus is active
    active_bonus: Bonus | None
    free_rounds: tuple[FreeRoundGrant, ...]  # usable, soonest-expiring first


@dataclass(frozen=True)
class TransactionQuery:
    """ListTransactions' filters; empty or None: any."""

    player_id: str = ""
    currency: str = ""
    round_id: str = ""
    kind: str = ""  # one of KINDS; the edge passes an unknown kind on, to be refused here
    created_after: datetime | None = None
    created_before: datetime | None = None
    page_size: int = 0  # 0: 50
    page_token: str = ""


@dataclass(frozen=True)
class Transaction:
    transaction_id: str
    kind: str
    player_id: str
    amount: Money  # signed change to the player's cash
    balance_after: Money
    round_id: str
    idempotency_key: str
    created_at: datetime
    bonus_amount: Money
    bonus_balance_after: Money


@dataclass(frozen=True)
class TransactionPage:
    transactions: tuple[Transaction, ...]
    next_page_token: str  # empty on the last page


@dataclass(frozen=True)
class Deposit:
    operator_id: str
    player_id: str
    money: Money
    key: str

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.operator_id, self.player_id, self.money.currency),)


@dataclass(frozen=True)
class Withdraw(Deposit):
    pass


@dataclass(frozen=True)
class Decide:
    """Pay out (APPROVED) or release (REJECTED) a pending withdrawal."""

    operator_id: str
    withdrawal_id: str
    decision: str


class Wallet:
    def __init__(self, db: Database, engine: SettlementEngine, house_shards: int, page_tokens: PageTokens,
                 limits: tuple[CashierLimit, ...] = ()):
        self._db = db
        self._engine = engine
        self._shards = house_shards
        self._page_tokens = page_tokens
        self._limits = {(limit.operator_id, limit.currency): limit for limit in limits}

    async def deposit(self, operator_id: str, player_id: str, amount: Money, key: str) -> DepositReceipt:
        money = positive_amount(amount.currency, amount.amount_minor)
        idempotency.validate_key(key)
        return await self._engine.submit(self._deposit, Deposit(operator_id, player_id, money, key))

    async def withdraw(self, operator_id: str, player_id: str, amount: Money, key: str) -> WithdrawalReceipt:
        """Moves the amount from cash into the player's hold; it leaves the hold when the operator decides."""
        money = positive_amount(amount.currency, amount.amount_minor)
        limit = self._limits.get((operator_id, money.currency))
        if limit and limit.max_withdrawal_minor and money.amount_minor > limit.max_withdrawal_minor:
            raise DomainError(Reason.WITHDRAWAL_LIMIT_EXCEEDED,
                              f"withdrawals are limited to {limit.max_withdrawal_minor} minor {money.currency}")
        idempotency.validate_key(key)
        return await self._engine.submit(self._withdraw, Withdraw(operator_id, player_id, money, key))

    async def approve_withdrawal(self, operator_id: str, withdrawal_id: str) -> WithdrawalDecision:
        return await self._engine.submit(self._decide, Decide(operator_id, withdrawal_id, APPROVED))

    async def reject_withdrawal(self, operator_id: str, withdrawal_id: str) -> WithdrawalDecision:
        return await self._engine.submit(self._decide, Decide(operator_id, withdrawal_id, REJECTED))

    # -- commands (applied by the settlement engine) ---------------------------------------------------

    def _deposit(self, book: Book, cmd: Deposit) -> DepositReceipt:
        money = cmd.money
        cash, outside = postings.player_cash(cmd.player_id, money.currency), postings.external(money.currency)

        def apply(transaction_id: str, now: datetime) -> DepositReceipt:
            limits.check_not_excluded(book, cmd.operator_id, cmd.player_id, now)
            balance = self._post(book, cmd, "deposit", transaction_id, now,
                                 [postings.Leg(cash, money.amount_minor), postings.Leg(outside, -money.amount_minor)])
            self._check_daily_deposits(book, cmd, now)
            limits.check_deposits(book, cmd.operator_id, cmd.player_id, money.currency, now)  # posted, cash locked
            return DepositReceipt(transaction_id, Money(money.currency, balance))

        return self._keyed(book, cmd, "deposit", apply, DepositReceipt)

    def _withdraw(self, book: Book, cmd: Withdraw) -> WithdrawalReceipt:
        money = cmd.money
        cash, hold = postings.player_cash(cmd.player_id, money.currency), postings.player_hold(cmd.player_id, money.currency)

        def apply(transaction_id: str, now: datetime) -> WithdrawalReceipt:
            balance = self._post(book, cmd, "withdrawal", transaction_id, now,
                                 [postings.Leg(cash, -money.amount_minor), postings.Leg(hold, money.amount_minor)])
            withdrawal_id = str(uuid.uuid4())
            book.insert(withdrawals, {
                "operator_id": cmd.operator_id, "withdrawal_id": withdrawal_id, "player_id": cmd.player_id,
                "currency": money.currency, "amount": money.amount_minor, "status": PENDING,
                "hold_transaction_id": transaction_id, "created_at": now})
            return WithdrawalReceipt(transaction_id, Money(money.currency, balance), withdrawal_id, PENDING)

        return self._keyed(book, cmd, "withdrawal", apply, WithdrawalReceipt)

    def _decide(self, book: Book, cmd: Decide) -> WithdrawalDecision:
        """Exactly once: the same decision asked again gives the same answer and no second movement."""
        row = book.get(withdrawals, (cmd.operator_id, cmd.withdrawal_id))
        if row is None:
            raise DomainError(Reason.WITHDRAWAL_NOT_FOUND, f"no withdrawal {quote(cmd.withdrawal_id)}")
        player_id, currency = row["player_id"], row["currency"]
        cash = postings.player_cash(player_id, currency)
        if row["status"] == cmd.decision:
            return WithdrawalDecision(row["decision_transaction_id"], cmd.decision,
                                      Money(currency, book.balance(cmd.operator_id, cash)))
        if row["status"] != PENDING:
            raise DomainError(Reason.WITHDRAWAL_NOT_PENDING, f"withdrawal {quote(cmd.withdrawal_id)} is {row['status']}")
        now, transaction_id = utcnow(), str(uuid.uuid4())
        hold = postings.player_hold(player_id, currency)
        to = postings.external(currency) if cmd.decision == APPROVED else cash
        kind = "withdrawal_paid" if cmd.decision == APPROVED else "withdrawal_released"
        balance = postings.post(
            book, operator_id=cmd.operator_id, transaction_id=transaction_id, kind=kind, player_id=player_id,
            currency=currency, round_id=None, idempotency_key=f"{cmd.withdrawal_id}:{kind}", now=now,
            legs=[postings.Leg(hold, -row["amount"]), postings.Leg(to, row["amount"])]).cash
        book.update(withdrawals, row, status=cmd.decision, decision_transaction_id=transaction_id, decided_at=now)
        return WithdrawalDecision(transaction_id, cmd.decision, Money(currency, balance))

    @staticmethod
    def _keyed(book: Book, cmd: Deposit, kind: str, apply: Callable[[str, datetime], R], receipt: type[R]) -> R:
        """A money movement once per idempotency key: the stored receipt, or apply and store it."""
        request_fp = idempotency.fingerprint(kind, cmd.player_id, cmd.money.currency, cmd.money.amount_minor)

        def _apply() -> R:
            require_player(book, cmd.operator_id, cmd.player_id)
            return apply(str(uuid.uuid4()), utcnow())

        return idempotency.once(book, cmd.operator_id, cmd.key, request_fp, _apply, records.encode,
                                lambda raw: records.decode(raw, receipt))

    @staticmethod
    def _post(book: Book, cmd: Deposit, kind: str, transaction_id: str, now: datetime,
              legs: list[postings.Leg]) -> int:
        return postings.post(book, operator_id=cmd.operator_id, transaction_id=transaction_id, kind=kind,
                             player_id=cmd.player_id, currency=cmd.money.currency, round_id=None,
                             idempotency_key=cmd.key, legs=legs, now=now).cash

    def _check_daily_deposits(self, book: Book, cmd: Deposit, now: datetime) -> None:
        """Runs after the deposit is posted, while the player's cash row is locked: concurrent deposits of
        one player queue on that lock (or sit in one batch), so they cannot both slip under the limit."""
        currency = cmd.money.currency
        limit = self._limits.get((cmd.operator_id, currency))
        if not limit or not limit.daily_deposit_minor:
            return
        t = ledger_transactions
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        mine = (cmd.operator_id, cmd.player_id, currency, "deposit")
        total = book.total(t, "amount", and_(
            t.c.operator_id == cmd.operator_id, t.c.player_id == cmd.player_id, t.c.currency == currency,
            t.c.kind == "deposit", t.c.created_at >= today),
            lambda r: (r["operator_id"], r["player_id"], r["currency"], r["kind"]) == mine and r["created_at"] >= today)
        if total > limit.daily_deposit_minor:
            raise DomainError(Reason.DEPOSIT_LIMIT_EXCEEDED,
                              f"deposits today would reach {total} of a daily limit of {limit.daily_deposit_minor} "
                              f"minor {currency}")

    async def balance(self, operator_id: str, player_id: str, currency: str) -> Balance:
        exponent(currency)

        def _read(uow: UnitOfWork) -> Balance:
            require_player_now(uow, operator_id, player_id)
            now = utcnow()
            wallet = postings.read_wallet(uow, operator_id, player_id, currency)
            grants = tuple(grant_view(g) for g in free_rounds.usable(uow, operator_id, player_id, currency, now))
            active = bonuses.current(uow, operator_id, player_id, currency, now)
            if active is None:  # money of an expired bonus not yet swept back is not the player's to spend
                return Balance(Money(currency, wallet.cash), Money(currency, 0), None, grants)
            return Balance(Money(currency, wallet.cash), Money(currency, wallet.bonus),
                           bonus_view(active, now, wallet.bonus), grants)

        return await self._db.run(_read)

    async def transactions(self, operator_id: str, query: TransactionQuery) -> TransactionPage:
        """Newest first in ledger order, filtered by player, currency, round, kind and time window;
        keyset-paginated."""
        q = query
        if q.currency:
            exponent(q.currency)
        if not 0 <= q.page_size <= 500:
            raise DomainError(Reason.INVALID_ARGUMENT, "page_size must be 0..500")
        if q.kind and q.kind not in KINDS:
            raise DomainError(Reason.INVALID_ARGUMENT, f"unknown transaction kind {q.kind}")
        if q.created_after and q.created_before and q.created_after >= q.created_before:
            raise DomainError(Reason.INVALID_ARGUMENT, "created_after must be before created_before")
        limit = q.page_size or 50
        shape = ("ListTransactions", operator_id, q.player_id, q.currency, q.round_id, q.kind, q.created_after,
                 q.created_before)
        after = _seq(self._page_tokens.read(q.page_token, shape)) if q.page_token else None
        t = ledger_transactions
        select_ = select(t).where(t.c.operator_id == operator_id)
        for wanted, column in ((q.player_id, t.c.player_id), (q.currency, t.c.currency),
                               (q.round_id, t.c.round_id), (q.kind, t.c.kind)):
            if wanted:
                select_ = select_.where(column == wanted)
        if q.created_after:
            select_ = select_.where(t.c.created_at >= q.created_after)
        if q.created_before:
            select_ = select_.where(t.c.created_at < q.created_before)
        if after is not None:
            select_ = select_.where(t.c.seq < after)
        # seq, not created_at: the order the ledger applied them, in which balance_after chains. A page
        # boundary is a seq, so transactions committed between pages never shift it.
        select_ = select_.order_by(t.c.seq.desc()).limit(limit + 1)

        def _read(uow: UnitOfWork) -> list:  # type: ignore[type-arg]
            if q.player_id:
                require_player_now(uow, operator_id, q.player_id)
            if q.round_id and uow.conn.execute(select(rounds.c.round_id).where(
                    rounds.c.operator_id == operator_id, rounds.c.round_id == q.round_id)).first() is None:
                raise DomainError(Reason.ROUND_NOT_FOUND, f"no round {quote(q.round_id)}")  # not a silent empty page
            return list(uow.conn.execute(select_))

        rows = await self._db.run(_read)
        return TransactionPage(
            tuple(Transaction(r.transaction_id, r.kind, r.player_id, Money(r.currency, r.amount),
                              Money(r.currency, r.balance_after), r.round_id or "", r.idempotency_key, r.created_at,
                              Money(r.currency, r.bonus_amount), Money(r.currency, r.bonus_balance_after))
                  for r in rows[:limit]),
            self._page_tokens.issue(shape, [rows[limit - 1].seq]) if len(rows) > limit else "")


def _seq(cursor: list[object]) -> int:
    """The seq a page ends at (the next page starts below it); the hub signed it, so it is one it wrote."""
    seq = cursor[0]
    if not isinstance(seq, int):
        raise TypeError(f"transaction page cursor {cursor!r} holds no seq")
    return seq
