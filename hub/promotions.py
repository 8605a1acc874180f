"""What an operator gives players: bonus money and free rounds (the RPCs over hub.ledger.bonuses and
hub.ledger.free_rounds), and the sweep that expires bonuses nobody touched before their expiry."""

from datetime import datetime
from typing import Any

import structlog
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Row

from casinohub.v1 import common_pb2, game_service_pb2 as game_pb, wallet_service_pb2 as pb
from hub.catalog import Catalog
from hub.clock import to_timestamp, utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger import bonuses, free_rounds, idempotency, postings
from hub.ledger.db import Database
from hub.ledger.uow import UnitOfWork
from hub.money import money_message, positive_amount
from hub.players import require_player

log = structlog.get_logger(__name__)
SWEEP_BATCH = 200



def bonus_message(uow: UnitOfWork, row: Row[Any], now: datetime) -> pb.Bonus:
    """A bonus as a reader should see it: past its expiry it reads EXPIRED (closed at expires_at) with
    nothing left, even before the sweep has moved its money back."""
    status = bonuses.effective_status(row, now)
    balance = (postings.balance(uow, row.operator_id, postings.player_bonus(row.player_id, row.currency))
               if status == bonuses.ACTIVE else 0)
    closed_at = row.closed_at or (row.expires_at if status == bonuses.EXPIRED else None)
    return pb.Bonus(
        bonus_id=row.bonus_id, player_id=row.player_id, amount=money_message(row.currency, row.amount),
        balance=money_message(row.currency, balance),
        wagering_requirement=money_message(row.currency, row.wagering_required),
        wagered=money_message(row.currency, row.wagered), status=pb.BonusStatus.Value(f"BONUS_STATUS_{status}"),
        expires_at=to_timestamp(row.expires_at), created_at=to_timestamp(row.created_at),
        closed_at=to_timestamp(closed_at), closing_transaction_id=row.closing_transaction_id or "")


def grant_message(row: Row[Any]) -> common_pb2.FreeRoundGrant:
    return common_pb2.FreeRoundGrant(
        grant_id=row.grant_id, player_id=row.player_id, game_id=row.game_id,
        bet=money_message(row.currency, row.bet_amount), rounds=row.rounds, rounds_left=row.rounds_left,
        expires_at=to_timestamp(row.expires_at), created_at=to_timestamp(row.created_at))


def _expiry(stamp: Timestamp, present: bool) -> datetime:
    if not present:
        raise DomainError(Reason.INVALID_ARGUMENT, "expires_at is required")
    try:
        return stamp.ToDatetime()  # naive UTC, as stored
    except (ValueError, OverflowError):
        raise DomainError(Reason.INVALID_ARGUMENT, "expires_at is not a valid time") from None


def _require_future(expires_at: datetime, now: datetime) -> None:
    if expires_at <= now:
        raise DomainError(Reason.INVALID_ARGUMENT, "expires_at must be in the future")


def _require_active_player(uow: UnitOfWork, operator_id: str, player_id: str) -> None:
    if require_player(uow, operator_id, player_id) != "active":
        raise DomainError(Reason.PLAYER_BLOCKED, "the player is blocked")


