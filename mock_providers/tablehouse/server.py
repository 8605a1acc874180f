"""The Tablehouse studio as a grpc.aio server of casinohub.provider.v1.ProviderGameService, with fault knobs.

Tests call `start_server(port=0)` and mutate the returned studio's `Faults`; the CLI (__main__.py) wraps the
same function. Faults are also settable per call (metadata `x-tablehouse-fault`) or over the control RPC
`/tablehouse.control.v1.FaultControl/SetFaults` (JSON in, JSON out). README.md documents all of it.
"""

import asyncio
import hmac
import json
import random
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from casinohub.provider.v1 import provider_game_service_pb2 as pb, provider_game_service_pb2_grpc as pb_grpc
from casinohub.v1 import options_pb2
from mock_providers.tablehouse import blackjack, fairness, roulette
from mock_providers.tablehouse.games import BLACKJACK, CURRENCY_EXPONENTS, GAMES, ROULETTE, Game

DEFAULT_SECRET = "tablehouse-sandbox-secret"
DOMAIN = "casinohub.provider"
FAULT_HEADER = "x-tablehouse-fault"
CONTROL_METHOD = "/tablehouse.control.v1.FaultControl/SetFaults"

KINDS = {pb.BET_KIND_STRAIGHT: "straight", pb.BET_KIND_SPLIT: "split", pb.BET_KIND_STREET: "street",
         pb.BET_KIND_CORNER: "corner", pb.BET_KIND_LINE: "line", pb.BET_KIND_DOZEN: "dozen",
         pb.BET_KIND_COLUMN: "column", pb.BET_KIND_RED: "red", pb.BET_KIND_BLACK: "black",
         pb.BET_KIND_ODD: "odd", pb.BET_KIND_EVEN: "even", pb.BET_KIND_LOW: "low", pb.BET_KIND_HIGH: "high"}
ACTIONS = {pb.PLAYER_ACTION_HIT: blackjack.HIT, pb.PLAYER_ACTION_STAND: blackjack.STAND,
           pb.PLAYER_ACTION_DOUBLE: blackjack.DOUBLE, pb.PLAYER_ACTION_SPLIT: blackjack.SPLIT}
ACTION_VALUES = {name: value for value, name in ACTIONS.items()}
RULES = {ROULETTE: pb.GAME_RULES_EUROPEAN_ROULETTE, BLACKJACK: pb.GAME_RULES_BLACKJACK}


