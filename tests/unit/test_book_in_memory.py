"""The round ledger decided on a Book over rows in memory: no database, same rules."""

from collections import Counter
from datetime import UTC, datetime

import pytest

from hub.errors import DomainError, Reason
from hub.ledger import postings
from hub.ledger.chain import GENESIS
from hub.ledger.rounds import Bet, RoundLedger, Win
from hub.ledger.schema import accounts, players, postings as posting_rows
from tests.rows import MemoryRows

OP, PLAYER, USD = "op-1", "player-1", "USD"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> MemoryRows:
    rows = MemoryRows()
    rows.seed(players, {"player_id": PLAYER, "operator_id": OP, "username": "ann", "password_hash": "-",
                        "status": "active", "created_at": NOW})
    rows.seed(accounts, {"operator_id": OP, "kind": postings.PLAYER_CASH, "owner": PLAYER, "currency": USD,
                         "balance": 1_000, "version": 0, "last_entry_hash": GENESIS, "created_at": NOW})
    return rows


def decide(store: MemoryRows, handler, command):  # type: ignore[no-untyped-def]
    """What the engine does for a batch of one: apply all or nothing, then write."""
    book = store.book()
    with book.attempt():
        result = handler(book, command)
    book.flush()
    return result


def cash(store: MemoryRows) -> int:
    [row] = [r for r in store.rows(accounts) if (r["kind"], r["owner"]) == (postings.PLAYER_CASH, PLAYER)]
    balance: int = row["balance"]
    return balance


def bet(amount: int, key: str = "bet-1") -> Bet:
    return Bet(OP, PLAYER, USD, "round-1", "fake:coin-flip", key, amount)


def test_a_round_settles_in_memory_and_its_postings_balance(store: MemoryRows) -> None:
    ledger = RoundLedger(house_shards=2)
    receipt = decide(store, ledger.bet, bet(300))
    assert receipt.balance == 700 and cash(store) == 700
    win = decide(store, ledger.win, Win(OP, "round-1", "win-1", 500))
    assert win.balance == 1_200
    assert decide(store, lambda book, _: ledger.close(book, OP, "round-1"), None) == "SETTLED"
    assert cash(store) == 1_200
    by_transaction: Counter[str] = Counter()
    for row in store.rows(posting_rows):
        by_transaction[row["transaction_id"]] += row["amount"]
    assert len(by_transaction) == 2 and set(by_transaction.values()) == {0}


def test_a_replayed_bet_returns_its_receipt_and_moves_nothing(store: MemoryRows) -> None:
    ledger = RoundLedger(house_shards=2)
    first = decide(store, ledger.bet, bet(300))
    written = len(store.rows(posting_rows))
    again = decide(store, ledger.bet, bet(300))
    assert again.transaction_id == first.transaction_id and again.replayed
    assert len(store.rows(posting_rows)) == written and cash(store) == 700


def test_a_refused_bet_leaves_no_row(store: MemoryRows) -> None:
    ledger = RoundLedger(house_shards=2)
    with pytest.raises(DomainError) as refused:
        decide(store, ledger.bet, bet(5_000))
    assert refused.value.reason is Reason.INSUFFICIENT_FUNDS
    # Only accounts may appear (empty, as the database creates them outside the batch's transaction).
    assert {name for name, rows in store.tables.items() if rows} == {"players", "accounts"}
    assert {(r["kind"], r["balance"]) for r in store.rows(accounts)} == {(postings.PLAYER_CASH, 1_000),
                                                                       (postings.PLAYER_BONUS, 0)}
