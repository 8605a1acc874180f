"""LivehouseAdapter: the hub's side of a push-style live-dealer studio.

The studio runs its tables on its own clock and moves money by calling the hub's ProviderWalletService,
so the hub only pulls its catalog and seats players at launch (the launch URL is the table's stream, the
game_session_id the session token the studio calls the hub with). Play's bets do not apply: a player bets
at the studio's table (a Play bet is refused PROVIDER_REJECTED and refunded), and the studio's rounds are
its own to close (the hub's reconciler leaves them alone).

Protocol: JSON over HTTP with `Authorization: Bearer <secret>` (mock_providers/livehouse/server.py).
"""

from adapters.base import (
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
)
from adapters.bearer_json import BearerJsonClient


class LivehouseAdapter:
    sandbox_only = True  # the mock live table: a production hub refuses it (hub/environments.py)
    demo_play = False  # the table calls the hub's wallet for every bet: no fun money (hub/demo.py refuses)

    def __init__(self, config: ProviderConfig):
        self.name = config.name
        self._http = BearerJsonClient(config.name, config.url, config.secret, config.timeout_s)

    async def catalog(self, request: CatalogInput) -> list[GameInfo]:
        data = await self._http.request("GET", "/v1/games")
        try:
            return [GameInfo(provider_game_id=str(g["game_id"]), name=str(g["name"]), game_type="live",
                             rtp_basis_points=int(g["rtp_basis_points"]),
                             max_win_multiplier=int(g["max_win_multiplier"]),
                             names={k: v for k, v in (g.get("names") or {}).items()
                                    if isinstance(k, str) and isinstance(v, str) and len(k) <= 35 and v},
                             bet_limits=tuple(BetLimit(c, int(lo), int(hi))
                                              for c, (lo, hi) in sorted(g["bet_limits"].items())))
                    for g in data["games"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProviderProtocolError("livehouse catalog is malformed") from exc

    async def launch(self, request: LaunchInput) -> LaunchResult:
        data = await self._http.request("POST", "/v1/sessions", {
            "game_session_id": request.game_session_id, "player_id": request.player_id,
            "currency": request.currency, "game_id": request.provider_game_id})
        url, seed_hash = data.get("stream_url"), data.get("server_seed_hash")
        if not isinstance(url, str) or not isinstance(seed_hash, str) or len(url) > 512 or len(seed_hash) != 64:
            raise ProviderProtocolError("livehouse launch answer has no valid stream_url and server_seed_hash")
        return LaunchResult(launch_url=url, server_seed_hash=seed_hash)

    async def play(self, request: PlayInput) -> PlayResult:
        raise ProviderRejected("livehouse takes bets at its own table (the launch URL), not through Play")

    async def round_status(self, request: RoundStatusInput) -> RoundStatusResult:
        return RoundStatusResult("unknown")  # no round of Play's ever reaches the studio (play refuses first)

    async def health(self) -> bool:
        return await self._http.healthy("/v1/health")

    async def close(self) -> None:
        await self._http.close()
