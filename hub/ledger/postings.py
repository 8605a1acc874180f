"""Double-entry postings: lock the accounts a transaction touches (sorted), move money, append entries.

Invariants enforced here, for every ledger transaction: postings sum to zero per currency; a player's
cash never goes negative; every entry records the account's running balance; each account row's
version increases with every change; every entry extends its account's hash chain (hub.ledger.chain);
a player's transactions are numbered (ledger_transactions.seq) in the order they were applied.
"""

import zlib
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.dialects import mysql, sqlite

from hub.errors import DomainError, Reason
from hub.ledger.chain import GENESIS, entry_hash
from hub.ledger.schema import accounts, ledger_transactions, postings
from hub.ledger.uow import UnitOfWork
from hub.money import INT64_MAX

PLAYER_CASH = "player_cash"
PLAYER_HOLD = "player_hold"  # a player's money reserved for a pending withdrawal
PLAYER_BONUS = "player_bonus"  # promotional money, withdrawable only once its wagering is met
NEVER_NEGATIVE = {PLAYER_CASH, PLAYER_HOLD, PLAYER_BONUS}
HOUSE = "house"
EXTERNAL = "external"
PROMOTION = "promotion"  # the operator's promotional budget: funds bonuses and free rounds


@dataclass(frozen=True)
class AccountRef:
    kind: str
    owner: str
    currency: str


@dataclass(frozen=True)
class Leg:
    account: AccountRef
    amount: int  # signed: positive credits the account


def player_cash(player_id: str, currency: str) -> AccountRef:
    return AccountRef(PLAYER_CASH, player_id, currency)


def player_hold(player_id: str, currency: str) -> AccountRef:
    return AccountRef(PLAYER_HOLD, player_id, currency)


def player_bonus(player_id: str, currency: str) -> AccountRef:
    return AccountRef(PLAYER_BONUS, player_id, currency)


def promotion(player_id: str, currency: str, shards: int) -> AccountRef:
    """The operator's promotion shard for this player, picked like the house shard (no hot row)."""
    return AccountRef(PROMOTION, _shard(player_id, shards), currency)


def house(player_id: str, currency: str, shards: int) -> AccountRef:
    """The player's house shard: a stable pick spreads concurrent players over several rows."""
    return AccountRef(HOUSE, _shard(player_id, shards), currency)


def _shard(player_id: str, shards: int) -> str:
    return str(zlib.crc32(player_id.encode()) % shards)


def external(currency: str) -> AccountRef:
    return AccountRef(EXTERNAL, "", currency)


def _ensure_accounts(uow: UnitOfWork, operator_id: str, refs: list[AccountRef]) -> None:
    """Create missing accounts (balance 0) so they can be locked.

    On MariaDB the rows are created and committed on a separate connection: creating them inside the
    posting transaction would let two first bets hold shared locks on the same new house row and then
    deadlock upgrading them with SELECT ... FOR UPDATE. SQLite has one writer at a time, and this
    transaction already holds it (BEGIN IMMEDIATE), so there the rows are created inline.
    """
    key = tuple_(accounts.c.kind, accounts.c.owner, accounts.c.currency)
    wanted = {(r.kind, r.owner, r.currency) for r in refs}
    have = {tuple(row) for row in uow.conn.execute(
        select(accounts.c.kind, accounts.c.owner, accounts.c.currency)
        .where(accounts.c.operator_id == operator_id, key.in_(list(wanted))))}
    missing = wanted - have
    if not missing:
        return
    rows = [{"operator_id": operator_id, "kind": k, "owner": o, "currency": c, "balance": 0, "version": 0,
             "last_entry_hash": GENESIS} for k, o, c in sorted(missing)]
    if uow.conn.dialect.name == "sqlite":
        uow.conn.execute(sqlite.insert(accounts).on_conflict_do_nothing(), rows)
        return
    with uow.side_engine.connect() as side:
        side.execute(mysql.insert(accounts).prefix_with("IGNORE"), rows)
        side.commit()


def balance(uow: UnitOfWork, operator_id: str, ref: AccountRef) -> int:
    held = uow.held.get((operator_id, ref))
    if held is not None:
        held_balance: int = held.balance
        return held_balance
    value = uow.conn.execute(
        select(accounts.c.balance).where(
            accounts.c.operator_id == operator_id, accounts.c.kind == ref.kind,
            accounts.c.owner == ref.owner, accounts.c.currency == ref.currency)
    ).scalar_one_or_none()
    return value or 0


@dataclass(frozen=True)
class Balances:
    """A player's wallet right after a transaction."""

    cash: int
    bonus: int


def wallet(uow: UnitOfWork, operator_id: str, player_id: str, currency: str) -> Balances:
    return Balances(balance(uow, operator_id, player_cash(player_id, currency)),
                    balance(uow, operator_id, player_bonus(player_id, currency)))


def lock(uow: UnitOfWork, operator_id: str, refs: list[AccountRef]) -> None:
    """Lock accounts before deciding a transaction's legs from their balances (how a bet splits between
    cash and bonus), creating any that do not exist yet; balance() then reads them without a query."""
    _hold(uow, operator_id, refs)


