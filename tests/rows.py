"""A row store in memory (hub.ledger.rows.RowStore): a Book over it decides commands with no database,
for unit tests of the domain. Committed state is what the Book flushed; there is no rollback, as a
Book writes only at flush, after every command of its batch was decided."""

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Table, UniqueConstraint
from sqlalchemy.exc import IntegrityError

from hub.ledger.book import Book
from hub.ledger.rows import Key, Row


class MemoryRows:
    def __init__(self) -> None:
        self.tables: dict[str, dict[Key, Row]] = defaultdict(dict)
        self._numbers: dict[str, int] = defaultdict(int)
        self.flushes = 0  # inserts and updates written

    def book(self) -> Book:
        """A new batch's Book over these rows."""
        return Book(self)

    def rows(self, table: Table) -> list[Row]:
        return [dict(r) for r in self.tables[table.name].values()]

    def seed(self, table: Table, *rows: Row) -> None:
        """Rows as if committed before the test: columns left out are NULL."""
        self.insert(table, [{c: row.get(c) for c in table.columns.keys()} for row in rows])

    # -- RowStore -----------------------------------------------------------------------------------

    def select_in(self, table: Table, columns: tuple[str, ...], values: list[Key], lock: bool,
                  equal: Mapping[str, Any] | None = None) -> Iterable[Mapping[Any, Any]]:
        wanted, equal = set(values), equal or {}
        return [dict(r) for r in self.tables[table.name].values()
                if tuple(r[c] for c in columns) in wanted and all(r[c] == v for c, v in equal.items())]

    def select_where(self, table: Table, where: ColumnElement[bool], match: Callable[[Row], bool],
                     lock: bool) -> Iterable[Mapping[Any, Any]]:
        return [dict(r) for r in self.tables[table.name].values() if match(r)]

    def total(self, table: Table, column: str, where: ColumnElement[bool], match: Callable[[Row], bool]) -> int:
        return sum(r[column] for r in self.tables[table.name].values() if match(r))

    def create_if_missing(self, table: Table, rows: list[Row]) -> None:
        self.insert(table, [r for r in rows if not self._taken(table, r)])

    def insert(self, table: Table, rows: list[Row]) -> None:
        stored = self.tables[table.name]
        for values in rows:
            row = {c: values.get(c) for c in table.columns.keys()}
            for column in table.primary_key.columns:
                if column.autoincrement is True and row[column.name] is None:
                    self._numbers[table.name] += 1
                    row[column.name] = self._numbers[table.name]
            if self._taken(table, row):
                raise IntegrityError(f"INSERT INTO {table.name}", None, Exception("duplicate key"))
            stored[self._key(table, row)] = row
        self.flushes += 1

    def update(self, table: Table, rows: list[Row]) -> None:
        stored = self.tables[table.name]
        for row in rows:
            key = self._key(table, row)
            assert key in stored, f"{table.name} {key} updated but never inserted"
            stored[key] = {c: row[c] for c in table.columns.keys()}
        self.flushes += 1

    # -- keys ---------------------------------------------------------------------------------------

    @staticmethod
    def _key(table: Table, row: Mapping[str, Any]) -> Key:
        return tuple(row[c.name] for c in table.primary_key.columns)

    def _taken(self, table: Table, row: Mapping[str, Any]) -> bool:
        """Does a stored row share the row's primary key or one of its unique keys?"""
        uniques = [tuple(c.name for c in table.primary_key.columns)] + [
            tuple(c.name for c in u.columns) for u in table.constraints if isinstance(u, UniqueConstraint)]
        stored = self.tables[table.name].values()
        return any(all(row.get(c) is not None for c in names)
                   and any(all(s[c] == row[c] for c in names) for s in stored) for names in uniques)
