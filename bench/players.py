"""Players and Play streams as an operator's service drives them through the hub's gRPC API."""

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import grpc

from bench.load import RoundRefused
from bench.procs import GAME
from casinohub.v1 import game_service_pb2 as pb
from tests.e2e.play_client import PlayStream, launch
from tests.support import Client

T = TypeVar("T")
BET = 100  # 1.00 USD
RETRIED = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)  # OVERLOADED; a worker starting


async def retrying(call: Callable[[], Awaitable[T]], attempts: int = 30) -> T:
    """Set-up calls (untimed) retried while the hub pushes back."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            if err.code() not in RETRIED or attempt == attempts:
                raise
            await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


async def bounded(calls: list[Callable[[], Awaitable[T]]], at_once: int) -> list[T]:
    """Run the calls, at most `at_once` at a time, each retried while the hub pushes back."""
    gate = asyncio.Semaphore(at_once)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await retrying(call)

    return await asyncio.gather(*(one(call) for call in calls))


@dataclass
class Player:
    """A registered, logged-in, funded player, and what its streams' events said happened to its money."""

    player_id: str
    token: str
    funded: int
    accepted: int = 0  # bets debited (BetAccepted)
    won: int = 0  # wins credited (Settled.win)
    refunded: int = 0  # bets refunded (an error event after BetAccepted)
    uncertain: bool = False  # a stream died with one of its rounds in flight: the outcome is unknown here

    @property
    def expected_balance(self) -> int:
        return self.funded - self.accepted * BET + self.won + self.refunded


async def new_players(clients: list[Client], count: int, funding: int, at_once: int = 16) -> list[Player]:
    """Registered (argon2: slow on purpose), logged in and funded through the API, spread over the clients."""
    owners = itertools.islice(itertools.cycle(clients), count)
    created = await bounded([partial(client.new_player, deposit=funding) for client in owners], at_once)
    return [Player(player_id, token, funding) for player_id, token in created]


class PlaySession:
    """One Play stream on its own game session: round() bets 1.00 and reads its events up to `settled`."""

    def __init__(self, client: Client, player: Player, game_session_id: str, key_prefix: str, timeout: float):
        self.player = player
        self.game_session_id = game_session_id
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.stream: PlayStream | None = None
        self.in_flight = False  # a bet sent whose round has not ended yet
        self.bets = 0  # numbers this stream's keys: a key used twice would replay its round, not bet again
        self._client = client

    async def open(self) -> None:
        self.stream = PlayStream(self._client)
        self.stream.open(self.game_session_id, self.player.token)
        first = await self._next()
        if first.WhichOneof("event") != "session_opened":
            raise RuntimeError(f"stream opened with {first.WhichOneof('event')}, not session_opened")

    async def _next(self) -> pb.PlayResponse:
        assert self.stream is not None
        event = await self.stream.next(timeout=self.timeout)
        if event is grpc.aio.EOF:
            raise ConnectionError("the hub ended the stream")
        return event

    async def round(self, number: int) -> None:
        assert self.stream is not None
        self.bets += 1
        key = f"{self.key_prefix}-{self.bets}"
        self.in_flight = True
        self.stream.bet(BET, key)
        accepted = False
        while True:
            event = await self._next()
            kind = event.WhichOneof("event")
            if kind == "bet_accepted":
                accepted = True
                self.player.accepted += 1
            elif kind == "settled":
                self.player.won += event.settled.win.amount_minor
                self.in_flight = False
                return
            elif kind == "error" and event.error.idempotency_key == key:
                if accepted:  # the round was rolled back: the bet refunded
                    self.player.refunded += BET
                self.in_flight = False
                raise RoundRefused(event.error.error.reason)

    async def close(self) -> None:
        if self.in_flight:
            self.player.uncertain = True
        if self.stream is not None:
            await self.stream.close()


async def open_sessions(clients: list[Client], players: list[Player], count: int, key_prefix: str,
                        timeout: float, at_once: int = 64) -> list[PlaySession]:
    """`count` streams, each on a game session of its own, players and clients taken in turn."""
    pick = itertools.cycle(clients)
    owners = [(next(pick), players[i % len(players)]) for i in range(count)]
    session_ids = await bounded([partial(launch, c, p.token, GAME) for c, p in owners], at_once)
    sessions = [PlaySession(c, p, session_id, f"{key_prefix}-{i}", timeout)
                for i, ((c, p), session_id) in enumerate(zip(owners, session_ids, strict=True))]
    await bounded([s.open for s in sessions], at_once)
    return sessions


async def check_balances(client: Client, players: list[Player]) -> tuple[list[str], int]:
    """Every player's balance, asked through the API, is what its events said; (problems, players not
    checked because a round of theirs was cut off mid-flight)."""
    problems = []
    unchecked = 0
    for player in players:
        if player.uncertain:
            unchecked += 1
            continue
        actual = await retrying(partial(client.balance, player.player_id))
        if actual != player.expected_balance:
            problems.append(f"player {player.player_id}: balance {actual}, events say {player.expected_balance} "
                            f"(funded {player.funded}, {player.accepted} bets, won {player.won}, "
                            f"refunded {player.refunded})")
    return problems, unchecked
