"""The studio wallet: what push-style studios call (ProviderWalletService) to move a player's money.

A studio names a game session (its session token is the game_session_id of a LaunchGame of one of its
games) and the player; the session decides the operator, the player and the currency. A session of
another studio's game, or none, is GAME_SESSION_NOT_FOUND and another player PLAYER_NOT_FOUND: a studio
learns nothing of other studios' or operators' sessions.

Every money call is the same round command Play submits (hub.ledger.rounds: Bet, Win, Rollback, close),
run by the settlement engine, so DESIGN.md's semantics table holds whichever side started the round.
The studio's ids are namespaced by studio: its transaction ids become idempotency keys
"<studio>:<transaction id>" and its round ids, scoped to the player (a live table's round has one
round per seated player), become uuid5 round ids, the studio's own id kept as provider_round_id. A
call with round_closed closes the round in the same command, all or nothing.

Refusals carry the wallet as it stands (balance_minor, bonus_balance_minor, currency in the ErrorInfo
metadata), as studios' wallet protocols require.
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select

from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger import idempotency, postings, promo_wins
from hub.ledger.book import Book, Need
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import ROUND, Bet, Receipt, Rollback, RoundLedger, Win
from hub.ledger.schema import bets, game_sessions, idempotency_keys, rounds
from hub.ledger.uow import UnitOfWork
from hub.money import Money, exponent, positive_amount

# The hub's id of a studio's round derives from (studio, player, the studio's round id).
STUDIO_ROUND_NAMESPACE = uuid.UUID("0d6a51c2-3f0e-4b8a-a7d4-2c9e8f1b6a53")
PROMO_KINDS = ("free_spins", "tournament", "jackpot")
MAX_ID = 64  # transaction and round ids, as the contract declares them


@dataclass(frozen=True)
class StudioSession:
    game_session_id: str
    operator_id: str
    player_id: str
    game_id: str
    currency: str
    expires_at: datetime


@dataclass(frozen=True)
class StudioReceipt:
    """Every answer's wallet: cash and bonus after the call, the ledger transaction, the round's status."""

    currency: str
    balance: int
    bonus_balance: int
    transaction_id: str = ""
    round_status: str = ""  # OPEN | SETTLED | ROLLED_BACK | VOIDED; "" when the call names no round

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "StudioReceipt":
        return cls(**json.loads(raw))


def studio_of(game_id: str) -> str:
    """The studio of a catalog game id "<studio>:<game>"."""
    return game_id.split(":", 1)[0]


def transaction_key(studio_id: str, transaction_id: str) -> str:
    """A studio's transaction id as an idempotency key: unique per studio, never another studio's."""
    _check_id("transaction_id", transaction_id)
    return f"{studio_id}:{transaction_id}"


def call_key(studio_id: str, transaction_id: str) -> str:
    """The whole call's key: its answer is stored under it, so a resent call (round_closed and all) is
    answered from the record, and the same id with any other field is IDEMPOTENCY_KEY_REUSED."""
    return f"{studio_id}+call:{transaction_id}"


def bet_and_win_win_key(studio_id: str, transaction_id: str) -> str:
    """BetAndWin's win, keyed by the same transaction id as its bet ("+" is in no studio id)."""
    return f"{studio_id}+win:{transaction_id}"


def studio_round_id(studio_id: str, player_id: str, round_id: str) -> str:
    _check_id("round_id", round_id)
    return str(uuid.uuid5(STUDIO_ROUND_NAMESPACE, f"{studio_id}\n{player_id}\n{round_id}"))


def _check_id(name: str, value: str) -> None:
    if not 1 <= len(value) <= MAX_ID:
        raise DomainError(Reason.INVALID_ARGUMENT, f"{name} must be 1..{MAX_ID} characters")


