"""TablehouseAdapter: the hub's ProviderAdapter (and MultiStepAdapter) for the Tablehouse table-games studio,
over the gRPC contract casinohub.provider.v1.ProviderGameService.

Amounts cross the boundary in the studio's own minor unit per currency (published in its catalog),
converted exactly by adapters.money or refused. Each win is recomputed from the bets and the outcome
(rules.py) before the hub believes it. Stateless between calls: every check uses one answer, so any hub
process may continue a round.
"""

import re
from dataclasses import dataclass
from math import gcd
from typing import Any
from urllib.parse import quote

import structlog

from adapters.base import (
    FEATURES,
    LAYOUT,
    ActionInput,
    ActionOption,
    AmountNotRepresentable,
    BetLimit,
    CatalogInput,
    GameInfo,
    LaunchInput,
    LaunchResult,
    PlayInput,
    PlayResult,
    Proof,
    ProviderConfig,
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
    RoundStatusInput,
    RoundStatusResult,
    UnknownCurrency,
)
from adapters.money import exponent, from_scaled_units, to_scaled_units
from adapters.tablehouse import rules
from adapters.tablehouse.client import StudioClient
from casinohub.provider.v1 import provider_game_service_pb2 as pb

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
ACTION_NAMES = {pb.PLAYER_ACTION_HIT: "hit", pb.PLAYER_ACTION_STAND: "stand", pb.PLAYER_ACTION_DOUBLE: "double",
                pb.PLAYER_ACTION_SPLIT: "split"}
ACTION_VALUES = {name: value for value, name in ACTION_NAMES.items()}
BET_KINDS = {"straight": pb.BET_KIND_STRAIGHT, "split": pb.BET_KIND_SPLIT, "street": pb.BET_KIND_STREET,
             "corner": pb.BET_KIND_CORNER, "line": pb.BET_KIND_LINE, "dozen": pb.BET_KIND_DOZEN,
             "column": pb.BET_KIND_COLUMN, "red": pb.BET_KIND_RED, "black": pb.BET_KIND_BLACK,
             "odd": pb.BET_KIND_ODD, "even": pb.BET_KIND_EVEN, "low": pb.BET_KIND_LOW, "high": pb.BET_KIND_HIGH}
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Game:
    rules: int  # pb.GameRules
    info: GameInfo


