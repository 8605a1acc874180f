"""Operators are the hub's tenants. A call's operator is its authenticated principal's (hub.auth); the hub
creates the sandbox operator at start-up, and AdminService (hub.auth.admin) the others."""

from sqlalchemy import select

from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger.db import Database
from hub.ledger.schema import operators
from hub.ledger.uow import UnitOfWork


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
