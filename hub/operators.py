"""Operators are the hub's tenants. A call's operator is its authenticated principal's (hub.auth); the hub
creates the sandbox operator at start-up, and AdminService (hub.auth.admin) the others.

Every query is scoped by the calling operator, so another operator's object is not found among the caller's.
When a call fails that way, the edge asks owner_elsewhere whether an id it named is another operator's
object: then the refusal is PERMISSION_DENIED / OBJECT_OF_ANOTHER_OPERATOR, not NOT_FOUND, and it is logged.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
import structlog
from sqlalchemy import Table, select

from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger.db import Database
from hub.ledger.schema import bonuses, game_sessions, operators, players, rounds, withdrawals
from hub.ledger.uow import UnitOfWork

log = structlog.get_logger("hub.rpc")
# The request fields that name an operator's object, and the table holding that kind (id column of the same
# name, and operator_id). Each is indexed by the id alone (migration 0015 for the tables keyed per operator).
OWNED: Mapping[str, Table] = {"player_id": players, "round_id": rounds, "bonus_id": bonuses,
                              "withdrawal_id": withdrawals, "game_session_id": game_sessions}


@dataclass(frozen=True)
class Elsewhere:
    """An id the caller named that is another operator's object."""

    field: str
    object_id: str
    owner: str


class Operators:
    def __init__(self, db: Database):
        self._db = db
        self._known: set[str] = set()  # read-through cache; operators are never deleted

    async def ensure(self, operator_id: str, name: str) -> None:
        def _ensure(uow: UnitOfWork) -> None:
            exists = uow.conn.execute(
                select(operators.c.operator_id).where(operators.c.operator_id == operator_id)
            ).first()
            if not exists:
                uow.conn.execute(operators.insert().values(operator_id=operator_id, name=name,
                                                           created_at=utcnow()))
            uow.commit()

        await self._db.run(_ensure)
        self._known.add(operator_id)

    async def require(self, operator_id: str) -> str:
        if operator_id in self._known:
            return operator_id

        def _exists(uow: UnitOfWork) -> bool:
            return uow.conn.execute(
                select(operators.c.operator_id).where(operators.c.operator_id == operator_id)
            ).first() is not None

        if not await self._db.run(_exists):
            raise DomainError(Reason.UNKNOWN_OPERATOR, f"unknown operator {quote(operator_id)}")
        self._known.add(operator_id)
        return operator_id

    async def refusal(self, operator_id: str, rpc: str, named: Mapping[str, str], err: DomainError) -> DomainError:
        """err, a refusal of a call naming these ids (field -> id); or, if it is NOT_FOUND and one of them is
        another operator's object, PERMISSION_DENIED / OBJECT_OF_ANOTHER_OPERATOR (logged with both operators;
        the id quoted by a short prefix only)."""
        if err.reason.code != grpc.StatusCode.NOT_FOUND:
            return err
        elsewhere = await self.owner_elsewhere(operator_id, named)
        if elsewhere is None:
            return err
        log.warning("rpc.object_of_another_operator", operator=operator_id, owner=elsewhere.owner, rpc=rpc,
                    field=elsewhere.field, object_id=quote(elsewhere.object_id, 8))
        return DomainError(Reason.OBJECT_OF_ANOTHER_OPERATOR,
                           f"{elsewhere.field} {quote(elsewhere.object_id, 8)} is another operator's",
                           metadata={"field": elsewhere.field})

    async def owner_elsewhere(self, operator_id: str, named: Mapping[str, str]) -> Elsewhere | None:
        """The first of the ids named (field -> id, fields of OWNED) that the operator has no object of but
        another operator has; None if there is none."""
        def _find(uow: UnitOfWork) -> Elsewhere | None:
            for name, object_id in named.items():
                table = OWNED[name]
                owners = set(uow.conn.execute(select(table.c.operator_id).where(
                    table.c[name] == object_id).limit(2)).scalars())
                if owners and operator_id not in owners:
                    return Elsewhere(name, object_id, min(owners))
            return None

        return await self._db.run(_find) if named else None
