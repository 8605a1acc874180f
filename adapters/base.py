"""The boundary between the hub and a game studio.

An adapter speaks one studio's protocol and nothing leaks past it: every method takes one frozen
dataclass (new fields never break old adapters), amounts are int minor units of the hub's currency,
and vendor exceptions are mapped onto the ProviderError tree below, at one place in each adapter.
"""

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class ProviderError(Exception):
    """Base of everything an adapter may raise."""


class ProviderUnavailable(ProviderError):
    """The studio could not be reached or answered with a server error; nothing happened there."""


class ProviderTimeout(ProviderError):
    """The studio did not answer in time; it may or may not have acted."""


class ProviderRejected(ProviderError):
    """The studio refused the request (bad signature, unknown game, limits, ...)."""


class ProviderProtocolError(ProviderError):
    """The studio answered something the hub cannot trust: malformed, or a win its paytable does not give."""


class AmountNotRepresentable(ProviderRejected):
    """An amount has no exact equivalent on the other side's scale (adapters.money): refused, never rounded.
    Raised before the studio hears of the bet, so nothing happened there."""


class UnknownCurrency(ProviderRejected):
    """A currency the hub's table (adapters.money.CURRENCY_EXPONENTS) does not hold."""


@dataclass(frozen=True)
class ProviderConfig:
    name: str  # short name, also the prefix of hub game ids: "<name>:<provider game id>"
    url: str
    secret: str
    timeout_s: float = 5.0
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BetLimit:
    currency: str
    min_minor: int
    max_minor: int
    # Bets must be a multiple of this: the studio's resolution in this currency (a studio counting
    # 1/100000 units cannot take 1 satoshi). The hub checks it before debiting anything.
    step_minor: int = 1


@dataclass(frozen=True)
class GameInfo:
    provider_game_id: str
    name: str
    game_type: str  # "slot" | "table" | "live" | "sports"
    rtp_basis_points: int  # theoretical RTP, 9612 = 96.12%
    max_win_multiplier: int  # no outcome pays more than bet * this
    bet_limits: tuple[BetLimit, ...]

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(limit.currency for limit in self.bet_limits)


@dataclass(frozen=True)
class CatalogInput:
    pass


@dataclass(frozen=True)
class LaunchInput:
    game_session_id: str
    provider_game_id: str
    operator_id: str
    player_id: str
    currency: str
    client_seed: str


@dataclass(frozen=True)
class LaunchResult:
    launch_url: str
    server_seed_hash: str  # the studio's commitment for this session's outcomes


@dataclass(frozen=True)
class Proof:
    server_seed_hash: str
    client_seed: str
    nonce: int
    server_seed: str = ""  # revealed only after the seed is rotated


@dataclass(frozen=True)
class PlayInput:
    round_id: str  # the hub's round id; the studio must treat it as its idempotency key
    game_session_id: str
    provider_game_id: str
    operator_id: str
    player_id: str
    currency: str
    bet_minor: int


@dataclass(frozen=True)
class PlayResult:
    provider_round_id: str
    result: str  # human-readable outcome, e.g. "SEVEN|SEVEN|BAR"
    win_minor: int  # already checked by the adapter against the studio's published paytable
    proof: Proof


@dataclass(frozen=True)
class RoundStatusInput:
    round_id: str
    operator_id: str


@dataclass(frozen=True)
class RoundStatusResult:
    status: str  # "settled" | "unknown" (the studio never saw it) | "cancelled"
    win_minor: int = 0


@runtime_checkable
class ProviderAdapter(Protocol):
    name: str

    async def catalog(self, request: CatalogInput) -> list[GameInfo]: ...

    async def launch(self, request: LaunchInput) -> LaunchResult: ...

    async def play(self, request: PlayInput) -> PlayResult: ...

    async def round_status(self, request: RoundStatusInput) -> RoundStatusResult: ...

    async def health(self) -> bool: ...

    async def close(self) -> None: ...