class TablehouseAdapter:
    # Tablehouse exists only as the hub's mock studio (mock_providers/): a production hub refuses it.
    sandbox_only = True

    def __init__(self, config: ProviderConfig):
        self.name = config.name
        self._client = StudioClient(config.url.removeprefix("grpc://"), config.secret, config.timeout_s)
        self._games: dict[str, _Game] = {}
        self._units: dict[str, int] = {}  # currency -> studio units per major unit

    # -- catalog and launch -------------------------------------------------------------------------

    async def catalog(self, request: CatalogInput) -> list[GameInfo]:
        data = await self._client.call(self._client.stub.ListGames, pb.ListGamesRequest(), "ListGames")
        units = {u.currency: 10 ** u.exponent for u in data.currency_units if u.exponent <= 18}
        games = {}
        for raw in data.games:
            if raw.rules not in (pb.GAME_RULES_EUROPEAN_ROULETTE, pb.GAME_RULES_BLACKJACK) or not raw.game_id:
                log.info("tablehouse.game_skipped", game=raw.game_id[:64], rules=raw.rules)
                continue
            info = GameInfo(provider_game_id=raw.game_id, name=raw.name, game_type="table",
                            rtp_basis_points=raw.rtp_basis_points, max_win_multiplier=raw.max_win_multiplier,
                            bet_limits=_bet_limits(raw, units),
                            features=tuple(sorted({f for f in raw.features if f in FEATURES})),
                            names={n.locale: n.name for n in raw.names if n.locale and n.name})
            games[raw.game_id] = _Game(raw.rules, info)
        self._games, self._units = games, units
        return [g.info for g in games.values()]

    async def launch(self, request: LaunchInput) -> LaunchResult:
        data = await self._client.call(self._client.stub.LaunchGame, pb.LaunchGameRequest(
            session_id=request.game_session_id, game_id=request.provider_game_id, operator_id=request.operator_id,
            player_id=request.player_id, currency=request.currency, client_seed=request.client_seed), "LaunchGame")
        return LaunchResult(launch_url=data.launch_url, server_seed_hash=_commitment(data.server_seed_hash))

    # -- play --------------------------------------------------------------------------------------

    async def play(self, request: PlayInput) -> PlayResult:
        """Step 0 of a round. Everything that can be refused is refused before the studio hears of it."""
        game = await self._game(request.provider_game_id)
        if game.rules == pb.GAME_RULES_BLACKJACK:
            if not request.multi_step:
                raise ProviderRejected("tablehouse blackjack needs hit/stand actions: the caller cannot send them")
            layout: list[rules.RouletteBet] = []
            bets = [pb.BetPosition(kind=pb.BET_KIND_BLACKJACK_HAND,
                                   amount=self._studio_money(request.currency, request.bet_minor))]
        else:
            layout = rules.parse_layout(request.params.get(LAYOUT, rules.DEFAULT_LAYOUT), request.bet_minor)
            bets = [pb.BetPosition(kind=BET_KINDS[b.kind], numbers=b.numbers,
                                   amount=self._studio_money(request.currency, b.amount_minor)) for b in layout]
        answer = await self._client.call(self._client.stub.PlayStep, pb.PlayStepRequest(
            round_id=request.round_id, step=0, session_id=request.game_session_id,
            game_id=request.provider_game_id, player_id=request.player_id, currency=request.currency,
            action=pb.PLAYER_ACTION_BET, bets=bets), "PlayStep")
        self._check_echo(answer, request.round_id, 0, request.currency)
        if game.rules == pb.GAME_RULES_EUROPEAN_ROULETTE:
            return self._roulette_result(answer, request, layout)
        return self._blackjack_result(answer, request.currency, expected_stake=request.bet_minor)

    async def act(self, request: ActionInput) -> PlayResult:
        """One action of a blackjack round; the studio checks it is allowed and stakes what it must."""
        if request.action not in ACTION_VALUES or request.step < 1:
            raise ProviderRejected(f"tablehouse has no step {request.step} action {request.action[:16]!r}")
        bets = []
        if request.extra_stake_minor:
            bets = [pb.BetPosition(kind=pb.BET_KIND_BLACKJACK_HAND,
                                   amount=self._studio_money(request.currency, request.extra_stake_minor))]
        await self._game(request.provider_game_id)  # the currency units
        answer = await self._client.call(self._client.stub.PlayStep, pb.PlayStepRequest(
            round_id=request.round_id, step=request.step, session_id=request.game_session_id,
            game_id=request.provider_game_id, player_id=request.player_id, currency=request.currency,
            action=ACTION_VALUES[request.action], bets=bets), "PlayStep")
        self._check_echo(answer, request.round_id, request.step, request.currency)
        return self._blackjack_result(answer, request.currency, expected_stake=None)

    def _roulette_result(self, answer: Any, request: PlayInput, layout: list[rules.RouletteBet]) -> PlayResult:
        outcome = answer.outcome
        if outcome.WhichOneof("game") != "roulette" or not answer.finished or outcome.roulette.pocket > 36:
            raise ProviderProtocolError("tablehouse answered a roulette round with something else")
        staked = self._hub_minor(answer.total_stake)
        if staked != request.bet_minor:
            raise ProviderProtocolError(f"tablehouse counts a stake of {staked}, the hub bet {request.bet_minor}")
        pocket = outcome.roulette.pocket
        claimed, paid = self._hub_minor(answer.win), sum(b.returned(pocket) for b in layout)
        if claimed != paid:
            raise ProviderProtocolError(f"tablehouse claims win {claimed} but pocket {pocket} pays {paid}")
        colour = "GREEN" if pocket == 0 else "RED" if pocket in rules.RED else "BLACK"
        return PlayResult(provider_round_id=answer.provider_round_id[:64], result=f"{pocket} {colour}",
                          win_minor=paid, proof=_proof(answer.proof), stake_minor=staked, step=0)

    def _blackjack_result(self, answer: Any, currency: str, expected_stake: int | None) -> PlayResult:
        outcome = answer.outcome
        if outcome.WhichOneof("game") != "blackjack":
            raise ProviderProtocolError("tablehouse answered a blackjack round with something else")
        table = outcome.blackjack
        hands = [rules.BlackjackHand(cards=list(h.cards), stake=self._hub_minor(h.stake), doubled=h.doubled,
                                     from_split=h.from_split) for h in table.hands]
        rules.check_hands(hands)
        staked = self._hub_minor(answer.total_stake)
        if staked != sum(h.stake for h in hands) or (expected_stake is not None and staked != expected_stake):
            raise ProviderProtocolError(f"tablehouse counts a stake of {staked} for hands of "
                                        f"{[h.stake for h in hands]}")
        dealer = list(table.dealer_cards)
        claimed = self._hub_minor(answer.win)
        if answer.finished:
            paid = rules.settle(hands, dealer)
            if claimed != paid:
                raise ProviderProtocolError(f"tablehouse claims win {claimed} but the cards pay {paid}")
            actions: tuple[ActionOption, ...] = ()
        else:
            if claimed or len(dealer) != 1 or table.active_hand >= len(hands) or not answer.available_actions:
                raise ProviderProtocolError("tablehouse answered an unfinished round it cannot be in")
            active = hands[table.active_hand].stake
            actions = tuple(ActionOption(ACTION_NAMES[a], active if a in (pb.PLAYER_ACTION_DOUBLE,
                                                                        pb.PLAYER_ACTION_SPLIT) else 0)
                            for a in answer.available_actions if a in ACTION_NAMES)
        result = " / ".join(" ".join(h.cards) for h in hands) + " vs " + " ".join(dealer)
        return PlayResult(provider_round_id=answer.provider_round_id[:64], result=result[:256],
                          win_minor=claimed, proof=_proof(answer.proof), finished=answer.finished,
                          stake_minor=staked, actions=actions, step=answer.step)

    # -- reconciliation and lifecycle -------------------------------------------------------------

    async def round_status(self, request: RoundStatusInput) -> RoundStatusResult:
        data = await self._client.call(self._client.stub.GetRoundStatus,
                                       pb.GetRoundStatusRequest(round_id=request.round_id), "GetRoundStatus")
        if data.status == pb.ROUND_STATUS_UNKNOWN:
            return RoundStatusResult(status="unknown")
        names = {pb.ROUND_STATUS_SETTLED: "settled", pb.ROUND_STATUS_IN_PROGRESS: "in_progress",
                 pb.ROUND_STATUS_CANCELLED: "cancelled"}
        if data.status not in names:
            raise ProviderProtocolError(f"tablehouse round status {data.status} is not one the contract has")
        if not self._units:
            await self.catalog(CatalogInput())
        try:
            stake = self._hub_minor(data.total_stake)
            win = self._hub_minor(data.win) if data.status == pb.ROUND_STATUS_SETTLED else 0
        except (AmountNotRepresentable, UnknownCurrency) as exc:
            raise ProviderProtocolError(f"tablehouse round amounts are not hub money: {exc}") from exc
        return RoundStatusResult(status=names[data.status], win_minor=win, stake_minor=stake)

    def replay_url(self, round_id: str) -> str | None:
        """Tablehouse replays a round at a fixed address (mock_providers/tablehouse/README.md, Rounds)."""
        return f"https://tablehouse.example/replay/{quote(round_id, safe='')}"

    async def health(self) -> bool:
        try:
            reply = await self._client.call(self._client.stub.CheckHealth, pb.CheckHealthRequest(), "CheckHealth")
        except ProviderError:
            return False
        return bool(reply.serving)

    async def close(self) -> None:
        await self._client.close()

    # -- money and lookups ------------------------------------------------------------------------

    async def _game(self, game_id: str) -> _Game:
        if game_id not in self._games:
            await self.catalog(CatalogInput())
        if game_id not in self._games:
            raise ProviderRejected(f"tablehouse has no game {game_id[:64]!r}")
        return self._games[game_id]

    def _studio_money(self, currency: str, amount_minor: int) -> Any:
        """Hub minor units to the studio's, exactly (AmountNotRepresentable before any call otherwise)."""
        if currency not in self._units:
            raise ProviderRejected(f"tablehouse does not count {currency[:8]!r}")
        return pb.StudioMoney(currency=currency, amount_minor=to_scaled_units(currency, amount_minor,
                                                                              self._units[currency]))

    def _hub_minor(self, money: Any) -> int:
        """The studio's amount in hub minor units; one the hub cannot hold exactly is a protocol error."""
        if money.currency not in self._units or money.amount_minor < 0:
            raise ProviderProtocolError(f"tablehouse amount {money.amount_minor} {money.currency[:8]!r} is not money")
        try:
            return from_scaled_units(money.currency, money.amount_minor, self._units[money.currency])
        except (AmountNotRepresentable, UnknownCurrency) as exc:
            raise ProviderProtocolError(f"tablehouse amount is not hub money: {exc}") from exc

    @staticmethod
    def _check_echo(answer: Any, round_id: str, step: int, currency: str) -> None:
        if (answer.round_id, answer.step, answer.total_stake.currency) != (round_id, step, currency):
            raise ProviderProtocolError("tablehouse answered for another round or step")


