"""Free-round grants: rounds of one game at a fixed bet value, paid by the operator's promotion account.

A grant holds no money: each free round's stake moves from the promotion account to the house when the
round is played, and goes back (with the round) if the bet is rolled back. Wins are paid in cash.
The soonest-expiring usable grant is used first. Grant rows are locked after the player's accounts (the
order hub.ledger.bonuses describes).
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from hub.errors import DomainError, Reason
from hub.ledger.book import Book, Row as BookRow
from hub.ledger.schema import free_round_grants as grants

MAX_ROUNDS = 1000
WALLET = ("operator_id", "player_id", "currency")  # a wallet's grants (Book.group)


def grant(book: Book, *, operator_id: str, player_id: str, game_id: str, currency: str, bet_amount: int,
          rounds: int, expires_at: datetime, now: datetime) -> BookRow:
    return book.insert(grants, {
        "operator_id": operator_id, "grant_id": str(uuid.uuid4()), "player_id": player_id, "game_id": game_id,
        "currency": currency, "bet_amount": bet_amount, "rounds": rounds, "rounds_left": rounds,
        "expires_at": expires_at, "created_at": now})


def _usable_where(operator_id: str, player_id: str, currency: str, now: datetime):  # type: ignore[no-untyped-def]
    return and_(grants.c.operator_id == operator_id, grants.c.player_id == player_id,
                grants.c.currency == currency, grants.c.rounds_left > 0, grants.c.expires_at > now)


def _order(row: Any) -> tuple[Any, ...]:
    """Soonest-expiring first."""
    return row["expires_at"], row["created_at"], row["grant_id"]


def usable(uow: Any, operator_id: str, player_id: str, currency: str, now: datetime) -> list[BookRow]:
    """For readers outside the settlement engine: the player's usable grants, soonest-expiring first."""
    return [dict(r) for r in uow.conn.execute(
        select(grants).where(_usable_where(operator_id, player_id, currency, now))
        .order_by(grants.c.expires_at, grants.c.created_at, grants.c.grant_id)).mappings()]


def _in_game(book: Book, operator_id: str, player_id: str, game_id: str, currency: str, now: datetime,
             lock: bool) -> list[BookRow]:
    def match(r: BookRow) -> bool:
        return bool(r["game_id"] == game_id and r["rounds_left"] > 0 and r["expires_at"] > now)

    return sorted(book.group(grants, WALLET, (operator_id, player_id, currency), match, lock=lock), key=_order)


def take(book: Book, operator_id: str, player_id: str, game_id: str, currency: str, amount: int,
         now: datetime) -> str | None:
    """Use one free round for a bet of amount in game_id; the grant's id, or None if there is none.
    While one is left, a bet of any other amount is refused rather than charged to the player."""
    usable_here = _in_game(book, operator_id, player_id, game_id, currency, now, lock=True)
    if not usable_here:
        return None
    row = usable_here[0]
    if amount != row["bet_amount"]:
        raise DomainError(Reason.FREE_ROUND_BET_MISMATCH,
                          f"{row['rounds_left']} free rounds at {row['bet_amount']} minor {currency} are waiting in "
                          f"this game; bet exactly that")
    book.update(grants, row, rounds_left=row["rounds_left"] - 1)
    grant_id: str = row["grant_id"]
    return grant_id


def give_back(book: Book, operator_id: str, grant_id: str) -> None:
    """A free round whose bet was rolled back is the player's again."""
    row = book.get(grants, (operator_id, grant_id))
    if row is not None:
        book.update(grants, row, rounds_left=row["rounds_left"] + 1)


def left(book: Book, operator_id: str, player_id: str, game_id: str, currency: str, now: datetime) -> int:
    """Free rounds the player has left in this game, over all usable grants."""
    return sum(r["rounds_left"] for r in _in_game(book, operator_id, player_id, game_id, currency, now, lock=False))
