"""What an operator gives players: bonus money and free rounds (the RPCs over hub.ledger.bonuses and
hub.ledger.free_rounds), and the sweep that expires bonuses nobody touched before their expiry."""

from dataclasses import dataclass
from datetime import datetime

import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from casinohub.v1 import common_pb2, game_service_pb2 as game_pb, wallet_service_pb2 as pb
from hub.catalog import Catalog
from hub.clock import to_timestamp, utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger import bonuses, free_rounds, idempotency, postings
from hub.ledger.book import Book, Row
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import require_player
from hub.ledger.uow import UnitOfWork
from hub.money import money_message, positive_amount

log = structlog.get_logger(__name__)
SWEEP_BATCH = 200



def bonus_message(row: Row, now: datetime, balance: int) -> pb.Bonus:
    """A bonus as a reader should see it: past its expiry it reads EXPIRED (closed at expires_at) with
    nothing left, even before the sweep has moved its money back. balance: its wallet's bonus balance."""
    status = bonuses.effective_status(row, now)
    closed_at = row["closed_at"] or (row["expires_at"] if status == bonuses.EXPIRED else None)
    currency = row["currency"]
    return pb.Bonus(
        bonus_id=row["bonus_id"], player_id=row["player_id"], amount=money_message(currency, row["amount"]),
        balance=money_message(currency, balance if status == bonuses.ACTIVE else 0),
        wagering_requirement=money_message(currency, row["wagering_required"]),
        wagered=money_message(currency, row["wagered"]), status=pb.BonusStatus.Value(f"BONUS_STATUS_{status}"),
        expires_at=to_timestamp(row["expires_at"]), created_at=to_timestamp(row["created_at"]),
        closed_at=to_timestamp(closed_at), closing_transaction_id=row["closing_transaction_id"] or "")


def grant_message(row: Row) -> common_pb2.FreeRoundGrant:
    return common_pb2.FreeRoundGrant(
        grant_id=row["grant_id"], player_id=row["player_id"], game_id=row["game_id"],
        bet=money_message(row["currency"], row["bet_amount"]), rounds=row["rounds"], rounds_left=row["rounds_left"],
        expires_at=to_timestamp(row["expires_at"]), created_at=to_timestamp(row["created_at"]))


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


def _require_active_player(book: Book, operator_id: str, player_id: str) -> None:
    if require_player(book, operator_id, player_id) != "active":
        raise DomainError(Reason.PLAYER_BLOCKED, "the player is blocked")


def _bonus_balance(book: Book, row: Row) -> int:
    return book.balance(row["operator_id"], postings.player_bonus(row["player_id"], row["currency"]))


@dataclass(frozen=True)
class GrantBonus:
    operator_id: str
    request: pb.GrantBonusRequest
    expires_at: datetime
    fingerprint: str


@dataclass(frozen=True)
class EndBonus:
    """Forfeit (the operator asked) or expire (the sweep found it due) one bonus."""

    operator_id: str
    bonus_id: str


@dataclass(frozen=True)
class GrantFreeRounds:
    operator_id: str
    request: game_pb.GrantFreeRoundsRequest
    expires_at: datetime
    fingerprint: str


