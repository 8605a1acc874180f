"""The Instanthouse studio as an aiohttp server: instant games whose money moves by the studio calling the
hub in the studio's OWN wallet protocol (the way Evolution or Pragmatic integrate), with fault knobs.

The hub's adapter pulls the catalog and opens sessions (`Authorization: Bearer <secret>`); the player's
client plays at POST /play; for each round the studio POSTs to the hub's wallet URL (`<wallet_url>/<method>`):

  authenticate {token}                                                    -> {userId, currency, balance}
  balance      {token, userId}
  debit        {token, userId, transactionId, roundId, amount, currency, roundClosed}
  credit       {token, userId, transactionId, roundId, amount, currency, debitTransactionId, roundClosed}
  debitAndCredit {token, userId, transactionId, roundId, debitAmount, creditAmount, currency, roundClosed}
  rollback     {token, userId, transactionId, rollbackTransactionId, roundId, roundClosed}

Amounts are decimal strings in major units ("12.50"). Every request is signed: X-Instant-Timestamp (unix
seconds), X-Instant-Nonce (1..64 characters, never reused) and X-Instant-Signature, the hex
HMAC-SHA256(secret, "<timestamp>\\n<nonce>\\n<method>\\n" + body). The answer is always HTTP 200 with
{"status": "OK" | INSUFFICIENT_FUNDS | ... (STATUSES), "balance": "12.50", "currency": ...}.

A call that gets no definitive answer (a retryable status, an HTTP error, a timeout) is sent again with the
same transactionId until one comes (a debit the studio gives up on is rolled back), so the hub applies
each call once; the studio's record (GET /control/record) holds only what the hub answered OK.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal, InvalidOperation

import aiohttp
from aiohttp import web

from mock_providers.instanthouse import games
from mock_providers.process import listen

DEFAULT_SECRET = "instanthouse-sandbox-secret"
DEFAULT_WALLET_URL = "http://127.0.0.1:8711/instanthouse"
TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER = "X-Instant-Timestamp", "X-Instant-Nonce", "X-Instant-Signature"
PLACES = {"USD": 2, "EUR": 2, "JPY": 0, "BTC": 8}  # the studio's own currency table
# Answers that settle a call for good; every other status (RETRY, INTERNAL_ERROR) and any transport failure
# is retried with the same transactionId.
DEFINITIVE = frozenset({
    "OK", "INSUFFICIENT_FUNDS", "INVALID_TOKEN", "SESSION_EXPIRED", "USER_NOT_FOUND", "TRANSACTION_NOT_FOUND",
    "DUPLICATE_TRANSACTION", "ROUND_CLOSED", "TRANSACTION_ROLLED_BACK", "ROUND_SETTLED", "INVALID_CURRENCY",
    "INVALID_AMOUNT", "INVALID_REQUEST", "BET_REFUSED", "INVALID_SIGNATURE", "STALE_REQUEST", "REPLAYED_REQUEST"})
DELIVERY_ATTEMPTS = 12
FUN_MAX_BETS = 100  # a demo session's fun balance: this many of the largest bet
STUDIO = web.AppKey("studio", "Studio")


def sign(secret: str, timestamp: str, nonce: str, method: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}\n{nonce}\n{method}\n".encode() + body, hashlib.sha256).hexdigest()


def decimal_string(currency: str, value: Decimal) -> str:
    return f"{value:.{PLACES[currency]}f}"


@dataclass
class Faults:
    """Misbehaviour, settable at start-up, by tests (the app's Studio.faults) or POST /control/faults. Rates
    are shares of rounds (or of wallet calls, for the call-level knobs), drawn from a seeded generator."""

    latency_ms: int = 0  # before each wallet call and each /play answer
    error_rate: float = 0.0  # /play answers 503 STUDIO_ERROR before acting
    drop_answer_rate: float = 0.0  # a wallet call acts at the hub, then the studio "times out" and resends it
    duplicate_rate: float = 0.0  # a wallet call is delivered twice (the second answer must match the first)
    out_of_order_rate: float = 0.0  # a winning round sends its credit before its debit, then both in order
    late_credit_s: float = 0.0  # > 0: wins are credited this long after /play answered (split debit, credit) ...
    late_rate: float = 1.0  # ... this share of them
    bad_signature_rate: float = 0.0  # a wallet call is first sent with a wrong signature, then correctly
    bad_amount_rate: float = 0.0  # a money call is first sent with one decimal too many, then correctly
    seed: int = 0
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def update(self, changes: dict) -> None:  # type: ignore[type-arg]
        kinds = {f.name: f.type for f in fields(self) if f.init}
        for name, value in changes.items():
            kind = kinds.get(name)
            if kind is None or isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"bad fault {str(name)[:32]}")
            setattr(self, name, int(value) if kind is int else float(value))
        if "seed" in changes:
            self.rng = random.Random(self.seed)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate


@dataclass
class Session:
    token: str
    user_id: str
    currency: str
    game_id: str
    client_seed: str
    server_seed: str = field(default_factory=lambda: secrets.token_hex(32))
    nonce: int = 0
    demo: bool = False  # fun mode: rounds move the studio's fun balance, the hub never hears of them
    fun_balance: Decimal = Decimal(0)


@dataclass
class Settled:
    """One call the hub answered OK: what the studio believes moved."""

    user_id: str
    currency: str
    kind: str  # debit | credit | rollback
    transaction_id: str
    amount: str  # decimal major units; a rollback's is the debit it refunds


@dataclass
class Studio:
    secret: str
    wallet_url: str
    faults: Faults = field(default_factory=Faults)
    sessions: dict[str, Session] = field(default_factory=dict)
    settled: list[Settled] = field(default_factory=list)
    pending: int = 0  # wallet deliveries not yet definitive (late credits, retries in flight)
    faults_seen: dict[str, int] = field(default_factory=dict)
    rounds_played: int = 0
    http: aiohttp.ClientSession | None = None
    _late: set[asyncio.Task[None]] = field(default_factory=set)

    def saw(self, fault: str) -> None:
        self.faults_seen[fault] = self.faults_seen.get(fault, 0) + 1

    # -- the wallet protocol, the studio's side -------------------------------------------------------------

    async def call(self, method: str, payload: dict[str, object], *, secret: str | None = None,
                   timestamp: int | None = None, nonce: str | None = None) -> dict[str, object]:
        """One signed wallet call, answered as the hub answered it (tests use this to speak the protocol)."""
        if self.http is None:
            self.http = aiohttp.ClientSession()
        body = json.dumps(payload, separators=(",", ":")).encode()
        stamp, nonce = str(int(time.time()) if timestamp is None else timestamp), nonce or uuid.uuid4().hex
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp, NONCE_HEADER: nonce,
                   SIGNATURE_HEADER: sign(self.secret if secret is None else secret, stamp, nonce, method, body)}
        async with self.http.post(f"{self.wallet_url.rstrip('/')}/{method}", data=body, headers=headers,
                                  timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                return {"status": f"HTTP_{response.status}"}
            answer = await response.json(content_type=None)
        return answer if isinstance(answer, dict) else {"status": "MALFORMED"}

    async def deliver(self, method: str, payload: dict[str, object]) -> dict[str, object]:
        """Send until the hub answers definitively, working the call-level fault knobs on the way."""
        faults = self.faults
        answer: dict[str, object] = {"status": "UNREACHABLE"}
        for attempt in range(DELIVERY_ATTEMPTS):
            await asyncio.sleep(faults.latency_ms / 1000)
            if faults.roll(faults.bad_signature_rate):
                self.saw("bad_signature")
                refused = await self._try(method, payload, secret=self.secret + "-wrong")
                if refused.get("status") != "INVALID_SIGNATURE":
                    self.saw("bad_signature_accepted")  # never expected: the record would show it
            amount_field = next((k for k in ("amount", "debitAmount") if k in payload), None)
            if amount_field and faults.roll(faults.bad_amount_rate):
                self.saw("bad_amount")
                currency = str(payload["currency"])
                wrong = Decimal(str(payload[amount_field])) + Decimal(10) ** -(PLACES[currency] + 1)
                refused = await self._try(method, {**payload, amount_field: str(wrong)})
                if refused.get("status") != "INVALID_AMOUNT":
                    self.saw("bad_amount_accepted")
            answer = await self._try(method, payload)
            if faults.roll(faults.drop_answer_rate):
                self.saw("answer_dropped")
                continue  # as if the answer never came: send it again, same transactionId
            if answer.get("status") in DEFINITIVE:
                if faults.roll(faults.duplicate_rate):
                    self.saw("duplicate")
                    again = await self._try(method, payload)
                    if again.get("status") not in (answer.get("status"), "RETRY"):
                        self.saw("duplicate_answered_differently")
                return answer
            self.saw("retry")
            await asyncio.sleep(min(0.02 * 2**attempt, 1.0))
        return answer

    async def _try(self, method: str, payload: dict[str, object], **signing: str) -> dict[str, object]:
        try:
            return await self.call(method, payload, **signing)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {"status": "UNREACHABLE"}

    def record(self, session: Session, kind: str, transaction_id: str, amount: str) -> None:
        self.settled.append(Settled(session.user_id, session.currency, kind, transaction_id, amount))

    # -- a round ---------------------------------------------------------------------------------------------

    async def play(self, session: Session, bet: Decimal, params: dict[str, str]) -> dict[str, object]:
        session.nonce += 1
        outcome = games.play(session.game_id, games.draw(session.server_seed, session.client_seed, session.nonce),
                             params)
        win = bet * outcome.multiplier
        round_id, tx = f"ih-r-{uuid.uuid4().hex}", f"ih-{uuid.uuid4().hex}"
        base = {"token": session.token, "userId": session.user_id, "currency": session.currency, "roundId": round_id}
        bet_text, win_text = decimal_string(session.currency, bet), decimal_string(session.currency, win)
        faults = self.faults
        late = faults.late_credit_s > 0 and win > 0 and faults.roll(faults.late_rate)
        out_of_order = win > 0 and faults.roll(faults.out_of_order_rate)
        if session.demo:
            if bet > session.fun_balance:
                return {"status": "INSUFFICIENT_FUNDS", "balance": decimal_string(session.currency,
                                                                                  session.fun_balance)}
            session.fun_balance += win - bet
            return self._answer({"status": "OK", "balance": decimal_string(session.currency, session.fun_balance)},
                                round_id, outcome.result, win_text, session)
        self.rounds_played += 1
        if not late and not out_of_order:
            answer = await self.deliver("debitAndCredit", {**base, "transactionId": tx, "debitAmount": bet_text,
                                                           "creditAmount": win_text, "roundClosed": True})
            both = [("debit", tx, bet_text), ("credit", tx, win_text)]
            if answer.get("status") == "OK":
                for entry in both:
                    self.record(session, *entry)
            else:
                await self._give_up(session, base, tx, bet_text, answer, both)
            return self._answer(answer, round_id, outcome.result, win_text, session)
        credit = {**base, "transactionId": f"{tx}-c", "amount": win_text, "debitTransactionId": tx,
                  "roundClosed": True}
        if out_of_order:
            self.saw("out_of_order")
            early = await self.deliver("credit", credit)  # before its debit: the hub knows no such bet yet
            if early.get("status") != "TRANSACTION_NOT_FOUND":
                self.saw("early_credit_answered_" + str(early.get("status")))
        answer = await self.deliver("debit", {**base, "transactionId": tx, "amount": bet_text,
                                              "roundClosed": win == 0})
        if answer.get("status") != "OK":
            await self._give_up(session, base, tx, bet_text, answer, [("debit", tx, bet_text)])
            return self._answer(answer, round_id, outcome.result, win_text, session)
        self.record(session, "debit", tx, bet_text)
        if late:
            self.saw("late_credit")
            self.pending += 1
            task = asyncio.create_task(self._late_credit(session, credit))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return self._answer(answer, round_id, outcome.result, win_text, session)
        paid = await self.deliver("credit", credit)
        if paid.get("status") == "OK":
            self.record(session, "credit", str(credit["transactionId"]), win_text)
        return self._answer(paid, round_id, outcome.result, win_text, session)

    async def _late_credit(self, session: Session, credit: dict[str, object]) -> None:
        try:
            await asyncio.sleep(self.faults.late_credit_s)
            paid = await self.deliver("credit", credit)
            if paid.get("status") == "OK":
                self.record(session, "credit", str(credit["transactionId"]), str(credit["amount"]))
        finally:
            self.pending -= 1

    async def _give_up(self, session: Session, base: dict[str, object], tx: str, bet_text: str,
                       answer: dict[str, object], applied: list[tuple[str, str, str]]) -> None:
        """A debit without a definitive answer may have happened: roll it back (the hub refunds it, or
        tombstones the id if it never saw it). ROUND_SETTLED says it happened, as `applied` says."""
        if answer.get("status") in DEFINITIVE:
            return  # refused for good: nothing moved
        self.saw("rolled_back")
        refund = await self.deliver("rollback", {**base, "transactionId": f"{tx}-rb", "rollbackTransactionId": tx,
                                                 "roundClosed": True})
        if refund.get("status") == "OK":
            self.record(session, "debit", tx, bet_text)  # it may have been taken: the rollback refunds it
            self.record(session, "rollback", f"{tx}-rb", bet_text)
        elif refund.get("status") == "ROUND_SETTLED":
            for entry in applied:
                self.record(session, *entry)

    @staticmethod
    def _answer(answer: dict[str, object], round_id: str, result: str, win: str,
                session: Session) -> dict[str, object]:
        return {"status": answer.get("status"), "roundId": round_id, "result": result, "win": win,
                "balance": answer.get("balance"), "currency": session.currency, "nonce": session.nonce}

    def net(self) -> dict[str, dict[str, str]]:
        """Per player and currency: credits + rollbacks - debits, as the studio counts them."""
        totals: dict[str, dict[str, Decimal]] = {}
        for entry in self.settled:
            sign_ = -1 if entry.kind == "debit" else 1
            by_currency = totals.setdefault(entry.user_id, {})
            by_currency[entry.currency] = by_currency.get(entry.currency, Decimal(0)) + sign_ * Decimal(entry.amount)
        return {user: {c: decimal_string(c, v) for c, v in cs.items()} for user, cs in totals.items()}


# -- HTTP ----------------------------------------------------------------------------------------------------


def _authorized(request: web.Request) -> None:
    expected = f"Bearer {request.app[STUDIO].secret}"
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode()):
        raise web.HTTPUnauthorized(text='{"error": "UNAUTHORIZED"}', content_type="application/json")


async def _games(request: web.Request) -> web.Response:
    _authorized(request)
    return web.json_response({"games": [{**game, "limits": {c: list(v) for c, v in games.LIMITS.items()}}
                                        for game in games.GAMES]})


async def _health(request: web.Request) -> web.Response:
    _authorized(request)
    return web.json_response({"ok": True})


async def _open_session(request: web.Request) -> web.Response:
    """The adapter at LaunchGame: {token, userId, currency, gameId, clientSeed} -> {gameUrl, serverSeedHash}."""
    _authorized(request)
    studio = request.app[STUDIO]
    try:
        data = await request.json()
        session = Session(str(data["token"]), str(data["userId"]), str(data["currency"]), str(data["gameId"]),
                          str(data.get("clientSeed", "")), demo=data.get("mode") == "demo")
    except (KeyError, TypeError, ValueError, AttributeError):
        return web.json_response({"error": "INVALID_REQUEST"}, status=400)
    if session.game_id not in {g["gameId"] for g in games.GAMES}:
        return web.json_response({"error": "GAME_NOT_FOUND"}, status=404)
    if session.currency not in games.LIMITS:
        return web.json_response({"error": "CURRENCY_NOT_SUPPORTED"}, status=400)
    if not 1 <= len(session.token) <= 128 or not 1 <= len(session.user_id) <= 64:
        return web.json_response({"error": "INVALID_REQUEST"}, status=400)
    if session.demo:
        session.fun_balance = Decimal(games.LIMITS[session.currency][1]) * FUN_MAX_BETS
    known = studio.sessions.setdefault(session.token, session)  # a repeated launch is the same session
    seed_hash = hashlib.sha256(known.server_seed.encode()).hexdigest()
    return web.json_response({"gameUrl": f"http://{request.host}/games/{known.game_id}?token={known.token}",
                              "serverSeedHash": seed_hash})


async def _play(request: web.Request) -> web.Response:
    """The player's client: {token, bet: "1.00", target?: "2"} -> the round and the hub's answer."""
    studio = request.app[STUDIO]
    await asyncio.sleep(studio.faults.latency_ms / 1000)
    if studio.faults.roll(studio.faults.error_rate):
        studio.saw("play_error")
        return web.json_response({"error": "STUDIO_ERROR"}, status=503)
    try:
        data = await request.json()
        session = studio.sessions.get(str(data["token"]))
        bet = Decimal(str(data["bet"]))
        params = {k: str(v) for k, v in data.items() if k == "target"}
    except (KeyError, TypeError, ValueError, InvalidOperation):
        return web.json_response({"error": "INVALID_REQUEST"}, status=400)
    if session is None:
        return web.json_response({"error": "SESSION_NOT_FOUND"}, status=404)
    low, high = (Decimal(v) for v in games.LIMITS[session.currency])
    if not bet.is_finite() or not low <= bet <= high or bet != bet.quantize(Decimal(1).scaleb(-PLACES[session.currency])):
        return web.json_response({"error": "BET_OUT_OF_LIMITS"}, status=400)
    try:
        games.play(session.game_id, 0, params)
    except ValueError as exc:
        return web.json_response({"error": "INVALID_BET", "message": str(exc)[:80]}, status=400)
    return web.json_response(await studio.play(session, bet, params))


async def _record(request: web.Request) -> web.Response:
    """What the studio believes it settled: every OK'd call, each player's net, the faults it worked."""
    studio = request.app[STUDIO]
    return web.json_response({"settled": [asdict(s) for s in studio.settled], "net": studio.net(),
                              "pending": studio.pending, "roundsPlayed": studio.rounds_played,
                              "faultsSeen": studio.faults_seen})


async def _set_faults(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("faults must be an object")
        wallet_url = data.pop("walletUrl", None)
        studio.faults.update(data)
    except ValueError as exc:
        return web.json_response({"error": str(exc)[:80]}, status=400)
    if isinstance(wallet_url, str):
        studio.wallet_url = wallet_url
    return web.json_response({k: v for k, v in asdict(studio.faults).items() if k != "rng"})


async def start_server(host: str = "127.0.0.1", port: int = 0, secret: str = DEFAULT_SECRET,
                       wallet_url: str = DEFAULT_WALLET_URL, faults: Faults | None = None
                       ) -> tuple[web.AppRunner, int]:
    """Listen; returns the runner (cleanup() stops it; its app[STUDIO] is the state tests drive) and the port."""
    studio = Studio(secret, wallet_url, faults or Faults())
    app = web.Application(client_max_size=64 * 1024)
    app[STUDIO] = studio
    app.router.add_get("/api/games", _games)
    app.router.add_get("/api/health", _health)
    app.router.add_post("/api/sessions", _open_session)
    app.router.add_post("/play", _play)
    app.router.add_get("/control/record", _record)
    app.router.add_post("/control/faults", _set_faults)

    async def lifetime(app: web.Application) -> object:
        yield
        for task in list(studio._late):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if studio.http is not None:
            await studio.http.close()

    app.cleanup_ctx.append(lifetime)
    return await listen(app, host, port)
