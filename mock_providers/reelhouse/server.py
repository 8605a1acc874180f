"""The Reelhouse studio as an aiohttp server: signed HTTP/JSON, idempotent spins, and fault knobs.

Tests call `start_server(port=0)` and mutate the returned app's `Faults`; the CLI (__main__.py) wraps the same
function. Every response is signed so the hub can tell the studio's answers from anyone else's.
"""

import asyncio
import hashlib
import hmac
import html
import json
import random
import time
from dataclasses import asdict, dataclass, field, fields

from aiohttp import web

from mock_providers.process import listen
from mock_providers.reelhouse import fairness
from mock_providers.reelhouse.games import GAMES

DEFAULT_SECRET = "reelhouse-sandbox-secret"
TIMESTAMP_HEADER = "X-Reelhouse-Timestamp"
SIGNATURE_HEADER = "X-Reelhouse-Signature"
MAX_SKEW_S = 60


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@dataclass
class Faults:
    """Misbehaviour on /v1 requests, settable at start-up, by tests, or via POST /_admin/faults."""

    latency_ms: int = 0
    error_rate: float = 0.0  # answer 503 before acting
    timeout_rate: float = 0.0  # act, then hang for hang_s before answering
    hang_s: float = 30.0
    fail_next: int = 0  # the next N requests fail deterministically, as fail_mode says
    fail_mode: str = "error"  # "error" | "timeout"
    cheat_next: int = 0  # the next N spin answers claim a larger win than the paytable gives
    bad_signature_next: int = 0  # the next N /v1 answers carry a wrong signature
    unhealthy: int = 0  # non-zero: GET /health answers 503 MAINTENANCE (play still works, as in a real outage)
    seed: int = 0  # seeds the rate draws so a run can be repeated
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def update(self, changes: dict) -> None:
        accepted = {int: (int,), float: (int, float), str: (str,)}
        types = {f.name: f.type for f in fields(self) if f.init}
        for name, value in changes.items():
            kind = types.get(name)
            if kind is None or isinstance(value, bool) or not isinstance(value, accepted[kind]):
                raise ValueError(f"bad fault {name}={value!r}")
            if name == "fail_mode" and value not in ("error", "timeout"):
                raise ValueError(f"bad fail_mode {value!r}")
            setattr(self, name, kind(value))
        if "seed" in changes:
            self.rng = random.Random(self.seed)

    def draw(self) -> str | None:
        """The fault for this request, if any: deterministic ones first, then the seeded rates."""
        if self.fail_next > 0:
            self.fail_next -= 1
            return self.fail_mode
        roll = self.rng.random()
        if roll < self.error_rate:
            return "error"
        if roll < self.error_rate + self.timeout_rate:
            return "timeout"
        return None

    def take(self, knob: str) -> bool:
        """Consume one unit of a countdown knob (cheat_next, bad_signature_next)."""
        if getattr(self, knob) > 0:
            setattr(self, knob, getattr(self, knob) - 1)
            return True
        return False

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "rng"}


@dataclass
class GameSession:
    session_id: str
    game_id: str
    player_id: str
    currency: str
    client_seed: str
    server_seed: str
    rtp_variant: str = ""  # the paytable variant every spin of this session pays by ("": the default)
    next_nonce: int = 0


@dataclass
class Studio:
    secret: str
    faults: Faults
    sessions: dict[str, GameSession] = field(default_factory=dict)
    rounds: dict[str, tuple[dict, dict]] = field(default_factory=dict)  # round_id -> (spin request, answer)
    requests_seen: int = 0  # every request that reached the studio, so tests can prove none did


STUDIO = web.AppKey("studio", Studio)


class StudioError(Exception):
    def __init__(self, status: int, code: str):
        super().__init__(code)
        self.status = status
        self.code = code


# --- middlewares, outermost first ---------------------------------------------------------------------


@web.middleware
async def sign_responses(request: web.Request, handler) -> web.StreamResponse:
    response = await handler(request)
    studio = request.app[STUDIO]
    timestamp = str(int(time.time()))
    signature = sign(studio.secret, timestamp, response.body or b"")
    if request.path.startswith("/v1/") and studio.faults.take("bad_signature_next"):
        signature = sign("not-the-studio", timestamp, response.body or b"")
    response.headers[TIMESTAMP_HEADER] = timestamp
    response.headers[SIGNATURE_HEADER] = signature
    return response


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except StudioError as exc:
        return web.json_response({"error": exc.code}, status=exc.status)
    except web.HTTPException as exc:  # aiohttp's own 404/405
        return web.json_response({"error": exc.reason.upper().replace(" ", "_")}, status=exc.status)


