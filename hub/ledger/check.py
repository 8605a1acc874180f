"""`hub ledger check`: prove from the database alone that each operator's ledger is intact.

Violation kinds, per operator:
  transaction_unbalanced        a ledger transaction's postings do not sum to zero in some currency
  ledger_unbalanced             all the operator's postings together do not sum to zero in some currency
  balance_mismatch              an account's balance is not the sum of its entries or not its latest entry's
                                balance_after, or an entry's balance_after is not the previous one plus its
                                amount
  negative_balance              a player's cash, withdrawal hold or bonus balance is below zero
  bonus_without_active_bonus    a bonus balance is not zero but the wallet has no active bonus (a bonus's
                                money must leave with it when it converts, expires or is forfeited)
  chain_broken                  an entry's hash does not chain from the previous entry (hub.ledger.chain), or
                                the chain does not end at accounts.last_entry_hash
  transaction_without_postings  a ledger_transactions row with no postings
  postings_without_transaction  postings whose transaction_id has no ledger_transactions row

Sums and joins run in the database; entries are read account by account in pages of BATCH rows, so memory
stays flat at millions of rows. Everything is read in one snapshot.
"""

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, create_engine, exists, func, select, union
from sqlalchemy.pool import NullPool

from hub.ledger.bonuses import ACTIVE
from hub.ledger.chain import GENESIS, entry_hash
from hub.ledger.postings import NEVER_NEGATIVE, PLAYER_BONUS
from hub.ledger.schema import accounts, bonuses, ledger_transactions, operators, postings

BATCH = 5_000
LISTED = 1_000  # violations listed per operator; beyond that they are only counted


@dataclass(frozen=True)
class Violation:
    kind: str
    subject: str  # "transaction <id>", "account <id>", "posting <id>" or "currency <code>"
    detail: str


@dataclass
class Report:
    operator_id: str
    checked: Counter[str] = field(default_factory=Counter)  # transactions, postings, accounts, entries
    counts: Counter[str] = field(default_factory=Counter)  # violations by kind
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.counts

    def flag(self, kind: str, subject: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.violations) < LISTED:
            self.violations.append(Violation(kind, subject, detail))

    def as_dict(self) -> dict[str, object]:
        return {"operator_id": self.operator_id, "ok": self.ok, "checked": dict(self.checked),
                "violation_counts": dict(self.counts),
                "violations": [vars(v) for v in self.violations]}

    def render(self) -> str:
        checked = ", ".join(f"{n} {what}" for what, n in self.checked.items())
        total = sum(self.counts.values())
        lines = [f"operator {self.operator_id}: {checked} checked: "
                 + ("OK" if self.ok else f"{total} violation{'s' if total != 1 else ''}")]
        lines += [f"  {v.kind:<29} {v.subject}: {v.detail}" for v in self.violations]
        if total > len(self.violations):
            lines.append(f"  ... and {total - len(self.violations)} more")
        return "\n".join(lines)


def check(url: str, operator_id: str | None = None) -> list[Report]:
    """One report per operator (every operator with any ledger row, unless operator_id is given)."""
    with _snapshot(url) as conn:
        return [check_operator(conn, op) for op in ([operator_id] if operator_id else _operators(conn))]


@contextlib.contextmanager
def _snapshot(url: str) -> Iterator[Connection]:
    """A read-only transaction for the whole check: postings a live hub commits meanwhile stay invisible
    (they cannot show up as false violations) and the hub's writers are never blocked."""
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")  # we BEGIN ourselves
    with engine.connect() as conn:  # closing the connection ends the transaction
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN DEFERRED")  # a WAL read snapshot, not the hub's write-locking BEGIN
        else:
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        yield conn.execution_options(stream_results=True)  # violation lists are streamed, not buffered


def _operators(conn: Connection) -> list[str]:
    """Every operator id found in any ledger table: rows of an operator missing from `operators` count too."""
    query = union(*(select(t.c.operator_id) for t in (operators, accounts, ledger_transactions, postings)))
    return sorted(conn.execute(query).scalars())


def check_operator(conn: Connection, operator_id: str) -> Report:
    report = Report(operator_id, checked=Counter(transactions=0, postings=0, accounts=0, entries=0))
    _check_transactions_have_postings(conn, report)
    _check_sums(conn, report)
    _check_accounts(conn, report)
    _check_bonus_balances(conn, report)
    return report


