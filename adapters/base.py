"""The boundary between the hub and a game studio.

An adapter speaks one studio's protocol and nothing leaks past it: every method takes one frozen
dataclass (new fields never break old adapters), amounts are int minor units of the hub's currency,
and vendor exceptions are mapped onto the ProviderError tree below, at one place in each adapter.

A studio that replays rounds for players and auditors says where with one optional method,
ReplayAdapter.replay_url (no network call: a URL pattern), which GetRound shows.

Multi-step games (blackjack) add one optional method, MultiStepAdapter.act: `play` opens the round and may
answer it unfinished, with the actions the player may take and what each adds to the stake; each `act`
plays one of them, until a PlayResult says finished.

An adapter class that serves only sandbox studios (the hub's own mock studios, a studio's demo server) says
so with a class attribute `sandbox_only = True`: a production hub refuses to start with it
(adapters.registry.is_sandbox_only; `registry.register(..., sandbox_only=True)` says the same).

An adapter whose studio moves money by calling the hub's wallet itself (push style: a live table) says
`demo_play = False`: a demo launch's fun money never reaches that studio's calls, so the hub refuses it
(DEMO_NOT_AVAILABLE) instead of seating a player whose every bet would be refused.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

LAYOUT = "layout"  # the PlayInput.params key of the bet's layout


class ProviderError(Exception):
    """Base of everything an adapter may raise. `retryable` marks an error the hub may retry (with the
    call's same key, after a backoff); an adapter sets it on an instance for, say, a studio's "slow down"."""

    retryable: bool = False


class ProviderUnavailable(ProviderError):
    """The studio could not be reached or answered with a server error; nothing happened there."""

    retryable = True


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


GAME_TYPES = ("slot", "table", "live", "instant")
# Feature flags a studio may declare; the hub passes through only these, so a filter means the same everywhere.
FEATURES = ("jackpot", "bonus_buy", "free_spins", "multiplier", "side_bets", "autoplay")
FALLBACK_LOCALE = "en"


@dataclass(frozen=True)
class RtpVariant:
    """One of the paytables (or rule sets) a studio runs a game at; an operator picks one per game."""

    variant_id: str  # the studio's name for it, at most 32 characters, e.g. "96"
    rtp_basis_points: int  # this variant's theoretical RTP


@dataclass(frozen=True)
class GameInfo:
    provider_game_id: str
    name: str  # English: the name every locale without a translation falls back to
    game_type: str  # one of GAME_TYPES
    rtp_basis_points: int  # theoretical RTP of the studio's default variant, 9612 = 96.12%
    # No outcome pays more than bet * this, whichever variant runs (the hub bounds every win with it).
    max_win_multiplier: int
    bet_limits: tuple[BetLimit, ...]
    features: tuple[str, ...] = ()  # a subset of FEATURES, sorted
    names: Mapping[str, str] = field(default_factory=dict)  # locale ("de", "ja", ...) -> translated name
    # Empty: the game runs at one RTP only. Otherwise the studio's default variant comes first.
    rtp_variants: tuple[RtpVariant, ...] = ()

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(limit.currency for limit in self.bet_limits)

    def name_in(self, locale: str) -> str:
        """The name for a locale ("de-AT" tries "de-AT", then "de"; tags compare case-insensitively),
        else the English one."""
        return self.names.get(self.locale_of(locale), self.name)

    def locale_of(self, locale: str) -> str:
        """The key of `names` that name_in(locale) uses, or FALLBACK_LOCALE."""
        names = {key.lower(): key for key in self.names}
        for candidate in (locale.lower(), locale.split("-")[0].lower()):
            if candidate in names:
                return names[candidate]
        return FALLBACK_LOCALE

    def variant(self, variant_id: str) -> RtpVariant | None:
        """The variant of that id ("" is the default); None when the game has no such variant."""
        if not self.rtp_variants:
            return RtpVariant("", self.rtp_basis_points) if not variant_id else None
        if not variant_id:
            return self.rtp_variants[0]
        return next((v for v in self.rtp_variants if v.variant_id == variant_id), None)


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
    rtp_variant: str = ""  # one of the game's RtpVariant ids; "": the studio's default
    # A demo launch (fun money, no wallet): a studio that moves money by calling the hub plays it on its own
    # fun balance, without calling the hub; pull-style adapters may ignore it (the hub keeps the fun balance).
    demo: bool = False


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
    bet_minor: int  # the round's whole stake at this step (a roulette layout's positions add up to it)
    # Game-specific bet parameters, documented by each adapter. Play's BetAction.layout (where the stake
    # goes: tablehouse roulette's positions) arrives under LAYOUT. Empty: the adapter's default for the
    # game. Values are client input: adapters quote a short prefix.
    params: Mapping[str, str] = field(default_factory=dict)
    # The caller continues an unfinished round with MultiStepAdapter.act. Without it, an adapter finishes
    # the round in this call or refuses it (ProviderRejected) before the studio hears of it.
    multi_step: bool = False
    rtp_variant: str = ""  # the variant the session was launched at; the adapter checks wins against it


@dataclass(frozen=True)
class ActionOption:
    action: str  # "hit" | "stand" | "double" | "split"
    extra_stake_minor: int = 0  # what taking it adds to the round's stake: the caller debits it first


@dataclass(frozen=True)
class PlayResult:
    provider_round_id: str
    result: str  # human-readable outcome, e.g. "SEVEN|SEVEN|BAR"; at most 256 characters
    win_minor: int  # already checked by the adapter against the studio's published rules; 0 until finished
    proof: Proof
    finished: bool = True  # False: the round waits for act(), with one of `actions`
    stake_minor: int | None = None  # the round's whole stake after this step; None: PlayInput.bet_minor
    actions: tuple[ActionOption, ...] = ()  # what act() may do next (empty once finished)
    step: int = 0  # this step's number in the round: play() is 0, each act() the next


@dataclass(frozen=True)
class ActionInput:
    round_id: str
    game_session_id: str
    provider_game_id: str
    operator_id: str
    player_id: str
    currency: str
    step: int  # the previous PlayResult.step + 1; (round_id, step) is the studio's idempotency key
    action: str  # one of the previous PlayResult.actions
    extra_stake_minor: int = 0  # exactly that ActionOption's extra_stake_minor, already debited


@dataclass(frozen=True)
class RoundStatusInput:
    round_id: str
    operator_id: str


@dataclass(frozen=True)
class RoundStatusResult:
    # "settled" | "unknown" (the studio never saw it) | "cancelled" | "in_progress" (a multi-step round
    # waiting for an action: ask again later; studios finish abandoned rounds by their own rule)
    status: str
    win_minor: int = 0
    stake_minor: int | None = None  # the round's whole stake as the studio counts it, when it says


@runtime_checkable
class ProviderAdapter(Protocol):
    name: str

    async def catalog(self, request: CatalogInput) -> list[GameInfo]: ...

    async def launch(self, request: LaunchInput) -> LaunchResult: ...

    async def play(self, request: PlayInput) -> PlayResult: ...

    async def round_status(self, request: RoundStatusInput) -> RoundStatusResult: ...

    async def health(self) -> bool: ...

    async def close(self) -> None: ...


@runtime_checkable
class ReplayAdapter(Protocol):
    """An adapter whose studio replays a round at a URL (at most 512 characters), from the hub's round id."""

    def replay_url(self, round_id: str) -> str | None: ...


@runtime_checkable
class MultiStepAdapter(ProviderAdapter, Protocol):
    """An adapter whose games may take more than one step per round (PlayResult.finished False)."""

    async def act(self, request: ActionInput) -> PlayResult: ...


# -- push-style studios over their own HTTP protocol -----------------------------------------------------------
# A studio that moves money by calling the hub in its own wire protocol (field names, amount format, status
# codes, signature) gets that protocol served by its adapter inside the hub (InboundAdapter.wallet_app). The
# adapter translates each call into one call on the hub's StudioWallet port, which runs the very domain path
# ProviderWalletService runs: the same semantics, whichever protocol the studio speaks.


@dataclass(frozen=True)
class WalletCall:
    """One studio money call in the hub's terms: ids are the studio's, amounts int minor units."""

    session_token: str  # the game_session_id the hub launched the game with
    player_id: str
    currency: str = ""
    transaction_id: str = ""  # the studio's id of this call: its idempotency key at the hub
    round_id: str = ""
    amount_minor: int = 0  # the bet (bet, bet_and_win) or the win (win)
    win_minor: int = 0  # bet_and_win's win
    bet_transaction_id: str = ""  # the bet a win pays or a rollback refunds
    round_closed: bool = False


@dataclass(frozen=True)
class WalletAnswer:
    """The wallet after a call (or as it stands, with a refusal): studios show it on every answer."""

    currency: str
    balance_minor: int  # cash
    bonus_minor: int = 0
    player_id: str = ""
    transaction_id: str = ""  # the hub's ledger transaction, when the call moved money


class WalletRefused(Exception):
    """The hub refused a studio call. reason: the hub's stable ErrorReason word (INSUFFICIENT_FUNDS,
    BET_NOT_FOUND, ...); retryable: the same call may succeed later; wallet: as it stands, when known."""

    def __init__(self, reason: str, message: str, retryable: bool = False, wallet: WalletAnswer | None = None):
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable
        self.wallet = wallet


class StudioWallet(Protocol):
    """The port the hub gives an InboundAdapter, bound to that adapter's studio. Each method answers the
    wallet or raises WalletRefused; a call resent with the same transaction_id is answered from the hub's
    record and moves nothing again."""

    async def authenticate(self, call: WalletCall) -> WalletAnswer: ...  # session_token only

    async def balance(self, call: WalletCall) -> WalletAnswer: ...

    async def bet(self, call: WalletCall) -> WalletAnswer: ...

    async def win(self, call: WalletCall) -> WalletAnswer: ...

    async def bet_and_win(self, call: WalletCall) -> WalletAnswer: ...

    async def rollback(self, call: WalletCall) -> WalletAnswer: ...


@runtime_checkable
class InboundAdapter(ProviderAdapter, Protocol):
    """An adapter that serves its studio's wallet protocol inside the hub: the hub mounts the returned aiohttp
    application (typed object: the SDK does not make aiohttp a dependency of every adapter) under
    /<provider name>/ on its inbound HTTP server."""

    def wallet_app(self, wallet: StudioWallet) -> object: ...