@web.middleware
async def verify_signature(request: web.Request, handler) -> web.StreamResponse:
    studio = request.app[STUDIO]
    studio.requests_seen += 1
    # Load-balancer probes and the player's browser carry no signature.
    if request.path != "/health" and not request.path.startswith(("/play/", "/replay/")):
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        given = request.headers.get(SIGNATURE_HEADER, "")
        expected = sign(studio.secret, timestamp, await request.read())
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= MAX_SKEW_S
        if not (fresh and hmac.compare_digest(expected, given)):
            raise StudioError(401, "INVALID_SIGNATURE")
    return await handler(request)


@web.middleware
async def inject_faults(request: web.Request, handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)
    faults = request.app[STUDIO].faults
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    fault = faults.draw()
    if fault == "error":
        raise StudioError(503, "SERVICE_UNAVAILABLE")
    response = await handler(request)
    if fault == "timeout":
        # The studio has acted but the answer is late: the case the hub's reconciler exists for.
        await asyncio.sleep(faults.hang_s)
    return response


# --- request parsing ----------------------------------------------------------------------------------


async def _body(request: web.Request) -> dict:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise StudioError(400, "MALFORMED_JSON") from None
    if not isinstance(body, dict):
        raise StudioError(400, "MALFORMED_JSON")
    return body


def _field(body: dict, name: str, kind: type):
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, kind) or value in ("", None):
        raise StudioError(400, f"INVALID_{name.upper()}")
    return value


def _session(studio: Studio, session_id: str) -> GameSession:
    session = studio.sessions.get(session_id)
    if session is None:
        raise StudioError(404, "SESSION_NOT_FOUND")
    return session


# --- handlers -----------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    if request.app[STUDIO].faults.unhealthy:
        raise StudioError(503, "MAINTENANCE")
    return web.json_response({"status": "ok"})


async def list_games(request: web.Request) -> web.Response:
    return web.json_response({"games": [game.to_json() for game in GAMES.values()]})


