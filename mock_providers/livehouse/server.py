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
                                    session token: {session_token, amount_minor | amount, colour: red|black}
                                    -> {round, transaction_id, balance_minor}; 409 BETTING_CLOSED between
                                    windows; the hub's refusal (its reason and the balance) otherwise
  GET  /v1/rounds/<n>               the round's pocket and colour
  GET  /v1/record                   (bearer) what the studio believes it settled, per player and currency
  GET, POST /_admin/faults          (bearer) the fault knobs in force; POST sets any subset of them

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
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation

import grpc
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from casinohub.provider.v1 import provider_wallet_service_pb2 as wallet_pb, provider_wallet_service_pb2_grpc
from casinohub.v1 import common_pb2
from mock_providers.livehouse.faults import Faults
from mock_providers.process import listen

DEFAULT_SECRET = "livehouse-sandbox-secret"
GAME_ID = "red-or-black"
RED = frozenset({1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36})
GAMES = [{"game_id": GAME_ID, "name": "Red or Black Live", "game_type": "live", "rtp_basis_points": 9730,
          "max_win_multiplier": 2, "names": {"de": "Rot oder Schwarz Live", "ja": "レッド・オア・ブラック ライブ"},
          "bet_limits": {"USD": [10, 100_000], "EUR": [10, 100_000], "BTC": [1_000, 1_000_000]}}]
# The decimals of each currency the table takes, as the hub counts its minor units (ISO 4217; BTC in satoshi).
DECIMALS = {"USD": 2, "EUR": 2, "BTC": 8}
MAX_AMOUNT_CHARS = 32
SERVICE = "/casinohub.provider.v1.ProviderWalletService/"
SETTLE_ATTEMPTS = 20
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
             grpc.StatusCode.RESOURCE_EXHAUSTED)
TABLE = web.AppKey("table", "Table")
SECRET = web.AppKey("secret", str)


def colour_of(pocket: int) -> str:
    return "green" if pocket == 0 else "red" if pocket in RED else "black"


def minor_units(currency: str, amount: str) -> int | None:
    """A decimal amount of a currency ("0.00001" BTC) in the hub's minor units, or None when it is not a
    whole number of them (never rounded: a rounded stake is someone's money)."""
    try:
        value = Decimal(amount) * 10 ** DECIMALS[currency]
    except (InvalidOperation, KeyError):
        return None
    if not value.is_finite() or value != value.to_integral_value():
        return None
    return int(value)


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
    delivered: bool = True  # False: taken at the table, its Bet not yet sent (the win_before_bet fault)


@dataclass
class Record:
    """What the studio believes it settled with one player in one currency: only calls the hub took count."""

    bets: int = 0
    bet_minor: int = 0
    wins: int = 0
    win_minor: int = 0
    rollbacks: int = 0  # bets the hub took and the table refunded
    rollback_minor: int = 0
    voided: int = 0  # bets taken at the table that the hub never took (refused, or rolled back before them)

    @property
    def net_minor(self) -> int:
        return self.win_minor + self.rollback_minor - self.bet_minor


