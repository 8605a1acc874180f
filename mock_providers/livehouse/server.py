"""The Livehouse studio as an aiohttp server with a table that runs on its own clock.

A live table does not wait for the hub: every `window_s` it opens a betting window, takes the seated
players' bets, closes the window, draws the result and settles every bet. Money never passes through the
studio's own books: each bet and each result is a signed call to the hub's ProviderWalletService (this
studio's key: an Ed25519 key id sk_... and its private key), the way push-style studios work.

Endpoints (JSON):
  GET  /v1/games                    the catalog (the hub's adapter; Authorization: Bearer <secret>)
  POST /v1/sessions                 seat a player: {game_session_id, player_id, currency} -> {stream_url,
                                    server_seed_hash} (the adapter, at LaunchGame; game_session_id is the
                                    session token the studio calls the hub wallet with)
  GET  /v1/health                   200 while the table runs
  POST /v1/bets                     the player's client at the table (the stream URL's page), with its
                                    session token: {session_token, amount_minor, colour: red|black} ->
                                    {round, transaction_id, balance_minor}; 409 BETTING_CLOSED between
                                    windows; the hub's refusal (its reason and the balance) otherwise

Rounds are numbered; round n's pocket is sha256("<table seed>:<n>") mod 37 (0 is green: red and black
lose), published with the seed's hash at seating. A red or black bet pays 2x (RTP 36/37). Settling, per
player: a Win on each winning bet, then EndRound, each retried until the hub answers (a late result is
still paid: the hub accepts wins after the session expired).
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field

import grpc
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from casinohub.provider.v1 import provider_wallet_service_pb2 as wallet_pb, provider_wallet_service_pb2_grpc
from casinohub.v1 import common_pb2

DEFAULT_SECRET = "livehouse-sandbox-secret"
GAME_ID = "red-or-black"
RED = frozenset({1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36})
GAMES = [{"game_id": GAME_ID, "name": "Red or Black Live", "game_type": "live", "rtp_basis_points": 9730,
          "max_win_multiplier": 2, "names": {"de": "Rot oder Schwarz Live", "ja": "レッド・オア・ブラック ライブ"},
          "bet_limits": {"USD": [10, 100_000], "EUR": [10, 100_000], "BTC": [1_000, 1_000_000]}}]
SERVICE = "/casinohub.provider.v1.ProviderWalletService/"
SETTLE_ATTEMPTS = 20
TABLE = web.AppKey("table", "Table")
SECRET = web.AppKey("secret", str)


def colour_of(pocket: int) -> str:
    return "green" if pocket == 0 else "red" if pocket in RED else "black"


@dataclass
class Seat:
    game_session_id: str
    player_id: str
    currency: str


@dataclass
class PlacedBet:
    seat: Seat
    transaction_id: str
    amount_minor: int
    colour: str


@dataclass
class Table:
    """The table's clock, its seated players and the open round's bets."""

    hub: str  # the hub's gRPC address
    key_id: str
    private_key: Ed25519PrivateKey
    window_s: float
    seed: str = field(default_factory=lambda: secrets.token_hex(16))
    round_no: int = 0
    betting_open: bool = False
    seats: dict[str, Seat] = field(default_factory=dict)
    bets: list[PlacedBet] = field(default_factory=list)
    results: dict[int, int] = field(default_factory=dict)  # round -> pocket, for GET /v1/rounds
    settled: int = 0  # bets settled at the hub, for tests
    in_flight: int = 0  # bets the hub is deciding: a round settles only once they are placed or voided
    # Fault knobs: send every result twice (the hub must pay once), and send results this late (after the
    # next window opened, or the player's session expired: the hub must still pay).
    duplicate_results: bool = False
    result_delay_s: float = 0.0
    _settling: set[asyncio.Task[None]] = field(default_factory=set)
    channel: grpc.aio.Channel | None = None

    @property
    def seed_hash(self) -> str:
        return hashlib.sha256(self.seed.encode()).hexdigest()

    def pocket(self, round_no: int) -> int:
        return int(hashlib.sha256(f"{self.seed}:{round_no}".encode()).hexdigest(), 16) % 37

    async def call(self, name: str, request: object) -> object:
        """One signed ProviderWalletService call (the hub's README, "Studio wallet API")."""
        if self.channel is None:
            self.channel = grpc.aio.insecure_channel(self.hub)
        body = request.SerializeToString()  # type: ignore[attr-defined]
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
        digest = hashlib.sha256(body).hexdigest()
        signature = self.private_key.sign(f"casinohub-v1\n{SERVICE}{name}\n{timestamp}\n{nonce}\n{digest}".encode())
        metadata = (("x-casinohub-key-id", self.key_id), ("x-casinohub-timestamp", timestamp),
                    ("x-casinohub-nonce", nonce),
                    ("x-casinohub-signature", base64.urlsafe_b64encode(signature).decode()))
        stub = provider_wallet_service_pb2_grpc.ProviderWalletServiceStub(self.channel)
        return await getattr(stub, name)(request, metadata=metadata, timeout=10)

    async def run(self) -> None:
        """Open a window, wait, close it, draw, settle; forever."""
        while True:
            self.round_no += 1
            self.bets = []
            self.betting_open = True
            await asyncio.sleep(self.window_s)
            self.betting_open = False
            while self.in_flight:  # a bet taken as the window closed is voided first, never settled
                await asyncio.sleep(0.01)
            round_no, bets = self.round_no, self.bets
            pocket = self.pocket(round_no)
            self.results[round_no] = pocket
            by_seat: dict[str, list[PlacedBet]] = {}
            for bet in bets:
                by_seat.setdefault(bet.seat.game_session_id, []).append(bet)
            for seat_bets in by_seat.values():  # on their own: a late result does not hold up the clock
                task = asyncio.create_task(self._settle(round_no, pocket, seat_bets))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)

    async def _settle(self, round_no: int, pocket: int, bets: list[PlacedBet]) -> None:
        """One player's round: a Win for each winning bet, then EndRound (a round is per player at the hub)."""
        seat = bets[0].seat
        await asyncio.sleep(self.result_delay_s)
        for bet in bets:
            if colour_of(pocket) == bet.colour:
                await self._deliver("Win", wallet_pb.WinRequest(
                    session_token=seat.game_session_id, player_id=seat.player_id,
                    transaction_id=f"{bet.transaction_id}-win", round_id=str(round_no),
                    amount=common_pb2.Money(currency=seat.currency, amount_minor=2 * bet.amount_minor),
                    bet_transaction_id=bet.transaction_id))
        await self._deliver("EndRound", wallet_pb.EndRoundRequest(
            session_token=seat.game_session_id, player_id=seat.player_id, round_id=str(round_no)))
        self.settled += len(bets)

    async def _deliver(self, name: str, request: object) -> None:
        """Send until the hub answers: the same transaction id each time, so the hub applies it once."""
        for attempt in range(SETTLE_ATTEMPTS):
            try:
                await self.call(name, request)
                if self.duplicate_results:
                    await self.call(name, request)  # the hub answers the stored answer, pays nothing more
                return
            except grpc.aio.AioRpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                      grpc.StatusCode.ABORTED):
                    return  # refused for good: nothing a retry would change
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))


