"""Play, the cashier and promotions decided on a Book over rows in memory (tests/rows.py): the services'
own commands, receipts, events and errors, with no database and no gRPC."""

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from adapters.base import Proof, ProviderTimeout, ProviderUnavailable
from hub import records
from hub.catalog import Catalog
from hub.clock import utcnow
from hub.config import CashierLimit
from hub.errors import DomainError, Reason, State
from hub.events import BetAccepted, Outcome, PlayError, PlayEvent, RoundOpened, SessionOpened, Settled
from hub.ledger import postings
from hub.ledger.book import Book
from hub.ledger.chain import GENESIS
from hub.ledger.rounds import RoundLedger
from hub.ledger.schema import (
    accounts,
    bets,
    bonuses,
    game_sessions,
    idempotency_keys,
    ledger_transactions,
    play_events,
    players,
    rounds,
    withdrawals,
)
from hub.money import Money
from hub.page_tokens import PageTokens
from hub.play import GameSession, Play, round_id_for
from hub.promotions import Promotions
from hub.receipts import DepositReceipt, WithdrawalReceipt
from hub.wallet import Wallet, WithdrawalDecision
from tests.fakes import FakeStudio
from tests.rows import MemoryRows

C = TypeVar("C")
R = TypeVar("R")
OP, PLAYER, USD, GAME = "op-1", "player-1", "USD", "fake:coin-flip"
SHARDS = 2


class MemoryEngine:
    """The settlement engine as its callers see it (submit a handler and its command; get the answer,
    or its DomainError with nothing applied), over rows in memory: each command is a batch of one."""

    def __init__(self, store: MemoryRows):
        self.store = store

    async def submit(self, handler: Callable[[Book, C], R], command: C) -> R:
        book = self.store.book()
        with book.attempt():
            answer = handler(book, command)
        book.flush()
        return answer


@pytest.fixture
def store() -> MemoryRows:
    rows = MemoryRows()
    now = utcnow()
    rows.seed(players, {"player_id": PLAYER, "operator_id": OP, "username": "ann", "password_hash": "-",
                        "status": "active", "created_at": now})
    rows.seed(accounts, {"operator_id": OP, "kind": postings.PLAYER_CASH, "owner": PLAYER, "currency": USD,
                         "balance": 1_000, "version": 0, "last_entry_hash": GENESIS})
    rows.seed(game_sessions, {"game_session_id": "gs-1", "operator_id": OP, "player_id": PLAYER, "game_id": GAME,
                              "currency": USD, "client_seed": "c", "server_seed_hash": "ab", "last_seq": 0,
                              "created_at": now, "expires_at": now + timedelta(hours=1)})
    return rows


@pytest.fixture
def studio() -> FakeStudio:
    return FakeStudio(win=lambda bet: 2 * bet)


def catalog(studio: FakeStudio) -> Catalog:
    return Catalog({"fake": studio}, PageTokens(b"test"))


@pytest.fixture
def play(store: MemoryRows, studio: FakeStudio) -> Play:
    return Play(None, MemoryEngine(store), catalog(studio), None, RoundLedger(SHARDS),  # type: ignore[arg-type]
                timedelta(hours=1), timedelta(seconds=1))


SESSION = GameSession("gs-1", OP, PLAYER, GAME, USD, utcnow() + timedelta(hours=1))


def cash(store: MemoryRows) -> int:
    return sum(r["balance"] for r in store.rows(accounts) if (r["kind"], r["owner"]) == (postings.PLAYER_CASH, PLAYER))


def logged(store: MemoryRows) -> list[PlayEvent]:
    """The game session's stored log, read back."""
    return [records.decode(r["payload"], PlayEvent) for r in sorted(store.rows(play_events), key=lambda r: r["seq"])]


async def bet(play: Play, amount: int, key: str) -> list[PlayEvent]:
    return [event async for event in play.bet(SESSION, Money(USD, amount), key)]


def counts(store: MemoryRows, *tables: Any) -> tuple[int, ...]:
    return tuple(len(store.rows(t)) for t in tables)


# -- Play ---------------------------------------------------------------------------------------------------

async def test_session_opened_shows_the_wallet_and_is_logged(store: MemoryRows, play: Play) -> None:
    opened = await play.opened(SESSION)
    assert opened == SessionOpened(1, "gs-1", GAME, Money(USD, 1_000), Money(USD, 0), 0)
    assert logged(store) == [opened] and store.rows(game_sessions)[0]["last_seq"] == 1


