"""Cashier operations on a player's cash wallet: deposit, withdraw, balance, history.

Each money movement is one unit of work: idempotency record, balanced postings and the stored
response commit together or not at all.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from google.protobuf.message import Message
from sqlalchemy import and_, select

from casinohub.v1 import common_pb2, wallet_service_pb2 as pb
from hub.clock import to_timestamp, utcnow
from hub.config import CashierLimit
from hub.errors import DomainError, Reason, quote
from hub.ledger import bonuses, free_rounds, idempotency, postings
from hub.ledger.book import Book
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import require_player
from hub.ledger.schema import ledger_transactions, withdrawals
from hub.ledger.uow import UnitOfWork
from hub.money import Money, exponent, money_message, positive_amount
from hub.page_tokens import PageTokens
from hub.players import require_player as require_player_now
from hub.promotions import bonus_message, grant_message

KINDS = {
    "deposit": pb.TRANSACTION_KIND_DEPOSIT, "withdrawal": pb.TRANSACTION_KIND_WITHDRAWAL,
    "withdrawal_paid": pb.TRANSACTION_KIND_WITHDRAWAL_PAID,
    "withdrawal_released": pb.TRANSACTION_KIND_WITHDRAWAL_RELEASED,
    "bet": pb.TRANSACTION_KIND_BET, "win": pb.TRANSACTION_KIND_WIN, "rollback": pb.TRANSACTION_KIND_ROLLBACK,
    "bonus_granted": pb.TRANSACTION_KIND_BONUS_GRANTED, "bonus_converted": pb.TRANSACTION_KIND_BONUS_CONVERTED,
    "bonus_expired": pb.TRANSACTION_KIND_BONUS_EXPIRED, "bonus_forfeited": pb.TRANSACTION_KIND_BONUS_FORFEITED,
}
PENDING, APPROVED, REJECTED = "PENDING", "APPROVED", "REJECTED"



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

    async def deposit(self, operator_id: str, player_id: str, amount: Money, key: str) -> pb.DepositResponse:
        money = positive_amount(amount.currency, amount.amount_minor)
        idempotency.validate_key(key)
        return pb.DepositResponse.FromString(
            await self._engine.submit(self._deposit, Deposit(operator_id, player_id, money, key)))

    async def withdraw(self, operator_id: str, player_id: str, amount: Money, key: str) -> pb.WithdrawResponse:
        """Moves the amount from cash into the player's hold; it leaves the hold when the operator decides."""
        money = positive_amount(amount.currency, amount.amount_minor)
        limit = self._limits.get((operator_id, money.currency))
        if limit and limit.max_withdrawal_minor and money.amount_minor > limit.max_withdrawal_minor:
            raise DomainError(Reason.WITHDRAWAL_LIMIT_EXCEEDED,
                              f"withdrawals are limited to {limit.max_withdrawal_minor} minor {money.currency}")
        idempotency.validate_key(key)
        return pb.WithdrawResponse.FromString(
            await self._engine.submit(self._withdraw, Withdraw(operator_id, player_id, money, key)))

    async def approve_withdrawal(self, operator_id: str, withdrawal_id: str) -> pb.ApproveWithdrawalResponse:
        transaction_id, _ = await self._engine.submit(self._decide, Decide(operator_id, withdrawal_id, APPROVED))
        return pb.ApproveWithdrawalResponse(transaction_id=transaction_id, status=pb.WITHDRAWAL_STATUS_APPROVED)

    async def reject_withdrawal(self, operator_id: str, withdrawal_id: str) -> pb.RejectWithdrawalResponse:
        transaction_id, balance = await self._engine.submit(self._decide, Decide(operator_id, withdrawal_id, REJECTED))
        return pb.RejectWithdrawalResponse(transaction_id=transaction_id, status=pb.WITHDRAWAL_STATUS_REJECTED,
                                           balance=balance)

    # -- commands (applied by the settlement engine) ---------------------------------------------------

    def _deposit(self, book: Book, cmd: Deposit) -> bytes:
        money = cmd.money
        cash, outside = postings.player_cash(cmd.player_id, money.currency), postings.external(money.currency)

        def apply(transaction_id: str, now: datetime) -> Message:
            balance = self._post(book, cmd, "deposit", transaction_id, now,
                                 [postings.Leg(cash, money.amount_minor), postings.Leg(outside, -money.amount_minor)])
            self._check_daily_deposits(book, cmd, now)
            return pb.DepositResponse(transaction_id=transaction_id, balance=money_message(money.currency, balance))

        return self._keyed(book, cmd, "deposit", apply)

    def _withdraw(self, book: Book, cmd: Withdraw) -> bytes:
        money = cmd.money
        cash, hold = postings.player_cash(cmd.player_id, money.currency), postings.player_hold(cmd.player_id, money.currency)

        def apply(transaction_id: str, now: datetime) -> Message:
            balance = self._post(book, cmd, "withdrawal", transaction_id, now,
                                 [postings.Leg(cash, -money.amount_minor), postings.Leg(hold, money.amount_minor)])
            withdrawal_id = str(uuid.uuid4())
            book.insert(withdrawals, {
                "operator_id": cmd.operator_id, "withdrawal_id": withdrawal_id, "player_id": cmd.player_id,
                "currency": money.currency, "amount": money.amount_minor, "status": PENDING,
                "hold_transaction_id": transaction_id, "created_at": now})
            return pb.WithdrawResponse(transaction_id=transaction_id, balance=money_message(money.currency, balance),
                                       withdrawal_id=withdrawal_id, status=pb.WITHDRAWAL_STATUS_PENDING)

        return self._keyed(book, cmd, "withdrawal", apply)

    def _decide(self, book: Book, cmd: Decide) -> tuple[str, common_pb2.Money]:
        """Exactly once: the same decision asked again gives the same answer and no second movement."""
        row = book.get(withdrawals, (cmd.operator_id, cmd.withdrawal_id))
        if row is None:
            raise DomainError(Reason.WITHDRAWAL_NOT_FOUND, f"no withdrawal {quote(cmd.withdrawal_id)}")
        player_id, currency = row["player_id"], row["currency"]
        cash = postings.player_cash(player_id, currency)
        if row["status"] == cmd.decision:
            return row["decision_transaction_id"], money_message(currency, book.balance(cmd.operator_id, cash))
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
        return transaction_id, money_message(currency, balance)

    @staticmethod
    def _keyed(book: Book, cmd: Deposit, kind: str, apply: Callable[[str, datetime], Message]) -> bytes:
        """A money movement once per idempotency key: the stored response, or apply and store it."""
        request_fp = idempotency.fingerprint(kind, cmd.player_id, cmd.money.currency, cmd.money.amount_minor)

        def _apply() -> bytes:
            require_player(book, cmd.operator_id, cmd.player_id)
            return apply(str(uuid.uuid4()), utcnow()).SerializeToString(deterministic=True)

        return idempotency.once(book, cmd.operator_id, cmd.key, request_fp, _apply)

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

    async def balance(self, operator_id: str, player_id: str, currency: str) -> pb.GetBalanceResponse:
        exponent(currency)

        def _read(uow: UnitOfWork) -> pb.GetBalanceResponse:
            require_player_now(uow, operator_id, player_id)
            now = utcnow()
            wallet = postings.read_wallet(uow, operator_id, player_id, currency)
            response = pb.GetBalanceResponse(
                balance=money_message(currency, wallet.cash), bonus_balance=money_message(currency, wallet.bonus),
                free_rounds=[grant_message(g) for g in free_rounds.usable(uow, operator_id, player_id, currency, now)])
            active = bonuses.current(uow, operator_id, player_id, currency, now)
            if active is not None:
                response.active_bonus.CopyFrom(bonus_message(active, now, wallet.bonus))
            else:  # money of an expired bonus not yet swept back is not the player's to spend
                response.bonus_balance.amount_minor = 0
            return response

        return await self._db.run(_read)

    async def transactions(self, operator_id: str, request: pb.ListTransactionsRequest) -> pb.ListTransactionsResponse:
        """Newest first in ledger order, filtered by player, currency, round, kind and time window;
        keyset-paginated."""
        if request.currency:
            exponent(request.currency)
        if not 0 <= request.page_size <= 500:
            raise DomainError(Reason.INVALID_ARGUMENT, "page_size must be 0..500")
        kinds = {v: k for k, v in KINDS.items()}
        if request.kind and request.kind not in kinds:
            raise DomainError(Reason.INVALID_ARGUMENT, f"unknown transaction kind {request.kind}")
        created_after = _time(request, "created_after")
        created_before = _time(request, "created_before")
        if created_after and created_before and created_after >= created_before:
            raise DomainError(Reason.INVALID_ARGUMENT, "created_after must be before created_before")
        limit = request.page_size or 50
        shape = ("ListTransactions", operator_id, request.player_id, request.currency, request.round_id,
                 request.kind, created_after, created_before)
        after = _seq(self._page_tokens.read(request.page_token, shape)) if request.page_token else None
        t = ledger_transactions
        query = select(t).where(t.c.operator_id == operator_id)
        for wanted, column in ((request.player_id, t.c.player_id), (request.currency, t.c.currency),
                               (request.round_id, t.c.round_id), (kinds.get(request.kind), t.c.kind)):
            if wanted:
                query = query.where(column == wanted)
        if created_after:
            query = query.where(t.c.created_at >= created_after)
        if created_before:
            query = query.where(t.c.created_at < created_before)
        if after is not None:
            query = query.where(t.c.seq < after)
        # seq, not created_at: the order the ledger applied them, in which balance_after chains. A page
        # boundary is a seq, so transactions committed between pages never shift it.
        query = query.order_by(t.c.seq.desc()).limit(limit + 1)

        def _read(uow: UnitOfWork) -> list:  # type: ignore[type-arg]
            if request.player_id:
                require_player_now(uow, operator_id, request.player_id)
            return list(uow.conn.execute(query))

        rows = await self._db.run(_read)
        response = pb.ListTransactionsResponse(transactions=[
            pb.Transaction(
                transaction_id=r.transaction_id, kind=KINDS[r.kind], player_id=r.player_id,
                amount=money_message(r.currency, r.amount),
                balance_after=money_message(r.currency, r.balance_after),
                round_id=r.round_id or "", idempotency_key=r.idempotency_key,
                created_at=to_timestamp(r.created_at),
                bonus_amount=money_message(r.currency, r.bonus_amount),
                bonus_balance_after=money_message(r.currency, r.bonus_balance_after))
            for r in rows[:limit]])
        if len(rows) > limit:
            response.next_page_token = self._page_tokens.issue(shape, [rows[limit - 1].seq])
        return response


def _time(request: pb.ListTransactionsRequest, name: Literal["created_after", "created_before"]) -> datetime | None:
    if not request.HasField(name):
        return None
    try:
        return getattr(request, name).ToDatetime()  # naive UTC, as stored
    except (ValueError, OverflowError):
        raise DomainError(Reason.INVALID_ARGUMENT, f"{name} is not a valid time") from None


def _seq(cursor: list[object]) -> int:
    """The seq a page ends at (the next page starts below it); the hub signed it, so it is one it wrote."""
    seq = cursor[0]
    if not isinstance(seq, int):
        raise TypeError(f"transaction page cursor {cursor!r} holds no seq")
    return seq
