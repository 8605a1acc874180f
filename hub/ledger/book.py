"""A batch's view of the database: rows read (and locked) once, changed in memory, written in bulk.

The settlement engine (hub.ledger.engine) decides many commands in one database transaction. Commands
read and change rows only through the batch's Book; nothing reaches the database until flush(), which
writes every new row of a table with one multi-row INSERT and every changed row of a table with one
statement, just before the commit. A command refused midway (DomainError) is undone in memory from the
journal, so its neighbours never see a trace of it and no savepoint is needed.

Rules for code running on a Book:
  - change a row only through insert()/update(), and only a row read with lock=True;
  - read rows through get()/find()/group()/total(): a plain SQL read would miss what earlier commands
    of the batch did in memory.

The Book reaches the database only through its row store (hub.ledger.rows); over an in-memory store
it needs no database at all.

House, promotion and external accounts are deferred: no rule reads their balance, so commands post to
them without reading them, and flush() locks them last, in one statement, applies their entries in
order and writes one summed change per account. They are held only for the moment of the flush: with
many bets per batch, they are no longer hot rows.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table

from hub.ledger.chain import GENESIS, entry_hash
from hub.ledger.rows import (
    Key,
    Row as Row,  # what commands read and write
    RowStore,
)
from hub.ledger.schema import accounts, metadata, postings

Value = Key


@dataclass(frozen=True)
class AccountRef:
    kind: str
    owner: str
    currency: str


@dataclass(frozen=True)
class Need:
    """A row (by primary key) or a group of rows (by columns, see Book.group) a command will read: the
    engine reads what a whole batch needs with one statement per table before applying any command."""

    table: Table
    value: Key
    columns: tuple[str, ...] | None = None  # None: value is the primary key
    lock: bool = True


HOUSE, EXTERNAL, PROMOTION = "house", "external", "promotion"
_REF = ("kind", "owner", "currency")  # with operator_id, an account's unique key
DEFERRED = frozenset({HOUSE, EXTERNAL, PROMOTION})


def _key_of(table: Table, row: Any) -> Key:
    return tuple(row[name] for name in _shape(table).key)


@dataclass(frozen=True)
class _Shape:
    written: tuple[str, ...]  # the columns an INSERT names: all but a key the database numbers
    accepted: frozenset[str]
    key: tuple[str, ...]
    keyed: bool  # rows are known by their primary key before they are written


_SHAPES: dict[str, _Shape] = {}


def _shape(table: Table) -> _Shape:
    shape = _SHAPES.get(table.name)
    if shape is None:
        numbered = {c.name for c in table.primary_key.columns if c.autoincrement is True}  # seq, posting id
        key = tuple(c.name for c in table.primary_key.columns)
        _SHAPES[table.name] = shape = _Shape(
            written=tuple(c.name for c in table.columns if c.name not in numbered),
            accepted=frozenset([*table.columns.keys(), "_deferred"]), key=key, keyed=not numbered)
    return shape


class Book:
    def __init__(self, rows: RowStore):
        self._store = rows
        self._rows: dict[tuple[str, Key], Row | None] = {}  # None: read, and absent
        self._locked: set[tuple[str, Key]] = set()
        self._new: dict[str, list[Row]] = defaultdict(list)  # rows to insert, in order
        self._new_ids: set[int] = set()  # id() of rows in _new
        self._dirty: dict[str, dict[Key, Row]] = defaultdict(dict)
        self._journal: list[Callable[[], None]] = []
        # Groups read (see group()): (table, columns) -> values read, values read locked, rows per value.
        self._groups: dict[tuple[str, tuple[str, ...]], set[Key]] = {}
        self._locked_groups: dict[tuple[str, tuple[str, ...]], set[Key]] = {}
        self._group_rows: dict[tuple[str, tuple[str, ...]], dict[Key, list[Row]]] = {}
        # Accounts by reference: player accounts as locked rows; deferred ones are only named here.
        self._accounts: dict[tuple[str, AccountRef], Row] = {}

    # -- reading --------------------------------------------------------------------------------------

    def get(self, table: Table, key: Key, lock: bool = True) -> Row | None:
        """The row with this primary key as this batch sees it; locked (FOR UPDATE) when lock is set."""
        ck = (table.name, key)
        if ck in self._rows and (ck in self._locked or not lock):
            return self._rows[ck]
        found = list(self._store.select_in(table, _shape(table).key, [key], lock))
        row = dict(found[0]) if found else None
        earlier = self._rows.get(ck)
        if earlier is not None and row is not None:  # read before without the lock: refresh it in place
            earlier.update(row)
            row = earlier
        self._rows[ck] = row
        if lock:
            self._locked.add(ck)
        return row

    def find(self, table: Table, where: ColumnElement[bool], match: Callable[[Row], bool],
             lock: bool = True) -> list[Row]:
        """Rows matching where in the database and match in memory, as this batch sees them: rows an
        earlier command inserted are included, rows it changed are judged by their new values. match
        must agree with where for unchanged rows. Unordered."""
        found: dict[Key, Row] = {}
        for db_row in self._store.select_where(table, where, match, lock):
            row = self._absorb(table, db_row, lock)
            if match(row):
                found[_key_of(table, row)] = row
        for row in self._new.get(table.name, ()):
            key = _key_of(table, row)
            if key not in found and match(row):
                found[key] = row
        return list(found.values())

    def group(self, table: Table, columns: tuple[str, ...], value: Key,
              match: Callable[[Row], bool] = lambda _: True, lock: bool = True) -> list[Row]:
        """Rows whose columns equal value (and that match), as this batch sees them, new ones last; read
        once per batch (prefetch_groups reads many groups in one statement). Columns must never change."""
        loaded = self._groups.get((table.name, columns))
        if loaded is None or value not in loaded or (lock and value not in self._locked_groups[table.name, columns]):
            self.prefetch_groups(table, columns, [value], lock)
        found = [r for r in self._group_rows[table.name, columns].get(value, ()) if match(r)]
        known = {id(r) for r in found}
        return found + [r for r in self._new.get(table.name, ())
                        if id(r) not in known and tuple(r[c] for c in columns) == value and match(r)]

    def total(self, table: Table, column: str, where: ColumnElement[bool], match: Callable[[Row], bool]) -> int:
        """SUM(column) over the rows matching where in the database plus the matching rows this batch
        inserted (a sum over rows no command changes: match must agree with where)."""
        stored = self._store.total(table, column, where, match)
        new: int = sum(r[column] for r in self._new.get(table.name, ()) if match(r))
        return stored + new

    def prefetch(self, table: Table, keys: Iterable[Key], lock: bool = True) -> None:
        """Read (and lock) the rows of many primary keys in one statement; get() then finds them."""
        wanted = [k for k in dict.fromkeys(keys)
                  if (table.name, k) not in self._rows or (lock and (table.name, k) not in self._locked)]
        if not wanted:
            return
        for db_row in self._store.select_in(table, _shape(table).key, wanted, lock):
            self._absorb(table, db_row, lock)
        for key in wanted:
            self._rows.setdefault((table.name, key), None)
            if lock:
                self._locked.add((table.name, key))

    def prefetch_groups(self, table: Table, columns: tuple[str, ...], values: Iterable[Value], lock: bool = True) -> None:
        """Read (and lock) every row of many groups (see group()) in one statement."""
        loaded = self._groups.setdefault((table.name, columns), set())
        locked = self._locked_groups.setdefault((table.name, columns), set())
        wanted = [v for v in dict.fromkeys(values) if v not in loaded or (lock and v not in locked)]
        if not wanted:
            return
        rows = self._group_rows.setdefault((table.name, columns), {})
        for value in wanted:
            rows[value] = []
        for db_row in self._store.select_in(table, columns, wanted, lock):
            row = self._absorb(table, db_row, lock)
            rows[tuple(row[c] for c in columns)].append(row)
        loaded.update(wanted)
        if lock:
            locked.update(wanted)

    def _absorb(self, table: Table, db_row: Any, lock: bool) -> Row:
        """The batch's copy of a row just read: the one already held (refreshed if it was read without
        the lock, so unchanged) or a new one."""
        ck = (table.name, _key_of(table, db_row))
        row = self._rows.get(ck)
        if row is None:
            self._rows[ck] = row = dict(db_row)
        elif lock and ck not in self._locked:
            row.update(db_row)
        if lock:
            self._locked.add(ck)
        return row

    def new_rows(self, table: Table) -> list[Row]:
        """Rows of table this batch inserted so far, in order (for tables keyed by autoincrement)."""
        return list(self._new.get(table.name, ()))

    # -- changing -------------------------------------------------------------------------------------

    def insert(self, table: Table, values: Row) -> Row:
        """Add a row (columns left out are NULL); tables with an autoincrement key get it at flush."""
        shape = _shape(table)
        if not values.keys() <= shape.accepted:
            raise KeyError(f"{table.name} has no columns {set(values) - shape.accepted}")
        # Every row of a multi-row INSERT names the same columns.
        row = {name: values.get(name) for name in shape.written}
        if "_deferred" in values:
            row["_deferred"] = values["_deferred"]
        self._new[table.name].append(row)
        self._new_ids.add(id(row))
        ck = (table.name, tuple(row[k] for k in shape.key)) if shape.keyed else None
        previous = self._rows.get(ck) if ck else None
        if ck:
            self._rows[ck] = row
            self._locked.add(ck)

        def undo() -> None:
            self._new[table.name].pop()
            self._new_ids.discard(id(row))
            if ck:
                self._rows[ck] = previous

        self._journal.append(undo)
        return row

    def update(self, table: Table, row: Row, **changes: Any) -> None:
        old = {name: row[name] for name in changes}
        row.update(changes)
        key = _key_of(table, row)
        if id(row) in self._new_ids:  # written whole at flush anyway
            self._journal.append(lambda: row.update(old))
            return
        if (table.name, key) not in self._locked:
            raise AssertionError(f"{table.name} row {key} changed without being locked")
        dirty = self._dirty[table.name]
        was_dirty = key in dirty
        dirty[key] = row

        def undo() -> None:
            row.update(old)
            if not was_dirty:
                del dirty[key]

        self._journal.append(undo)

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """All or nothing: whatever the block changed is undone if it raises."""
        mark = len(self._journal)
        try:
            yield
        except BaseException:
            while len(self._journal) > mark:
                self._journal.pop()()
            raise

    # -- accounts -------------------------------------------------------------------------------------

    def lock_accounts(self, operator_id: str, refs: Iterable[AccountRef], create: bool = True) -> None:
        """Lock the accounts not held yet, in one statement, creating missing ones unless create is
        False (then they are left for a later call); deferred kinds are skipped."""
        missing = sorted({r for r in refs if r.kind not in DEFERRED and (operator_id, r) not in self._accounts},
                         key=lambda r: (r.kind, r.owner, r.currency))
        if missing:
            for ref, row in self._lock(operator_id, missing, create).items():
                self._accounts[operator_id, ref] = row
                self._rows["accounts", (row["account_id"],)] = row
                self._locked.add(("accounts", (row["account_id"],)))

    def account(self, operator_id: str, ref: AccountRef) -> Row:
        """A (non-deferred) account's row, locked."""
        self.lock_accounts(operator_id, [ref])
        return self._accounts[operator_id, ref]

    def _lock(self, operator_id: str, refs: list[AccountRef], create: bool = True) -> dict[AccountRef, Row]:
        """SELECT ... FOR UPDATE in one statement; InnoDB locks rows in the order of the unique
        (operator, kind, owner, currency) index, the same for every transaction."""
        if create:
            self._ensure(operator_id, refs)
        rows = self._store.select_in(accounts, _REF, [(r.kind, r.owner, r.currency) for r in refs], True,
                                     {"operator_id": operator_id})
        found = {AccountRef(r["kind"], r["owner"], r["currency"]): dict(r) for r in rows}
        if create and len(found) != len(refs):
            raise LookupError(f"accounts not created before locking: {set(refs) - set(found)}")
        return found

    def _ensure(self, operator_id: str, refs: list[AccountRef]) -> None:
        """Create missing accounts (balance 0) so they can be locked.

        On MariaDB they are created and committed on a separate connection: created inside this
        transaction, two batches could hold shared locks on one new row and deadlock upgrading them.
        SQLite has one writer at a time, and this transaction is it (BEGIN IMMEDIATE)."""
        wanted = {(r.kind, r.owner, r.currency) for r in refs}
        have = {(row["kind"], row["owner"], row["currency"]) for row in self._store.select_in(
            accounts, _REF, sorted(wanted), False, {"operator_id": operator_id})}
        missing = wanted - have
        if not missing:
            return
        rows = [{"operator_id": operator_id, "kind": k, "owner": o, "currency": c, "balance": 0, "version": 0,
                 "last_entry_hash": GENESIS} for k, o, c in sorted(missing)]
        self._store.create_if_missing(accounts, rows)

    def entry(self, operator_id: str, transaction_id: str, ref: AccountRef, amount: int,
              touched: set[int]) -> int | None:
        """Append one posting; returns the account's balance after it (None for a deferred account,
        whose entries are completed at flush). touched collects the transaction's account rows."""
        if ref.kind in DEFERRED:
            self.insert(postings, {"transaction_id": transaction_id, "operator_id": operator_id,
                                   "account_id": None, "currency": ref.currency, "amount": amount,
                                   "balance_after": None, "entry_hash": None, "_deferred": ref})
            return None
        row = self.account(operator_id, ref)
        balance: int = row["balance"] + amount
        chained = entry_hash(row["last_entry_hash"], row["account_id"], transaction_id, ref.currency, amount,
                             balance)
        self.update(accounts, row, balance=balance, last_entry_hash=chained,
                    version=row["version"] + (0 if row["account_id"] in touched else 1))
        touched.add(row["account_id"])
        self.insert(postings, {"transaction_id": transaction_id, "operator_id": operator_id,
                               "account_id": row["account_id"], "currency": ref.currency, "amount": amount,
                               "balance_after": balance, "entry_hash": chained})
        return balance

    def balance(self, operator_id: str, ref: AccountRef) -> int:
        balance: int = self.account(operator_id, ref)["balance"]
        return balance

    # -- writing --------------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write everything; returns how many statements it took."""
        statements = self._complete_deferred()
        for name, rows in self._new.items():
            if rows:
                table = _TABLES[name]
                for row in rows:
                    row.pop("_deferred", None)
                self._store.insert(table, rows)
                statements += 1
        for name, changed in self._dirty.items():
            if changed:
                self._store.update(_TABLES[name], list(changed.values()))
                statements += 1
        return statements

    def _complete_deferred(self) -> int:
        """Lock the deferred accounts last, apply their entries in order, one change per account."""
        entries = [e for e in self._new.get("postings", ()) if e.get("_deferred")]
        if not entries:
            return 0
        by_operator: dict[str, set[AccountRef]] = defaultdict(set)
        for e in entries:
            by_operator[e["operator_id"]].add(e["_deferred"])
        held: dict[tuple[str, AccountRef], Row] = {}
        statements = 0
        for operator_id in sorted(by_operator):
            refs = sorted(by_operator[operator_id], key=lambda r: (r.kind, r.owner, r.currency))
            for ref, row in self._lock(operator_id, refs).items():
                held[operator_id, ref] = row
                self._locked.add(("accounts", (row["account_id"],)))
            statements += 2
        counted: set[tuple[int, str]] = set()
        for e in entries:
            row = held[e["operator_id"], e["_deferred"]]
            row["balance"] += e["amount"]
            row["last_entry_hash"] = entry_hash(row["last_entry_hash"], row["account_id"], e["transaction_id"],
                                                e["currency"], e["amount"], row["balance"])
            if (row["account_id"], e["transaction_id"]) not in counted:
                counted.add((row["account_id"], e["transaction_id"]))
                row["version"] += 1
            e.update(account_id=row["account_id"], balance_after=row["balance"], entry_hash=row["last_entry_hash"])
            self._dirty["accounts"][(row["account_id"],)] = row
        return statements


_TABLES: dict[str, Table] = dict(metadata.tables)
