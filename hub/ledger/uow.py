"""Unit of work: one database transaction that rolls back unless commit() is called explicitly.

Readers and the few non-money writes (players, sessions, keys) use it through Database.run; money moves
only through the settlement engine (hub.ledger.engine)."""

from types import TracebackType

from sqlalchemy import Connection, Engine


class UnitOfWork:
    def __init__(self, engine: Engine):
        self._engine = engine
        self.conn: Connection

    def __enter__(self) -> "UnitOfWork":
        self.conn = self._engine.connect()
        self._tx = self.conn.begin()
        return self

    def commit(self) -> None:
        self._tx.commit()

    def rollback(self) -> None:
        self._tx.rollback()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._tx.is_active:
            self._tx.rollback()
        self.conn.close()