def _authorized(request: web.Request) -> None:
    expected = f"Bearer {request.app[SECRET]}"
    if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
        raise web.HTTPUnauthorized(text='{"error": "UNAUTHORIZED"}', content_type="application/json")


async def _games(request: web.Request) -> web.Response:
    _authorized(request)
    return web.json_response({"games": GAMES})


async def _health(request: web.Request) -> web.Response:
    _authorized(request)
    return web.json_response({"ok": True, "round": request.app[TABLE].round_no})


async def _seat(request: web.Request) -> web.Response:
    _authorized(request)
    table = request.app[TABLE]
    data = await request.json()
    try:
        seat = Seat(str(data["game_session_id"]), str(data["player_id"]), str(data["currency"]))
    except (KeyError, TypeError):
        return web.json_response({"error": "INVALID_REQUEST"}, status=400)
    if seat.currency not in GAMES[0]["bet_limits"]:  # type: ignore[operator]
        return web.json_response({"error": "CURRENCY_NOT_SUPPORTED"}, status=400)
    table.seats[seat.game_session_id] = seat
    host = request.host
    return web.json_response({"stream_url": f"http://{host}/tables/{GAME_ID}?session={seat.game_session_id}",
                              "server_seed_hash": table.seed_hash})


async def _bet(request: web.Request) -> web.Response:
    table = request.app[TABLE]
    try:
        data = await request.json()
        seat = table.seats.get(str(data["session_token"]))
        amount, colour = int(data["amount_minor"]), str(data["colour"])
    except (KeyError, TypeError, ValueError):
        return web.json_response({"error": "INVALID_REQUEST"}, status=400)
    if seat is None:
        return web.json_response({"error": "SESSION_NOT_FOUND"}, status=404)
    if colour not in ("red", "black"):
        return web.json_response({"error": "INVALID_BET"}, status=400)
    if not table.betting_open:
        return web.json_response({"error": "BETTING_CLOSED"}, status=409)
    table.in_flight += 1
    try:
        return await _place(table, seat, amount, colour)
    finally:
        table.in_flight -= 1


