"""InstanthouseAdapter: the hub's side of an instant-games studio that pushes money calls in its own protocol.

Pull side (`Authorization: Bearer <secret>`, mock_providers/instanthouse/server.py): the catalog (bet limits
as decimal strings in major units, converted exactly), LaunchGame (the studio opens a session keyed by the
hub's game_session_id and answers the game URL the player opens, with that token in it) and health.
Play's bets do not apply: a player plays at the studio's game URL, which moves the money by calling the
hub (wallet_app, adapters/instanthouse/wallet_api.py) - a Play bet is refused PROVIDER_REJECTED and the
studio's rounds are its own to close (the reconciler leaves them alone). A demo launch opens a session in the
studio's fun mode: it plays on the studio's own fun balance and never calls the hub.
"""

from aiohttp import web

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
    ProviderConfig,
    ProviderProtocolError,
    ProviderRejected,
    RoundStatusInput,
    RoundStatusResult,
    StudioWallet,
    UnknownCurrency,
)
from adapters.bearer_json import BearerJsonClient
from adapters.instanthouse.wallet_api import WalletApi
from adapters.money import from_decimal_string

MAX_URL = 512


class InstanthouseAdapter:
    sandbox_only = True  # the mock studio: a production hub refuses it (hub/environments.py)

    def __init__(self, config: ProviderConfig):
        self.name = config.name
        self._secret = config.secret
        self._http = BearerJsonClient(config.name, config.url, config.secret, config.timeout_s)

    def wallet_app(self, wallet: StudioWallet) -> web.Application:
        """The studio's wallet protocol, served by the hub's inbound HTTP server under /<name>/."""
        return WalletApi(self._secret, wallet).app()

    async def catalog(self, request: CatalogInput) -> list[GameInfo]:
        data = await self._http.request("GET", "/api/games")
        try:
            return [self._game(game) for game in data["games"]]
        except (KeyError, TypeError, ValueError, AttributeError, AmountNotRepresentable, UnknownCurrency) as exc:
            raise ProviderProtocolError("instanthouse catalog is malformed") from exc

    @staticmethod
    def _game(game: dict) -> GameInfo:  # type: ignore[type-arg]
        names = {str(k): str(v)[:128] for k, v in game["names"].items()}
        limits = []
        for currency, (low, high) in sorted(game["limits"].items()):
            try:
                limits.append(BetLimit(currency, from_decimal_string(currency, low),
                                       from_decimal_string(currency, high)))
            except UnknownCurrency:
                continue  # a currency the hub does not hold is not offered
        return GameInfo(provider_game_id=str(game["gameId"]), name=names.get("en") or str(game["gameId"]),
                        game_type="instant", rtp_basis_points=int(game["rtpBasisPoints"]),
                        max_win_multiplier=int(game["maxWinMultiplier"]), bet_limits=tuple(limits),
                        features=tuple(sorted(f for f in game.get("features", ()) if f in FEATURES)),
                        names={k: v for k, v in names.items() if k != "en"})

    async def launch(self, request: LaunchInput) -> LaunchResult:
        data = await self._http.request("POST", "/api/sessions", {
            "token": request.game_session_id, "userId": request.player_id, "currency": request.currency,
            "gameId": request.provider_game_id, "clientSeed": request.client_seed,
            "mode": "demo" if request.demo else "real"})
        url, seed_hash = data.get("gameUrl"), data.get("serverSeedHash")
        if not isinstance(url, str) or not isinstance(seed_hash, str) or len(url) > MAX_URL or len(seed_hash) != 64:
            raise ProviderProtocolError("instanthouse launch answer has no valid gameUrl and serverSeedHash")
        return LaunchResult(launch_url=url, server_seed_hash=seed_hash)

    async def play(self, request: PlayInput) -> PlayResult:
        raise ProviderRejected("instanthouse rounds are played at the studio's game URL (the launch URL), "
                               "not through Play")

    async def round_status(self, request: RoundStatusInput) -> RoundStatusResult:
        return RoundStatusResult("unknown")  # no round of Play's ever reaches the studio (play refuses first)

    async def health(self) -> bool:
        return await self._http.healthy("/api/health")

    async def close(self) -> None:
        await self._http.close()
