"""A scriptable in-process studio for tests about the hub itself (the real studios have contract tests)."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.base import (
    BetLimit,
    CatalogInput,
    GameInfo,
    LaunchInput,
    LaunchResult,
    PlayInput,
    PlayResult,
    Proof,
    ProviderError,
    RoundStatusInput,
    RoundStatusResult,
)

FAKE_GAME = GameInfo(provider_game_id="coin-flip", name="Coin Flip", game_type="slot", rtp_basis_points=9500,
                     max_win_multiplier=10,
                     bet_limits=(BetLimit("USD", 1, 100_000), BetLimit("JPY", 1, 1_000_000),
                                 BetLimit("BTC", 1_000, 10**8, step_minor=1_000)))


@dataclass
class FakeStudio:
    """win(bet) decides each round; `fail` (an exception) or `delay` make the next calls misbehave."""

    name: str = "fake"
    win: Callable[[int], int] = lambda bet: 0
    delay: float = 0.0
    # Set: each play waits until it is set, so a round stays in play until the test lets it end (a delay
    # would be a race on a loaded machine).
    hold: asyncio.Event | None = None
    fail: ProviderError | None = None
    plays: list[PlayInput] = field(default_factory=list)
    games: list[GameInfo] = field(default_factory=lambda: [FAKE_GAME])  # what catalog answers
    # What round_status answers, by round id ("unknown" for any other); status_error makes it fail.
    statuses: dict[str, RoundStatusResult] = field(default_factory=dict)
    status_error: ProviderError | None = None

    async def catalog(self, request: CatalogInput) -> list[GameInfo]:
        return list(self.games)

    async def launch(self, request: LaunchInput) -> LaunchResult:
        return LaunchResult(launch_url=f"https://fake.example/{request.game_session_id}", server_seed_hash="ab" * 32)

    async def play(self, request: PlayInput) -> PlayResult:
        self.plays.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hold is not None:
            await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        return PlayResult(provider_round_id=f"p-{request.round_id}", result="HEADS",
                          win_minor=self.win(request.bet_minor),
                          proof=Proof(server_seed_hash="ab" * 32, client_seed="c", nonce=len(self.plays)))

    async def round_status(self, request: RoundStatusInput) -> RoundStatusResult:
        if self.status_error is not None:
            raise self.status_error
        return self.statuses.get(request.round_id, RoundStatusResult(status="unknown"))

    async def health(self) -> bool:
        return True

    async def close(self) -> None:
        pass
