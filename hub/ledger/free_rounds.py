"""Free-round grants: rounds of one game at a fixed bet value, paid by the operator's promotion account.

A grant holds no money: each free round's stake moves from the promotion account to the house when the
round is played, and goes back (with the round) if the bet is rolled back. Wins are paid in cash.
The soonest-expiring usable grant is used first. Grant rows are locked after the player's accounts (the
order hub.ledger.bonuses describes).
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update

from hub.errors import DomainError, Reason
from hub.ledger.schema import free_round_grants as grants
from hub.ledger.uow import UnitOfWork

MAX_ROUNDS = 1000


def grant(uow: UnitOfWork, *, operator_id: str, player_id: str, game_id: str, currency: str, bet_amount: int,
          rounds: int, expires_at: datetime, now: datetime) -> Row[Any]:
    grant_id = str(uuid.uuid4())
    uow.conn.execute(grants.insert().values(
        operator_id=operator_id, grant_id=grant_id, player_id=player_id, game_id=game_id, currency=currency,
        bet_amount=bet_amount, rounds=rounds, rounds_left=rounds, expires_at=expires_at, created_at=now))
    return uow.conn.execute(select(grants).where(
        grants.c.operator_id == operator_id, grants.c.grant_id == grant_id)).one()


def _usable(operator_id: str, player_id: str, currency: str, now: datetime):  # type: ignore[no-untyped-def]
    return select(grants).where(
        grants.c.operator_id == operator_id, grants.c.player_id == player_id, grants.c.currency == currency,
        grants.c.rounds_left > 0, grants.c.expires_at > now,
    ).order_by(grants.c.expires_at, grants.c.created_at, grants.c.grant_id)


def usable(uow: UnitOfWork, operator_id: str, player_id: str, currency: str, now: datetime) -> list[Row[Any]]:
    return list(uow.conn.execute(_usable(operator_id, player_id, currency, now)))


def take(uow: UnitOfWork, operator_id: str, player_id: str, game_id: str, currency: str, amount: int,
         now: datetime) -> str | None:
    """Use one free round for a bet of amount in game_id; the grant's id, or None if there is none.
    While one is left, a bet of any other amount is refused rather than charged to the player."""
    row = uow.conn.execute(_usable(operator_id, player_id, currency, now)
                           .where(grants.c.game_id == game_id).limit(1).with_for_update()).one_or_none()
    if row is None:
        return None
    if amount != row.bet_amount:
        raise DomainError(Reason.FREE_ROUND_BET_MISMATCH,
                          f"{row.rounds_left} free rounds at {row.bet_amount} minor {currency} are waiting in "
                          f"this game; bet exactly that")
    uow.conn.execute(update(grants).where(grants.c.operator_id == operator_id, grants.c.grant_id == row.grant_id)
                     .values(rounds_left=grants.c.rounds_left - 1))
    grant_id: str = row.grant_id
    return grant_id


def give_back(uow: UnitOfWork, operator_id: str, grant_id: str) -> None:
    """A free round whose bet was rolled back is the player's again."""
    uow.conn.execute(update(grants).where(grants.c.operator_id == operator_id, grants.c.grant_id == grant_id)
                     .values(rounds_left=grants.c.rounds_left + 1))


def left(uow: UnitOfWork, operator_id: str, player_id: str, game_id: str, currency: str, now: datetime) -> int:
    """Free rounds the player has left in this game, over all usable grants."""
    return int(uow.conn.execute(select(func.coalesce(func.sum(grants.c.rounds_left), 0)).where(  # MariaDB: DECIMAL
        grants.c.operator_id == operator_id, grants.c.player_id == player_id, grants.c.game_id == game_id,
        grants.c.currency == currency, grants.c.rounds_left > 0, grants.c.expires_at > now)).scalar_one())
