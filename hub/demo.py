"""Demo play: fun money, no wallet, no ledger.

A demo game session lives in the memory of the hub process that launched it: its fun balance, its event
log and the bets it has seen. Nothing reaches the database (no game session row, round, ledger
transaction or idempotency record), so a demo session ends with its process and its streams must reach
that process. The studio plays real rounds, at the operator's RTP variant: that is what a demo shows.
DemoSessions answers a Play stream as hub.play.Play does (opened, closed, resume, bet), with the same
events: BetAccepted and Settled carry no transaction ids, and the balance is the fun balance.
"""

import asyncio
import secrets
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from datetime import timedelta

import structlog

from adapters.base import LaunchInput, PlayInput, ProviderError
from adapters.registry import offers_demo_play
from hub.catalog import Catalog
from hub.clock import utcnow
from hub.errors import DomainError, Reason, State, quote
from hub.events import (
    BetAccepted,
    Outcome,
    PlayError,
    PlayEvent,
    RoundOpened,
    SessionClosed,
    SessionOpened,
    Settled,
)
from hub.ledger import idempotency
from hub.money import Money, exponent, positive_amount
from hub.play import GameSession, LaunchedGame, layout_params, provider_reason
from hub.players import Players

log = structlog.get_logger(__name__)
# Memory is bounded: at most MAX_SESSIONS sessions per process (expired ones are dropped first, then a
# demo launch is refused with OVERLOADED), each remembering its last KEPT_EVENTS events (for Resume) and
# its last KEPT_BETS bets (a repeated key replays; an older key plays a new round).
MAX_SESSIONS = 2_000
KEPT_EVENTS = 100
KEPT_BETS = 50
FUN_MAX_BETS = 100  # a demo starts with this many of the game's largest bets
DEMO_NAMESPACE = uuid.UUID("0d3c5e0a-7f51-4c6e-9a1b-2e8f4d6b7c90")