async def test_a_bet_opens_settles_and_logs_its_round(store: MemoryRows, play: Play, studio: FakeStudio) -> None:
    events = await bet(play, 100, "bet-1")

    round_id = round_id_for(OP, "bet-1")
    opened, accepted, outcome, settled = events
    assert opened == RoundOpened(1, round_id, "bet-1")
    assert isinstance(accepted, BetAccepted) and (accepted.seq, accepted.amount, accepted.balance) == (
        2, Money(USD, 100), Money(USD, 900))
    assert outcome == Outcome(3, round_id, "HEADS", Money(USD, 200), Proof("ab" * 32, "c", 1))
    assert settled == Settled(4, round_id, (accepted.transaction_id, settled.transaction_ids[1]), Money(USD, 200),
                              Money(USD, 1_100), Money(USD, 0))
    assert logged(store) == events and cash(store) == 1_100
    [row] = store.rows(rounds)
    assert (row["status"], records.decode(row["proof"], Proof)) == ("SETTLED", outcome.proof)
    assert len(studio.plays) == 1


async def test_a_replayed_bet_copies_its_events_and_moves_nothing(store: MemoryRows, play: Play,
                                                                  studio: FakeStudio) -> None:
    first = await bet(play, 100, "bet-1")
    before = counts(store, ledger_transactions, accounts, bets, idempotency_keys)

    again = await bet(play, 100, "bet-1")

    assert [(e.seq, e.replay_of_seq) for e in again] == [(5, 1), (6, 2), (7, 3), (8, 4)]
    assert [replace(copy, seq=copy.replay_of_seq, replay_of_seq=0) for copy in again] == first
    assert counts(store, ledger_transactions, accounts, bets, idempotency_keys) == before
    assert cash(store) == 1_100 and len(studio.plays) == 1 and logged(store) == first + again


async def test_a_provider_failure_refunds_the_bet(store: MemoryRows, play: Play, studio: FakeStudio) -> None:
    studio.fail = ProviderUnavailable("connection refused")

    events = await bet(play, 100, "bet-1")

    assert [type(e) for e in events] == [RoundOpened, BetAccepted, PlayError]
    error = events[-1]
    assert isinstance(error, PlayError)
    assert (error.seq, error.reason, error.state, error.balance) == (
        3, Reason.PROVIDER_UNAVAILABLE, State.NOT_APPLIED, Money(USD, 1_000))
    assert (error.round_id, error.idempotency_key) == (round_id_for(OP, "bet-1"), "bet-1")
    assert cash(store) == 1_000 and store.rows(rounds)[0]["status"] == "ROLLED_BACK"
    assert logged(store) == events


async def test_a_provider_timeout_leaves_the_round_open(store: MemoryRows, play: Play, studio: FakeStudio) -> None:
    studio.fail = ProviderTimeout("slow")  # it may have played the round: only its record can say

    events = await bet(play, 100, "bet-1")

    assert [type(e) for e in events] == [RoundOpened, BetAccepted, PlayError]
    error = events[-1]
    assert isinstance(error, PlayError)
    assert (error.seq, error.reason, error.state, error.balance) == (
        3, Reason.PROVIDER_TIMEOUT, State.UNKNOWN, Money(USD, 900))
    assert cash(store) == 900 and store.rows(rounds)[0]["status"] == "OPEN"
    assert logged(store) == events


async def test_a_refused_bet_is_an_error_event_and_leaves_nothing_else(store: MemoryRows, play: Play) -> None:
    events = await bet(play, 5_000, "bet-big")

    assert events == [PlayError(1, "bet-big", "", Reason.INSUFFICIENT_FUNDS,
                                "cash 1000 plus bonus 0 is below the bet of 5000", State.NOT_APPLIED,
                                Money(USD, 1_000))]
    assert counts(store, ledger_transactions, bets, rounds, idempotency_keys) == (0, 0, 0, 0)
    assert cash(store) == 1_000 and logged(store) == events


# -- cashier ------------------------------------------------------------------------------------------------

@pytest.fixture
def wallet(store: MemoryRows) -> Wallet:
    return Wallet(None, MemoryEngine(store), SHARDS, PageTokens(b"test"),  # type: ignore[arg-type]
                  (CashierLimit(OP, USD, daily_deposit_minor=2_000),))


