"""Reality checks: every interval of a login's play time, the player's Play streams get a reminder of how
long they have played and what they have won or lost (PlayerService.SetRealityCheckInterval).

The clock is the login's (hub.players), the one the session time limit runs on: checks fall due at 1x, 2x,
... the interval after Login, by the hub's clock (hub.clock). A stream learns the interval when it attaches
and looks again each time a check falls due, so turning checks off (or changing the interval) reaches an
open stream at its next check; a stream attached later shows the next check due, not the ones before it.
The figures are the player's cash in the stream's currency since the login, on every game, as the loss
limit counts them (hub.ledger.limits): stakes, wins and refunds; bonus money and free rounds are not cash.

A reality check is a reminder, not a round event: its seq is 0, it is not stored and a Resume does not
repeat it. It blocks nothing; the session time limit is the hard stop.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from hub.clock import utcnow
from hub.events import RealityCheck
from hub.ledger import limits
from hub.ledger.db import Database
from hub.ledger.schema import ledger_transactions, player_limits
from hub.ledger.uow import UnitOfWork
from hub.money import Money
from hub.play import GameSession


@dataclass
class Reminder:
    """One stream's reality checks: the login's start, the interval and when the next check is due."""

    session: GameSession
    started_at: datetime
    interval: timedelta
    next_due: datetime

    def due(self, now: datetime) -> bool:
        return self.next_due <= now


def _next_due(started_at: datetime, interval: timedelta, now: datetime) -> datetime:
    """The first multiple of interval after started_at that is later than now."""
    return started_at + interval * ((now - started_at) // interval + 1)


def _interval(uow: UnitOfWork, session: GameSession) -> timedelta:
    p = player_limits.c
    seconds = uow.conn.execute(select(p.amount).where(
        p.operator_id == session.operator_id, p.player_id == session.player_id, p.kind == limits.REALITY_CHECK,
        p.period == "", p.currency == "")).scalar()
    return timedelta(seconds=seconds or 0)


class RealityChecks:
    def __init__(self, db: Database):
        self._db = db

    async def start(self, session: GameSession) -> Reminder | None:
        """The reminder of a stream attached to a real-money session; None if the player has none."""
        if session.demo or session.login_started_at is None:
            return None
        started_at = session.login_started_at
        interval = await self._db.run(lambda uow: _interval(uow, session))
        if not interval:
            return None
        return Reminder(session, started_at, interval, _next_due(started_at, interval, utcnow()))

    async def check(self, reminder: Reminder) -> tuple[RealityCheck | None, Reminder | None]:
        """The check due now, if one is (else None), and the reminder from then on (None: checks are off)."""
        now = utcnow()
        if not reminder.due(now):
            return None, reminder
        session = reminder.session

        def _read(uow: UnitOfWork) -> tuple[timedelta, int, int]:
            t = ledger_transactions.c
            net, bets = uow.conn.execute(select(
                func.coalesce(func.sum(t.amount), 0), func.coalesce(func.sum(case((t.kind == "bet", 1), else_=0)), 0))
                .where(t.operator_id == session.operator_id, t.player_id == session.player_id,
                       t.created_at >= reminder.started_at, t.currency == session.currency,
                       t.kind.in_(limits.ROUND_KINDS))).one()
            return _interval(uow, session), int(net), int(bets)

        interval, net, bets = await self._db.run(_read)
        if not interval:
            return None, None
        event = RealityCheck(0, elapsed_seconds=int((now - reminder.started_at).total_seconds()),
                             net_result=Money(session.currency, net), bet_count=bets,
                             interval_minutes=int(interval.total_seconds()) // 60)
        return event, Reminder(session, reminder.started_at, interval, _next_due(reminder.started_at, interval, now))
