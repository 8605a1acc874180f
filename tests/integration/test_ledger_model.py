"""Model-based test of the ledger (issue 3): random sequences of cashier and round operations, duplicates
included, checked step by step against a plain Python model of DESIGN.md's semantics table.

Rules: deposits, withdrawals, bets (new or existing rounds, several bets per round, rounds of another
player or currency), wins (with or without a bet reference, on unknown rounds and bets), rollbacks (of
known, unknown and already rolled-back bets), closing and voiding rounds, exact duplicates of earlier
requests (must replay the stored answer byte for byte), different requests under an earlier key (must be
IDEMPOTENCY_KEY_REUSED, even across kinds) and retries of refused requests (a refusal leaves its key free).
Ids come from small pools so collisions (existing rounds, known bets, reused keys) happen often.

After every step: each player's balance, the ledger transaction count, every round (status, bet and win
sums) and every bet (status incl. tombstones) equal the model's; postings sum to zero per currency; no
player balance is negative. Every refusal carries the reason the model predicts and applies nothing.
At teardown `hub ledger check` must pass for the example's operator. Each example runs as its own
operator, so examples (and tests sharing the MariaDB database) never see each other's rows.

Where DESIGN.md leaves the precedence of two refusals open, the model follows the code's order
(e.g. a win without a bet reference on a round whose bets were all rolled back and which is closed answers
TRANSACTION_ROLLED_BACK, not ROUND_CLOSED).
"""

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, \
    run_state_machine_as_test
from sqlalchemy import func, select

from hub.clock import utcnow
from hub.errors import DomainError, Reason, State
from hub.ledger.check import check
from hub.ledger.db import Database
from hub.ledger.postings import PLAYER_CASH
from hub.ledger.rounds import ACTIVE, OPEN, ROLLED_BACK, SETTLED, TOMBSTONE, VOIDED, Bet, Rollback, \
    RoundLedger, Win
from hub.ledger.schema import accounts, bets, ledger_transactions, players, postings, rounds
from hub.ledger.uow import UnitOfWork
from hub.money import Money
from hub.operators import Operators
from hub.wallet import Wallet

KINDS = ("deposit", "withdrawal", "bet", "win", "rollback")
CURRENCIES = ("USD", "JPY")
ROUND_IDS = tuple(f"r{i}" for i in range(5))
BET_IDS = tuple(f"b{i}" for i in range(8))
WIN_IDS = tuple(f"w{i}" for i in range(6))
ROLLBACK_IDS = tuple(f"rb{i}" for i in range(6))
WALLET_KEYS = tuple(f"k{i}" for i in range(6))
SHARDS = 4
GAME = "fake:coin-flip"
T = TypeVar("T")

EXAMPLES = {"sqlite": 150, "mysql": 80}  # about 20 s each on a 2-core machine
STEPS = 30


# -- the model -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Req:
    """One money request. `key` is its idempotency key (the bet id for a bet)."""

    kind: str  # deposit | withdrawal | bet | win | rollback
    key: str
    player: str = ""
    currency: str = ""
    amount: int = 0
    round_id: str = ""
    bet_id: str = ""  # win: the bet it pays ("" = none named); rollback: the bet it cancels

    def fingerprint(self) -> tuple[object, ...]:
        """What makes two requests the same request (mirrors the hub's fingerprints)."""
        if self.kind in ("deposit", "withdrawal"):
            return (self.kind, self.player, self.currency, self.amount)
        if self.kind == "bet":
            return ("bet", self.player, self.currency, self.round_id, self.amount)
        if self.kind == "win":
            return ("win", self.round_id, self.amount, self.bet_id)
        return ("rollback", self.bet_id, self.player, self.currency)


@dataclass
class MRound:
    player: str
    currency: str
    status: str = OPEN
    bet_amount: int = 0
    win_amount: int = 0


@dataclass
class MBet:
    round_id: str | None  # None for a tombstone
    player: str
    currency: str
    amount: int
    status: str


@dataclass(frozen=True)
class Refuse:
    reason: Reason


@dataclass(frozen=True)
class Replay:
    raw: bytes  # the first answer, encoded


@dataclass(frozen=True)
class Apply:
    round_id: str
    currency: str
    balance: int  # the player's balance in the answer
    moves_money: bool  # a ledger transaction is written (transaction_id not empty)
    effect: Callable[[], None]


