"""Bonus money: a wallet's promotional balance, how bets spend it, how wins split, and how it ends.

A wallet holds at most one ACTIVE bonus; its money sits in the player_bonus account, which is non-zero
only while that bonus is active. A bonus ends exactly once (each ending is a keyed ledger transaction):
  CONVERTED  the stakes of settled rounds reached its wagering requirement: the bonus balance becomes cash
  EXPIRED    expires_at passed: the rest returns to the operator's promotion account
  FORFEITED  the operator ended it: the same
Money that belongs to an ended bonus and comes back later (a win or refund of a bet placed with it) goes
where the bonus went: to cash if it converted, to the promotion account if it expired or was forfeited.

Locking order, shared with hub.ledger.rounds, so concurrent transactions cannot deadlock: the player's
accounts (one statement), then bonus or free-round rows, then (inside post()) any promotion shard.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from hub.errors import DomainError, Reason, quote
from hub.ledger import postings
from hub.ledger.book import Book, Row
from hub.ledger.schema import bonuses

ACTIVE, CONVERTED, EXPIRED, FORFEITED = "ACTIVE", "CONVERTED", "EXPIRED", "FORFEITED"
CASH_FIRST, BONUS_FIRST = "cash_first", "bonus_first"
SPENDING_ORDERS = (CASH_FIRST, BONUS_FIRST)
WALLET = ("operator_id", "player_id", "currency")  # a wallet's bonuses (Book.group)
_ENDING_KIND = {CONVERTED: "bonus_converted", EXPIRED: "bonus_expired", FORFEITED: "bonus_forfeited"}


@dataclass(frozen=True)
class Stake:
    """How one bet was paid."""

    amount: int
    bonus_amount: int
    bonus_id: str | None


def split_stake(amount: int, cash: int, bonus: int, order: str) -> tuple[int, int]:
    """(cash part, bonus part) of a bet, spending one balance before the other."""
    if amount > cash + bonus:
        raise DomainError(Reason.INSUFFICIENT_FUNDS,
                          f"cash {cash} plus bonus {bonus} is below the bet of {amount}")
    if order == BONUS_FIRST:
        from_bonus = min(bonus, amount)
        return amount - from_bonus, from_bonus
    from_cash = min(cash, amount)
    return from_cash, amount - from_cash


def split_win(win: int, stakes: list[Stake]) -> tuple[int, dict[str, int]]:
    """(cash part, bonus part per bonus id) of a win, in proportion to what its bets spent from each.
    Bonus parts round down, so the player's withdrawable cash gets any remainder."""
    total = sum(s.amount for s in stakes)
    per_bonus: dict[str, int] = {}
    for s in stakes:
        if s.bonus_amount and s.bonus_id:
            per_bonus[s.bonus_id] = per_bonus.get(s.bonus_id, 0) + s.bonus_amount
    shares = {bonus_id: win * spent // total for bonus_id, spent in per_bonus.items()} if total else {}
    return win - sum(shares.values()), {b: v for b, v in shares.items() if v}


def wallet_accounts(player_id: str, currency: str) -> list[postings.AccountRef]:
    return [postings.player_cash(player_id, currency), postings.player_bonus(player_id, currency)]


# -- readers (outside the settlement engine) --------------------------------------------------------------

def load(uow: Any, operator_id: str, bonus_id: str) -> Row | None:
    row = uow.conn.execute(select(bonuses).where(
        bonuses.c.operator_id == operator_id, bonuses.c.bonus_id == bonus_id)).mappings().one_or_none()
    return dict(row) if row is not None else None


def current(uow: Any, operator_id: str, player_id: str, currency: str, now: datetime) -> Row | None:
    """The wallet's active bonus, for reading: None once it is past its expiry, though its money moves
    back only when the next bet, win or refund touches the wallet, or the sweep runs."""
    row = uow.conn.execute(select(bonuses).where(
        bonuses.c.operator_id == operator_id, bonuses.c.player_id == player_id, bonuses.c.currency == currency,
        bonuses.c.status == ACTIVE)).mappings().one_or_none()
    return dict(row) if row is not None and row["expires_at"] > now else None


def effective_status(row: Row, now: datetime) -> str:
    """What a reader is told: an active bonus past its expiry is EXPIRED, swept or not."""
    status: str = row["status"]
    return EXPIRED if status == ACTIVE and row["expires_at"] <= now else status


def due(uow: Any, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(operator, bonus id) of active bonuses past their expiry, oldest first."""
    return [(r.operator_id, r.bonus_id) for r in uow.conn.execute(
        select(bonuses.c.operator_id, bonuses.c.bonus_id)
        .where(bonuses.c.status == ACTIVE, bonuses.c.expires_at <= now)
        .order_by(bonuses.c.expires_at).limit(limit))]


# -- changes (commands of the settlement engine) --------------------------------------------------------

def active(book: Book, operator_id: str, player_id: str, currency: str, now: datetime, shards: int) -> Row | None:
    """The wallet's active bonus, locked; one past its expiry is expired first. The caller holds the
    wallet's accounts."""
    found = book.group(bonuses, WALLET, (operator_id, player_id, currency), lambda r: r["status"] == ACTIVE)
    row = found[0] if found else None
    if row is not None and row["expires_at"] <= now:
        end(book, row, EXPIRED, now, shards)
        return None
    return row


def destination(book: Book, operator_id: str, bonus_id: str, player_id: str, currency: str,
                now: datetime, shards: int) -> postings.AccountRef:
    """Where money returning to a bonus goes: its balance while active, else where the bonus went."""
    row = book.get(bonuses, (operator_id, bonus_id))
    if row is not None and row["status"] == ACTIVE and row["expires_at"] <= now:
        end(book, row, EXPIRED, now, shards)
    if row is not None and row["status"] == ACTIVE:
        return postings.player_bonus(player_id, currency)
    if row is not None and row["status"] == CONVERTED:
        return postings.player_cash(player_id, currency)
    return postings.promotion(player_id, currency, shards)


def grant(book: Book, *, operator_id: str, player_id: str, currency: str, amount: int,
          wagering_required: int, expires_at: datetime, key: str, now: datetime, shards: int) -> Row:
    """Credit a new active bonus from the promotion account; returns its row."""
    book.lock_accounts(operator_id, wallet_accounts(player_id, currency))
    if active(book, operator_id, player_id, currency, now, shards) is not None:
        raise DomainError(Reason.BONUS_ALREADY_ACTIVE,
                          f"the player's {currency} wallet already has an active bonus; forfeit it first")
    bonus_id, transaction_id = str(uuid.uuid4()), str(uuid.uuid4())
    postings.post(book, operator_id=operator_id, transaction_id=transaction_id, kind="bonus_granted",
                  player_id=player_id, currency=currency, round_id=None, idempotency_key=key, now=now,
                  legs=[postings.Leg(postings.promotion(player_id, currency, shards), -amount),
                        postings.Leg(postings.player_bonus(player_id, currency), amount)])
    return book.insert(bonuses, {
        "operator_id": operator_id, "bonus_id": bonus_id, "player_id": player_id, "currency": currency,
        "amount": amount, "wagering_required": wagering_required, "wagered": 0, "status": ACTIVE,
        "grant_transaction_id": transaction_id, "expires_at": expires_at, "created_at": now})


def end(book: Book, row: Row, status: str, now: datetime, shards: int) -> str:
    """Move an active bonus's balance to cash (CONVERTED) or back to promotion; returns the transaction id.
    Keyed by bonus and ending: a bonus can end once. The caller holds the wallet's accounts and the row."""
    bonus_account = postings.player_bonus(row["player_id"], row["currency"])
    left = book.balance(row["operator_id"], bonus_account)
    to = (postings.player_cash(row["player_id"], row["currency"]) if status == CONVERTED
          else postings.promotion(row["player_id"], row["currency"], shards))
    transaction_id = str(uuid.uuid4())
    kind = _ENDING_KIND[status]
    postings.post(book, operator_id=row["operator_id"], transaction_id=transaction_id, kind=kind,
                  player_id=row["player_id"], currency=row["currency"], round_id=None,
                  idempotency_key=f"{row['bonus_id']}:{kind}", now=now,
                  legs=[postings.Leg(bonus_account, -left), postings.Leg(to, left)])
    book.update(bonuses, row, status=status, closed_at=now, closing_transaction_id=transaction_id)
    return transaction_id


def _lock_row(book: Book, operator_id: str, bonus_id: str) -> Row | None:
    """The bonus row, locked after its wallet's accounts (the locking order above)."""
    row = book.get(bonuses, (operator_id, bonus_id), lock=False)
    if row is None:
        return None
    book.lock_accounts(operator_id, wallet_accounts(row["player_id"], row["currency"]))
    return book.get(bonuses, (operator_id, bonus_id))


def _lock_active(book: Book, operator_id: str, bonus_id: str) -> Row | None:
    """The bonus row, locked, if it is still active; None for an unknown or ended bonus."""
    row = _lock_row(book, operator_id, bonus_id)
    return row if row is not None and row["status"] == ACTIVE else None


def wager(book: Book, operator_id: str, bonus_id: str, stake: int, now: datetime, shards: int) -> None:
    """Count a settled round's stake toward the bonus it was placed under; convert once the requirement
    is met. Nothing happens for a bonus that already ended."""
    row = _lock_active(book, operator_id, bonus_id)
    if row is None:
        return
    if row["expires_at"] <= now:
        end(book, row, EXPIRED, now, shards)
        return
    book.update(bonuses, row, wagered=row["wagered"] + stake)
    if row["wagered"] >= row["wagering_required"]:
        end(book, row, CONVERTED, now, shards)


def forfeit(book: Book, operator_id: str, bonus_id: str, now: datetime, shards: int) -> Row:
    """End an active bonus at the operator's request (asking again answers the same); returns its row.
    One found past its expiry is expired instead and returned EXPIRED: the caller answers
    BONUS_NOT_ACTIVE, the expiry stays done. One that had already converted or expired is refused here."""
    row = _lock_row(book, operator_id, bonus_id)
    if row is None:
        raise DomainError(Reason.BONUS_NOT_FOUND, f"no bonus {quote(bonus_id)}")
    if row["status"] == ACTIVE:
        end(book, row, EXPIRED if row["expires_at"] <= now else FORFEITED, now, shards)
        return row
    if row["status"] != FORFEITED:
        raise DomainError(Reason.BONUS_NOT_ACTIVE, f"bonus {quote(bonus_id)} is {row['status']}")
    return row


def expire(book: Book, operator_id: str, bonus_id: str, now: datetime, shards: int) -> bool:
    """Expire one bonus if it is still active and due; True if it did."""
    row = _lock_active(book, operator_id, bonus_id)
    if row is None or row["expires_at"] > now:
        return False
    end(book, row, EXPIRED, now, shards)
    return True
