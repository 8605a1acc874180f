"""Game sessions, rounds and the Play event log.

A bet is three steps: (1) one transaction claims the idempotency key, debits the player, opens the
round and appends RoundOpened + BetAccepted; (2) the provider is asked for the outcome; (3) one
transaction credits the win and appends Outcome + Settled, or, if the provider refused or could not be
reached, refunds the bet and appends an Error. A provider that timed out may have played the round: the
round stays open, an Error with state UNKNOWN says so, and the reconciler closes it against the provider's
own record. Every event gets the next seq of its game session and is stored, so a
client that reconnects with Resume gets exactly what it missed. Steps 2-3 run in a task the stream
does not own: a client that disconnects mid-round cannot leave its bet half-settled, and a stream that
resumes meanwhile follows the round through the event log (woken by this process's appends, polling
for another process's).

A multi-step round (blackjack) answers its bet with ActionRequired instead of an outcome and stays open;
each act is three steps too: (1) one transaction claims the action's key and the round's next step and
debits what the action adds to the stake (key "<round>:stake:<step>"); (2) the studio plays the step; (3)
one transaction appends the next ActionRequired, or settles the round as a bet does. A step the studio did
not answer leaves the round open: the same act again asks the studio for that same step (studios key
steps by round and number), and the reconciler settles a round nobody finishes by the studio's record.
"""

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

import structlog
from sqlalchemy import and_, select

from adapters.base import (
    LAYOUT,
    ActionInput,
    AmountNotRepresentable,
    LaunchInput,
    MultiStepAdapter,
    PlayInput,
    PlayResult,
    Proof,
    ProviderAdapter,
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderTimeout,
    ReplayAdapter,
    UnknownCurrency,
)
from hub import deadline, records
from hub.catalog import Catalog, CatalogGame
from hub.clock import utcnow
from hub.errors import DomainError, Reason, State, quote
from hub.events import (
    ActionChoice,
    ActionRequired,
    BetAccepted,
    Outcome,
    PlayError,
    PlayEvent,
    RoundOpened,
    SessionClosed,
    SessionOpened,
    Settled,
)
from hub.ledger import free_rounds, idempotency, postings
from hub.ledger.book import Book, Need, Row
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import (
    OPEN,
    ROUND,
    Bet,
    Rollback,
    RoundLedger,
    Win,
    rollback_key,
    transaction_ids,
    win_key,
)
from hub.ledger.schema import (
    bets,
    free_round_grants,
    game_sessions,
    idempotency_keys,
    ledger_transactions,
    play_events,
    player_sessions,
    rounds,
)
from hub.ledger.uow import UnitOfWork
from hub.money import Money, exponent, positive_amount
from hub.operators import Operators
from hub.players import Players
from hub.receipts import ActionReceipt
from hub.studio_guard import GuardedAdapter

T = TypeVar("T")
C = TypeVar("C")
# A bet or a step, given where to emit its events; answers CallerGone (not raised) when dropped unapplied.
Run = Callable[[Callable[[PlayEvent], None]], Coroutine[object, object, deadline.CallerGone | None]]
log = structlog.get_logger(__name__)
# A Play round's id derives from its bet's key, so a replayed bet names the same round.
ROUND_NAMESPACE = uuid.UUID("5b0f3a4e-8c1d-4a7e-9f2b-6d3c1e0a9b71")
PAGE = 100  # events read per query: a long backlog streams through, never held whole
# A resumed stream re-reads the log this often (doubling while nothing comes) in case another hub
# process is settling the round; appends in this process wake it at once.
POLL_MIN_S, POLL_MAX_S = 0.05, 1.0

# The first isinstance match wins: subclasses (the SDK's money refusals) before ProviderRejected.
_PROVIDER_REASONS: dict[type[ProviderError], Reason] = {
    AmountNotRepresentable: Reason.AMOUNT_NOT_REPRESENTABLE,
    UnknownCurrency: Reason.UNKNOWN_CURRENCY,
    ProviderTimeout: Reason.PROVIDER_TIMEOUT,
    ProviderRejected: Reason.PROVIDER_REJECTED,
    ProviderProtocolError: Reason.PROVIDER_OUTCOME_INVALID,
}


ACTIONS = ("hit", "stand", "double", "split")  # what a RoundAction may name (ActionOption.action)


def stake_key(round_id: str, step: int) -> str:
    """The ledger key of what a round's step adds to its stake (a blackjack double or split)."""
    return f"{round_id}:stake:{step}"


def step_key(round_id: str, step: int) -> str:
    """The key that claims a round's step for one act: a second act for the same step is refused."""
    return f"{round_id}:step:{step}"


def is_multi_step(adapter: ProviderAdapter) -> bool:
    return adapter.multi_step if isinstance(adapter, GuardedAdapter) else isinstance(adapter, MultiStepAdapter)


def provider_reason(exc: ProviderError) -> Reason:
    return next((r for cls, r in _PROVIDER_REASONS.items() if isinstance(exc, cls)), Reason.PROVIDER_UNAVAILABLE)


@dataclass(frozen=True)
class GameSession:
    game_session_id: str
    operator_id: str
    player_id: str
    game_id: str
    currency: str
    expires_at: datetime
    rtp_variant: str = ""  # fixed at launch: the studio plays, and the adapter checks, this variant
    demo: bool = False  # fun money, held by hub.demo in this process's memory only
    login_id: str = ""  # the player session (hub.players) the stream was opened with; "": not checked
    login_started_at: datetime | None = None  # when that login began (reality checks count from it)


def layout_params(layout: str) -> dict[str, str]:
    """PlayInput.params for a bet's layout; none for the game's default."""
    return {LAYOUT: layout} if layout else {}


def round_id_for(operator_id: str, key: str) -> str:
    """A Play round's id derives from its bet's key, so a replayed bet names the same round."""
    return str(uuid.uuid5(ROUND_NAMESPACE, f"{operator_id}:{key}"))


# Commands Play submits to the settlement engine. Each names the wallet it moves and the rows it reads,
# so the engine reads them for a whole batch at once.

def _log(session: GameSession) -> Need:
    """The session's row: appending to its event log takes its lock."""
    return Need(game_sessions, (session.game_session_id,))


def _grants(session: GameSession) -> Need:
    return Need(free_round_grants, (session.operator_id, session.player_id, session.currency),
                free_rounds.WALLET, lock=False)


@dataclass(frozen=True)
class SessionEvent:
    session: GameSession

    @property
    def needs(self) -> tuple[Need, ...]:
        return _log(self.session), _grants(self.session)


