"""ReelhouseAdapter: the hub's ProviderAdapter for the Reelhouse slots studio (signed HTTP/JSON).

Amounts cross the boundary as integers in 1/100000 of a unit, converted exactly by adapters.money. Each win
is recomputed from the studio's published paytable and the returned stops before the hub believes it.
"""

import hashlib
import re
from dataclasses import dataclass
from math import gcd
from urllib.parse import quote

import structlog

from adapters.base import (
    FEATURES,
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
    RtpVariant,
    UnknownCurrency,
)
from adapters.money import exponent, from_scaled_units, to_scaled_units
from adapters.reelhouse.client import StudioClient, StudioRejected, expect
from adapters.reelhouse.paytable import Paytable

UNITS_PER_MAJOR = 100_000
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SeedReveal:
    server_seed: str  # the retired seed, now public
    server_seed_hash: str  # its commitment, checked: sha256(server_seed)
    next_server_seed_hash: str  # the commitment for the rounds that follow


class ReelhouseAdapter:
    # Reelhouse exists only as the hub's mock studio (mock_providers/): a production hub refuses it.
    sandbox_only = True

    def __init__(self, config: ProviderConfig):
        self.name = config.name
        self._client = StudioClient(config.url, config.secret, config.timeout_s)
        self._replay_base = config.url.rstrip("/") + "/replay/"
        # (game id, variant id) -> paytable; variant "" is the game's default paytable.
        self._paytables: dict[tuple[str, str], Paytable] = {}

    def replay_url(self, round_id: str) -> str | None:
        """The studio's public replay page of a spin (GET /replay/{round_id}, unsigned)."""
        return self._replay_base + quote(round_id, safe="")

    async def catalog(self, request: CatalogInput) -> list[GameInfo]:
        data = await self._client.request("GET", "/v1/games")
        games = []
        for raw in expect(data, "games", list):
            if not isinstance(raw, dict):
                raise ProviderProtocolError("reelhouse catalog entry is not an object")
            game_id = expect(raw, "game_id", str)
            self._paytables[game_id, ""] = Paytable.from_catalog(raw.get("reels"), raw.get("paytable"))
            variants = []
            for entry in raw.get("rtp_variants") or []:
                if not isinstance(entry, dict):
                    raise ProviderProtocolError(f"reelhouse {game_id} variant is not an object")
                variant = RtpVariant(expect(entry, "variant", str)[:32], expect(entry, "rtp_basis_points", int))
                self._paytables[game_id, variant.variant_id] = Paytable.from_catalog(
                    raw.get("reels"), entry.get("paytable"))
                variants.append(variant)
            max_win = max([expect(raw, "max_win_multiplier", int), *(
                expect(e, "max_win_multiplier", int) for e in raw.get("rtp_variants") or [])])
            games.append(GameInfo(
                provider_game_id=game_id,
                name=expect(raw, "name", str),
                game_type=expect(raw, "type", str),
                rtp_basis_points=expect(raw, "rtp_basis_points", int),
                max_win_multiplier=max_win,
                bet_limits=_bet_limits(game_id, expect(raw, "bet_limits", dict)),
                features=tuple(sorted(f for f in raw.get("features") or [] if f in FEATURES)),
                names={k: v for k, v in (raw.get("names") or {}).items()
                       if isinstance(k, str) and isinstance(v, str) and len(k) <= 35 and v},
                rtp_variants=tuple(variants),
            ))
        return games

    async def launch(self, request: LaunchInput) -> LaunchResult:
        data = await self._client.request("POST", "/v1/sessions", {
            "session_id": request.game_session_id,
            "game_id": request.provider_game_id,
            "player_id": request.player_id,
            "currency": request.currency,
            "client_seed": request.client_seed,
            **({"rtp_variant": request.rtp_variant} if request.rtp_variant else {}),
        })
        commitment = _commitment(expect(data, "server_seed_hash", str))
        return LaunchResult(expect(data, "launch_url", str), commitment)

    async def play(self, request: PlayInput) -> PlayResult:
        # Raises AmountNotRepresentable before the studio hears of the bet.
        bet = to_scaled_units(request.currency, request.bet_minor, UNITS_PER_MAJOR)
        paytable = await self._paytable(request.provider_game_id, request.rtp_variant)
        data = await self._client.request("POST", "/v1/spins", {
            "round_id": request.round_id,
            "session_id": request.game_session_id,
            "game_id": request.provider_game_id,
            "player_id": request.player_id,
            "currency": request.currency,
            "bet": bet,
        })
        echoed = (expect(data, "round_id", str), expect(data, "currency", str), expect(data, "bet", int))
        if echoed != (request.round_id, request.currency, bet):
            raise ProviderProtocolError(f"reelhouse answered for another spin: {echoed}")
        if request.rtp_variant and data.get("rtp_variant") != request.rtp_variant:
            raise ProviderProtocolError(f"reelhouse paid variant {data.get('rtp_variant')!r}, "
                                        f"not {request.rtp_variant!r}")
        stops = expect(data, "stops", list)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in stops):
            raise ProviderProtocolError("reelhouse stops are not integers")
        symbols = paytable.symbols_at(stops)
        if expect(data, "symbols", list) != symbols:
            raise ProviderProtocolError(f"reelhouse symbols {data['symbols']} do not match stops {stops}")
        win, paid = expect(data, "win", int), bet * paytable.multiplier(symbols)
        if win != paid:
            raise ProviderProtocolError(f"reelhouse claims win {win} but its paytable gives {paid}")
        proof = expect(data, "proof", dict)
        return PlayResult(
            provider_round_id=expect(data, "provider_round_id", str),
            result="|".join(symbols),
            win_minor=from_scaled_units(request.currency, win, UNITS_PER_MAJOR),
            proof=Proof(
                server_seed_hash=_commitment(expect(proof, "server_seed_hash", str)),
                client_seed=expect(proof, "client_seed", str),
                nonce=expect(proof, "nonce", int),
            ),
        )

    async def round_status(self, request: RoundStatusInput) -> RoundStatusResult:
        try:
            data = await self._client.request("GET", f"/v1/rounds/{quote(request.round_id, safe='')}")
        except StudioRejected as exc:
            if exc.code == "ROUND_NOT_FOUND":
                return RoundStatusResult(status="unknown")
            raise
        if expect(data, "status", str) != "settled":
            raise ProviderProtocolError(f"reelhouse round status {data['status']!r} is not one it documents")
        currency, win = expect(data, "currency", str), expect(data, "win", int)
        try:
            win_minor = from_scaled_units(currency, win, UNITS_PER_MAJOR)
        except (AmountNotRepresentable, UnknownCurrency) as exc:
            raise ProviderProtocolError(f"reelhouse round win is not hub money: {exc}") from exc
        return RoundStatusResult(status="settled", win_minor=win_minor)

    async def rotate_seed(self, game_session_id: str) -> SeedReveal:
        """Retire the session's server seed so its past rounds can be verified (not yet in the protocol)."""
        path = f"/v1/sessions/{quote(game_session_id, safe='')}/rotate-seed"
        data = await self._client.request("POST", path)
        reveal = SeedReveal(
            server_seed=expect(data, "previous_server_seed", str),
            server_seed_hash=_commitment(expect(data, "previous_server_seed_hash", str)),
            next_server_seed_hash=_commitment(expect(data, "server_seed_hash", str)),
        )
        if hashlib.sha256(reveal.server_seed.encode()).hexdigest() != reveal.server_seed_hash:
            raise ProviderProtocolError("reelhouse revealed a seed that does not match its commitment")
        return reveal

    async def health(self) -> bool:
        try:
            return (await self._client.request("GET", "/health")).get("status") == "ok"
        except ProviderError:
            return False

    async def close(self) -> None:
        await self._client.close()

    async def _paytable(self, game_id: str, variant: str) -> Paytable:
        if (game_id, variant) not in self._paytables:
            await self.catalog(CatalogInput())
        if (game_id, variant) not in self._paytables:
            raise ProviderRejected(f"reelhouse has no game {game_id!r} at variant {variant[:32]!r}")
        return self._paytables[game_id, variant]


