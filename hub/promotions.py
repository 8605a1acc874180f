"""What an operator gives players: bonus money and free rounds (the calls over hub.ledger.bonuses and
hub.ledger.free_rounds), and the sweep that expires bonuses nobody touched before their expiry."""

from dataclasses import dataclass
from datetime import datetime

import structlog

from hub import records
from hub.catalog import Catalog
from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger import bonuses, free_rounds, idempotency, postings
from hub.ledger.book import Book, Row
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import require_player
from hub.ledger.uow import UnitOfWork
from hub.money import Money, positive_amount
from hub.receipts import Bonus, BonusGrant, FreeRoundGrant

log = structlog.get_logger(__name__)
SWEEP_BATCH = 200


def bonus_view(row: Row, now: datetime, balance: int) -> Bonus:
    """A bonus as a reader should see it: past its expiry it reads EXPIRED (closed at expires_at) with
    nothing left, even before the sweep has moved its money back. balance: its wallet's bonus balance."""
    status = bonuses.effective_status(row, now)
    closed_at = row["closed_at"] or (row["expires_at"] if status == bonuses.EXPIRED else None)
    currency = row["currency"]
    return Bonus(
        bonus_id=row["bonus_id"], player_id=row["player_id"], amount=Money(currency, row["amount"]),
        balance=Money(currency, balance if status == bonuses.ACTIVE else 0),
        wagering_requirement=Money(currency, row["wagering_required"]), wagered=Money(currency, row["wagered"]),
        status=status, expires_at=row["expires_at"], created_at=row["created_at"], closed_at=closed_at,
        closing_transaction_id=row["closing_transaction_id"] or "")


def grant_view(row: Row) -> FreeRoundGrant:
    return FreeRoundGrant(
        grant_id=row["grant_id"], player_id=row["player_id"], game_id=row["game_id"],
        bet=Money(row["currency"], row["bet_amount"]), rounds=row["rounds"], rounds_left=row["rounds_left"],
        expires_at=row["expires_at"], created_at=row["created_at"])


def _required(expires_at: datetime | None) -> datetime:
    if expires_at is None:
        raise DomainError(Reason.INVALID_ARGUMENT, "expires_at is required")
    return expires_at


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
    player_id: str
    amount: Money
    wagering_required: int  # minor units of amount's currency
    expires_at: datetime
    key: str
    fingerprint: str


@dataclass(frozen=True)
class EndBonus:
    """Forfeit (the operator asked) or expire (the sweep found it due) one bonus."""

    operator_id: str
    bonus_id: str


@dataclass(frozen=True)
class GrantFreeRounds:
    operator_id: str
    player_id: str
    game_id: str
    bet: Money
    rounds: int
    expires_at: datetime
    key: str
    fingerprint: str