async def test_a_deposit_happens_once_per_key(store: MemoryRows, wallet: Wallet) -> None:
    receipt = await wallet.deposit(OP, PLAYER, Money(USD, 500), "dep-1")
    assert receipt == DepositReceipt(receipt.transaction_id, Money(USD, 1_500)) and cash(store) == 1_500
    [stored] = [r for r in store.rows(idempotency_keys) if r["idempotency_key"] == "dep-1"]
    assert records.decode(stored["response"], DepositReceipt) == receipt

    assert await wallet.deposit(OP, PLAYER, Money(USD, 500), "dep-1") == receipt
    assert cash(store) == 1_500 and counts(store, ledger_transactions) == (1,)
    with pytest.raises(DomainError) as reused:
        await wallet.deposit(OP, PLAYER, Money(USD, 600), "dep-1")
    assert reused.value.reason is Reason.IDEMPOTENCY_KEY_REUSED


async def test_a_deposit_over_the_daily_limit_leaves_nothing(store: MemoryRows, wallet: Wallet) -> None:
    await wallet.deposit(OP, PLAYER, Money(USD, 1_500), "dep-1")
    before = counts(store, ledger_transactions, idempotency_keys)
    with pytest.raises(DomainError) as refused:
        await wallet.deposit(OP, PLAYER, Money(USD, 600), "dep-2")
    assert refused.value.reason is Reason.DEPOSIT_LIMIT_EXCEEDED
    assert counts(store, ledger_transactions, idempotency_keys) == before and cash(store) == 2_500


async def test_a_withdrawal_is_held_then_paid_out_once(store: MemoryRows, wallet: Wallet) -> None:
    held = await wallet.withdraw(OP, PLAYER, Money(USD, 300), "wd-1")
    assert held == WithdrawalReceipt(held.transaction_id, Money(USD, 700), held.withdrawal_id, "PENDING")
    assert await wallet.withdraw(OP, PLAYER, Money(USD, 300), "wd-1") == held

    paid = await wallet.approve_withdrawal(OP, held.withdrawal_id)
    assert paid == WithdrawalDecision(paid.transaction_id, "APPROVED", Money(USD, 700))
    assert await wallet.approve_withdrawal(OP, held.withdrawal_id) == paid
    with pytest.raises(DomainError) as refused:
        await wallet.reject_withdrawal(OP, held.withdrawal_id)
    assert refused.value.reason is Reason.WITHDRAWAL_NOT_PENDING
    assert cash(store) == 700 and store.rows(withdrawals)[0]["status"] == "APPROVED"


async def test_a_rejected_withdrawal_returns_to_cash(store: MemoryRows, wallet: Wallet) -> None:
    held = await wallet.withdraw(OP, PLAYER, Money(USD, 300), "wd-1")
    released = await wallet.reject_withdrawal(OP, held.withdrawal_id)
    assert (released.status, released.balance) == ("REJECTED", Money(USD, 1_000)) and cash(store) == 1_000


async def test_a_withdrawal_beyond_the_cash_leaves_nothing(store: MemoryRows, wallet: Wallet) -> None:
    with pytest.raises(DomainError) as refused:
        await wallet.withdraw(OP, PLAYER, Money(USD, 1_001), "wd-1")
    assert refused.value.reason is Reason.INSUFFICIENT_FUNDS
    assert counts(store, ledger_transactions, withdrawals, idempotency_keys) == (0, 0, 0) and cash(store) == 1_000


# -- promotions ---------------------------------------------------------------------------------------------

async def test_a_bonus_grant_credits_the_bonus_balance_once(store: MemoryRows, studio: FakeStudio) -> None:
    promotions = Promotions(None, MemoryEngine(store), catalog(studio), SHARDS)  # type: ignore[arg-type]
    expires_at = (utcnow() + timedelta(days=7)).replace(microsecond=0)

    granted = await promotions.grant_bonus(OP, PLAYER, Money(USD, 500), Money(USD, 2_000), expires_at, "bonus-1")

    bonus = granted.bonus
    assert (bonus.status, bonus.amount, bonus.balance, bonus.wagering_requirement, bonus.expires_at) == (
        "ACTIVE", Money(USD, 500), Money(USD, 500), Money(USD, 2_000), expires_at)
    assert await promotions.grant_bonus(OP, PLAYER, Money(USD, 500), Money(USD, 2_000), expires_at,
                                        "bonus-1") == granted
    assert counts(store, bonuses, ledger_transactions) == (1, 1)
    assert [r["balance"] for r in store.rows(accounts) if r["kind"] == postings.PLAYER_BONUS] == [500]
    with pytest.raises(DomainError) as refused:
        await promotions.grant_bonus(OP, PLAYER, Money(USD, 500), Money(USD, 2_000), expires_at, "bonus-2")
    assert refused.value.reason is Reason.BONUS_ALREADY_ACTIVE
    assert counts(store, bonuses, ledger_transactions) == (1, 1)