async def create_session(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    body = await _body(request)
    wanted = {name: _field(body, name, str)
              for name in ("session_id", "game_id", "player_id", "currency", "client_seed")}
    variant = body.get("rtp_variant", "")
    if not isinstance(variant, str):
        raise StudioError(400, "INVALID_RTP_VARIANT")
    wanted["rtp_variant"] = variant
    game = GAMES.get(wanted["game_id"])
    if game is None:
        raise StudioError(404, "GAME_NOT_FOUND")
    if wanted["currency"] not in game.bet_limits:
        raise StudioError(422, "CURRENCY_NOT_SUPPORTED")
    try:
        game.at_variant(variant)
    except KeyError:
        raise StudioError(422, "RTP_VARIANT_NOT_OFFERED") from None
    session = studio.sessions.get(wanted["session_id"])
    if session is None:
        session = GameSession(**wanted, server_seed=fairness.new_server_seed())
        studio.sessions[session.session_id] = session
    elif any(getattr(session, name) != value for name, value in wanted.items()):
        raise StudioError(409, "SESSION_ID_REUSED")
    return web.json_response({
        "session_id": session.session_id,
        "launch_url": f"{request.url.origin()}/play/{session.session_id}",
        "server_seed_hash": fairness.seed_hash(session.server_seed),
    })


async def play_page(request: web.Request) -> web.Response:
    session = _session(request.app[STUDIO], request.match_info["session_id"])
    return web.Response(text=f"<h1>Reelhouse: {GAMES[session.game_id].name}</h1>", content_type="text/html")


async def replay_page(request: web.Request) -> web.Response:
    """A spin as a player or auditor replays it: its symbols, win and proof."""
    stored = request.app[STUDIO].rounds.get(request.match_info["round_id"])
    if stored is None:
        raise StudioError(404, "ROUND_NOT_FOUND")
    answer = stored[1]
    return web.Response(text=f"<h1>Reelhouse replay</h1><p>{html.escape(str(answer.get('symbols')))}: win "
                        f"{answer.get('win')}</p><pre>{html.escape(json.dumps(answer.get('proof')))}</pre>",
                        content_type="text/html")


async def spin(request: web.Request) -> web.Response:
    studio = request.app[STUDIO]
    body = await _body(request)
    wanted = {name: _field(body, name, str)
              for name in ("round_id", "session_id", "game_id", "player_id", "currency")}
    wanted["bet"] = _field(body, "bet", int)
    stored = studio.rounds.get(wanted["round_id"])
    if stored is not None:
        if stored[0] != wanted:
            raise StudioError(409, "ROUND_ID_REUSED")
        answer = stored[1]
    else:
        answer = _new_round(studio, wanted)
        studio.rounds[wanted["round_id"]] = (wanted, answer)
    if studio.faults.take("cheat_next"):
        answer = {**answer, "win": answer["win"] + wanted["bet"]}
    return web.json_response(answer)


def _new_round(studio: Studio, wanted: dict) -> dict:
    session = _session(studio, wanted["session_id"])
    if (session.game_id, session.player_id, session.currency) != (
            wanted["game_id"], wanted["player_id"], wanted["currency"]):
        raise StudioError(422, "SESSION_MISMATCH")
    game = GAMES[session.game_id].at_variant(session.rtp_variant)
    low, high = game.bet_limits[session.currency]
    if not low <= wanted["bet"] <= high:
        raise StudioError(422, "BET_OUT_OF_LIMITS")
    nonce = session.next_nonce
    session.next_nonce += 1
    stops = fairness.reel_stops(session.server_seed, session.client_seed, nonce, [len(r) for r in game.reels])
    symbols = game.symbols_at(stops)
    return {
        "round_id": wanted["round_id"],
        "provider_round_id": f"rh-{len(studio.rounds) + 1:08d}",
        "status": "settled",
        "game_id": game.game_id,
        "rtp_variant": session.rtp_variant or game.default_variant,
        "currency": session.currency,
        "bet": wanted["bet"],
        "stops": stops,
        "symbols": symbols,
        "win": wanted["bet"] * game.multiplier(symbols),
        "proof": {
            "server_seed_hash": fairness.seed_hash(session.server_seed),
            "client_seed": session.client_seed,
            "nonce": nonce,
        },
    }


async def get_round(request: web.Request) -> web.Response:
    stored = request.app[STUDIO].rounds.get(request.match_info["round_id"])
    if stored is None:
        raise StudioError(404, "ROUND_NOT_FOUND")
    return web.json_response(stored[1])


async def rotate_seed(request: web.Request) -> web.Response:
    session = _session(request.app[STUDIO], request.match_info["session_id"])
    previous = session.server_seed
    session.server_seed = fairness.new_server_seed()
    return web.json_response({
        "session_id": session.session_id,
        "previous_server_seed": previous,
        "previous_server_seed_hash": fairness.seed_hash(previous),
        "server_seed_hash": fairness.seed_hash(session.server_seed),
        "next_nonce": session.next_nonce,
    })


async def set_faults(request: web.Request) -> web.Response:
    faults = request.app[STUDIO].faults
    try:
        faults.update(await _body(request))
    except ValueError as exc:
        raise StudioError(400, "INVALID_FAULT") from exc
    return web.json_response(faults.to_json())


def create_app(secret: str = DEFAULT_SECRET, faults: Faults | None = None) -> web.Application:
    app = web.Application(middlewares=[sign_responses, json_errors, verify_signature, inject_faults])
    app[STUDIO] = Studio(secret=secret, faults=faults or Faults())
    app.router.add_get("/health", health)
    app.router.add_get("/v1/games", list_games)
    app.router.add_post("/v1/sessions", create_session)
    app.router.add_post("/v1/sessions/{session_id}/rotate-seed", rotate_seed)
    app.router.add_post("/v1/spins", spin)
    app.router.add_get("/v1/rounds/{round_id}", get_round)
    app.router.add_get("/play/{session_id}", play_page)
    app.router.add_get("/replay/{round_id}", replay_page)
    app.router.add_post("/_admin/faults", set_faults)
    return app


async def start_server(host: str = "127.0.0.1", port: int = 0, secret: str = DEFAULT_SECRET,
                       faults: Faults | None = None) -> tuple[web.AppRunner, int]:
    """Start listening; port 0 picks a free port. Stop with `await runner.cleanup()`."""
    return await listen(create_app(secret, faults), host, port)