def _hold(uow: UnitOfWork, operator_id: str, refs: list[AccountRef]) -> dict[AccountRef, "_Locked"]:
    """The rows of refs, locked by this transaction: those it does not hold yet are locked in one
    statement. Callers lock a player's accounts and house shard together before anything else, and
    promotion shards (last in index order) only after: no two transactions wait on each other."""
    missing = sorted({ref for ref in refs if (operator_id, ref) not in uow.held},
                     key=lambda r: (r.kind, r.owner, r.currency))
    if missing:
        _ensure_accounts(uow, operator_id, missing)
        for ref, row in _lock(uow, operator_id, missing).items():
            uow.held[operator_id, ref] = row
    return {ref: uow.held[operator_id, ref] for ref in refs}


@dataclass
class _Locked:
    """A locked account row, updated in memory as the transaction's legs are applied."""

    account_id: int
    balance: int
    last_entry_hash: str


def _lock(uow: UnitOfWork, operator_id: str, refs: list[AccountRef]) -> dict[AccountRef, _Locked]:
    """SELECT ... FOR UPDATE in one statement: InnoDB locks the rows in the order it scans the unique
    (operator, kind, owner, currency) index, the same for every transaction, so they cannot deadlock."""
    match = or_(*(and_(accounts.c.kind == r.kind, accounts.c.owner == r.owner,
                       accounts.c.currency == r.currency) for r in refs))
    rows = uow.conn.execute(
        select(accounts.c.account_id, accounts.c.kind, accounts.c.owner, accounts.c.currency,
               accounts.c.balance, accounts.c.last_entry_hash)
        .where(accounts.c.operator_id == operator_id, match)
        .order_by(accounts.c.account_id)
        .with_for_update()
    ).all()
    found = {AccountRef(r.kind, r.owner, r.currency): _Locked(r.account_id, r.balance, r.last_entry_hash)
             for r in rows}
    missing = set(refs) - set(found)
    if missing:
        raise LookupError(f"accounts not created before posting: {missing}")
    return found


def post(uow: UnitOfWork, *, operator_id: str, transaction_id: str, kind: str, player_id: str,
         currency: str, round_id: str | None, idempotency_key: str, legs: list[Leg], now: datetime) -> Balances:
    """Apply one balanced ledger transaction, creating any account it touches for the first time;
    returns the player's wallet afterwards."""
    sums: dict[str, int] = defaultdict(int)
    for leg in legs:
        sums[leg.account.currency] += leg.amount
    if any(sums.values()):
        raise ValueError(f"unbalanced transaction {transaction_id}: {dict(sums)}")

    wallet_refs = (player_cash(player_id, currency), player_bonus(player_id, currency))
    # The player's wallet is held even when no leg moves it (a payout from the hold, say): two
    # transactions of one player then never run at once, so seq numbers them in the order they were
    # applied and each balance_after is read from a locked row, chaining from the previous one.
    held = _hold(uow, operator_id, [*wallet_refs, *(leg.account for leg in legs)])
    # Work on copies: a refused transaction leaves the held rows' state as the database has it.
    locked = {leg.account: replace(held[leg.account]) for leg in legs}
    entries = []
    for leg in legs:  # entries are inserted in this order, so posting_id order is chain order
        account = locked[leg.account]
        account.balance += leg.amount
        if abs(account.balance) > INT64_MAX:
            raise DomainError(Reason.INVALID_AMOUNT, "the balance would overflow int64 minor units")
        if leg.account.kind == PLAYER_CASH and account.balance < 0:
            raise DomainError(Reason.INSUFFICIENT_FUNDS,
                              f"balance {account.balance - leg.amount} is below {-leg.amount}")
        if leg.account.kind in NEVER_NEGATIVE and account.balance < 0:  # callers guard these: a bug, not input
            raise ValueError(f"{leg.account.kind} of {leg.account.owner} would go negative in {transaction_id}")
        account.last_entry_hash = entry_hash(account.last_entry_hash, account.account_id, transaction_id,
                                             leg.account.currency, leg.amount, account.balance)
        entries.append({"transaction_id": transaction_id, "operator_id": operator_id,
                        "account_id": account.account_id, "currency": leg.account.currency,
                        "amount": leg.amount, "balance_after": account.balance,
                        "entry_hash": account.last_entry_hash})
    for ref, account in locked.items():
        uow.held[operator_id, ref] = account
        uow.conn.execute(
            update(accounts).where(accounts.c.account_id == account.account_id)
            .values(balance=account.balance, last_entry_hash=account.last_entry_hash,
                    version=accounts.c.version + 1)
        )
    uow.conn.execute(postings.insert(), entries)
    after = [uow.held[operator_id, ref].balance for ref in wallet_refs]
    change = [sum(leg.amount for leg in legs if leg.account == ref) for ref in wallet_refs]
    uow.conn.execute(ledger_transactions.insert().values(
        transaction_id=transaction_id, operator_id=operator_id, kind=kind, player_id=player_id,
        currency=currency, amount=change[0], balance_after=after[0], bonus_amount=change[1],
        bonus_balance_after=after[1], round_id=round_id, idempotency_key=idempotency_key, created_at=now,
    ))
    return Balances(*after)