class Promotions:
    def __init__(self, db: Database, engine: SettlementEngine, catalog: Catalog, house_shards: int):
        self._db = db
        self._engine = engine
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
        idempotency.validate_key(request.idempotency_key)
        request_fp = idempotency.fingerprint("bonus", request.player_id, amount.currency, amount.amount_minor,
                                             wagering.amount_minor, expires_at.isoformat())
        return pb.GrantBonusResponse.FromString(await self._engine.submit(
            self._grant_bonus, GrantBonus(operator_id, request, expires_at, request_fp)))

    def _grant_bonus(self, book: Book, cmd: GrantBonus) -> bytes:
        request = cmd.request

        def apply() -> bytes:
            now = utcnow()
            _require_future(cmd.expires_at, now)
            _require_active_player(book, cmd.operator_id, request.player_id)
            row = bonuses.grant(
                book, operator_id=cmd.operator_id, player_id=request.player_id, currency=request.amount.currency,
                amount=request.amount.amount_minor, wagering_required=request.wagering_requirement.amount_minor,
                expires_at=cmd.expires_at, key=request.idempotency_key, now=now, shards=self._shards)
            return pb.GrantBonusResponse(transaction_id=row["grant_transaction_id"],
                                         bonus=bonus_message(row, now, _bonus_balance(book, row))
                                         ).SerializeToString(deterministic=True)

        return idempotency.once(book, cmd.operator_id, request.idempotency_key, cmd.fingerprint, apply)

    async def forfeit_bonus(self, operator_id: str, bonus_id: str) -> pb.ForfeitBonusResponse:
        bonus = await self._engine.submit(self._forfeit, EndBonus(operator_id, bonus_id))
        if bonus.status != pb.BONUS_STATUS_FORFEITED:  # an expiry found on the way stays done
            raise DomainError(Reason.BONUS_NOT_ACTIVE, f"bonus {quote(bonus_id)} is {pb.BonusStatus.Name(bonus.status)}")
        return pb.ForfeitBonusResponse(bonus=bonus)

    def _forfeit(self, book: Book, cmd: EndBonus) -> pb.Bonus:
        now = utcnow()
        row = bonuses.forfeit(book, cmd.operator_id, cmd.bonus_id, now, self._shards)
        return bonus_message(row, now, _bonus_balance(book, row))

    async def get_bonus(self, operator_id: str, bonus_id: str) -> pb.GetBonusResponse:
        def _read(uow: UnitOfWork) -> pb.Bonus:
            row = bonuses.load(uow, operator_id, bonus_id)
            if row is None:
                raise DomainError(Reason.BONUS_NOT_FOUND, f"no bonus {quote(bonus_id)}")
            balance = postings.read_balance(uow, operator_id, postings.player_bonus(row["player_id"], row["currency"]))
            return bonus_message(row, utcnow(), balance)

        return pb.GetBonusResponse(bonus=await self._db.run(_read))

    async def expire_due(self) -> int:
        """Expire every active bonus past its expiry, each its own command; returns how many.
        (Bets, wins and refunds also expire a due bonus they touch, so this only tidies the rest.)"""
        expired = 0
        while True:
            due = await self._db.run(lambda uow: bonuses.due(uow, utcnow(), SWEEP_BATCH))
            for operator_id, bonus_id in due:
                if await self._engine.submit(self._expire, EndBonus(operator_id, bonus_id)):
                    expired += 1
                    log.info("bonus.expired", operator=operator_id, bonus_id=bonus_id)
            if len(due) < SWEEP_BATCH:
                return expired

    def _expire(self, book: Book, cmd: EndBonus) -> bool:
        return bonuses.expire(book, cmd.operator_id, cmd.bonus_id, utcnow(), self._shards)

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
        return game_pb.GrantFreeRoundsResponse.FromString(await self._engine.submit(
            self._grant_free_rounds, GrantFreeRounds(operator_id, request, expires_at, request_fp)))

    def _grant_free_rounds(self, book: Book, cmd: GrantFreeRounds) -> bytes:
        request = cmd.request

        def apply() -> bytes:
            now = utcnow()
            _require_future(cmd.expires_at, now)
            _require_active_player(book, cmd.operator_id, request.player_id)
            row = free_rounds.grant(
                book, operator_id=cmd.operator_id, player_id=request.player_id, game_id=request.game_id,
                currency=request.bet.currency, bet_amount=request.bet.amount_minor, rounds=request.rounds,
                expires_at=cmd.expires_at, now=now)
            return game_pb.GrantFreeRoundsResponse(grant=grant_message(row)).SerializeToString(deterministic=True)

        return idempotency.once(book, cmd.operator_id, request.idempotency_key, cmd.fingerprint, apply)