class Promotions:
    def __init__(self, db: Database, engine: SettlementEngine, catalog: Catalog, house_shards: int):
        self._db = db
        self._engine = engine
        self._catalog = catalog
        self._shards = house_shards

    async def grant_bonus(self, operator_id: str, player_id: str, amount: Money, wagering_requirement: Money,
                          expires_at: datetime | None, key: str) -> BonusGrant:
        amount = positive_amount(amount.currency, amount.amount_minor)
        wagering = wagering_requirement
        if wagering.currency != amount.currency:
            raise DomainError(Reason.INVALID_ARGUMENT, "wagering_requirement must be in the bonus's currency")
        if wagering.amount_minor <= 0:  # a count of stakes, not money moved: no per-transaction maximum
            raise DomainError(Reason.INVALID_AMOUNT, "wagering_requirement must be positive")
        expires_at = _required(expires_at)
        idempotency.validate_key(key)
        request_fp = idempotency.fingerprint("bonus", player_id, amount.currency, amount.amount_minor,
                                             wagering.amount_minor, expires_at.isoformat())
        return await self._engine.submit(self._grant_bonus, GrantBonus(
            operator_id, player_id, amount, wagering.amount_minor, expires_at, key, request_fp))

    def _grant_bonus(self, book: Book, cmd: GrantBonus) -> BonusGrant:
        def apply() -> BonusGrant:
            now = utcnow()
            _require_future(cmd.expires_at, now)
            _require_active_player(book, cmd.operator_id, cmd.player_id)
            row = bonuses.grant(
                book, operator_id=cmd.operator_id, player_id=cmd.player_id, currency=cmd.amount.currency,
                amount=cmd.amount.amount_minor, wagering_required=cmd.wagering_required,
                expires_at=cmd.expires_at, key=cmd.key, now=now, shards=self._shards)
            return BonusGrant(row["grant_transaction_id"], bonus_view(row, now, _bonus_balance(book, row)))

        return idempotency.once(book, cmd.operator_id, cmd.key, cmd.fingerprint, apply, records.encode,
                                lambda raw: records.decode(raw, BonusGrant))

    async def forfeit_bonus(self, operator_id: str, bonus_id: str) -> Bonus:
        bonus = await self._engine.submit(self._forfeit, EndBonus(operator_id, bonus_id))
        if bonus.status != bonuses.FORFEITED:  # an expiry found on the way stays done
            # The message names the status as the contract's BonusStatus does.
            raise DomainError(Reason.BONUS_NOT_ACTIVE, f"bonus {quote(bonus_id)} is BONUS_STATUS_{bonus.status}")
        return bonus

    def _forfeit(self, book: Book, cmd: EndBonus) -> Bonus:
        now = utcnow()
        row = bonuses.forfeit(book, cmd.operator_id, cmd.bonus_id, now, self._shards)
        return bonus_view(row, now, _bonus_balance(book, row))

    async def get_bonus(self, operator_id: str, bonus_id: str) -> Bonus:
        def _read(uow: UnitOfWork) -> Bonus:
            row = bonuses.load(uow, operator_id, bonus_id)
            if row is None:
                raise DomainError(Reason.BONUS_NOT_FOUND, f"no bonus {quote(bonus_id)}")
            balance = postings.read_balance(uow, operator_id, postings.player_bonus(row["player_id"], row["currency"]))
            return bonus_view(row, utcnow(), balance)

        return await self._db.run(_read)

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

    async def grant_free_rounds(self, operator_id: str, player_id: str, game_id: str, bet: Money, rounds: int,
                                expires_at: datetime | None, key: str) -> FreeRoundGrant:
        bet = positive_amount(bet.currency, bet.amount_minor)
        if not 1 <= rounds <= free_rounds.MAX_ROUNDS:
            raise DomainError(Reason.INVALID_ARGUMENT, f"rounds must be 1..{free_rounds.MAX_ROUNDS}")
        expires_at = _required(expires_at)
        idempotency.validate_key(key)
        game, _ = await self._catalog.game(game_id)
        game.check_bet(bet.currency, bet.amount_minor)
        request_fp = idempotency.fingerprint("free_rounds", player_id, game_id, bet.currency, bet.amount_minor,
                                             rounds, expires_at.isoformat())
        return await self._engine.submit(self._grant_free_rounds, GrantFreeRounds(
            operator_id, player_id, game_id, bet, rounds, expires_at, key, request_fp))

    def _grant_free_rounds(self, book: Book, cmd: GrantFreeRounds) -> FreeRoundGrant:
        def apply() -> FreeRoundGrant:
            now = utcnow()
            _require_future(cmd.expires_at, now)
            _require_active_player(book, cmd.operator_id, cmd.player_id)
            return grant_view(free_rounds.grant(
                book, operator_id=cmd.operator_id, player_id=cmd.player_id, game_id=cmd.game_id,
                currency=cmd.bet.currency, bet_amount=cmd.bet.amount_minor, rounds=cmd.rounds,
                expires_at=cmd.expires_at, now=now))

        return idempotency.once(book, cmd.operator_id, cmd.key, cmd.fingerprint, apply, records.encode,
                                lambda raw: records.decode(raw, FreeRoundGrant))