@dataclass(frozen=True)
class StudioCall:
    """One studio call as one engine command: the round operations it makes, in this order, then the
    round closed if the studio said so; all or nothing."""

    session: StudioSession
    key: str = ""  # the call's own idempotency key (call_key; "" for EndRound, idempotent by nature)
    fingerprint: str = ""  # every field of the studio's request
    round_id: str = ""  # the hub's round id; "" when the call names no round
    provider_round_id: str = ""
    bet: Bet | None = None
    win: Win | None = None
    rollback: Rollback | None = None
    close: bool = False

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        s = self.session
        return ((s.operator_id, s.player_id, s.currency),)

    @property
    def needs(self) -> tuple[Need, ...]:
        op = self.session.operator_id
        found: list[Need] = [need for cmd in (self.bet, self.win, self.rollback) if cmd is not None
                             for need in cmd.needs]
        if self.key:
            found.append(Need(idempotency_keys, (op, self.key)))
        if self.round_id:
            found += [Need(rounds, (op, self.round_id)), Need(bets, (op, self.round_id), ROUND)]
        return tuple(found)


class ProviderWallet:
    def __init__(self, db: Database, engine: SettlementEngine, rounds_: RoundLedger, house_shards: int):
        self._db = db
        self._engine = engine
        self._rounds = rounds_
        self._shards = house_shards

    # -- sessions and balances ---------------------------------------------------------------------------

    async def session(self, studio_id: str, token: str, player_id: str | None = None) -> StudioSession:
        """The studio's game session behind token (expired ones too: wins and rollbacks are still paid)."""

        def _load(uow: UnitOfWork):  # type: ignore[no-untyped-def]
            return uow.conn.execute(select(game_sessions).where(
                game_sessions.c.game_session_id == token)).one_or_none()

        row = await self._db.run(_load) if token else None
        if row is None or studio_of(row.game_id) != studio_id:
            raise DomainError(Reason.GAME_SESSION_NOT_FOUND, f"no game session {quote(token)} of this studio")
        if player_id is not None and player_id != row.player_id:
            raise DomainError(Reason.PLAYER_NOT_FOUND, f"no player {quote(player_id)} in this session")
        return StudioSession(row.game_session_id, row.operator_id, row.player_id, row.game_id, row.currency,
                             row.expires_at)

    async def wallet(self, session: StudioSession) -> StudioReceipt:
        found = await self._db.run(lambda uow: postings.read_wallet(uow, session.operator_id, session.player_id,
                                                                    session.currency))
        return StudioReceipt(session.currency, found.cash, found.bonus)

    async def authenticate(self, studio_id: str, token: str) -> tuple[StudioSession, StudioReceipt]:
        session = await self.session(studio_id, token)
        if session.expires_at <= utcnow():
            raise await self._with_wallet(session, DomainError(
                Reason.GAME_SESSION_CLOSED, "game session expired; the player must launch the game again"))
        return session, await self.wallet(session)

    async def balance(self, studio_id: str, token: str, player_id: str) -> StudioReceipt:
        return await self.wallet(await self.session(studio_id, token, player_id))

    # -- money ---------------------------------------------------------------------------------------------

    async def bet(self, studio_id: str, token: str, player_id: str, transaction_id: str, round_id: str,
                  amount: Money, round_closed: bool) -> StudioReceipt:
        session = await self.session(studio_id, token, player_id)

        def call() -> StudioCall:
            hub_round = studio_round_id(studio_id, session.player_id, round_id)
            placed = self._bet(session, studio_id, transaction_id, hub_round, amount)
            return StudioCall(session, call_key(studio_id, transaction_id),
                              idempotency.fingerprint("Bet", session.game_session_id, round_id, amount.currency,
                                                      amount.amount_minor, round_closed),
                              hub_round, round_id, bet=placed, close=round_closed)

        return await self._submit(session, call)

    async def win(self, studio_id: str, token: str, player_id: str, transaction_id: str, round_id: str,
                  amount: Money, bet_transaction_id: str, round_closed: bool) -> StudioReceipt:
        session = await self.session(studio_id, token, player_id)

        def call() -> StudioCall:
            hub_round = studio_round_id(studio_id, session.player_id, round_id)
            self._same_currency(session, amount)
            win = Win(session.operator_id, hub_round, transaction_key(studio_id, transaction_id), amount.amount_minor,
                      transaction_key(studio_id, bet_transaction_id) if bet_transaction_id else "")
            return StudioCall(session, call_key(studio_id, transaction_id),
                              idempotency.fingerprint("Win", session.game_session_id, round_id, amount.currency,
                                                      amount.amount_minor, bet_transaction_id, round_closed),
                              hub_round, round_id, win=win, close=round_closed)

        return await self._submit(session, call)

    async def bet_and_win(self, studio_id: str, token: str, player_id: str, transaction_id: str, round_id: str,
                          bet: Money, win: Money, round_closed: bool) -> StudioReceipt:
        session = await self.session(studio_id, token, player_id)

        def call() -> StudioCall:
            hub_round = studio_round_id(studio_id, session.player_id, round_id)
            placed = self._bet(session, studio_id, transaction_id, hub_round, bet)
            if win.amount_minor < 0 or (win.currency or bet.currency) != bet.currency:
                raise DomainError(Reason.INVALID_AMOUNT, "win must be zero or positive, in the bet's currency")
            if win.amount_minor:
                self._same_currency(session, win)
            paid = Win(session.operator_id, hub_round, bet_and_win_win_key(studio_id, transaction_id),
                       win.amount_minor, placed.bet_id) if win.amount_minor else None
            return StudioCall(session, call_key(studio_id, transaction_id),
                              idempotency.fingerprint("BetAndWin", session.game_session_id, round_id, bet.currency,
                                                      bet.amount_minor, win.currency, win.amount_minor, round_closed),
                              hub_round, round_id, bet=placed, win=paid, close=round_closed)

        return await self._submit(session, call)

    async def rollback(self, studio_id: str, token: str, player_id: str, transaction_id: str,
                       bet_transaction_id: str, round_id: str, round_closed: bool) -> StudioReceipt:
        session = await self.session(studio_id, token, player_id)

        def call() -> StudioCall:
            if round_closed and not round_id:
                raise DomainError(Reason.INVALID_ARGUMENT, "round_closed needs the round_id")
            hub_round = studio_round_id(studio_id, session.player_id, round_id) if round_id else ""
            rollback = Rollback(session.operator_id, session.player_id, session.currency,
                                transaction_key(studio_id, bet_transaction_id),
                                transaction_key(studio_id, transaction_id))
            return StudioCall(session, call_key(studio_id, transaction_id),
                              idempotency.fingerprint("Rollback", session.game_session_id, bet_transaction_id,
                                                      round_id, round_closed),
                              hub_round, round_id, rollback=rollback, close=round_closed)

        return await self._submit(session, call)

    async def end_round(self, studio_id: str, token: str, player_id: str, round_id: str) -> StudioReceipt:
        session = await self.session(studio_id, token, player_id)
        return await self._submit(session, lambda: StudioCall(
            session, round_id=studio_round_id(studio_id, session.player_id, round_id), provider_round_id=round_id,
            close=True))

    async def promo_win(self, studio_id: str, token: str, player_id: str, transaction_id: str, amount: Money,
                        kind: str, campaign_id: str) -> StudioReceipt:
        session = await self.session(studio_id, token, player_id)
        try:
            if kind not in PROMO_KINDS:
                raise DomainError(Reason.INVALID_ARGUMENT, "kind must be free spins, tournament or jackpot")
            self._same_currency(session, amount)
            receipt = await self._engine.submit(self._pay_promo, promo_wins.PromoWin(
                session.operator_id, session.player_id, session.currency, transaction_key(studio_id, transaction_id),
                amount.amount_minor, kind, campaign_id))
        except DomainError as err:
            raise await self._with_wallet(session, err) from None
        return StudioReceipt(session.currency, receipt.balance, receipt.bonus_balance, receipt.transaction_id)

    # -- helpers -------------------------------------------------------------------------------------------

    def _bet(self, session: StudioSession, studio_id: str, transaction_id: str, hub_round: str,
             amount: Money) -> Bet:
        self._same_currency(session, amount)
        return Bet(session.operator_id, session.player_id, session.currency, hub_round, session.game_id,
                   transaction_key(studio_id, transaction_id), amount.amount_minor,
                   game_session_id=session.game_session_id)

    @staticmethod
    def _same_currency(session: StudioSession, amount: Money) -> None:
        """An amount in the session's currency, within the currency's per-transaction maximum: a win
        too (a studio's arithmetic is not trusted with unbounded payouts)."""
        exponent(amount.currency)
        if amount.currency != session.currency:
            raise DomainError(Reason.CURRENCY_MISMATCH, f"the session plays in {session.currency}")
        positive_amount(amount.currency, amount.amount_minor)

    async def _submit(self, session: StudioSession, build: Callable[[], StudioCall]) -> StudioReceipt:
        """Build the call (its checks refuse with the wallet too) and run it through the engine."""
        try:
            return await self._engine.submit(self._apply, build())
        except DomainError as err:
            raise await self._with_wallet(session, err) from None

    async def _with_wallet(self, session: StudioSession, err: DomainError) -> DomainError:
        """The refusal with the wallet as it stands (a studio shows the player's balance on every answer)."""
        wallet = await self.wallet(session)
        err.metadata.update(balance_minor=str(wallet.balance), bonus_balance_minor=str(wallet.bonus_balance),
                            currency=wallet.currency)
        return err

    def _pay_promo(self, book: Book, cmd: promo_wins.PromoWin) -> Receipt:
        return promo_wins.pay(book, cmd, self._shards)

    def _apply(self, book: Book, call: StudioCall) -> StudioReceipt:
        """The engine's handler: the call's round operations, then the close, in the batch's book."""
        now = utcnow()
        s = call.session
        if call.key:
            stored = idempotency.lookup(book, s.operator_id, call.key, call.fingerprint)
            if stored is not None:
                return StudioReceipt.decode(stored)
        answer = self._answer(book, call, now)
        if call.key:
            idempotency.record(book, s.operator_id, call.key, call.fingerprint, answer.encode())
        return answer

    def _answer(self, book: Book, call: StudioCall, now: datetime) -> StudioReceipt:
        s = call.session
        receipt: Receipt | None = None
        if call.bet is not None:
            receipt = self._rounds.bet(book, call.bet, now)
            row = book.get(rounds, (s.operator_id, call.round_id))
            if row is not None and row["provider_round_id"] is None:
                book.update(rounds, row, provider_round_id=call.provider_round_id)
        if call.win is not None:
            receipt = self._rounds.win(book, call.win, now)
        if call.rollback is not None:
            receipt = self._rounds.rollback(book, call.rollback, now)
        row = book.get(rounds, (s.operator_id, call.round_id)) if call.round_id else None
        status = ""
        if call.close and (row is not None or call.rollback is None):  # a rollback may precede its round
            status = self._rounds.close(book, s.operator_id, call.round_id, now)
        elif row is not None:
            status = row["status"]
        if receipt is not None and (receipt.replayed or not call.close):
            return StudioReceipt(s.currency, receipt.balance, receipt.bonus_balance, receipt.transaction_id, status)
        # Closing may move money (a settled round's stakes can complete a bonus's wagering): read the wallet.
        wallet = postings.wallet(book, s.operator_id, s.player_id, s.currency)
        return StudioReceipt(s.currency, wallet.cash, wallet.bonus, receipt.transaction_id if receipt else "", status)
