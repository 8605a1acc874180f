"""Responsible-gaming settings a player (through their operator) chooses: self-exclusion, deposit and loss
limits per UTC day, week and month, a session time limit, and a reality-check interval (hub.reality).

Only the settings live here; the engine applies them to money (hub.ledger.limits) and the sessions to
logins (hub.players). A limit takes effect at once when it is lowered (or set where there was none);
raised or removed, it waits cooling_off (config limit_cooling_off_s, default 24 h) as a pending change,
visible through GetPlayerLimits, and applies by itself when that time comes. A new request replaces a
pending one (and a raise restarts its cooling-off). A self-exclusion can be extended, never shortened.
A reality-check interval is a reminder, not a limit: neither way of changing it is riskier, so any change
applies at once (it is stored as a player_limits row, kind reality_check, with nothing ever pending).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from hub.clock import utcnow
from hub.errors import DomainError, Reason
from hub.ledger import limits
from hub.ledger.db import Database
from hub.ledger.schema import player_limits, self_exclusions
from hub.ledger.uow import UnitOfWork
from hub.money import INT64_MAX, Money, exponent
from hub.players import require_player

MAX_EXCLUSION_DAYS = 3650
MAX_SESSION_MINUTES = 24 * 60
MIN_REALITY_CHECK_MINUTES, MAX_REALITY_CHECK_MINUTES = 5, 24 * 60


@dataclass(frozen=True)
class SelfExclusion:
    started_at: datetime
    ends_at: datetime | None  # None: indefinite


@dataclass(frozen=True)
class Limit:
    kind: str  # deposit | loss | session_time | reality_check
    period: str  # day | week | month | "" (session_time, reality_check)
    currency: str  # "" for session_time and reality_check
    amount: int  # in force now; 0: none (minor units, or seconds)
    pending_amount: int | None
    pending_from: datetime | None


@dataclass(frozen=True)
class PlayerLimits:
    self_exclusion: SelfExclusion | None  # only while in force
    limits: tuple[Limit, ...]


class ResponsibleGaming:
    def __init__(self, db: Database, cooling_off: timedelta):
        self._db = db
        self._cooling_off = cooling_off

    async def self_exclude(self, operator_id: str, player_id: str, days: int, indefinite: bool) -> SelfExclusion:
        def _exclude(uow: UnitOfWork) -> SelfExclusion:
            require_player(uow, operator_id, player_id)
            if not indefinite and not 1 <= days <= MAX_EXCLUSION_DAYS:
                raise DomainError(Reason.INVALID_ARGUMENT, f"days must be 1..{MAX_EXCLUSION_DAYS}, or indefinite")
            now = utcnow()
            ends_at = None if indefinite else now + timedelta(days=days)
            key = (self_exclusions.c.operator_id == operator_id, self_exclusions.c.player_id == player_id)
            row = uow.conn.execute(select(self_exclusions).where(*key).with_for_update()).first()
            current = row._mapping if row is not None else None
            if current is None:
                uow.conn.execute(self_exclusions.insert().values(
                    operator_id=operator_id, player_id=player_id, started_at=now, ends_at=ends_at))
                started = now
            elif not limits.exclusion_active(current, now):
                uow.conn.execute(update(self_exclusions).where(*key).values(started_at=now, ends_at=ends_at))
                started = now
            else:  # in force: only ever longer
                started = current["started_at"]
                if current["ends_at"] is None or (ends_at is not None and ends_at <= current["ends_at"]):
                    ends_at = current["ends_at"]
                else:
                    uow.conn.execute(update(self_exclusions).where(*key).values(ends_at=ends_at))
            uow.commit()
            return SelfExclusion(started, ends_at)

        return await self._db.run(_exclude)

    async def set_money_limit(self, operator_id: str, player_id: str, kind: str, period: str, amount: Money) -> Limit:
        def _check() -> tuple[str, int]:
            if period not in limits.PERIODS:
                raise DomainError(Reason.INVALID_ARGUMENT, "period must be DAY, WEEK or MONTH")
            exponent(amount.currency)
            if not 0 <= amount.amount_minor <= INT64_MAX:
                raise DomainError(Reason.INVALID_AMOUNT, "a limit is 0 (none) or a positive amount")
            return amount.currency, amount.amount_minor

        return await self._set(operator_id, player_id, kind, period, _check)

    async def set_session_time_limit(self, operator_id: str, player_id: str, minutes: int) -> Limit:
        def _check() -> tuple[str, int]:
            if not 0 <= minutes <= MAX_SESSION_MINUTES:
                raise DomainError(Reason.INVALID_ARGUMENT, f"minutes must be 0 (none)..{MAX_SESSION_MINUTES}")
            return "", minutes * 60

        return await self._set(operator_id, player_id, limits.SESSION_TIME, "", _check)

    async def set_reality_check_interval(self, operator_id: str, player_id: str, minutes: int) -> Limit:
        def _set(uow: UnitOfWork) -> Limit:
            require_player(uow, operator_id, player_id)  # first: another operator's player is not found
            if minutes != 0 and not MIN_REALITY_CHECK_MINUTES <= minutes <= MAX_REALITY_CHECK_MINUTES:
                raise DomainError(Reason.INVALID_ARGUMENT, f"minutes must be 0 (off) or {MIN_REALITY_CHECK_MINUTES}"
                                  f"..{MAX_REALITY_CHECK_MINUTES}")
            key = (player_limits.c.operator_id == operator_id, player_limits.c.player_id == player_id,
                   player_limits.c.kind == limits.REALITY_CHECK, player_limits.c.period == "",
                   player_limits.c.currency == "")
            values = {"amount": minutes * 60, "pending_amount": None, "pending_from": None, "updated_at": utcnow()}
            if uow.conn.execute(select(player_limits.c.amount).where(*key).with_for_update()).first() is not None:
                uow.conn.execute(update(player_limits).where(*key).values(**values))
            else:  # a racing insert of the same row fails this one; Database.run runs it again and updates
                uow.conn.execute(player_limits.insert().values(
                    operator_id=operator_id, player_id=player_id, kind=limits.REALITY_CHECK, period="", currency="",
                    **values))
            uow.commit()
            return Limit(limits.REALITY_CHECK, "", "", minutes * 60, None, None)

        return await self._db.run(_set)

    async def get(self, operator_id: str, player_id: str) -> PlayerLimits:
        def _read(uow: UnitOfWork) -> PlayerLimits:
            require_player(uow, operator_id, player_id)
            now = utcnow()
            exclusion = uow.conn.execute(select(self_exclusions).where(
                self_exclusions.c.operator_id == operator_id, self_exclusions.c.player_id == player_id)).first()
            rows = uow.conn.execute(select(player_limits).where(
                player_limits.c.operator_id == operator_id, player_limits.c.player_id == player_id).order_by(
                player_limits.c.kind, player_limits.c.currency, player_limits.c.period)).all()
            found = (SelfExclusion(exclusion.started_at, exclusion.ends_at)
                     if exclusion is not None and limits.exclusion_active(exclusion._mapping, now) else None)
            return PlayerLimits(found, tuple(_view(r._mapping, now) for r in rows))

        return await self._db.run(_read)

    async def _set(self, operator_id: str, player_id: str, kind: str, period: str, check: Any) -> Limit:
        def _change(uow: UnitOfWork) -> Limit:
            require_player(uow, operator_id, player_id)  # first: another operator's player is not found
            currency, wanted = check()
            now = utcnow()
            key = (player_limits.c.operator_id == operator_id, player_limits.c.player_id == player_id,
                   player_limits.c.kind == kind, player_limits.c.period == period, player_limits.c.currency == currency)
            row = uow.conn.execute(select(player_limits).where(*key).with_for_update()).first()
            current = limits.effective(row._mapping, now) if row is not None else 0
            # 0 is no limit: a lowering sets one where there was none, or a smaller one (or the same, which
            # cancels a pending raise); anything else (a higher limit, none at all) waits the cooling-off.
            lowering = wanted != 0 and (current == 0 or wanted <= current)
            values: dict[str, Any] = (
                {"amount": wanted, "pending_amount": None, "pending_from": None} if lowering else
                {"amount": current, "pending_amount": wanted, "pending_from": now + self._cooling_off})
            if wanted == current == 0:
                values = {"amount": 0, "pending_amount": None, "pending_from": None}
            if row is None:
                uow.conn.execute(player_limits.insert().values(
                    operator_id=operator_id, player_id=player_id, kind=kind, period=period, currency=currency,
                    updated_at=now, **values))
            else:
                uow.conn.execute(update(player_limits).where(*key).values(updated_at=now, **values))
            uow.commit()
            return Limit(kind, period, currency, values["amount"], values["pending_amount"], values["pending_from"])

        return await self._db.run(_change)


def _view(row: Any, now: datetime) -> Limit:
    """A stored limit as it stands now: a pending raise whose time has come is in force."""
    due = row["pending_from"] is not None and row["pending_from"] <= now
    return Limit(row["kind"], row["period"], row["currency"], limits.effective(row, now),
                 None if due else row["pending_amount"], None if due else row["pending_from"])