Expectation = Refuse | Replay | Apply


@dataclass
class Model:
    balances: Counter[tuple[str, str]] = field(default_factory=Counter)
    rounds: dict[str, MRound] = field(default_factory=dict)
    bets: dict[str, MBet] = field(default_factory=dict)
    keys: dict[str, tuple[Req, bytes]] = field(default_factory=dict)  # stored first answers
    transactions: int = 0

    def predict(self, r: Req) -> Expectation:
        if r.kind in ("deposit", "withdrawal", "bet") and r.amount <= 0:  # checked before the key
            return Refuse(Reason.INVALID_AMOUNT)
        if r.key in self.keys:
            first, raw = self.keys[r.key]
            same = first.fingerprint() == r.fingerprint()
            return Replay(raw) if same else Refuse(Reason.IDEMPOTENCY_KEY_REUSED)
        return getattr(self, f"_{r.kind}")(r)

    def _credit(self, player: str, currency: str, amount: int) -> Callable[[], None]:
        def effect() -> None:
            self.balances[player, currency] += amount
        return effect

    def _deposit(self, r: Req) -> Expectation:
        return Apply("", r.currency, self.balances[r.player, r.currency] + r.amount, True,
                     self._credit(r.player, r.currency, r.amount))

    def _withdrawal(self, r: Req) -> Expectation:
        after = self.balances[r.player, r.currency] - r.amount
        if after < 0:
            return Refuse(Reason.INSUFFICIENT_FUNDS)
        return Apply("", r.currency, after, True, self._credit(r.player, r.currency, -r.amount))

    def _bet(self, r: Req) -> Expectation:
        if r.key in self.bets:  # a bet row without a stored answer: the id was tombstoned
            return Refuse(Reason.TRANSACTION_ROLLED_BACK)
        round_ = self.rounds.get(r.round_id)
        if round_ is not None and round_.status != OPEN:
            return Refuse(Reason.ROUND_CLOSED)
        if round_ is not None and (round_.player, round_.currency) != (r.player, r.currency):
            return Refuse(Reason.INVALID_ARGUMENT)
        after = self.balances[r.player, r.currency] - r.amount
        if after < 0:
            return Refuse(Reason.INSUFFICIENT_FUNDS)

        def effect() -> None:
            self.balances[r.player, r.currency] -= r.amount
            self.rounds.setdefault(r.round_id, MRound(r.player, r.currency)).bet_amount += r.amount
            self.bets[r.key] = MBet(r.round_id, r.player, r.currency, r.amount, ACTIVE)

        return Apply(r.round_id, r.currency, after, True, effect)

    def active_bets(self, round_id: str) -> int:
        return sum(1 for b in self.bets.values() if b.round_id == round_id and b.status == ACTIVE)

    def _win(self, r: Req) -> Expectation:
        round_ = self.rounds.get(r.round_id)
        if round_ is None:
            return Refuse(Reason.BET_NOT_FOUND)
        if r.amount <= 0:  # a win's amount is validated once its round (and currency) is known
            return Refuse(Reason.INVALID_AMOUNT)
        if r.bet_id:
            bet = self.bets.get(r.bet_id)
            if bet is None or bet.status == TOMBSTONE or bet.round_id != r.round_id:
                return Refuse(Reason.BET_NOT_FOUND)
            if bet.status == ROLLED_BACK:
                return Refuse(Reason.TRANSACTION_ROLLED_BACK)
        elif not self.active_bets(r.round_id):
            return Refuse(Reason.TRANSACTION_ROLLED_BACK)
        if round_.status != OPEN:
            return Refuse(Reason.ROUND_CLOSED)

        def effect() -> None:
            self.balances[round_.player, round_.currency] += r.amount
            round_.win_amount += r.amount

        after = self.balances[round_.player, round_.currency] + r.amount
        return Apply(r.round_id, round_.currency, after, True, effect)

    def _rollback(self, r: Req) -> Expectation:
        bet = self.bets.get(r.bet_id)
        if bet is None:  # the rollback overtook its bet: tombstone the id, move nothing
            def tombstone() -> None:
                self.bets[r.bet_id] = MBet(None, r.player, r.currency, 0, TOMBSTONE)
            return Apply("", r.currency, self.balances[r.player, r.currency], False, tombstone)
        if (bet.player, bet.currency) != (r.player, r.currency):  # never refund to someone the bet isn't
            return Refuse(Reason.INVALID_ARGUMENT)
        if bet.status != ACTIVE:  # already rolled back or tombstoned: answer with the bet's own balance
            return Apply(bet.round_id or "", bet.currency, self.balances[bet.player, bet.currency], False,
                         lambda: None)
        assert bet.round_id is not None
        if self.rounds[bet.round_id].status == SETTLED:
            return Refuse(Reason.ROUND_ALREADY_SETTLED)

        def refund() -> None:
            self.balances[bet.player, bet.currency] += bet.amount
            bet.status = ROLLED_BACK

        after = self.balances[bet.player, bet.currency] + bet.amount
        return Apply(bet.round_id, bet.currency, after, True, refund)

    def close(self, round_id: str, void: bool) -> str | Reason:
        round_ = self.rounds.get(round_id)
        if round_ is None:
            return Reason.ROUND_NOT_FOUND
        if round_.status == OPEN:
            round_.status = VOIDED if void else SETTLED if self.active_bets(round_id) else ROLLED_BACK
        return round_.status


