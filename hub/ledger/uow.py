"""Unit of work: one database transaction that rolls back unless commit() is called explicitly."""

from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine


class UnitOfWork:
    def __init__(self, engine: Engine, side_engine: Engine | None = None):
        self._engine = engine
        # Connections for work that must commit on its own (creating accounts, hub.ledger.postings),
        # from a pool of their own: a transaction holding row locks must always be able to get one.
        self.side_engine = side_engine or engine
        self.conn: Connection
        # Account rows this transaction holds locked, with their current state (hub.ledger.postings):
        # posting again to them needs no second lock statement, and reading them no query.
        self.held: dict[Any, Any] = {}

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