@dataclass(frozen=True)
class Resumed(SessionEvent):
    last_seen_seq: int


@dataclass(frozen=True)
class OpenRound:
    session: GameSession
    money: Money
    key: str
    layout: str = ""

    @property
    def bet(self) -> Bet:
        s = self.session
        return Bet(operator_id=s.operator_id, player_id=s.player_id, currency=self.money.currency,
                   round_id=round_id_for(s.operator_id, self.key), game_id=s.game_id, bet_id=self.key,
                   amount=self.money.amount_minor, game_session_id=s.game_session_id, free_rounds=True,
                   layout=self.layout)

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return self.bet.wallets

    @property
    def needs(self) -> tuple[Need, ...]:
        login = self.session.login_id
        return *self.bet.needs, _log(self.session), *([Need(player_sessions, (login,))] if login else [])


@dataclass(frozen=True)
class SettleRound:
    session: GameSession
    round_id: str
    money: Money
    result: PlayResult

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.session.operator_id, self.session.player_id, self.session.currency),)

    @property
    def needs(self) -> tuple[Need, ...]:
        op, win = self.session.operator_id, Win(self.session.operator_id, self.round_id, win_key(self.round_id),
                                                self.result.win_minor)
        return (*win.needs, _log(self.session), Need(ledger_transactions, (op, self.round_id), ROUND, lock=False))


@dataclass(frozen=True)
class RefundRound:
    session: GameSession
    round_id: str
    key: str
    error: DomainError

    @property
    def rollback(self) -> Rollback:
        s = self.session
        return Rollback(s.operator_id, s.player_id, s.currency, self.key, rollback_key(self.key))

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return self.rollback.wallets

    @property
    def needs(self) -> tuple[Need, ...]:
        op = self.session.operator_id
        return (*self.rollback.needs, _log(self.session), Need(rounds, (op, self.round_id)),
                Need(bets, (op, self.round_id), ROUND))


@dataclass(frozen=True)
class RoundUnknown:
    """The studio did not answer in time: the round stays open for the reconciler; the stream is told."""

    session: GameSession
    round_id: str
    key: str
    error: DomainError

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.session.operator_id, self.session.player_id, self.session.currency),)

    @property
    def needs(self) -> tuple[Need, ...]:
        return (_log(self.session),)


@dataclass(frozen=True)
class BetRefused:
    session: GameSession
    key: str
    error: DomainError

    @property
    def needs(self) -> tuple[Need, ...]:
        return (_log(self.session),)


def _round_log(session: GameSession, round_id: str) -> Need:
    """The round's stored events (an act reads where the round stands from them)."""
    return Need(play_events, (session.operator_id, round_id), ROUND, lock=False)


@dataclass(frozen=True)
class AwaitAction:
    """A step ended without finishing the round: it waits for the player's next action."""

    session: GameSession
    round_id: str
    key: str  # the bet's or act's that played the step
    result: PlayResult

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.session.operator_id, self.session.player_id, self.session.currency),)

    @property
    def needs(self) -> tuple[Need, ...]:
        return _log(self.session), _round_log(self.session, self.round_id), Need(
            rounds, (self.session.operator_id, self.round_id))


@dataclass(frozen=True)
class TakeAction:
    """Claim the next step of a round awaiting an action, debiting what the action adds to the stake."""

    session: GameSession
    round_id: str
    action: str
    key: str

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.session.operator_id, self.session.player_id, self.session.currency),)

    @property
    def needs(self) -> tuple[Need, ...]:
        op = self.session.operator_id
        return (Need(idempotency_keys, (op, self.key)), Need(rounds, (op, self.round_id)), _log(self.session),
                _round_log(self.session, self.round_id), Need(bets, (op, self.round_id), ROUND))


@dataclass(frozen=True)
class StepDone:
    """The studio answered a step: the round waits again, or it is settled."""

    session: GameSession
    round_id: str
    key: str
    step: int
    money: Money  # the round's first stake (a win is bounded by the game's multiple of it)
    result: PlayResult

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.session.operator_id, self.session.player_id, self.session.currency),)

    @property
    def needs(self) -> tuple[Need, ...]:
        return (*SettleRound(self.session, self.round_id, self.money, self.result).needs,
                _round_log(self.session, self.round_id))


@dataclass(frozen=True)
class ActRefused:
    session: GameSession
    key: str
    round_id: str
    error: DomainError

    @property
    def needs(self) -> tuple[Need, ...]:
        return (_log(self.session),)


@dataclass(frozen=True)
class TakenAction:
    round_id: str
    step: int
    extra_stake: int  # debited under stake_key(round_id, step)
    first_stake: int  # the round's first bet
    stake: int  # the round's whole stake with this step's
    events: list[PlayEvent]
    answered: bool  # the step was answered before: events are copies of its stored ones, nothing moved


@dataclass(frozen=True)
class OpenedRound:
    round_id: str
    events: list[PlayEvent]
    replayed: bool  # the key was seen before: events are copies of the stored ones, nothing was debited


@dataclass(frozen=True)
class LaunchedGame:
    game_session_id: str
    launch_url: str
    server_seed_hash: str
    expires_at: datetime
    demo_balance: Money | None = None  # a demo session (hub.demo): the fun money it starts with


@dataclass(frozen=True)
class RoundEntry:
    """One money movement of a round, as GetRound lists it."""

    kind: str  # bet | win | refund
    amount: Money  # positive
    key: str  # the ledger's idempotency key
    time: datetime
    transaction_id: str


ENTRY_KINDS = {"bet": "bet", "win": "win", "rollback": "refund"}


@dataclass(frozen=True)
class RoundView:
    """A round as GetRound shows it."""

    round_id: str
    game_id: str
    player_id: str
    game_session_id: str  # empty for a round a studio opened
    status: str  # OPEN | SETTLED | ROLLED_BACK | VOIDED
    bet: Money
    win: Money
    result: str
    proof: Proof | None
    transaction_ids: tuple[str, ...]
    opened_at: datetime
    closed_at: datetime | None
    entries: tuple[RoundEntry, ...] = ()
    replay_url: str = ""  # the studio's (ReplayAdapter), empty when it offers none