@dataclass
class Faults:
    """Misbehaviour on ListGames, LaunchGame, PlayStep and GetRoundStatus (never CheckHealth)."""

    latency_ms: int = 0
    error_rate: float = 0.0  # answer UNAVAILABLE before acting
    timeout_rate: float = 0.0  # act, then hang for hang_s before answering
    hang_s: float = 30.0
    fail_next: int = 0  # the next N calls fail deterministically, as fail_mode says
    fail_mode: str = "error"  # "error" | "timeout"
    cheat_next: int = 0  # the next N PlayStep answers of a finished round claim win + its stake
    wrong_stake_next: int = 0  # the next N PlayStep answers misstate total_stake by one unit
    abandon_after_s: float = 60.0  # a hand idle this long is stood out when its status is asked
    seed: int = 0  # seeds the rate draws so a run can be repeated
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply every change or, if any is invalid, none."""
        accepted: dict[type, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,)}
        types = {f.name: f.type for f in fields(self) if f.init}
        checked = {}
        for name, value in changes.items():
            kind = types.get(name)
            if not isinstance(kind, type) or isinstance(value, bool) or not isinstance(value, accepted[kind]):
                raise ValueError(f"bad fault {name}={value!r}")
            if name == "fail_mode" and value not in ("error", "timeout"):
                raise ValueError(f"bad fail_mode {value!r}")
            checked[name] = kind(value)
        for name, value in checked.items():
            setattr(self, name, value)
        if "seed" in changes:
            self.rng = random.Random(self.seed)

    def draw(self) -> str | None:
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
        if getattr(self, knob) > 0:
            setattr(self, knob, getattr(self, knob) - 1)
            return True
        return False

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "rng"}


@dataclass
class Session:
    request: pb.LaunchGameRequest
    server_seed: str
    next_nonce: int = 0


@dataclass
class Round:
    round_id: str
    provider_round_id: str
    game: Game
    session: Session
    nonce: int
    steps: list[tuple[bytes, pb.PlayStepResponse]] = field(default_factory=list)  # (request, answer)
    pocket: int = 0  # roulette
    table: blackjack.Table | None = None  # blackjack
    finished: bool = False
    total_stake: int = 0
    win: int = 0
    last_step_at: float = field(default_factory=time.monotonic)


@dataclass
class Studio:
    secret: str
    faults: Faults
    sessions: dict[str, Session] = field(default_factory=dict)
    rounds: dict[str, Round] = field(default_factory=dict)
    calls_seen: int = 0  # every call that passed authentication, so tests can prove one never arrived


class StudioError(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.code, self.reason, self.message = code, reason, message or reason

    def to_status(self) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)
        detail = any_pb2.Any()
        detail.Pack(info)
        return rpc_status.to_status(status_pb2.Status(code=self.code.value[0], message=self.message,
                                                      details=[detail]))


def _invalid(reason: str, message: str = "") -> StudioError:
    return StudioError(grpc.StatusCode.INVALID_ARGUMENT, reason, message)


def _precondition(reason: str) -> StudioError:
    return StudioError(grpc.StatusCode.FAILED_PRECONDITION, reason)


def check_lengths(message: Any) -> None:
    """Every string field against its (casinohub.v1.max_length), nested messages included."""
    for descriptor, value in message.ListFields():
        if descriptor.message_type is not None:
            for item in value if descriptor.is_repeated else [value]:
                check_lengths(item)
            continue
        limit = descriptor.GetOptions().Extensions[options_pb2.max_length]
        if limit and any(len(v) > limit for v in (value if descriptor.is_repeated else [value])):
            raise _invalid("FIELD_TOO_LONG", f"{descriptor.name} is longer than {limit}")


class Servicer(pb_grpc.ProviderGameServiceServicer):
    def __init__(self, studio: Studio):
        self.studio = studio

    async def _run(self, request: Any, context: grpc.aio.ServicerContext, work, *, faults: bool = True):
        """Authenticate, apply the fault knobs, run `work(request)`, turn StudioErrors into statuses."""
        studio = self.studio
        metadata = dict(context.invocation_metadata() or ())
        if not hmac.compare_digest(str(metadata.get("authorization", "")), f"Bearer {studio.secret}"):
            await context.abort_with_status(
                StudioError(grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS").to_status())
        studio.calls_seen += 1
        fault = None
        if faults:
            fault, per_call = studio.faults.draw(), str(metadata.get(FAULT_HEADER, ""))
            latency = studio.faults.latency_ms
            if per_call.startswith("latency="):
                latency = int(per_call.removeprefix("latency=") or 0)
            elif per_call in ("error", "timeout"):
                fault = per_call
            elif per_call in ("cheat", "wrong-stake"):
                studio.faults.update({"cheat_next" if per_call == "cheat" else "wrong_stake_next": 1})
            if latency:
                await asyncio.sleep(latency / 1000)
            if fault == "error":
                await context.abort_with_status(
                    StudioError(grpc.StatusCode.UNAVAILABLE, "SERVICE_UNAVAILABLE").to_status())
        try:
            if not isinstance(request, bytes):  # the control RPC's JSON
                check_lengths(request)
            answer = work(request)
        except StudioError as exc:
            await context.abort_with_status(exc.to_status())
        if fault == "timeout":
            # The studio has acted but its answer is late: what the hub's reconciliation exists for.
            await asyncio.sleep(studio.faults.hang_s)
        return answer

    async def ListGames(self, request, context):
        return await self._run(request, context, self._list_games)

    async def LaunchGame(self, request, context):
        return await self._run(request, context, self._launch)

    async def PlayStep(self, request, context):
        return await self._run(request, context, self._play_step)

    async def GetRoundStatus(self, request, context):
        return await self._run(request, context, self._round_status)

    async def CheckHealth(self, request, context):
        return await self._run(request, context, lambda _: pb.CheckHealthResponse(serving=True), faults=False)

    async def SetFaults(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        def update(raw: bytes) -> bytes:
            try:
                changes = json.loads(raw or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("not an object")
                self.studio.faults.update(changes)
            except ValueError as exc:
                raise _invalid("INVALID_FAULT", str(exc)[:80]) from None
            return json.dumps(self.studio.faults.to_json()).encode()

        return await self._run(request, context, update, faults=False)

    # -- the calls, synchronous: no await between reading and writing the studio's state ------------

    def _list_games(self, request: pb.ListGamesRequest) -> pb.ListGamesResponse:
        return pb.ListGamesResponse(
            games=[pb.GameDescription(
                game_id=g.game_id, name=g.name, rules=RULES[g.rules], rtp_basis_points=g.rtp_basis_points,
                max_win_multiplier=g.max_win_multiplier,
                bet_limits=[pb.BetLimit(currency=c, min_minor=lim.min_minor, max_minor=lim.max_minor,
                                        step_minor=lim.step_minor) for c, lim in sorted(g.limits.items())],
                names=[pb.LocalizedName(locale=loc, name=n) for loc, n in sorted(g.names.items())],
            ) for g in GAMES.values()],
            currency_units=[pb.CurrencyUnit(currency=c, exponent=e) for c, e in sorted(CURRENCY_EXPONENTS.items())],
        )

    def _launch(self, request: pb.LaunchGameRequest) -> pb.LaunchGameResponse:
        for name in ("session_id", "game_id", "operator_id", "player_id", "currency", "client_seed"):
            if not getattr(request, name):
                raise _invalid("INVALID_ARGUMENT", f"{name} is required")
        game = GAMES.get(request.game_id)
        if game is None:
            raise StudioError(grpc.StatusCode.NOT_FOUND, "GAME_NOT_FOUND")
        if request.currency not in game.limits:
            raise _precondition("CURRENCY_NOT_SUPPORTED")
        session = self.studio.sessions.get(request.session_id)
        if session is None:
            session = Session(request=request, server_seed=fairness.new_server_seed())
            self.studio.sessions[request.session_id] = session
        elif session.request != request:
            raise StudioError(grpc.StatusCode.ALREADY_EXISTS, "SESSION_ID_REUSED")
        return pb.LaunchGameResponse(launch_url=f"https://tablehouse.example/play/{request.session_id}",
                                     server_seed_hash=fairness.seed_hash(session.server_seed))

    def _play_step(self, request: pb.PlayStepRequest) -> pb.PlayStepResponse:
        if not request.round_id:
            raise _invalid("INVALID_ARGUMENT", "round_id is required")
        fingerprint = request.SerializeToString(deterministic=True)
        round_ = self.studio.rounds.get(request.round_id)
        if round_ is not None and request.step < len(round_.steps):
            stored, answer = round_.steps[request.step]
            if stored != fingerprint:
                raise StudioError(grpc.StatusCode.ALREADY_EXISTS, "ROUND_ID_REUSED")
            return self._distorted(answer)
        if round_ is None:
            if request.step != 0:
                raise StudioError(grpc.StatusCode.NOT_FOUND, "ROUND_NOT_FOUND")
            round_ = self._open_round(request)
        elif request.step > len(round_.steps):
            raise _precondition("STEP_OUT_OF_ORDER")
        elif round_.finished:
            raise _precondition("ROUND_FINISHED")
        else:
            self._act(round_, request)
        answer = self._answer(round_, request)
        round_.steps.append((fingerprint, answer))
        round_.last_step_at = time.monotonic()
        return self._distorted(answer)

    def _open_round(self, request: pb.PlayStepRequest) -> Round:
        session = self.studio.sessions.get(request.session_id)
        if session is None:
            raise StudioError(grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")
        launched = session.request
        if (launched.game_id, launched.player_id, launched.currency) != (
                request.game_id, request.player_id, request.currency):
            raise _precondition("SESSION_MISMATCH")
        if request.action != pb.PLAYER_ACTION_BET:
            raise _precondition("ACTION_NOT_ALLOWED")
        game = GAMES[launched.game_id]
        if not request.bets:
            raise _invalid("INVALID_BET", "a round needs at least one bet")
        for bet in request.bets:
            self._check_amount(game, launched.currency, bet)
        round_ = Round(round_id=request.round_id, provider_round_id=f"th-{len(self.studio.rounds) + 1:08d}",
                       game=game, session=session, nonce=session.next_nonce)
        seeds = (session.server_seed, launched.client_seed, round_.nonce)
        if game.rules == ROULETTE:
            layout = []
            for bet in request.bets:
                numbers = frozenset(bet.numbers)
                if (bet.kind not in KINDS or not roulette.is_valid(KINDS[bet.kind], numbers)
                        or len(numbers) != len(bet.numbers)):
                    raise _invalid("INVALID_BET", "not a bet of the roulette layout")
                layout.append((numbers, bet.amount.amount_minor))
            pocket = fairness.pocket(*seeds)
            round_.total_stake = sum(amount for _, amount in layout)
            round_.win = sum(roulette.returned(numbers, amount, pocket) for numbers, amount in layout)
            round_.finished = True
            round_.pocket = pocket
        else:
            if len(request.bets) != 1 or request.bets[0].kind != pb.BET_KIND_BLACKJACK_HAND or request.bets[0].numbers:
                raise _invalid("INVALID_BET", "a blackjack deal takes one BLACKJACK_HAND bet")
            stake = request.bets[0].amount.amount_minor
            if stake % game.limits[launched.currency].step_minor:
                raise _invalid("INVALID_BET", "the stake must be a multiple of the step")
            round_.table = blackjack.Table.deal(stake, fairness.cards(*seeds))
            self._settle_if_finished(round_)
        session.next_nonce += 1
        self.studio.rounds[request.round_id] = round_
        return round_

    def _check_amount(self, game: Game, currency: str, bet: pb.BetPosition) -> None:
        if bet.amount.currency != currency:
            raise _precondition("SESSION_MISMATCH")
        limit = game.limits[currency]
        if not limit.min_minor <= bet.amount.amount_minor <= limit.max_minor:
            raise _precondition("BET_OUT_OF_LIMITS")

    def _act(self, round_: Round, request: pb.PlayStepRequest) -> None:
        table = round_.table
        if table is None or request.action not in ACTIONS:
            raise _precondition("ACTION_NOT_ALLOWED")
        action = ACTIONS[request.action]
        if action not in table.actions():
            raise _precondition("ACTION_NOT_ALLOWED")
        extra = table.extra_stake(action)
        staked = [(b.kind, b.amount.currency, b.amount.amount_minor, list(b.numbers)) for b in request.bets]
        wanted = [(pb.BET_KIND_BLACKJACK_HAND, round_.session.request.currency, extra, [])] if extra else []
        if staked != wanted:
            raise _invalid("INVALID_BET", f"{action} stakes exactly {extra}")
        table.act(action)
        self._settle_if_finished(round_)

    @staticmethod
    def _settle_if_finished(round_: Round) -> None:
        assert round_.table is not None
        round_.total_stake = round_.table.total_stake
        round_.finished = round_.table.finished
        round_.win = round_.table.returned()

    def _answer(self, round_: Round, request: pb.PlayStepRequest) -> pb.PlayStepResponse:
        session, currency = round_.session, round_.session.request.currency
        outcome = pb.RoundOutcome()
        if round_.table is None:
            pocket = round_.pocket
            outcome.roulette.pocket = pocket
            outcome.summary = f"{pocket} {roulette.colour(pocket)}"
        else:
            table = round_.table
            shown = table.dealer if table.finished else table.dealer[:1]
            outcome.blackjack.CopyFrom(pb.BlackjackOutcome(
                hands=[pb.BlackjackHand(cards=[blackjack.card_name(c) for c in h.cards],
                                        stake=pb.StudioMoney(currency=currency, amount_minor=h.stake),
                                        doubled=h.doubled, from_split=h.from_split) for h in table.hands],
                dealer_cards=[blackjack.card_name(c) for c in shown], active_hand=table.active))
            outcome.summary = " / ".join(" ".join(blackjack.card_name(c) for c in h.cards) for h in table.hands) + (
                " vs " + " ".join(blackjack.card_name(c) for c in shown))
        return pb.PlayStepResponse(
            round_id=round_.round_id, step=request.step, provider_round_id=round_.provider_round_id,
            outcome=outcome,
            total_stake=pb.StudioMoney(currency=currency, amount_minor=round_.total_stake),
            win=pb.StudioMoney(currency=currency, amount_minor=round_.win),
            finished=round_.finished,
            available_actions=[] if round_.table is None else [ACTION_VALUES[a] for a in round_.table.actions()],
            proof=pb.FairnessProof(server_seed_hash=fairness.seed_hash(session.server_seed),
                                   client_seed=session.request.client_seed, nonce=round_.nonce),
        )

    def _distorted(self, answer: pb.PlayStepResponse) -> pb.PlayStepResponse:
        """The `cheat_next` and `wrong_stake_next` knobs: the stored round stays honest."""
        faults = self.studio.faults
        if answer.finished and faults.take("cheat_next"):
            answer = pb.PlayStepResponse.FromString(answer.SerializeToString())
            answer.win.amount_minor += answer.total_stake.amount_minor
        if faults.take("wrong_stake_next"):
            answer = pb.PlayStepResponse.FromString(answer.SerializeToString())
            answer.total_stake.amount_minor += 1
        return answer

    def _round_status(self, request: pb.GetRoundStatusRequest) -> pb.GetRoundStatusResponse:
        round_ = self.studio.rounds.get(request.round_id)
        if round_ is None:
            return pb.GetRoundStatusResponse(status=pb.ROUND_STATUS_UNKNOWN)
        idle = time.monotonic() - round_.last_step_at
        if not round_.finished and round_.table is not None and idle >= self.studio.faults.abandon_after_s:
            while not round_.table.finished:  # the studio's rule for an abandoned hand: every open hand stands
                round_.table.act(blackjack.STAND)
            self._settle_if_finished(round_)
        currency = round_.session.request.currency
        return pb.GetRoundStatusResponse(
            status=pb.ROUND_STATUS_SETTLED if round_.finished else pb.ROUND_STATUS_IN_PROGRESS,
            total_stake=pb.StudioMoney(currency=currency, amount_minor=round_.total_stake),
            win=pb.StudioMoney(currency=currency, amount_minor=round_.win) if round_.finished else None,
            steps=len(round_.steps))


def _control_handler(servicer: Servicer) -> grpc.GenericRpcHandler:
    method = grpc.unary_unary_rpc_method_handler(servicer.SetFaults)  # bytes in, bytes out: JSON
    return grpc.method_handlers_generic_handler("tablehouse.control.v1.FaultControl", {"SetFaults": method})


async def start_server(host: str = "127.0.0.1", port: int = 0, secret: str = DEFAULT_SECRET,
                       faults: Faults | None = None) -> tuple[grpc.aio.Server, int, Studio]:
    """Start listening; port 0 picks a free port. Stop with `await server.stop(grace)`."""
    studio = Studio(secret=secret, faults=faults or Faults())
    servicer = Servicer(studio)
    server = grpc.aio.server()
    pb_grpc.add_ProviderGameServiceServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((_control_handler(servicer),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound, studio


# Sanity: grpc's enum values carry the google.rpc.Code numbers packed into statuses.
assert grpc.StatusCode.UNAVAILABLE.value[0] == code_pb2.UNAVAILABLE
