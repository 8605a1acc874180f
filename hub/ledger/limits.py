"""Responsible-gaming rules the settlement engine applies: self-exclusion, deposit and loss limits.

They run inside the engine's command handling (a deposit, a bet), after the money is posted and while
the player's cash row is locked: concurrent bets or deposits of one player queue on that lock or sit
in one batch, so they cannot both slip under a limit. A refusal undoes the command (Book.attempt).

Windows are UTC calendar periods: a day from 00:00, a week from Monday 00:00, a month from the 1st.
Loss in a window is the player's net cash lost to rounds: stakes minus wins minus refunds (bonus and free
round stakes are not the player's cash and do not count). A bet counts at once, before its outcome, so the
check is against the worst case: the limit is never overshot, whatever the open rounds win.

A limit of 0 means none. Raising a limit (or removing one) is pending until its cooling-off ends
(hub.responsible); effective() applies a pending raise once its time has come.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_

from hub.errors import DomainError, Reason
from hub.ledger.book import Book, Need, Row
from hub.ledger.schema import ledger_transactions, player_limits, self_exclusions

DEPOSIT, LOSS, SESSION_TIME = "deposit", "loss", "session_time"
REALITY_CHECK = "reality_check"  # a reminder's interval in seconds (hub.reality), not a limit
DAY, WEEK, MONTH = "day", "week", "month"
PERIODS = (DAY, WEEK, MONTH)
PLAYER = ("operator_id", "player_id")  # a player's limit rows (Book.group)
ROUND_KINDS = ("bet", "win", "rollback")


def needs(operator_id: str, player_id: str) -> tuple[Need, ...]:
    """What the checks read, so the engine reads it for a whole batch at once."""
    return (Need(self_exclusions, (operator_id, player_id), lock=False),
            Need(player_limits, (operator_id, player_id), PLAYER, lock=False))


def window_start(period: str, now: datetime) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == DAY:
        return day
    if period == WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def effective(row: Any, now: datetime) -> int:
    """The limit in force: the pending raise once its cooling-off has passed, else the amount."""
    if row["pending_from"] is not None and row["pending_from"] <= now:
        return int(row["pending_amount"])
    return int(row["amount"])


def exclusion_active(row: Any, now: datetime) -> bool:
    return row is not None and row["started_at"] <= now and (row["ends_at"] is None or now < row["ends_at"])


def check_not_excluded(book: Book, operator_id: str, player_id: str, now: datetime) -> None:
    row = book.get(self_exclusions, (operator_id, player_id), lock=False)
    if exclusion_active(row, now):
        until = "indefinitely" if row is None or row["ends_at"] is None else f"until {row['ends_at']:%Y-%m-%d %H:%M} UTC"
        raise DomainError(Reason.SELF_EXCLUDED, f"the player is self-excluded {until}")


def _limits(book: Book, operator_id: str, player_id: str, kind: str, currency: str, now: datetime) -> list[tuple[Row, int]]:
    rows = book.group(player_limits, PLAYER, (operator_id, player_id),
                      lambda r: r["kind"] == kind and r["currency"] == currency, lock=False)
    return [(r, limit) for r in rows if (limit := effective(r, now)) > 0]


def _sum(book: Book, operator_id: str, player_id: str, currency: str, kinds: tuple[str, ...], since: datetime) -> int:
    t = ledger_transactions
    return book.total(t, "amount", and_(
        t.c.operator_id == operator_id, t.c.player_id == player_id, t.c.currency == currency,
        t.c.kind.in_(kinds), t.c.created_at >= since),
        lambda r: (r["operator_id"], r["player_id"], r["currency"]) == (operator_id, player_id, currency)
        and r["kind"] in kinds and r["created_at"] >= since)


def check_deposits(book: Book, operator_id: str, player_id: str, currency: str, now: datetime) -> None:
    """After the deposit is posted: refused if it takes a period's deposits past the player's limit."""
    for row, limit in _limits(book, operator_id, player_id, DEPOSIT, currency, now):
        total = _sum(book, operator_id, player_id, currency, ("deposit",), window_start(row["period"], now))
        if total > limit:
            raise DomainError(Reason.DEPOSIT_LIMIT_EXCEEDED, f"deposits this {row['period']} would reach {total} of "
                              f"the player's limit of {limit} minor {currency}")


def check_losses(book: Book, operator_id: str, player_id: str, currency: str, now: datetime) -> None:
    """After the bet is posted: refused if losing it would take a period's net loss past the limit."""
    for row, limit in _limits(book, operator_id, player_id, LOSS, currency, now):
        lost = -_sum(book, operator_id, player_id, currency, ROUND_KINDS, window_start(row["period"], now))
        if lost > limit:
            raise DomainError(Reason.LOSS_LIMIT_EXCEEDED, f"losing this bet would make this {row['period']}'s "
                              f"loss {lost}, past the player's limit of {limit} minor {currency}")


def session_time_limit(book: Book, operator_id: str, player_id: str, now: datetime) -> int:
    """The player's session time limit in seconds (0: none)."""
    found = _limits(book, operator_id, player_id, SESSION_TIME, "", now)
    return found[0][1] if found else 0