class Play:
    def __init__(self, db: Database, engine: SettlementEngine, catalog: Catalog, players: Players,
                 rounds: RoundLedger, game_session_ttl: timedelta, round_wait: timedelta,
                 operators: Operators | None = None):
        """round_wait: how long a resumed stream follows a round still in play before it gives up; by
        then the reconciler should have closed it. operators: to tell an action naming another operator's
        round (OBJECT_OF_ANOTHER_OPERATOR) from one naming no round."""
        self._operators = operators
        self._db = db
        self._engine = engine
        self._catalog = catalog
        self._players = players
        self._rounds = rounds
        self._ttl = game_session_ttl
        self._round_wait = round_wait
        self._in_flight: set[asyncio.Task[deadline.CallerGone | None]] = set()
        # Resumed streams following a game session's rounds, woken when this process appends to it.
        self._waiters: dict[str, set[asyncio.Event]] = {}

    # -- sessions ------------------------------------------------------------------------------------

    async def launch(self, operator_id: str, token: str, game_id: str, currency: str,
                     client_seed: str, country: str = "") -> LaunchedGame:
        player_id = (await self._players.authenticate(operator_id, token)).player_id
        exponent(currency)
        game, adapter, variant = await self._catalog.offer(operator_id, game_id, country)
        if currency not in game.info.currencies:
            raise DomainError(Reason.CURRENCY_MISMATCH, f"{game_id} does not accept {currency}")
        if len(client_seed) > 128:
            raise DomainError(Reason.INVALID_ARGUMENT, "client_seed must be at most 128 characters")
        client_seed = client_seed or secrets.token_hex(16)
        session_id = str(uuid.uuid4())
        try:
            launched = await adapter.launch(LaunchInput(
                game_session_id=session_id, provider_game_id=game.info.provider_game_id,
                operator_id=operator_id, player_id=player_id, currency=currency, client_seed=client_seed,
                rtp_variant=variant))
        except ProviderError as exc:
            raise DomainError(provider_reason(exc), f"provider {game.provider}: {exc}") from None
        now = utcnow()
        expires_at = now + self._ttl

        def _insert(uow: UnitOfWork) -> None:
            uow.conn.execute(game_sessions.insert().values(
                game_session_id=session_id, operator_id=operator_id, player_id=player_id, game_id=game_id,
                currency=currency, client_seed=client_seed, server_seed_hash=launched.server_seed_hash,
                last_seq=0, created_at=now, expires_at=expires_at, rtp_variant=variant))
            uow.commit()

        await self._db.run(_insert)
        return LaunchedGame(session_id, launched.launch_url, launched.server_seed_hash, expires_at)

    async def attach(self, operator_id: str, game_session_id: str, token: str) -> GameSession:
        """The game session a stream may play on: it must belong to the token's player."""
        login = await self._players.authenticate(operator_id, token)
        player_id = login.player_id

        def _load(uow: UnitOfWork):  # type: ignore[no-untyped-def]
            return uow.conn.execute(select(game_sessions).where(
                game_sessions.c.game_session_id == game_session_id,
                game_sessions.c.operator_id == operator_id,
                game_sessions.c.player_id == player_id)).one_or_none()

        row = await self._db.run(_load)
        if row is None:
            raise DomainError(Reason.GAME_SESSION_NOT_FOUND, f"no game session {quote(game_session_id)}")
        if row.expires_at <= utcnow():
            raise DomainError(Reason.GAME_SESSION_CLOSED, "game session expired; launch the game again")
        return GameSession(row.game_session_id, operator_id, player_id, row.game_id, row.currency,
                           row.expires_at, row.rtp_variant, login_id=login.session_id,
                           login_started_at=login.started_at)

    async def opened(self, session: GameSession) -> SessionOpened:
        return await self._appending(session, self._session_opened, SessionEvent(session))

    async def closed(self, session: GameSession) -> SessionClosed:
        return await self._appending(session, self._session_closed, SessionEvent(session))

    async def resume(self, session: GameSession, last_seen_seq: int) -> AsyncIterator[PlayEvent]:
        """Every stored event after last_seen_seq, then SessionOpened, then a copy of the ActionRequired each
        round waiting for the player waits on, then the rest of each round that was in play (not waiting)
        at that moment, as it is appended: in seq order, each once.

        SessionOpened and the snapshot of rounds in play come from one transaction holding the session's
        row lock, which every append takes: an event of those rounds is either before SessionOpened (in
        the backlog) or after it (followed). Rounds are followed until none of them is OPEN (settled here,
        in another process, or by the reconciler, which appends nothing) or round_wait has passed.
        """
        opened_seq, in_play = await self._appending(session, self._resumed, Resumed(session, last_seen_seq))
        cursor = last_seen_seq
        while cursor < opened_seq:
            backlog = await self._db.run(partial(self._backlog_tx, session, cursor, opened_seq))
            for event in backlog:
                yield event
            cursor = backlog[-1].seq
        if not in_play:
            return
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._round_wait.total_seconds()
        pause = POLL_MIN_S
        with self._watch(session) as appended:
            while True:
                appended.clear()  # before the read: an append committed after it sets the flag again
                still_open, events = await self._db.run(partial(self._follow_tx, session, in_play, cursor))
                for event in events:
                    yield event
                    cursor = event.seq
                if len(events) == PAGE:
                    continue
                if not still_open:  # read before the events: a round closed then had its events read too
                    return
                left = give_up_at - loop.time()
                if left <= 0:
                    raise DomainError(Reason.REQUEST_IN_PROGRESS, f"round {still_open[0]} is still in play; "
                                      "resume again later", State.UNKNOWN)
                pause = POLL_MIN_S if events else min(pause * 2, POLL_MAX_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(appended.wait(), min(pause, left))

    @contextlib.contextmanager
    def _watch(self, session: GameSession) -> Iterator[asyncio.Event]:
        """An event set whenever this process appends to the session's log, until the block ends."""
        flag = asyncio.Event()
        waiters = self._waiters.setdefault(session.game_session_id, set())
        waiters.add(flag)
        try:
            yield flag
        finally:
            waiters.discard(flag)
            if not waiters:
                self._waiters.pop(session.game_session_id, None)

    async def _appending(self, session: GameSession, handler: Callable[[Book, C], T], command: C) -> T:
        """Submit a command that appends to the session's log, then wake the streams following it."""
        result = await self._engine.submit(handler, command)
        for flag in self._waiters.get(session.game_session_id, ()):
            flag.set()
        return result

    # -- bets ----------------------------------------------------------------------------------------

    def bet(self, session: GameSession, amount: Money, key: str, layout: str = "") -> AsyncIterator[PlayEvent]:
        """Events of one bet, in order. The round runs to the end even if the caller stops listening."""
        return self._to_the_end(partial(self._run_bet, session, amount, key, layout))

    async def _to_the_end(self, run: "Run") -> AsyncIterator[PlayEvent]:
        """The events `run` emits, in order. It runs as a task of its own, so a bet or step once taken is
        played to the end even if the caller stops listening; graceful shutdown waits for it (drain)."""
        queue: asyncio.Queue[PlayEvent | None] = asyncio.Queue()
        task = asyncio.create_task(run(queue.put_nowait))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        task.add_done_callback(lambda _: queue.put_nowait(None))
        while (event := await queue.get()) is not None:
            yield event
        dropped = await task  # surfaces an unexpected failure (e.g. the database went away)
        if dropped is not None:
            raise dropped

    async def _refuse(self, session: GameSession, err: DomainError, named: dict[str, str],
                      handler: Callable[[Book, C], PlayEvent], command: Callable[[DomainError], C],
                      emit: Callable[[PlayEvent], None]) -> deadline.CallerGone | None:
        """Store a refusal's event (a retry with the same key gets it again) and emit it; CallerGone, not
        raised, when the stream is gone. An id named (field -> id) that is another operator's object turns a
        NOT_FOUND into OBJECT_OF_ANOTHER_OPERATOR (hub.operators)."""
        try:
            if named and self._operators is not None:
                err = await self._operators.refusal(session.operator_id, "Play", named, err)
            emit(await self._appending(session, handler, command(err)))
        except deadline.CallerGone as gone:
            return gone
        return None

    async def drain(self) -> None:
        """Wait for rounds already in flight to settle (graceful shutdown)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def _run_bet(self, session: GameSession, amount: Money, key: str, layout: str,
                       emit: Callable[[PlayEvent], None]) -> deadline.CallerGone | None:
        """Returns (not raises: the stream may be gone) CallerGone when the bet was dropped unapplied."""
        try:
            money = positive_amount(amount.currency, amount.amount_minor)
            idempotency.validate_key(key)
            game, adapter = await self._catalog.game(session.game_id)
            try:
                self._check_bet(session, game, money)
                if isinstance(adapter, GuardedAdapter) and not adapter.accepting():  # nothing taken for a studio down
                    raise DomainError(Reason.PROVIDER_UNAVAILABLE, f"provider {game.provider} is failing; its "
                                      f"circuit is open for another {adapter.breaker.retry_in():.1f} s")
            except DomainError:
                # Refused as a new bet, without a database write. A key already answered still gets its
                # answer, whatever changed since (the game's limits, the studio's circuit).
                if not await self._db.run(partial(self._played_tx, session, key)):
                    raise
            opened = await self._appending(session, self._open_round, OpenRound(session, money, key, layout))
        except DomainError as err:
            return await self._refuse(session, err, {}, self._bet_refused,
                                      lambda refusal: BetRefused(session, key, refusal), emit)
        except deadline.CallerGone as gone:
            log.info("play.bet_dropped", reason=str(gone))
            return gone
        # The bet is taken: the round is settled or refunded even if the stream's caller is gone by now.
        deadline.detached()
        for event in opened.events:
            emit(event)
        if opened.replayed:
            return None
        round_id = opened.round_id
        try:
            result = await adapter.play(PlayInput(
                round_id=round_id, game_session_id=session.game_session_id,
                provider_game_id=game.info.provider_game_id, operator_id=session.operator_id,
                player_id=session.player_id, currency=money.currency, bet_minor=money.amount_minor,
                rtp_variant=session.rtp_variant, params=layout_params(layout), multi_step=is_multi_step(adapter)))
            if result.finished:
                self._check_win(game, money, result)
            elif result.stake_minor not in (None, money.amount_minor) or not result.actions:
                raise ProviderProtocolError(f"provider {game.provider} left the round waiting with a stake of "
                                            f"{result.stake_minor} and actions {result.actions}")
        except ProviderTimeout as exc:
            # The studio may have played the round: a refund would be a guess. The round stays open and
            # the reconciler closes it against the studio's own record (round_status).
            log.warning("play.round_outcome_unknown", round_id=round_id, error=str(exc))
            unknown = DomainError(Reason.PROVIDER_TIMEOUT, f"provider {game.provider}: {exc}; the round stays "
                                  "open until the reconciler settles it with the studio's record (GetRound "
                                  "shows how it ended)", State.UNKNOWN)
            events = await self._appending(session, self._outcome_unknown, RoundUnknown(session, round_id, key, unknown))
        except (ProviderError, DomainError) as exc:
            refusal = exc if isinstance(exc, DomainError) else DomainError(
                provider_reason(exc), f"provider {game.provider}: {exc}; the bet was rolled back")
            log.warning("play.round_rolled_back", round_id=round_id, reason=refusal.reason.name, error=str(exc))
            events = await self._appending(session, self._refund, RefundRound(session, round_id, key, refusal))
        else:
            if result.finished:
                events = await self._appending(session, self._settle, SettleRound(session, round_id, money, result))
            else:
                events = await self._appending(session, self._await_action, AwaitAction(session, round_id, key, result))
        for event in events:
            emit(event)
        return None

    # -- actions (multi-step rounds) -------------------------------------------------------------------

    def act(self, session: GameSession, round_id: str, action: str, key: str) -> AsyncIterator[PlayEvent]:
        """Events of one step of a round awaiting an action, in order; the step runs to the end even if the
        caller stops listening."""
        return self._to_the_end(partial(self._run_act, session, round_id, action, key))

    async def _run_act(self, session: GameSession, round_id: str, action: str, key: str,
                       emit: Callable[[PlayEvent], None]) -> deadline.CallerGone | None:
        try:
            idempotency.validate_key(key)
            if action not in ACTIONS:
                raise DomainError(Reason.INVALID_ARGUMENT, f"action must be one of {', '.join(ACTIONS)}")
            game, adapter = await self._catalog.game(session.game_id)
            if not isinstance(adapter, (GuardedAdapter, MultiStepAdapter)):
                raise DomainError(Reason.ROUND_NOT_AWAITING_ACTION, f"{session.game_id} plays no multi-step rounds")
            taken = await self._appending(session, self._take_action, TakeAction(session, round_id, action, key))
        except DomainError as err:
            return await self._refuse(session, err, {"round_id": round_id}, self._act_refused,
                                      lambda refusal: ActRefused(session, key, round_id, refusal), emit)
        except deadline.CallerGone as gone:
            log.info("play.act_dropped", reason=str(gone))
            return gone
        # The step is claimed (and its stake taken): it is played to the end even if the caller is gone.
        deadline.detached()
        for event in taken.events:
            emit(event)
        if taken.answered:
            return None
        first = Money(session.currency, taken.first_stake)
        try:
            result = await adapter.act(ActionInput(
                round_id=round_id, game_session_id=session.game_session_id,
                provider_game_id=game.info.provider_game_id, operator_id=session.operator_id,
                player_id=session.player_id, currency=session.currency, step=taken.step, action=action,
                extra_stake_minor=taken.extra_stake))
            if result.stake_minor not in (None, taken.stake):
                raise ProviderProtocolError(f"provider {game.provider} counts a stake of {result.stake_minor}, "
                                            f"the hub took {taken.stake}")
            if result.finished:
                game.check_win(taken.first_stake, result.win_minor)
            elif not result.actions:
                raise ProviderProtocolError(f"provider {game.provider} left the round waiting with no action")
        except (ProviderError, DomainError) as exc:
            # Whether the studio took the step is not known here (a refusal too may come from a studio that
            # already played it): nothing is refunded on a guess. The round stays open; the same act asks
            # the studio again, and the reconciler settles it by the studio's record (refunding a step's
            # stake the studio never took).
            reason = exc.reason if isinstance(exc, DomainError) else provider_reason(exc)
            log.warning("play.step_outcome_unknown", round_id=round_id, step=taken.step, error=str(exc))
            unknown = DomainError(reason, f"provider {game.provider}: {exc}; the round stays open: send the "
                                  "same action again, or the reconciler settles it with the studio's record",
                                  State.UNKNOWN)
            events = await self._appending(session, self._outcome_unknown, RoundUnknown(session, round_id, key, unknown))
        else:
            events = await self._appending(session, self._step_done,
                                           StepDone(session, round_id, key, taken.step, first, result))
        for event in events:
            emit(event)
        return None

    def _check_bet(self, session: GameSession, game: CatalogGame, money: Money) -> None:
        if money.currency != session.currency:
            raise DomainError(Reason.CURRENCY_MISMATCH,
                              f"this game session plays in {session.currency}, not {money.currency}")
        game.check_bet(money.currency, money.amount_minor)

    @staticmethod
    def _check_win(game: CatalogGame, money: Money, result: PlayResult) -> None:
        game.check_win(money.amount_minor, result.win_minor)

    # -- commands (applied by the settlement engine, in its writer thread) -----------------------------

    def _session_opened(self, book: Book, cmd: "SessionEvent") -> SessionOpened:
        session = cmd.session
        row = self._session_row(book, session)
        wallet = postings.wallet(book, session.operator_id, session.player_id, session.currency)
        event = SessionOpened(row["last_seq"] + 1, session.game_session_id, session.game_id,
                              Money(session.currency, wallet.cash), Money(session.currency, wallet.bonus),
                              self._free_rounds_left(book, session))
        self._append(book, session, row, None, [event])
        return event

    def _session_closed(self, book: Book, cmd: "SessionEvent") -> SessionClosed:
        row = self._session_row(book, cmd.session)
        event = SessionClosed(row["last_seq"] + 1, cmd.session.game_session_id)
        self._append(book, cmd.session, row, None, [event])
        return event

    def _resumed(self, book: Book, cmd: "Resumed") -> tuple[int, list[str]]:
        """Append SessionOpened and copies of the actions rounds wait for; return the last seq appended and
        the session's rounds in play (not waiting for the player), under the row lock."""
        session = cmd.session
        last = self._session_row(book, session)["last_seq"]
        if cmd.last_seen_seq > last:  # compared here: the driver cannot bind numbers beyond int64
            raise DomainError(Reason.SEQ_OUT_OF_RANGE,
                              f"last_seen_seq {cmd.last_seen_seq} is beyond this game session's last seq {last}")

        def in_play(r: Row) -> bool:
            return (r["operator_id"], r["game_session_id"], r["status"]) == (
                session.operator_id, session.game_session_id, OPEN)

        open_rounds = book.find(rounds, and_(rounds.c.operator_id == session.operator_id, rounds.c.status == OPEN,
                                             rounds.c.game_session_id == session.game_session_id),
                                in_play, lock=False)
        opened = self._session_opened(book, SessionEvent(session))
        followed, waiting = [], []
        for r in sorted(open_rounds, key=lambda r: r["opened_at"]):
            pending = self._pending(self._round_events(book, session, r["round_id"]))
            if pending is not None and book.get(idempotency_keys, (
                    session.operator_id, step_key(r["round_id"], pending.step + 1)), lock=False) is not None:
                pending = None  # its next step is claimed: in play, followed like a bet's round
            if pending is None:
                followed.append(r["round_id"])
            else:
                waiting.append(pending)
        # The actions rounds wait for, again: the client may have missed or forgotten them.
        row = self._session_row(book, session)
        copies = self._copies(row, list(waiting))
        self._append(book, session, row, None, copies)
        return (copies[-1].seq if copies else opened.seq), followed

    @staticmethod
    def _backlog_tx(session: GameSession, after: int, upto: int, uow: UnitOfWork) -> list[PlayEvent]:
        payloads = uow.conn.execute(select(play_events.c.payload).where(
            play_events.c.game_session_id == session.game_session_id,
            play_events.c.operator_id == session.operator_id, play_events.c.seq > after,
            play_events.c.seq <= upto).order_by(play_events.c.seq).limit(PAGE)).scalars()
        return [records.decode(p, PlayEvent) for p in payloads]

    @staticmethod
    def _follow_tx(session: GameSession, round_ids: list[str], after: int,
                   uow: UnitOfWork) -> tuple[list[str], list[PlayEvent]]:
        """The rounds still OPEN and not waiting for an action, then their events after `after`. In that
        order: a round found closed (or waiting) committed its last events before, so this read sees them
        (READ COMMITTED reads per statement)."""
        still_open = [r for r in uow.conn.execute(select(rounds.c.round_id).where(
            rounds.c.operator_id == session.operator_id, rounds.c.round_id.in_(round_ids),
            rounds.c.status == OPEN).order_by(rounds.c.opened_at)).scalars() if not Play._waiting_tx(session, r, uow)]
        payloads = uow.conn.execute(select(play_events.c.payload).where(
            play_events.c.game_session_id == session.game_session_id,
            play_events.c.operator_id == session.operator_id, play_events.c.seq > after,
            play_events.c.round_id.in_(round_ids)).order_by(play_events.c.seq).limit(PAGE)).scalars()
        return still_open, [records.decode(p, PlayEvent) for p in payloads]

    @staticmethod
    def _played_tx(session: GameSession, key: str, uow: UnitOfWork) -> bool:
        """A round was opened with this bet key (it may be in play, settled or refunded)."""
        return uow.conn.execute(select(rounds.c.round_id).where(
            rounds.c.operator_id == session.operator_id,
            rounds.c.round_id == round_id_for(session.operator_id, key))).first() is not None

    @staticmethod
    def _waiting_tx(session: GameSession, round_id: str, uow: UnitOfWork) -> bool:
        """The round's last event asks the player for an action and no act has claimed that step yet:
        nothing more comes until they act."""
        last = uow.conn.execute(select(play_events.c.payload).where(
            play_events.c.game_session_id == session.game_session_id, play_events.c.round_id == round_id,
            play_events.c.operator_id == session.operator_id).order_by(play_events.c.seq.desc()).limit(1)).scalar()
        pending = records.decode(last, PlayEvent) if last is not None else None
        if not isinstance(pending, ActionRequired):
            return False
        claimed = uow.conn.execute(select(idempotency_keys.c.idempotency_key).where(
            idempotency_keys.c.operator_id == session.operator_id,
            idempotency_keys.c.idempotency_key == step_key(round_id, pending.step + 1))).first()
        return claimed is None

    def _open_round(self, book: Book, cmd: "OpenRound") -> OpenedRound:
        session, money, key = cmd.session, cmd.money, cmd.key
        bet = cmd.bet
        round_id = bet.round_id
        receipt = self._rounds.bet(book, bet)
        if session.login_id and not receipt.replayed:  # refused: the bet is undone with the command
            self._players.check_login(book, session.operator_id, session.player_id, session.login_id, utcnow())
        if receipt.replayed:
            round_ = book.get(rounds, (session.operator_id, round_id), lock=False)
            so_far = self._round_events(book, session, round_id)
            if round_ is not None and round_["status"] == OPEN and not self._pending(so_far):
                # Whether that round wins is not known yet: retry with the same key to find out.
                raise DomainError(Reason.REQUEST_IN_PROGRESS, f"the bet with key {quote(key)} is still in play",
                                  State.UNKNOWN)
            row = self._session_row(book, session)
            # New events of this session (seq never goes backwards on a stream, and Resume finds them).
            # Stored without the round id, so a later replay copies the originals, not these.
            copies = self._copies(row, so_far)
            self._append(book, session, row, None, copies)
            return OpenedRound(round_id, copies, replayed=True)
        row = self._session_row(book, session)
        seq, currency = row["last_seq"] + 1, money.currency
        events: list[PlayEvent] = [
            RoundOpened(seq, round_id, key),
            BetAccepted(seq + 1, round_id, receipt.transaction_id, money, Money(currency, receipt.balance),
                        Money(currency, receipt.bonus_balance), receipt.free_round,
                        # A bet that found no free round to use means none are left in this game.
                        self._free_rounds_left(book, session) if receipt.free_round else 0),
        ]
        self._append(book, session, row, round_id, events)
        return OpenedRound(round_id, events, replayed=False)

    def _settle(self, book: Book, cmd: "SettleRound") -> list[PlayEvent]:
        session, round_id, result = cmd.session, cmd.round_id, cmd.result
        now = utcnow()
        if result.win_minor:
            self._rounds.win(book, Win(session.operator_id, round_id, win_key(round_id), result.win_minor), now)
        self._rounds.close(book, session.operator_id, round_id, now)
        round_ = book.get(rounds, (session.operator_id, round_id))
        assert round_ is not None  # closed just above
        book.update(rounds, round_, provider_round_id=result.provider_round_id, result=result.result,
                    proof=records.encode(result.proof).decode())
        row = self._session_row(book, session)
        seq = row["last_seq"] + 1
        events = [Outcome(seq, round_id, result.result, Money(cmd.money.currency, result.win_minor), result.proof),
                  self._settled(book, session, round_id, result.win_minor, seq + 1)]
        self._append(book, session, row, round_id, events)
        return events

    def _await_action(self, book: Book, cmd: "AwaitAction") -> list[PlayEvent]:
        session, result = cmd.session, cmd.result
        cash = postings.wallet(book, session.operator_id, session.player_id, session.currency).cash
        round_ = book.get(rounds, (session.operator_id, cmd.round_id), lock=False)
        assert round_ is not None  # opened by this round's bet
        row = self._session_row(book, session)
        events: list[PlayEvent] = [ActionRequired(
            row["last_seq"] + 1, cmd.round_id, result.step,
            tuple(ActionChoice(o.action, o.extra_stake_minor) for o in result.actions), result.result[:256],
            Money(session.currency, round_["bet_amount"]), cmd.key, Money(session.currency, cash))]
        self._append(book, session, row, cmd.round_id, events)
        return events

    def _take_action(self, book: Book, cmd: "TakeAction") -> TakenAction:
        session, round_id, op = cmd.session, cmd.round_id, cmd.session.operator_id
        request_fp = idempotency.fingerprint("act", session.game_session_id, round_id, cmd.action)
        stored = idempotency.lookup(book, op, cmd.key, request_fp)
        round_ = book.get(rounds, (op, round_id))
        if round_ is None or (round_["game_session_id"], round_["player_id"]) != (
                session.game_session_id, session.player_id):
            raise DomainError(Reason.ROUND_NOT_FOUND, f"no round {quote(round_id)} in this game session")
        first = min(self._stakes(book, op, round_id), key=lambda r: r["created_at"])["amount"]
        so_far = self._round_events(book, session, round_id)
        if stored is not None:
            claimed = records.decode(stored, ActionReceipt)
            answer = self._step_answer(so_far, claimed.step)
            extra = sum(b["amount"] for b in self._stakes(book, op, round_id)
                        if b["bet_id"] == stake_key(round_id, claimed.step))
            if answer or round_["status"] != OPEN:
                # Answered (or ended by the reconciler): copies of what the step yielded, nothing moves.
                row = self._session_row(book, session)
                copies = self._copies(row, answer)
                self._append(book, session, row, None, copies)
                return TakenAction(round_id, claimed.step, extra, first, round_["bet_amount"], copies, answered=True)
            # Claimed, but the studio's answer never came: ask it again for the same step (no second debit).
            return TakenAction(round_id, claimed.step, extra, first, round_["bet_amount"], [], answered=False)
        if round_["status"] != OPEN:
            raise DomainError(Reason.ROUND_CLOSED, f"round {quote(round_id)} is {round_['status']}")
        pending = self._pending(so_far)
        if pending is None:
            raise DomainError(Reason.ROUND_NOT_AWAITING_ACTION, f"round {quote(round_id)} is not waiting for an "
                              "action (its last step is still in play: repeat that step's action to learn how it "
                              "ended)")
        step = pending.step + 1
        if book.get(idempotency_keys, (op, step_key(round_id, step))) is not None:
            raise DomainError(Reason.ROUND_NOT_AWAITING_ACTION, f"step {step} of round {quote(round_id)} is being "
                              "played under another idempotency key: repeat that one")
        choice = next((c for c in pending.actions if c.action == cmd.action), None)
        if choice is None:
            raise DomainError(Reason.ACTION_NOT_ALLOWED, f"{cmd.action} is not allowed now; the round takes "
                              f"{', '.join(c.action for c in pending.actions)}")
        row = self._session_row(book, session)
        events: list[PlayEvent] = []
        if choice.extra_stake:
            money = Money(session.currency, choice.extra_stake)
            receipt = self._rounds.bet(book, Bet(
                operator_id=op, player_id=session.player_id, currency=session.currency, round_id=round_id,
                game_id=session.game_id, bet_id=stake_key(round_id, step), amount=choice.extra_stake,
                game_session_id=session.game_session_id))
            if session.login_id:
                self._players.check_login(book, op, session.player_id, session.login_id, utcnow())
            events.append(BetAccepted(row["last_seq"] + 1, round_id, receipt.transaction_id, money,
                                      Money(session.currency, receipt.balance),
                                      Money(session.currency, receipt.bonus_balance), False, 0))
        claim = records.encode(ActionReceipt(round_id, step, cmd.action))
        idempotency.record(book, op, cmd.key, request_fp, claim)
        idempotency.record(book, op, step_key(round_id, step), idempotency.fingerprint("step", cmd.key), claim)
        self._append(book, session, row, round_id, events)
        return TakenAction(round_id, step, choice.extra_stake, first, round_["bet_amount"], events, answered=False)

    def _step_done(self, book: Book, cmd: "StepDone") -> list[PlayEvent]:
        """Append the step's answer, unless another actor (a repeated act, the reconciler) already did."""
        session = cmd.session
        round_ = book.get(rounds, (session.operator_id, cmd.round_id))
        answered = self._step_answer(self._round_events(book, session, cmd.round_id), cmd.step)
        if round_ is None or round_["status"] != OPEN or answered:
            row = self._session_row(book, session)
            copies = self._copies(row, answered)
            self._append(book, session, row, None, copies)
            return copies
        if cmd.result.finished:
            return self._settle(book, SettleRound(session, cmd.round_id, cmd.money, cmd.result))
        return self._await_action(book, AwaitAction(session, cmd.round_id, cmd.key, cmd.result))

    def _act_refused(self, book: Book, cmd: "ActRefused") -> PlayError:
        """An act refused before its step was claimed: nothing changed (logged without the round, so a
        replay of the round's steps never copies it)."""
        session = cmd.session
        cash = postings.wallet(book, session.operator_id, session.player_id, session.currency).cash
        row = self._session_row(book, session)
        event = self._refused(session, cmd.key, cmd.round_id, cmd.error, cash, row["last_seq"] + 1)
        self._append(book, session, row, None, [event])
        return event

    @staticmethod
    def _stakes(book: Book, operator_id: str, round_id: str) -> list[Row]:
        return list(book.group(bets, ROUND, (operator_id, round_id), lock=False))

    @staticmethod
    def _pending(events: list[PlayEvent]) -> ActionRequired | None:
        """The action the round waits for: its last event, if that asks for one."""
        return events[-1] if events and isinstance(events[-1], ActionRequired) else None

    @staticmethod
    def _step_answer(events: list[PlayEvent], step: int) -> list[PlayEvent]:
        """The events a step yielded once the studio answered it (its stake's BetAccepted included), or []
        while it has no answer: those after the ActionRequired it took, up to the next ActionRequired, or
        to the end once the round settled or was refunded."""
        start = next((i for i, e in enumerate(events) if isinstance(e, ActionRequired) and e.step == step - 1), None)
        if start is None:
            return []
        after = events[start + 1:]
        for i, event in enumerate(after):
            if isinstance(event, ActionRequired) or isinstance(event, Settled):
                return after[:i + 1]
            if isinstance(event, PlayError) and event.state != State.UNKNOWN:
                return after[:i + 1]
        return []

    @staticmethod
    def _copies(row: Row, originals: list[PlayEvent]) -> list[PlayEvent]:
        """New events of the session repeating originals (seq never goes backwards on a stream); stored
        without the round id, so a later replay copies the originals, not these."""
        return [replace(original, seq=seq, replay_of_seq=original.replay_of_seq or original.seq)
                for seq, original in enumerate(originals, start=row["last_seq"] + 1)]

    def _refund(self, book: Book, cmd: "RefundRound") -> list[PlayEvent]:
        session, round_id, key = cmd.session, cmd.round_id, cmd.key
        now = utcnow()
        receipt = self._rounds.rollback(book, cmd.rollback, now)
        self._rounds.close(book, session.operator_id, round_id, now)
        # The debit was refunded: net, nothing applied; retry with a new key.
        err = DomainError(cmd.error.reason, cmd.error.message, State.NOT_APPLIED)
        row = self._session_row(book, session)
        events: list[PlayEvent] = [self._refused(session, key, round_id, err, receipt.balance, row["last_seq"] + 1)]
        self._append(book, session, row, round_id, events)
        return events

    def _outcome_unknown(self, book: Book, cmd: "RoundUnknown") -> list[PlayEvent]:
        session = cmd.session
        cash = postings.wallet(book, session.operator_id, session.player_id, session.currency).cash
        row = self._session_row(book, session)
        events: list[PlayEvent] = [self._refused(session, cmd.key, cmd.round_id, cmd.error, cash, row["last_seq"] + 1)]
        self._append(book, session, row, cmd.round_id, events)
        return events

    def _bet_refused(self, book: Book, cmd: "BetRefused") -> PlayError:
        """A bet refused before any round opened."""
        session = cmd.session
        cash = postings.wallet(book, session.operator_id, session.player_id, session.currency).cash
        row = self._session_row(book, session)
        event = self._refused(session, cmd.key, "", cmd.error, cash, row["last_seq"] + 1)
        self._append(book, session, row, None, [event])
        return event

    def reconciled(self, book: Book, operator_id: str, round_id: str, refunded: bool) -> None:
        """The reconciler closed a round (its hub died or its provider never answered): give the round's
        game session the event Play would have ended it with, in the reconciler's command, so a
        resumed stream or a replayed bet learns how it ended. Rounds a studio opened have no session."""
        round_ = book.get(rounds, (operator_id, round_id), lock=False)
        if round_ is None or round_["game_session_id"] is None:
            return
        row = book.get(game_sessions, (round_["game_session_id"],))
        if row is None:
            return
        session = GameSession(row["game_session_id"], operator_id, row["player_id"], row["game_id"],
                              row["currency"], row["expires_at"])
        if any(isinstance(e, Settled) or (isinstance(e, PlayError) and e.state != State.UNKNOWN)
               for e in self._round_events(book, session, round_id)):
            return  # Play, or another reconciler, already ended it (an UNKNOWN error left it open)
        seq = row["last_seq"] + 1
        event: PlayEvent
        if refunded:
            placed = sorted(book.group(bets, ROUND, (operator_id, round_id), lock=False), key=lambda r: r["created_at"])
            err = DomainError(Reason.PROVIDER_UNAVAILABLE, "the provider never finished this round; the "
                              "reconciler refunded the bet")
            event = self._refused(session, placed[0]["bet_id"] if placed else "", round_id, err,
                                  postings.wallet(book, operator_id, session.player_id, session.currency).cash, seq)
        else:
            event = self._settled(book, session, round_id, round_["win_amount"], seq)
        self._append(book, session, row, round_id, [event])

    @staticmethod
    def _settled(book: Book, session: GameSession, round_id: str, win_minor: int, seq: int) -> Settled:
        """The event that ends a round that stood: its win, its transactions and the wallet after it."""
        wallet = postings.wallet(book, session.operator_id, session.player_id, session.currency)
        currency = session.currency
        return Settled(seq, round_id, tuple(transaction_ids(book, session.operator_id, round_id)),
                       Money(currency, win_minor), Money(currency, wallet.cash), Money(currency, wallet.bonus))

    @staticmethod
    def _refused(session: GameSession, key: str, round_id: str, err: DomainError, cash: int, seq: int) -> PlayError:
        return PlayError(seq, key, round_id, err.reason, err.message, err.state, Money(session.currency, cash))

    @staticmethod
    def _free_rounds_left(book: Book, session: GameSession) -> int:
        return free_rounds.left(book, session.operator_id, session.player_id, session.game_id, session.currency,
                                utcnow())

    @staticmethod
    def _session_row(book: Book, session: GameSession) -> Row:
        """The session's row, locked: appends to one session's log take turns. Events appended next are
        numbered from its last_seq + 1."""
        row = book.get(game_sessions, (session.game_session_id,))
        if row is None or row["operator_id"] != session.operator_id:
            raise LookupError(f"game session {session.game_session_id} vanished")
        return row

    @staticmethod
    def _append(book: Book, session: GameSession, row: Row, round_id: str | None, events: list[PlayEvent]) -> None:
        """Store events numbered on from the session row's last_seq, in the command's batch."""
        if not events:
            return
        assert events[0].seq == row["last_seq"] + 1 and events[-1].seq == row["last_seq"] + len(events), events
        now = utcnow()
        for event in events:
            book.insert(play_events, {
                "game_session_id": session.game_session_id, "seq": event.seq, "operator_id": session.operator_id,
                "round_id": round_id, "payload": records.encode(event), "created_at": now})
        book.update(game_sessions, row, last_seq=events[-1].seq)

    @staticmethod
    def _round_events(book: Book, session: GameSession, round_id: str) -> list[PlayEvent]:
        """The round's original events (replay copies carry no round id)."""
        found = book.group(play_events, ROUND, (session.operator_id, round_id), lock=False)
        return [records.decode(r["payload"], PlayEvent) for r in sorted(found, key=lambda r: r["seq"])]

    # -- rounds --------------------------------------------------------------------------------------

    async def get_round(self, operator_id: str, round_id: str) -> RoundView:
        def _read(uow: UnitOfWork):  # type: ignore[no-untyped-def]
            row = uow.conn.execute(select(rounds).where(
                rounds.c.round_id == round_id, rounds.c.operator_id == operator_id)).one_or_none()
            if row is None:
                return None, [], {}
            moves = list(uow.conn.execute(select(ledger_transactions).where(
                ledger_transactions.c.round_id == round_id, ledger_transactions.c.operator_id == operator_id,
            ).order_by(ledger_transactions.c.seq)))
            # A bet's stake as placed (a free round's is the operator's money, not a change of the wallet).
            stakes = dict(uow.conn.execute(select(bets.c.bet_id, bets.c.amount).where(
                bets.c.operator_id == operator_id, bets.c.round_id == round_id)).all())
            return row, moves, stakes

        row, moves, stakes = await self._db.run(_read)
        if row is None:
            raise DomainError(Reason.ROUND_NOT_FOUND, f"no round {quote(round_id)}")
        entries = tuple(RoundEntry(
            ENTRY_KINDS[m.kind], Money(row.currency, stakes.get(m.idempotency_key, 0) if m.kind == "bet"
                                       else m.amount + m.bonus_amount),
            m.idempotency_key, m.created_at, m.transaction_id) for m in moves if m.kind in ENTRY_KINDS)
        return RoundView(
            row.round_id, row.game_id, row.player_id, row.game_session_id or "", row.status,
            Money(row.currency, row.bet_amount), Money(row.currency, row.win_amount), row.result or "",
            records.decode(row.proof, Proof) if row.proof else None, tuple(m.transaction_id for m in moves),
            row.opened_at, row.closed_at, entries, await self._replay_url(row.game_id, round_id))

    async def _replay_url(self, game_id: str, round_id: str) -> str:
        """The studio's replay page of the round; empty when it offers none or its game is gone."""
        try:
            _, adapter = await self._catalog.game(game_id)
        except (DomainError, ProviderError):
            return ""
        inner = adapter.inner if isinstance(adapter, GuardedAdapter) else adapter
        url = inner.replay_url(round_id) if isinstance(inner, ReplayAdapter) else None
        return (url or "")[:512]