class Promotions:
    def __init__(self, db: Database, catalog: Catalog, house_shards: int):
        self._db = db
        self._catalog = catalog
        self._shards = house_shards

    async def grant_bonus(self, operator_id: str, request: pb.GrantBonusRequest) -> pb.GrantBonusResponse:
        amount = positive_amount(request.amount.currency, request.amount.amount_minor)
        wagering = request.wagering_requirement
        if wagering.currency != amount.currency:
            raise DomainError(Reason.INVALID_ARGUMENT, "wagering_requirement must be in the bonus's currency")
        if wagering.amount_minor <= 0:  # a count of stakes, not money moved: no per-transaction maximum
            raise DomainError(Reason.INVALID_AMOUNT, "wagering_requirement must be positive")
        expires_at = _expiry(request.expires_at, request.HasField("expires_at"))
        request_fp = idempotency.fingerprint("bonus", request.player_id, amount.currency, amount.amount_minor,
                                             wagering.amount_minor, expires_at.isoformat())

        def _apply(uow: UnitOfWork, now: datetime) -> pb.GrantBonusResponse:
            _require_future(expires_at, now)
            _require_active_player(uow, operator_id, request.player_id)
            bonus_id, transaction_id = bonuses.grant(
                uow, operator_id=operator_id, player_id=request.player_id, currency=amount.currency,
                amount=amount.amount_minor, wagering_required=wagering.amount_minor, expires_at=expires_at,
                key=request.idempotency_key, now=now, shards=self._shards)
            row = bonuses.load(uow, operator_id, bonus_id)
            assert row is not None  # granted just above, in this unit of work
            return pb.GrantBonusResponse(transaction_id=transaction_id, bonus=bonus_message(uow, row, now))

        return await idempotency.run_once(self._db, operator_id, request.idempotency_key, request_fp, _apply,
                                          pb.GrantBonusResponse)

    async def forfeit_bonus(self, operator_id: str, bonus_id: str) -> pb.ForfeitBonusResponse:
        def _tx(uow: UnitOfWork) -> pb.Bonus:
            now = utcnow()
            row = bonuses.forfeit(uow, operator_id, bonus_id, now, self._shards)
            message = bonus_message(uow, row, now)
            uow.commit()  # an expiry found on the way stays done, even though the forfeit is refused
            return message

        bonus = await self._db.run(_tx)
        if bonus.status != pb.BONUS_STATUS_FORFEITED:
            raise DomainError(Reason.BONUS_NOT_ACTIVE, f"bonus {quote(bonus_id)} is {pb.BonusStatus.Name(bonus.status)}")
        return pb.ForfeitBonusResponse(bonus=bonus)

    async def get_bonus(self, operator_id: str, bonus_id: str) -> pb.GetBonusResponse:
        def _read(uow: UnitOfWork) -> pb.Bonus:
            row = bonuses.load(uow, operator_id, bonus_id)
            if row is None:
                raise DomainError(Reason.BONUS_NOT_FOUND, f"no bonus {quote(bonus_id)}")
            return bonus_message(uow, row, utcnow())

        return pb.GetBonusResponse(bonus=await self._db.run(_read))

    async def expire_due(self) -> int:
        """Expire every active bonus past its expiry, each in its own transaction; returns how many.
        (Bets, wins and refunds also expire a due bonus they touch, so this only tidies the rest.)"""
        expired = 0
        while True:
            batch = await self._db.run(lambda uow: bonuses.due(uow, utcnow(), SWEEP_BATCH))
            for operator_id, bonus_id in batch:
                def _tx(uow: UnitOfWork, operator_id: str = operator_id, bonus_id: str = bonus_id) -> bool:
                    done = bonuses.expire(uow, operator_id, bonus_id, utcnow(), self._shards)
                    uow.commit()
                    return done

                if await self._db.run(_tx):
                    expired += 1
                    log.info("bonus.expired", operator=operator_id, bonus_id=bonus_id)
            if len(batch) < SWEEP_BATCH:
                return expired

    async def grant_free_rounds(self, operator_id: str,
                                request: game_pb.GrantFreeRoundsRequest) -> game_pb.GrantFreeRoundsResponse:
        bet = positive_amount(request.bet.currency, request.bet.amount_minor)
        if not 1 <= request.rounds <= free_rounds.MAX_ROUNDS:
            raise DomainError(Reason.INVALID_ARGUMENT, f"rounds must be 1..{free_rounds.MAX_ROUNDS}")
        expires_at = _expiry(request.expires_at, request.HasField("expires_at"))
        idempotency.validate_key(request.idempotency_key)
        game, _ = await self._catalog.game(request.game_id)
        game.check_bet(bet.currency, bet.amount_minor)
        request_fp = idempotency.fingerprint("free_rounds", request.player_id, request.game_id, bet.currency,
                                             bet.amount_minor, request.rounds, expires_at.isoformat())

        def _apply(uow: UnitOfWork, now: datetime) -> game_pb.GrantFreeRoundsResponse:
            _require_future(expires_at, now)
            _require_active_player(uow, operator_id, request.player_id)
            row = free_rounds.grant(
                uow, operator_id=operator_id, player_id=request.player_id, game_id=request.game_id,
                currency=bet.currency, bet_amount=bet.amount_minor, rounds=request.rounds,
                expires_at=expires_at, now=now)
            return game_pb.GrantFreeRoundsResponse(grant=grant_message(row))

        return await idempotency.run_once(self._db, operator_id, request.idempotency_key, request_fp, _apply,
                                          game_pb.GrantFreeRoundsResponse)