class Refused(Exception):
    """The hub refused a wallet call for good (its ErrorInfo reason and metadata)."""

    def __init__(self, err: grpc.aio.AioRpcError, reason: str, metadata: dict[str, str]):
        super().__init__(reason)
        self.err, self.reason, self.metadata = err, reason, metadata


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
    settled: int = 0  # bets whose round the table finished settling, for tests
    in_flight: int = 0  # bets the hub is deciding: a round settles only once they are placed or voided
    unsettled: Counter[int] = field(default_factory=Counter)  # round -> its players still being settled
    faults: Faults = field(default_factory=Faults)
    records: dict[tuple[str, str], Record] = field(default_factory=dict)  # (player, currency) -> record
    refusals: Counter[str] = field(default_factory=Counter)  # the hub's refusals of this studio's calls, by reason
    wallet_calls: int = 0
    _settling: set[asyncio.Task[None]] = field(default_factory=set)
    _stranger: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)  # signs bad signatures
    channel: grpc.aio.Channel | None = None

    @property
    def seed_hash(self) -> str:
        return hashlib.sha256(self.seed.encode()).hexdigest()

    def pocket(self, round_no: int) -> int:
        return int(hashlib.sha256(f"{self.seed}:{round_no}".encode()).hexdigest(), 16) % 37

    def record(self, seat: Seat) -> Record:
        return self.records.setdefault((seat.player_id, seat.currency), Record())

    # -- wallet calls --------------------------------------------------------------------------------------

    def signed(self, name: str, request: Message, key: Ed25519PrivateKey | None = None) -> tuple[tuple[str, str], ...]:
        """The four x-casinohub-* headers (the hub's README, "Studio wallet API")."""
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
        digest = hashlib.sha256(request.SerializeToString()).hexdigest()
        signature = (key or self.private_key).sign(
            f"casinohub-v1\n{SERVICE}{name}\n{timestamp}\n{nonce}\n{digest}".encode())
        return (("x-casinohub-key-id", self.key_id), ("x-casinohub-timestamp", timestamp),
                ("x-casinohub-nonce", nonce),
                ("x-casinohub-signature", base64.urlsafe_b64encode(signature).decode()))

    async def call(self, name: str, request: Message, metadata: tuple[tuple[str, str], ...] | None = None) -> Message:
        """One signed ProviderWalletService call, as sent (no faults)."""
        if self.channel is None:
            self.channel = grpc.aio.insecure_channel(self.hub)
        stub = provider_wallet_service_pb2_grpc.ProviderWalletServiceStub(self.channel)
        self.wallet_calls += 1
        reply: Message = await getattr(stub, name)(request, metadata=metadata or self.signed(name, request),
                                                   timeout=10)
        return reply

    def _refusal(self, err: grpc.aio.AioRpcError) -> Refused:
        reason, metadata = err.code().name, {}
        status = rpc_status.from_call(err)
        info = error_details_pb2.ErrorInfo()
        if status is not None and status.details and status.details[0].Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        self.refusals[reason] += 1
        return Refused(err, reason, metadata)

    async def _stray(self, name: str, request: Message, metadata: tuple[tuple[str, str], ...] | None = None) -> None:
        """A call the faults add; the hub's refusal of it is expected (and counted)."""
        try:
            await self.call(name, request, metadata)
        except grpc.aio.AioRpcError as err:
            self._refusal(err)

    async def send(self, name: str, request: Message) -> Message:
        """Deliver a call until the hub answers, under the fault knobs: the same transaction id each time, so
        the hub applies it once. Raises Refused when the hub refuses it for good."""
        faults = self.faults
        for attempt in range(SETTLE_ATTEMPTS):
            last = attempt == SETTLE_ATTEMPTS - 1  # the last attempt is sent plainly: every call gets an answer
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            if not last and faults.fires("error"):  # the studio's sender failed before sending
                await asyncio.sleep(min(0.02 * 2**attempt, 1.0))
                continue
            if not last and faults.fires("bad_signature"):
                await self._stray(name, request, self.signed(name, request, self._stranger))
            amount = getattr(request, "amount", None)
            wrong = not last and amount is not None and faults.fires("wrong_amount")
            if wrong:
                await self._stray(name, _with_amount(request, currency="EUR" if amount.currency != "EUR" else "USD"))
            metadata = self.signed(name, request)
            try:
                reply = await self.call(name, request, metadata)
            except grpc.aio.AioRpcError as err:
                refused = self._refusal(err)
                if err.code() not in RETRYABLE or last:
                    raise refused from None
                await asyncio.sleep(min(0.02 * 2**attempt, 1.0))
                continue
            if not last and faults.fires("replay"):
                await self._stray(name, request, metadata)
            if not last and faults.fires("duplicate"):
                await self._stray(name, request)  # the hub answers the stored answer, moves nothing more
            if wrong:
                await self._stray(name, _with_amount(request, amount_minor=amount.amount_minor + 1))
            if not last and faults.fires("timeout"):
                continue  # the answer is lost: send it again
            return reply
        raise AssertionError("unreachable: the last attempt answers or raises")

    async def deliver(self, name: str, request: Message) -> Message | None:
        """send(), a refusal only counted: a result the hub will not take is one a retry would not change."""
        try:
            return await self.send(name, request)
        except Refused:
            return None

    # -- the clock -----------------------------------------------------------------------------------------

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
            self.unsettled[round_no] = len(by_seat)
            for seat_bets in by_seat.values():  # on their own: a late result does not hold up the clock
                task = asyncio.create_task(self._settle_seat(round_no, pocket, seat_bets))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)

    def _win(self, round_no: int, bet: PlacedBet) -> wallet_pb.WinRequest:
        seat = bet.seat
        return wallet_pb.WinRequest(
            session_token=seat.game_session_id, player_id=seat.player_id, transaction_id=f"{bet.transaction_id}-win",
            round_id=str(round_no), amount=common_pb2.Money(currency=seat.currency, amount_minor=2 * bet.amount_minor),
            bet_transaction_id=bet.transaction_id)

    async def _settle_seat(self, round_no: int, pocket: int, bets: list[PlacedBet]) -> None:
        try:
            await self._settle(round_no, pocket, bets)
        finally:
            self.settled += len(bets)
            self.unsettled[round_no] -= 1

    async def _settle(self, round_no: int, pocket: int, bets: list[PlacedBet]) -> None:
        """One player's round: a Win for each winning bet, then EndRound (a round is per player at the hub)."""
        seat = bets[0].seat
        await asyncio.sleep(self.faults.result_delay_s)
        taken = []
        for bet in bets:
            if not bet.delivered:  # the win_before_bet fault: the result first, then the bet it pays
                if colour_of(pocket) == bet.colour:
                    await self.deliver("Win", self._win(round_no, bet))  # BET_NOT_FOUND: nothing paid
                try:
                    await self.send("Bet", _bet_request(bet, round_no))
                except Refused:
                    self.record(seat).voided += 1
                    continue
                self._took(bet)
            taken.append(bet)
        for bet in taken:
            if colour_of(pocket) == bet.colour and await self.deliver("Win", self._win(round_no, bet)) is not None:
                record = self.record(seat)
                record.wins += 1
                record.win_minor += 2 * bet.amount_minor
        if taken:
            await self.deliver("EndRound", wallet_pb.EndRoundRequest(
                session_token=seat.game_session_id, player_id=seat.player_id, round_id=str(round_no)))

    def _took(self, bet: PlacedBet) -> None:
        record = self.record(bet.seat)
        record.bets += 1
        record.bet_minor += bet.amount_minor