@dataclass
class _Demo:
    session: GameSession
    anonymous: bool  # launched without a player session token
    balance: int
    last_seq: int = 0
    events: deque[PlayEvent] = field(default_factory=lambda: deque(maxlen=KEPT_EVENTS))
    # key -> ((amount, layout), originals)
    bets: OrderedDict[str, tuple[tuple[int, str], list[PlayEvent]]] = field(default_factory=OrderedDict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def append(self, events: list[PlayEvent]) -> list[PlayEvent]:
        numbered = [replace(e, seq=self.last_seq + i) for i, e in enumerate(events, start=1)]
        self.last_seq += len(numbered)
        self.events.extend(numbered)
        return numbered


class DemoSessions:
    def __init__(self, catalog: Catalog, players: Players, ttl: timedelta):
        self._catalog = catalog
        self._players = players
        self._ttl = ttl
        self._sessions: dict[str, _Demo] = {}

    async def launch(self, operator_id: str, token: str, game_id: str, currency: str, client_seed: str,
                     country: str = "") -> LaunchedGame:
        """The same checks as a real launch (the operator's settings and the studio's health included),
        but a player session is optional: an anonymous visitor may try a game."""
        player_id = (await self._players.authenticate(operator_id, token)).player_id if token else f"demo-{uuid.uuid4()}"
        exponent(currency)
        game, adapter, variant = await self._catalog.offer(operator_id, game_id, country)
        if not offers_demo_play(adapter):
            raise DomainError(Reason.DEMO_NOT_AVAILABLE, f"{game_id} has no demo: its studio moves real money "
                              "through the hub's wallet; launch it without demo")
        if currency not in game.info.currencies:
            raise DomainError(Reason.CURRENCY_MISMATCH, f"{game_id} does not accept {currency}")
        if len(client_seed) > 128:
            raise DomainError(Reason.INVALID_ARGUMENT, "client_seed must be at most 128 characters")
        self._make_room()
        session_id = str(uuid.uuid4())
        client_seed = client_seed or secrets.token_hex(16)
        try:
            launched = await adapter.launch(LaunchInput(
                game_session_id=session_id, provider_game_id=game.info.provider_game_id, operator_id=operator_id,
                player_id=player_id, currency=currency, client_seed=client_seed, rtp_variant=variant, demo=True))
        except ProviderError as exc:
            raise DomainError(provider_reason(exc), f"provider {game.provider}: {exc}") from None
        expires_at = utcnow() + self._ttl
        limit = next(lim for lim in game.info.bet_limits if lim.currency == currency)
        balance = limit.max_minor * FUN_MAX_BETS
        session = GameSession(session_id, operator_id, player_id, game_id, currency, expires_at, variant, demo=True)
        self._sessions[session_id] = _Demo(session, anonymous=not token, balance=balance)
        log.info("demo.launched", game_session=session_id, game=game_id)
        return LaunchedGame(session_id, launched.launch_url, launched.server_seed_hash, expires_at,
                            demo_balance=Money(currency, balance))

    def _make_room(self) -> None:
        now = utcnow()
        for session_id in [s for s, d in self._sessions.items() if d.session.expires_at <= now]:
            del self._sessions[session_id]
        if len(self._sessions) >= MAX_SESSIONS:
            raise DomainError(Reason.OVERLOADED, "too many demo sessions on this hub process; retry later")

    def holds(self, operator_id: str, game_session_id: str) -> bool:
        demo = self._sessions.get(game_session_id)
        return demo is not None and demo.session.operator_id == operator_id

    async def attach(self, operator_id: str, game_session_id: str, token: str) -> GameSession:
        """A demo launched for a player needs that player's token; an anonymous one, its id alone (a
        random uuid, known only to whoever launched it)."""
        demo = self._sessions.get(game_session_id)
        if demo is None or demo.session.operator_id != operator_id:
            raise DomainError(Reason.GAME_SESSION_NOT_FOUND, f"no game session {quote(game_session_id)}")
        if not demo.anonymous and (await self._players.authenticate(operator_id, token)).player_id != demo.session.player_id:
            raise DomainError(Reason.GAME_SESSION_NOT_FOUND, f"no game session {quote(game_session_id)}")
        if demo.session.expires_at <= utcnow():
            raise DomainError(Reason.GAME_SESSION_CLOSED, "game session expired; launch the game again")
        return demo.session

    def _demo(self, session: GameSession) -> _Demo:
        demo = self._sessions.get(session.game_session_id)
        if demo is None:
            raise DomainError(Reason.GAME_SESSION_CLOSED, "demo session expired; launch the game again")
        return demo

    def _fun(self, demo: _Demo, amount: int) -> Money:
        return Money(demo.session.currency, amount)

    async def opened(self, session: GameSession) -> SessionOpened:
        demo = self._demo(session)
        async with demo.lock:
            event = SessionOpened(0, session.game_session_id, session.game_id, self._fun(demo, demo.balance),
                                  self._fun(demo, 0), 0)
            return demo.append([event])[0]  # type: ignore[return-value]

    async def closed(self, session: GameSession) -> SessionClosed:
        demo = self._demo(session)
        async with demo.lock:
            return demo.append([SessionClosed(0, session.game_session_id)])[0]  # type: ignore[return-value]

    async def resume(self, session: GameSession, last_seen_seq: int):  # type: ignore[no-untyped-def]
        """The events after last_seen_seq that this session still keeps (its last KEPT_EVENTS), then
        SessionOpened.
        Demo rounds finish inside bet(), so none is ever in play here."""
        demo = self._demo(session)
        if last_seen_seq > demo.last_seq:
            raise DomainError(Reason.SEQ_OUT_OF_RANGE, f"last_seen_seq {last_seen_seq} is beyond this game "
                              f"session's last seq {demo.last_seq}")
        backlog = [e for e in demo.events if e.seq > last_seen_seq]
        for event in backlog:
            yield event
        yield await self.opened(session)

    async def bet(self, session: GameSession, amount: Money, key: str, layout: str = ""):  # type: ignore[no-untyped-def]
        demo = self._demo(session)
        async with demo.lock:
            events = await self._bet(demo, amount, key, layout)
        for event in events:
            yield event

    async def act(self, session: GameSession, round_id: str, action: str, key: str):  # type: ignore[no-untyped-def]
        """Demo rounds are single-step (a multi-step game's bet is refused: PROVIDER_REJECTED), so no demo
        round ever waits for an action."""
        demo = self._demo(session)
        async with demo.lock:
            err = DomainError(Reason.ROUND_NOT_AWAITING_ACTION, "demo sessions play single-step games only; "
                              "play blackjack with real money")
            events = demo.append([PlayError(0, key, round_id, err.reason, err.message, err.state,
                                            self._fun(demo, demo.balance))])
        for event in events:
            yield event

    async def _bet(self, demo: _Demo, amount: Money, key: str, layout: str) -> list[PlayEvent]:
        session = demo.session
        try:
            money = positive_amount(amount.currency, amount.amount_minor)
            idempotency.validate_key(key)
            if key in demo.bets:
                placed, originals = demo.bets[key]
                if placed != (money.amount_minor, layout) or money.currency != session.currency:
                    raise DomainError(Reason.IDEMPOTENCY_KEY_REUSED, f"key {quote(key)} was used for another bet")
                return demo.append([replace(e, replay_of_seq=e.seq) for e in originals])
            if money.currency != session.currency:
                raise DomainError(Reason.CURRENCY_MISMATCH,
                                  f"this game session plays in {session.currency}, not {money.currency}")
            game, adapter = await self._catalog.game(session.game_id)
            game.check_bet(money.currency, money.amount_minor)
            if money.amount_minor > demo.balance:
                raise DomainError(Reason.INSUFFICIENT_FUNDS, "the demo's fun balance is too low; launch again")
        except DomainError as err:
            return demo.append([PlayError(0, key, "", err.reason, err.message, err.state,
                                          self._fun(demo, demo.balance))])
        round_id = str(uuid.uuid5(DEMO_NAMESPACE, f"{session.game_session_id}:{key}"))
        demo.balance -= money.amount_minor
        events: list[PlayEvent] = [
            RoundOpened(0, round_id, key),
            BetAccepted(0, round_id, "", money, self._fun(demo, demo.balance), self._fun(demo, 0), False, 0)]
        try:
            result = await adapter.play(PlayInput(
                round_id=round_id, game_session_id=session.game_session_id,
                provider_game_id=game.info.provider_game_id, operator_id=session.operator_id,
                player_id=session.player_id, currency=money.currency, bet_minor=money.amount_minor,
                rtp_variant=session.rtp_variant, params=layout_params(layout)))
            game.check_win(money.amount_minor, result.win_minor)
        except ProviderError as exc:
            demo.balance += money.amount_minor  # the fun stake comes back, as a real one would
            events.append(PlayError(0, key, round_id, provider_reason(exc), f"provider {game.provider}: {exc}; "
                                    "the bet was rolled back", State.NOT_APPLIED, self._fun(demo, demo.balance)))
        else:
            demo.balance += result.win_minor
            win = self._fun(demo, result.win_minor)
            events += [Outcome(0, round_id, result.result, win, result.proof),
                       Settled(0, round_id, (), win, self._fun(demo, demo.balance), self._fun(demo, 0))]
        originals = demo.append(events)
        demo.bets[key] = ((money.amount_minor, layout), originals)
        while len(demo.bets) > KEPT_BETS:
            demo.bets.popitem(last=False)
        return originals