async def _place(table: Table, seat: Seat, amount: int, colour: str) -> web.Response:
    round_no, bets, transaction_id = table.round_no, table.bets, f"lh-{uuid.uuid4().hex}"
    try:
        reply = await table.call("Bet", wallet_pb.BetRequest(
            session_token=seat.game_session_id, player_id=seat.player_id, transaction_id=transaction_id,
            round_id=str(round_no), amount=common_pb2.Money(currency=seat.currency, amount_minor=amount)))
    except grpc.aio.AioRpcError as err:
        return web.json_response(_refusal(err), status=402 if err.code() == grpc.StatusCode.FAILED_PRECONDITION
                                 else 502 if err.code() == grpc.StatusCode.UNAVAILABLE else 400)
    if round_no != table.round_no or not table.betting_open:
        # The window closed while the hub took the bet: refund it, as a real table voids a late bet, and
        # close the player's round unless an earlier bet of theirs in it will be settled (which closes it).
        alone = not any(b.seat.game_session_id == seat.game_session_id for b in bets)
        await table._deliver("Rollback", wallet_pb.RollbackRequest(
            session_token=seat.game_session_id, player_id=seat.player_id,
            transaction_id=f"{transaction_id}-void", bet_transaction_id=transaction_id, round_id=str(round_no),
            round_closed=alone))
        return web.json_response({"error": "BETTING_CLOSED"}, status=409)
    table.bets.append(PlacedBet(seat, transaction_id, amount, colour))
    return web.json_response({"round": round_no, "transaction_id": transaction_id,
                              "balance_minor": reply.balance.amount_minor})  # type: ignore[attr-defined]


def _refusal(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    info = error_details_pb2.ErrorInfo()
    if status is not None and status.details and status.details[0].Unpack(info):
        return {"error": info.reason, **{k: v for k, v in info.metadata.items() if k.endswith("_minor")}}
    return {"error": err.code().name}


async def _round(request: web.Request) -> web.Response:
    table = request.app[TABLE]
    try:
        pocket = table.results[int(request.match_info["round"])]
    except (KeyError, ValueError):
        return web.json_response({"error": "ROUND_NOT_FOUND"}, status=404)
    return web.json_response({"pocket": pocket, "colour": colour_of(pocket)})


async def start_server(host: str = "127.0.0.1", port: int = 0, secret: str = DEFAULT_SECRET, *, hub: str,
                       key_id: str, private_key_pem: bytes, window_s: float = 5.0) -> tuple[web.AppRunner, int]:
    """Listen and start the table's clock; returns the runner (cleanup() stops both) and the port."""
    private_key = load_pem_private_key(private_key_pem, None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ValueError("the studio key must be an Ed25519 private key")
    table = Table(hub, key_id, private_key, window_s)
    app = web.Application()
    app[SECRET] = secret
    app[TABLE] = table
    app.router.add_get("/v1/games", _games)
    app.router.add_get("/v1/health", _health)
    app.router.add_post("/v1/sessions", _seat)
    app.router.add_post("/v1/bets", _bet)
    app.router.add_get("/v1/rounds/{round}", _round)

    async def clock(app: web.Application) -> object:
        task = asyncio.create_task(table.run())
        yield
        for running in (task, *table._settling):
            running.cancel()
        for running in (task, *table._settling):
            with contextlib.suppress(asyncio.CancelledError):
                await running
        if table.channel is not None:
            await table.channel.close()

    app.cleanup_ctx.append(clock)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, runner.addresses[0][1]