def _bet_limits(raw: Any, units: dict[str, int]) -> tuple[BetLimit, ...]:
    converted = []
    for limit in raw.bet_limits:
        try:
            if limit.currency not in units or limit.step_minor < 1:
                raise UnknownCurrency(f"no studio unit for {limit.currency[:8]!r}")
            per_major = units[limit.currency]
            hub_per_major = 10 ** exponent(limit.currency)
            # The smallest hub amount that is a whole number of studio steps.
            step = hub_per_major * limit.step_minor // gcd(hub_per_major * limit.step_minor, per_major)
            converted.append(BetLimit(
                currency=limit.currency,
                min_minor=from_scaled_units(limit.currency, limit.min_minor, per_major),
                max_minor=from_scaled_units(limit.currency, limit.max_minor, per_major),
                step_minor=step,
            ))
        except (AmountNotRepresentable, UnknownCurrency) as exc:
            log.info("tablehouse.currency_skipped", game=raw.game_id[:64], currency=limit.currency[:8],
                     reason=type(exc).__name__)
    return tuple(converted)


def _commitment(value: str) -> str:
    if not _SHA256_HEX.fullmatch(value):
        raise ProviderProtocolError(f"tablehouse commitment {value[:70]!r} is not a hex SHA-256")
    return value


def _proof(proof: Any) -> Proof:
    return Proof(server_seed_hash=_commitment(proof.server_seed_hash), client_seed=proof.client_seed[:128],
                 nonce=proof.nonce)