def _bet_limits(game_id: str, limits: dict) -> tuple[BetLimit, ...]:
    converted = []
    for currency, limit in sorted(limits.items()):
        if not isinstance(limit, dict):
            raise ProviderProtocolError(f"reelhouse {game_id} limit for {currency} is not an object")
        low, high = expect(limit, "min", int), expect(limit, "max", int)
        try:
            converted.append(BetLimit(
                currency=currency,
                min_minor=from_scaled_units(currency, low, UNITS_PER_MAJOR),
                max_minor=from_scaled_units(currency, high, UNITS_PER_MAJOR),
                step_minor=_step_minor(currency),
            ))
        except (AmountNotRepresentable, UnknownCurrency) as exc:
            # A currency the hub does not hold, or limits it cannot state exactly: not offered.
            log.info("reelhouse.currency_skipped", game=game_id, currency=currency, reason=type(exc).__name__)
    return tuple(converted)


def _step_minor(currency: str) -> int:
    """The smallest bet, in hub minor units, that is a whole number of 1/100000 units (BTC: 1000 satoshi)."""
    minor_per_major = 10 ** exponent(currency)
    return minor_per_major // gcd(minor_per_major, UNITS_PER_MAJOR)


def _commitment(value: str) -> str:
    if not _SHA256_HEX.fullmatch(value):
        raise ProviderProtocolError(f"reelhouse commitment {value!r} is not a hex SHA-256")
    return value
