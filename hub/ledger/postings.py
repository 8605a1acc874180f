"""Double-entry postings: lock the accounts a transaction touches (sorted), move money, append entries.

Invariants enforced here, for every ledger transaction: postings sum to zero per currency; a player's
cash never goes negative; every entry records the account's running balance; each account row's
version increases with every change; every entry extends its account's hash chain (hub.ledger.chain);
a player's transactions are numbered (ledger_transactions.seq) in the order they were applied.
"""

import zlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from hub.errors import DomainError, Reason
from hub.ledger.book import (
    EXTERNAL as EXTERNAL,
    HOUSE as HOUSE,
    PROMOTION as PROMOTION,
    AccountRef as AccountRef,
    Book,
)
from hub.ledger.schema import accounts, ledger_transactions
from hub.money import INT64_MAX

PLAYER_CASH = "player_cash"
PLAYER_HOLD = "player_hold"  # a player's money reserved for a pending withdrawal
PLAYER_BONUS = "player_bonus"  # promotional money, withdrawable only once its wagering is met
NEVER_NEGATIVE = {PLAYER_CASH, PLAYER_HOLD, PLAYER_BONUS}
# HOUSE, EXTERNAL and PROMOTION (the operator's promotional budget: funds bonuses and free rounds) are
# the operator's side: hub.ledger.book applies their entries at flush.


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


@dataclass(frozen=True)
class Balances:
    """A player's wallet right after a transaction."""

    cash: int
    bonus: int


def wallet(book: Book, operator_id: str, player_id: str, currency: str) -> Balances:
    return Balances(book.balance(operator_id, player_cash(player_id, currency)),
                    book.balance(operator_id, player_bonus(player_id, currency)))


def read_balance(uow: Any, operator_id: str, ref: AccountRef) -> int:
    """An account's committed balance, for readers outside the settlement engine (0 if it has none)."""
    value = uow.conn.execute(
        select(accounts.c.balance).where(
            accounts.c.operator_id == operator_id, accounts.c.kind == ref.kind,
            accounts.c.owner == ref.owner, accounts.c.currency == ref.currency)
    ).scalar_one_or_none()
    return value or 0


def read_wallet(uow: Any, operator_id: str, player_id: str, currency: str) -> Balances:
    return Balances(read_balance(uow, operator_id, player_cash(player_id, currency)),
                    read_balance(uow, operator_id, player_bonus(player_id, currency)))


def post(book: Book, *, operator_id: str, transaction_id: str, kind: str, player_id: str,
         currency: str, round_id: str | None, idempotency_key: str, legs: list[Leg], now: datetime) -> Balances:
    """Apply one balanced ledger transaction, creating any account it touches for the first time;
    returns the player's wallet afterwards. The caller's command is undone whole if this refuses."""
    sums: dict[str, int] = defaultdict(int)
    for leg in legs:
        sums[leg.account.currency] += leg.amount
    if any(sums.values()):
        raise ValueError(f"unbalanced transaction {transaction_id}: {dict(sums)}")

    wallet_refs = (player_cash(player_id, currency), player_bonus(player_id, currency))
    # The player's wallet is held even when no leg moves it (a payout from the hold, say): two
    # transactions of one player then never run at once, so seq numbers them in the order they were
    # applied and each balance_after is read from a locked row, chaining from the previous one.
    book.lock_accounts(operator_id, [*wallet_refs, *(leg.account for leg in legs)])
    touched: set[int] = set()
    for leg in legs:  # entries are inserted in this order, so posting_id order is chain order
        after = book.entry(operator_id, transaction_id, leg.account, leg.amount, touched)
        if after is None:
            continue  # the operator's side: no rule depends on its balance
        if abs(after) > INT64_MAX:
            raise DomainError(Reason.INVALID_AMOUNT, "the balance would overflow int64 minor units")
        if leg.account.kind == PLAYER_CASH and after < 0:
            raise DomainError(Reason.INSUFFICIENT_FUNDS, f"balance {after - leg.amount} is below {-leg.amount}")
        if leg.account.kind in NEVER_NEGATIVE and after < 0:  # callers guard these: a bug, not input
            raise ValueError(f"{leg.account.kind} of {leg.account.owner} would go negative in {transaction_id}")
    after_wallet = wallet(book, operator_id, player_id, currency)
    change = [sum(leg.amount for leg in legs if leg.account == ref) for ref in wallet_refs]
    book.insert(ledger_transactions, {
        "transaction_id": transaction_id, "operator_id": operator_id, "kind": kind, "player_id": player_id,
        "currency": currency, "amount": change[0], "balance_after": after_wallet.cash, "bonus_amount": change[1],
        "bonus_balance_after": after_wallet.bonus, "round_id": round_id, "idempotency_key": idempotency_key,
        "created_at": now})
    return after_wallet