# -- the machine ---------------------------------------------------------------------------------------

@dataclass
class Stats:
    examples: int = 0
    steps: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # "bet:applied", "win:BET_NOT_FOUND", ...


@dataclass(frozen=True)
class Answer:
    raw: bytes  # Receipt.encode() or the response's SerializeToString()
    replayed: bool | None  # Receipt.replayed; None for wallet responses (they carry no flag)
    round_id: str
    currency: str
    balance: int
    transaction_id: str


class LedgerMachine(RuleBasedStateMachine):
    # Set by the test on a subclass: shared by all examples of one test run.
    url: str
    db: Database
    loop: asyncio.AbstractEventLoop
    stats: Stats

    def __init__(self) -> None:
        super().__init__()
        self.operator_id = f"op-model-{uuid.uuid4().hex[:12]}"
        self.loop.run_until_complete(Operators(self.db).ensure(self.operator_id, "model test"))
        self.players = (str(uuid.uuid4()), str(uuid.uuid4()))

        def _players(uow: UnitOfWork) -> None:
            for n, player_id in enumerate(self.players):
                uow.conn.execute(players.insert().values(
                    player_id=player_id, operator_id=self.operator_id, username=f"model{n}",
                    password_hash="-", status="active", created_at=utcnow()))
            uow.commit()

        self.db._run_sync(_players)
        self.model = Model()
        self.ledger = RoundLedger(SHARDS)
        self.wallet = Wallet(self.db, SHARDS)
        self.refused: list[Req] = []
        self.transaction_ids: set[str] = set()
        self.stats.examples += 1

    # -- talking to the hub ---------------------------------------------------------------------------

    def _tx(self, fn: Callable[[UnitOfWork], T]) -> T:
        def _run(uow: UnitOfWork) -> T:
            result = fn(uow)
            uow.commit()
            return result

        return self.db._run_sync(_run)

    def _send(self, r: Req) -> Answer:
        op = self.operator_id
        if r.kind in ("deposit", "withdrawal"):
            call = self.wallet.deposit if r.kind == "deposit" else self.wallet.withdraw
            response = self.loop.run_until_complete(call(op, r.player, Money(r.currency, r.amount), r.key))
            return Answer(response.SerializeToString(deterministic=True), None, "", response.balance.currency,
                          response.balance.amount_minor, response.transaction_id)
        if r.kind == "bet":
            bet = Bet(op, r.player, r.currency, r.round_id, GAME, r.key, r.amount)
            receipt = self._tx(lambda uow: self.ledger.bet(uow, bet, utcnow()))
        elif r.kind == "win":
            win = Win(op, r.round_id, r.key, r.amount, r.bet_id)
            receipt = self._tx(lambda uow: self.ledger.win(uow, win, utcnow()))
        else:
            rollback = Rollback(op, r.player, r.currency, r.bet_id, r.key)
            receipt = self._tx(lambda uow: self.ledger.rollback(uow, rollback, utcnow()))
        return Answer(receipt.encode(), receipt.replayed, receipt.round_id, receipt.currency, receipt.balance,
                      receipt.transaction_id)

    def _step(self, r: Req) -> None:
        """Send r, and check the answer against the model's prediction; then update the model."""
        self.stats.steps += 1
        expected = self.model.predict(r)
        try:
            got = self._send(r)
        except DomainError as err:
            self.stats.outcomes[f"{r.kind}:{err.reason.name}"] += 1
            assert isinstance(expected, Refuse), f"{r}: refused {err.reason.name}, model expected {expected}"
            assert err.reason is expected.reason, f"{r}: {err.reason.name}, model: {expected.reason.name}"
            assert err.state is State.NOT_APPLIED, (r, err.state)
            self.refused.append(r)
            return
        assert not isinstance(expected, Refuse), f"{r} was accepted, model expected {expected.reason.name}"
        if isinstance(expected, Replay):
            self.stats.outcomes[f"{r.kind}:replay"] += 1
            assert got.raw == expected.raw, f"{r}: replayed {got.raw!r}, first {expected.raw!r}"
            assert got.replayed in (True, None), r
            return
        self.stats.outcomes[f"{r.kind}:applied"] += 1
        assert got.replayed in (False, None), r
        assert (got.round_id, got.currency, got.balance) == \
            (expected.round_id, expected.currency, expected.balance), f"{r}: got {got}, model: {expected}"
        if expected.moves_money:
            assert got.transaction_id and got.transaction_id not in self.transaction_ids, (r, got)
            self.transaction_ids.add(got.transaction_id)
            self.model.transactions += 1
        else:
            assert got.transaction_id == "", (r, got)
        expected.effect()
        self.model.keys[r.key] = (r, got.raw)

    # -- rules ----------------------------------------------------------------------------------------

    @initialize(amounts=st.lists(st.integers(500, 10_000), min_size=4, max_size=4))
    def fund(self, amounts: list[int]) -> None:
        for n, amount in enumerate(amounts):
            player, currency = self.players[n // 2], CURRENCIES[n % 2]
            self._step(Req("deposit", f"seed-{n}", player, currency, amount))

    def _some_round(self, data: st.DataObject, where: str) -> str:
        """A round id: one the model knows (open ones for where="open") if any, else any id of the pool."""
        known = sorted(rid for rid, r in self.model.rounds.items() if where != "open" or r.status == OPEN)
        return data.draw(st.sampled_from(known if where != "any" and known else ROUND_IDS))

    @rule(p=st.integers(0, 1), c=st.sampled_from(CURRENCIES), key=st.sampled_from(WALLET_KEYS),
          amount=st.integers(1, 5_000))
    def deposit(self, p: int, c: str, key: str, amount: int) -> None:
        self._step(Req("deposit", key, self.players[p], c, amount))

    @rule(p=st.integers(0, 1), c=st.sampled_from(CURRENCIES), key=st.sampled_from(WALLET_KEYS),
          amount=st.integers(1, 8_000))
    def withdraw(self, p: int, c: str, key: str, amount: int) -> None:
        self._step(Req("withdrawal", key, self.players[p], c, amount))

    @rule(data=st.data(), p=st.integers(0, 1), c=st.sampled_from(CURRENCIES),
          where=st.sampled_from(["open", "open", "known", "any"]), bet_id=st.sampled_from(BET_IDS),
          amount=st.integers(1, 3_000), as_the_round=st.booleans())
    def bet(self, data: st.DataObject, p: int, c: str, where: str, bet_id: str, amount: int,
            as_the_round: bool) -> None:
        round_id = self._some_round(data, where)
        player, currency = self.players[p], c
        known = self.model.rounds.get(round_id)
        if as_the_round and known is not None:  # the usual case: another bet of the round's own player
            player, currency = known.player, known.currency
        self._step(Req("bet", bet_id, player, currency, amount, round_id=round_id))

    @rule(data=st.data(), where=st.sampled_from(["open", "open", "known", "any"]),
          win_id=st.sampled_from(WIN_IDS), amount=st.integers(1, 4_000),
          named=st.sampled_from(["none", "of-round", "of-round", "any"]))
    def win(self, data: st.DataObject, where: str, win_id: str, amount: int, named: str) -> None:
        round_id = self._some_round(data, where)
        bet_id = ""
        if named == "of-round":  # one of the round's own bets, when it has any
            own = sorted(b for b, bet in self.model.bets.items() if bet.round_id == round_id)
            bet_id = data.draw(st.sampled_from(own)) if own else ""
        elif named == "any":  # possibly unknown, tombstoned or of another round
            bet_id = data.draw(st.sampled_from(BET_IDS))
        self._step(Req("win", win_id, amount=amount, round_id=round_id, bet_id=bet_id))

    @rule(data=st.data(), p=st.integers(0, 1), c=st.sampled_from(CURRENCIES),
          which=st.sampled_from(["active", "active", "placed", "any"]),
          rollback_id=st.sampled_from(ROLLBACK_IDS), as_the_bet=st.booleans())
    def rollback(self, data: st.DataObject, p: int, c: str, which: str, rollback_id: str,
                 as_the_bet: bool) -> None:
        # Mostly bets still standing (so rounds whose every bet was rolled back come up), also placed bets
        # (rolled back already: a second rollback) and any id of the pool (unknown: a tombstone).
        wanted = {"active": {ACTIVE}, "placed": {ACTIVE, ROLLED_BACK}, "any": set()}[which]
        candidates = sorted(b for b, bet in self.model.bets.items() if bet.status in wanted)
        bet_id = data.draw(st.sampled_from(candidates or BET_IDS))
        player, currency = self.players[p], c
        known = self.model.bets.get(bet_id)
        if as_the_bet and known is not None:  # the usual case: it names the bet's own player and currency
            player, currency = known.player, known.currency
        self._step(Req("rollback", rollback_id, player, currency, bet_id=bet_id))

    @rule(data=st.data(), where=st.sampled_from(["open", "known", "any"]),
          void=st.sampled_from([False, False, True]))
    def close(self, data: st.DataObject, where: str, void: bool) -> None:
        round_id = self._some_round(data, where)
        self.stats.steps += 1
        expected = self.model.close(round_id, void)
        try:
            got: str | Reason = str(self._tx(lambda uow: self.ledger.close(uow, self.operator_id, round_id,
                                                                           utcnow(), void=void)))
        except DomainError as err:
            got = err.reason
        self.stats.outcomes[f"close{'(void)' if void else ''}:{getattr(got, 'name', got)}"] += 1
        assert got == expected, f"close({round_id!r}, void={void}) -> {got}, model expected {expected}"

    @precondition(lambda self: bool(self.model.keys))
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        """The same request again under its key: the stored answer, byte for byte, and nothing moves."""
        first, _ = self.model.keys[data.draw(st.sampled_from(sorted(self.model.keys)))]
        self._step(first)

    @precondition(lambda self: bool(self.model.keys))
    @rule(data=st.data(), how=st.sampled_from(["change", "other-kind"]))
    def reuse_key(self, data: st.DataObject, how: str) -> None:
        """A different request under a used key: IDEMPOTENCY_KEY_REUSED, nothing moves."""
        first, _ = self.model.keys[data.draw(st.sampled_from(sorted(self.model.keys)))]
        other = self.players[1] if first.player == self.players[0] else self.players[0]
        if how == "other-kind":
            kind = data.draw(st.sampled_from(sorted(set(KINDS) - {first.kind})))
            changed = Req(kind, first.key, self.players[0], CURRENCIES[0], 1, ROUND_IDS[0],
                          bet_id=BET_IDS[0] if kind == "rollback" else "")
        elif first.kind == "rollback":
            changed = replace(first, player=other) if data.draw(st.booleans()) else \
                replace(first, bet_id=data.draw(st.sampled_from([b for b in BET_IDS if b != first.bet_id])))
        else:
            changed = replace(first, amount=first.amount + data.draw(st.integers(1, 100)))
        assert changed.fingerprint() != first.fingerprint()
        self._step(changed)

    @rule(data=st.data(), kind=st.sampled_from(["deposit", "withdrawal", "bet", "win"]),
          amount=st.sampled_from([0, -1]), p=st.integers(0, 1), c=st.sampled_from(CURRENCIES))
    def invalid_amount(self, data: st.DataObject, kind: str, amount: int, p: int, c: str) -> None:
        """A zero or negative amount: INVALID_AMOUNT (BET_NOT_FOUND first for a win on an unknown round)."""
        key = data.draw(st.sampled_from({"deposit": WALLET_KEYS, "withdrawal": WALLET_KEYS, "bet": BET_IDS,
                                         "win": WIN_IDS}[kind]))
        self._step(Req(kind, key, self.players[p], c, amount, round_id=self._some_round(data, "known")))

    @precondition(lambda self: bool(self.refused))
    @rule(data=st.data())
    def retry_refused(self, data: st.DataObject) -> None:
        """A refused request sent again: its key stayed free, so it is judged afresh."""
        self._step(data.draw(st.sampled_from(self.refused)))

    # -- invariants -----------------------------------------------------------------------------------

    @invariant()
    def ledger_matches_model(self) -> None:
        op = self.operator_id

        def _read(uow: UnitOfWork) -> tuple[dict, dict, int, dict, dict]:  # type: ignore[type-arg]
            c = uow.conn
            balances = {(r.owner, r.currency): r.balance for r in c.execute(
                select(accounts.c.owner, accounts.c.currency, accounts.c.balance)
                .where(accounts.c.operator_id == op, accounts.c.kind == PLAYER_CASH))}
            sums = {cur: int(total) for cur, total in c.execute(
                select(postings.c.currency, func.sum(postings.c.amount))
                .where(postings.c.operator_id == op).group_by(postings.c.currency))}
            count = c.execute(select(func.count()).select_from(ledger_transactions)
                              .where(ledger_transactions.c.operator_id == op)).scalar_one()
            round_rows = {r.round_id: (r.player_id, r.currency, r.status, r.bet_amount, r.win_amount)
                          for r in c.execute(select(rounds).where(rounds.c.operator_id == op))}
            bet_rows = {r.bet_id: (r.round_id, r.player_id, r.currency, r.amount, r.status)
                        for r in c.execute(select(bets).where(bets.c.operator_id == op))}
            return balances, sums, count, round_rows, bet_rows

        balances, sums, count, round_rows, bet_rows = self.db._run_sync(_read)
        for player in self.players:
            for currency in CURRENCIES:
                have = balances.get((player, currency), 0)
                assert have == self.model.balances[player, currency], (player, currency, have,
                                                                       self.model.balances)
                assert have >= 0, (player, currency, have)
        assert all(total == 0 for total in sums.values()), f"postings do not sum to zero: {sums}"
        assert count == self.model.transactions, (count, self.model.transactions)
        assert round_rows == {rid: (r.player, r.currency, r.status, r.bet_amount, r.win_amount)
                              for rid, r in self.model.rounds.items()}, (round_rows, self.model.rounds)
        assert bet_rows == {bid: (b.round_id, b.player, b.currency, b.amount, b.status)
                            for bid, b in self.model.bets.items()}, (bet_rows, self.model.bets)

    def teardown(self) -> None:
        report, = check(self.url, self.operator_id)
        assert report.ok, report.render()


# -- the test ------------------------------------------------------------------------------------------

@pytest.fixture
def shared(database_url: str) -> Iterator[tuple[Database, asyncio.AbstractEventLoop]]:
    db = Database.from_url(database_url, workers=2)
    loop = asyncio.new_event_loop()
    yield db, loop
    loop.close()
    db.close()


@pytest.mark.timeout(600)  # a failure is shrunk to a minimal sequence, which can take minutes
def test_ledger_agrees_with_the_model(database_url: str, shared: tuple[Database, asyncio.AbstractEventLoop],
                                      request: pytest.FixtureRequest) -> None:
    db, loop = shared
    stats = Stats()
    machine = type("Machine", (LedgerMachine,), {"url": database_url, "db": db, "loop": loop, "stats": stats})
    try:
        run_state_machine_as_test(machine, settings=settings(
            max_examples=EXAMPLES[db.dialect], stateful_step_count=STEPS, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    finally:
        # Kept in the junit report (junit_family=xunit1): examples and steps run, answers seen per kind.
        request.node.user_properties += [("examples", stats.examples), ("steps", stats.steps),
                                         ("outcomes", dict(sorted(stats.outcomes.items())))]
    assert stats.examples >= EXAMPLES[db.dialect]
