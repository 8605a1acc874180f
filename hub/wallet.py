"""Cashier operations on a player's cash wallet: deposit, withdraw, balance, history.

Each money movement is one unit of work: idempotency record, balanced postings and the stored
response commit together or not at all.
"""

import base64
import binascii
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import or_, and_, select

from casinohub.v1 import common_pb2, wallet_service_pb2 as pb
from hub.clock import to_timestamp, utcnow
from hub.errors import DomainError, Reason
from hub.ledger import idempotency, postings
from hub.ledger.db import Database
from hub.ledger.schema import ledger_transactions
from hub.ledger.uow import UnitOfWork
from hub.money import Money, exponent, positive_amount
from hub.players import require_player

KINDS = {
    "deposit": pb.TRANSACTION_KIND_DEPOSIT, "withdrawal": pb.TRANSACTION_KIND_WITHDRAWAL,
    "bet": pb.TRANSACTION_KIND_BET, "win": pb.TRANSACTION_KIND_WIN, "rollback": pb.TRANSACTION_KIND_ROLLBACK,
}


class Wallet:
    def __init__(self, db: Database, house_shards: int):
        self._db = db
        self._shards = house_shards

    async def deposit(self, operator_id: str, player_id: str, amount: Money, key: str) -> pb.DepositResponse:
        return await self._cashier(operator_id, player_id, amount, key, "deposit", +1, pb.DepositResponse)

    async def withdraw(self, operator_id: str, player_id: str, amount: Money, key: str) -> pb.WithdrawResponse:
        return await self._cashier(operator_id, player_id, amount, key, "withdrawal", -1, pb.WithdrawResponse)

    async def _cashier(self, operator_id: str, player_id: str, amount: Money, key: str, kind: str, sign: int,
                       response_type: Callable[..., pb.DepositResponse | pb.WithdrawResponse]):  # type: ignore[no-untyped-def]
        money = positive_amount(amount.currency, amount.amount_minor)
        idempotency.validate_key(key)
        request_fp = idempotency.fingerprint(kind, player_id, money.currency, money.amount_minor)
        player = postings.player_cash(player_id, money.currency)
        outside = postings.external(money.currency)

        def _prepare(uow: UnitOfWork) -> None:
            require_player(uow, operator_id, player_id)
            postings.ensure_accounts(uow, operator_id, [player, outside])
            uow.commit()

        def _apply(uow: UnitOfWork) -> bytes:
            stored = idempotency.lookup(uow, operator_id, key, request_fp)
            if stored is not None:
                return stored
            now = utcnow()
            idempotency.claim(uow, operator_id, key, request_fp, now)
            transaction_id = str(uuid.uuid4())
            new_balance = postings.post(
                uow, operator_id=operator_id, transaction_id=transaction_id, kind=kind, player_id=player_id,
                currency=money.currency, round_id=None, idempotency_key=key, now=now,
                legs=[postings.Leg(player, sign * money.amount_minor),
                      postings.Leg(outside, -sign * money.amount_minor)])
            response = response_type(
                transaction_id=transaction_id,
                balance=common_pb2.Money(currency=money.currency, amount_minor=new_balance),
            ).SerializeToString(deterministic=True)
            idempotency.complete(uow, operator_id, key, response)
            uow.commit()
            return response

        await self._db.run(_prepare)
        return response_type.FromString(await self._db.run(_apply))  # type: ignore[attr-defined]

    async def balance(self, operator_id: str, player_id: str, currency: str) -> Money:
        exponent(currency)

        def _read(uow: UnitOfWork) -> int:
            require_player(uow, operator_id, player_id)
            return postings.balance(uow, operator_id, postings.player_cash(player_id, currency))

        return Money(currency, await self._db.run(_read))

    async def transactions(self, operator_id: str, request: pb.ListTransactionsRequest) -> pb.ListTransactionsResponse:
        """Newest first, filtered by player, currency, round, kind and time window; keyset-paginated."""
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
        after = _decode_token(request.page_token) if request.page_token else None
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
        if after:
            created, tx_id = after
            query = query.where(or_(t.c.created_at < created,
                                    and_(t.c.created_at == created, t.c.transaction_id < tx_id)))
        query = query.order_by(t.c.created_at.desc(), t.c.transaction_id.desc()).limit(limit + 1)

        def _read(uow: UnitOfWork) -> list:  # type: ignore[type-arg]
            if request.player_id:
                require_player(uow, operator_id, request.player_id)
            return list(uow.conn.execute(query))

        rows = await self._db.run(_read)
        response = pb.ListTransactionsResponse(transactions=[
            pb.Transaction(
                transaction_id=r.transaction_id, kind=KINDS[r.kind], player_id=r.player_id,
                amount=common_pb2.Money(currency=r.currency, amount_minor=r.amount),
                balance_after=common_pb2.Money(currency=r.currency, amount_minor=r.balance_after),
                round_id=r.round_id or "", idempotency_key=r.idempotency_key,
                created_at=to_timestamp(r.created_at))
            for r in rows[:limit]])
        if len(rows) > limit:
            last = rows[limit - 1]
            response.next_page_token = _encode_token(last.created_at, last.transaction_id)
        return response


def _time(request: pb.ListTransactionsRequest, name: str) -> datetime | None:
    if not request.HasField(name):
        return None
    try:
        return getattr(request, name).ToDatetime()  # naive UTC, as stored
    except (ValueError, OverflowError):
        raise DomainError(Reason.INVALID_ARGUMENT, f"{name} is not a valid time") from None


def _encode_token(created_at: datetime, transaction_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{transaction_id}".encode()).decode()


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        created, tx_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), tx_id
    except (ValueError, binascii.Error, UnicodeError):
        raise DomainError(Reason.INVALID_ARGUMENT, "malformed page_token") from None