def _bet_request(bet: PlacedBet, round_no: int) -> wallet_pb.BetRequest:
    seat = bet.seat
    return wallet_pb.BetRequest(session_token=seat.game_session_id, player_id=seat.player_id,
                                transaction_id=bet.transaction_id, round_id=str(round_no),
                                amount=common_pb2.Money(currency=seat.currency, amount_minor=bet.amount_minor))


def _with_amount(request: Message, **change: object) -> Message:
    """A copy of a Bet or Win with its amount changed (the wrong_amount fault)."""
    wrong = type(request)()
    wrong.CopyFrom(request)
    for name, value in change.items():
        setattr(wrong.amount, name, value)  # type: ignore[attr-defined]
    return wrong


def _authorized(request: web.Request) -> None:
    expected = f"Bearer {request.app[SECRET]}"
    if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
        raise web.HTTPUnauthorized(text='{"error": "UNAUTHORIZED"}', content_type="application/json")


async def _latency(table: Table) -> None:
    if table.faults.latency_ms:
        await asyncio.sleep(table.faults.latency_ms / 1000)


async def _games(request: web.Request) -> web.Response:
    _authorized(request)
    await _latency(request.app[TABLE])
    return web.json_response({"games": GAMES})


async def _health(request: web.Request) -> web.Response:
    _authorized(request)
    return web.json_response({"ok": True, "round": request.app[TABLE].round_no})


async def _seat(request: web.Request) -> web.Response:
    _authorized(request)
    table = request.app[TABLE]
    await _latency(table)
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
    await _latency(table)
    if table.faults.fires("error"):
        return web.json_response({"error": "STUDIO_UNAVAILABLE"}, status=503)  # nothing done
    try:
        data = await request.json()
        seat = table.seats.get(str(data["session_token"]))
        colour = str(data["colour"])
        amount = _amount(data, seat)
    except (KeyError, TypeError, ValueError):
        return web.json_response({"error": "INVALID_REQUEST"}, status=400)
    if seat is None:
        return web.json_response({"error": "SESSION_NOT_FOUND"}, status=404)
    if amount is None:
        return web.json_response({"error": "AMOUNT_NOT_REPRESENTABLE"}, status=400)
    low, high = GAMES[0]["bet_limits"][seat.currency]  # type: ignore[index]
    if not low <= amount <= high:
        return web.json_response({"error": "BET_OUT_OF_LIMITS"}, status=400)
    if colour not in ("red", "black"):
        return web.json_response({"error": "INVALID_BET"}, status=400)
    if not table.betting_open:
        return web.json_response({"error": "BETTING_CLOSED"}, status=409)
    bet = PlacedBet(seat, f"lh-{uuid.uuid4().hex}", amount, colour)
    order = table.faults.out_of_order()
    if order == "win_before_bet":  # its Bet goes with the result, after the Win (see Table._settle)
        bet.delivered = False
        table.bets.append(bet)
        return web.json_response({"round": table.round_no, "transaction_id": bet.transaction_id, "pending": True},
                                 status=202)
    table.in_flight += 1
    try:
        if order == "rollback_before_bet":  # the refund overtakes its bet: the hub will refuse the bet
            await table.deliver("Rollback", wallet_pb.RollbackRequest(
                session_token=seat.game_session_id, player_id=seat.player_id,
                transaction_id=f"{bet.transaction_id}-void", bet_transaction_id=bet.transaction_id,
                round_id=str(table.round_no)))
        return await _place(table, bet)
    finally:
        table.in_flight -= 1