def _check_bonus_balances(conn: Connection, report: Report) -> None:
    a, b = accounts, bonuses
    for account_id, balance in conn.execute(select(a.c.account_id, a.c.balance).where(
            a.c.operator_id == report.operator_id, a.c.kind == PLAYER_BONUS, a.c.balance != 0,
            ~exists().where(b.c.operator_id == a.c.operator_id, b.c.player_id == a.c.owner,
                            b.c.currency == a.c.currency, b.c.status == ACTIVE))):
        report.flag("bonus_without_active_bonus", f"account {account_id}",
                    f"bonus balance {balance} with no active bonus")


def _check_sums(conn: Connection, report: Report) -> None:
    mine, amount = postings.c.operator_id == report.operator_id, func.sum(postings.c.amount)
    for currency, count, total in conn.execute(
            select(postings.c.currency, func.count(), amount).where(mine)
            .group_by(postings.c.currency)).all():
        report.checked["postings"] += count
        if total != 0:
            report.flag("ledger_unbalanced", f"currency {currency}", f"postings sum to {total}")
    for transaction_id, currency, total in conn.execute(
            select(postings.c.transaction_id, postings.c.currency, amount).where(mine)
            .group_by(postings.c.transaction_id, postings.c.currency).having(amount != 0)):
        report.flag("transaction_unbalanced", f"transaction {transaction_id}",
                    f"{currency} postings sum to {total}")


def _check_transactions_have_postings(conn: Connection, report: Report) -> None:
    tx, p = ledger_transactions, postings
    report.checked["transactions"] = conn.execute(
        select(func.count()).select_from(tx).where(tx.c.operator_id == report.operator_id)).scalar_one()
    for transaction_id in conn.execute(select(tx.c.transaction_id).where(
            tx.c.operator_id == report.operator_id,
            ~exists().where(p.c.transaction_id == tx.c.transaction_id, p.c.operator_id == tx.c.operator_id))
    ).scalars():
        report.flag("transaction_without_postings", f"transaction {transaction_id}", "no postings")
    for transaction_id in conn.execute(select(p.c.transaction_id).distinct().where(
            p.c.operator_id == report.operator_id,
            ~exists().where(tx.c.transaction_id == p.c.transaction_id, tx.c.operator_id == p.c.operator_id))
    ).scalars():
        report.flag("postings_without_transaction", f"transaction {transaction_id}", "no ledger transaction")


def _check_accounts(conn: Connection, report: Report) -> None:
    last_id = -1
    mine = accounts.c.operator_id == report.operator_id
    while page := conn.execute(
            select(accounts).where(mine, accounts.c.account_id > last_id)
            .order_by(accounts.c.account_id).limit(BATCH)).all():
        for account in page:
            _check_account(conn, report, account)
        last_id = page[-1].account_id
        report.checked["accounts"] += len(page)


def _check_account(conn: Connection, report: Report, account: Row[Any]) -> None:
    subject = f"account {account.account_id}"
    if account.kind in NEVER_NEGATIVE and account.balance < 0:
        report.flag("negative_balance", subject, f"{account.kind} balance {account.balance}")
    total, balance_after, prev_hash = 0, 0, GENESIS
    for entry in _entries(conn, account.account_id):
        report.checked["entries"] += 1
        where = f"posting {entry.posting_id}"
        if entry.balance_after != balance_after + entry.amount:
            report.flag("balance_mismatch", where, f"balance_after {entry.balance_after} is not the previous "
                        f"{balance_after} plus the amount {entry.amount} ({subject})")
        expected = entry_hash(prev_hash, account.account_id, entry.transaction_id, entry.currency,
                              entry.amount, entry.balance_after)
        if entry.entry_hash != expected:
            report.flag("chain_broken", where, f"entry_hash does not chain from the previous one ({subject})")
        total, balance_after, prev_hash = total + entry.amount, entry.balance_after, entry.entry_hash
    if account.balance != total or account.balance != balance_after:
        report.flag("balance_mismatch", subject, f"balance {account.balance}, sum of entries {total}, "
                    f"latest balance_after {balance_after}")
    if account.last_entry_hash != prev_hash:
        report.flag("chain_broken", subject, "last_entry_hash is not the hash of the latest entry")


def _entries(conn: Connection, account_id: int) -> "Iterator[Row[*tuple[Any, ...]]]":  # quoted: SQLAlchemy 2.0's Row takes one parameter
    """The account's entries in posting_id (= chain) order, BATCH rows per query."""
    last_id = -1
    while page := conn.execute(
            select(postings.c.posting_id, postings.c.transaction_id, postings.c.currency, postings.c.amount,
                   postings.c.balance_after, postings.c.entry_hash)
            .where(postings.c.account_id == account_id, postings.c.posting_id > last_id)
            .order_by(postings.c.posting_id).limit(BATCH)).all():
        yield from page
        last_id = page[-1].posting_id