def _amount(data: dict, seat: Seat | None) -> int | None:  # type: ignore[type-arg]
    """The stake in the hub's minor units: `amount_minor`, or `amount` as the player's chips show it (a
    decimal string in the currency's units, converted exactly). None: not a whole number of minor units."""
    if "amount" not in data:
        return int(data["amount_minor"])
    amount = data["amount"]
    if not isinstance(amount, str) or len(amount) > MAX_AMOUNT_CHARS:
        raise ValueError("amount must be a decimal string")
    return minor_units(seat.currency, amount) if seat is not None else 0


async def _place(table: Table, bet: PlacedBet) -> web.Response:
    seat, round_no, bets = bet.seat, table.round_no, table.bets
    try:
        reply = await table.send("Bet", _bet_request(bet, round_no))
    except Refused as refused:
        table.record(seat).voided += 1
        code = refused.err.code()
        return web.json_response({"error": refused.reason, **{k: v for k, v in refused.metadata.items()
                                                            if k.endswith("_minor")}},
                                 status=402 if code == grpc.StatusCode.FAILED_PRECONDITION
                                 else 502 if code in RETRYABLE else 400)
    table._took(bet)
    if round_no != table.round_no or not table.betting_open:
        # The window closed while the hub took the bet: refund it, as a real table voids a late bet, and
        # close the player's round unless an earlier bet of theirs in it will be settled (which closes it).
        alone = not any(b.seat.game_session_id == seat.game_session_id for b in bets)
        if await table.deliver("Rollback", wallet_pb.RollbackRequest(
                session_token=seat.game_session_id, player_id=seat.player_id,
                transaction_id=f"{bet.transaction_id}-void", bet_transaction_id=bet.transaction_id,
                round_id=str(round_no), round_closed=alone)) is not None:
            record = table.record(seat)
            record.rollbacks += 1
            record.rollback_minor += bet.amount_minor
        return web.json_response({"error": "BETTING_CLOSED"}, status=409)
    table.bets.append(bet)
    return web.json_response({"round": round_no, "transaction_id": bet.transaction_id,
                              "balance_minor": reply.balance.amount_minor})  # type: ignore[attr-defined]


async def _round(request: web.Request) -> web.Response:
    table = request.app[TABLE]
    try:
        pocket = table.results[int(request.match_info["round"])]
    except (KeyError, ValueError):
        return web.json_response({"error": "ROUND_NOT_FOUND"}, status=404)
    return web.json_response({"pocket": pocket, "colour": colour_of(pocket),
                              "settled": table.unsettled[int(request.match_info["round"])] <= 0})


async def _record(request: web.Request) -> web.Response:
    _authorized(request)
    table = request.app[TABLE]
    players: dict[str, dict[str, dict[str, int]]] = {}
    for (player_id, currency), record in sorted(table.records.items()):
        players.setdefault(player_id, {})[currency] = {**asdict(record), "net_minor": record.net_minor}
    return web.json_response({"players": players, "rounds_drawn": len(table.results), "bets_settled": table.settled,
                              "wallet_calls": table.wallet_calls, "faults_injected": dict(table.faults.injected),
                              "refusals": dict(table.refusals)})


async def _faults(request: web.Request) -> web.Response:
    _authorized(request)
    faults = request.app[TABLE].faults
    if request.method == "POST":
        try:
            faults.update(await request.json())
        except ValueError as exc:  # a malformed body too (json.JSONDecodeError is one)
            return web.json_response({"error": "INVALID_FAULT", "detail": str(exc)[:120]}, status=400)
    return web.json_response({"faults": faults.knobs()})


async def start_server(host: str = "127.0.0.1", port: int = 0, secret: str = DEFAULT_SECRET, *, hub: str,
                       key_id: str, private_key_pem: bytes, window_s: float = 5.0,
                       faults: Faults | None = None) -> tuple[web.AppRunner, int]:
    """Listen and start the table's clock; returns the runner (cleanup() stops both) and the port."""
    private_key = load_pem_private_key(private_key_pem, None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ValueError("the studio key must be an Ed25519 private key")
    table = Table(hub, key_id, private_key, window_s, faults=faults or Faults())
    app = web.Application()
    app[SECRET] = secret
    app[TABLE] = table
    app.router.add_get("/v1/games", _games)
    app.router.add_get("/v1/health", _health)
    app.router.add_post("/v1/sessions", _seat)
    app.router.add_post("/v1/bets", _bet)
    app.router.add_get("/v1/rounds/{round}", _round)
    app.router.add_get("/v1/record", _record)
    app.router.add_get("/_admin/faults", _faults)
    app.router.add_post("/_admin/faults", _faults)

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
    return await listen(app, host, port)
