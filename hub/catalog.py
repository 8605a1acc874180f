"""The aggregated game catalog and the routing from a hub game id to the adapter that serves it.

Hub game ids are "<provider>:<provider game id>". Catalogs are fetched from the adapters and cached;
a provider that cannot be reached keeps its last known games and is retried on the next refresh.
What an operator sees is filtered by its settings (hub.catalog_settings: disabled studios, blocked
countries, RTP variants) and by each studio's health: a studio whose `health()` fails, or whose circuit
breaker (hub.studio_guard) is open, leaves every operator's catalog until a later check (at most every
health_ttl_s) finds it healthy again.
"""

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from adapters.base import (
    FEATURES,
    CatalogInput,
    GameInfo,
    ProviderAdapter,
    ProviderError,
    ProviderProtocolError,
    RtpVariant,
)
from hub.catalog_settings import CatalogSettings, OperatorSettings, country_in
from hub.errors import DomainError, Reason, quote
from hub.page_tokens import PageTokens
from hub.studio_guard import GuardedAdapter

log = structlog.get_logger(__name__)
REFRESH_AFTER_S = 60.0
HEALTH_PROBE_S = 2.0  # a studio that does not answer its health check within this is unhealthy
# BCP 47, loosely: a 2-3 letter language, then subtags ("de", "pt-BR", "zh-Hant-TW"); at most 35 characters.
LOCALE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
MAX_FEATURES = 8


@dataclass(frozen=True)
class GameQuery:
    """ListGames' filters; empty means any."""

    game_type: str = ""
    provider: str = ""
    currency: str = ""
    features: tuple[str, ...] = ()
    text: str = ""
    locale: str = ""
    country: str = ""

    def checked(self) -> "GameQuery":
        """The query with its client input validated and normalized (sorted flags, upper-case country)."""
        if self.locale and (len(self.locale) > 35 or not LOCALE.fullmatch(self.locale)):
            raise DomainError(Reason.INVALID_ARGUMENT, f"locale {quote(self.locale, 12)} is not a BCP 47 tag "
                              "such as de or pt-BR")
        if len(self.features) > MAX_FEATURES:
            raise DomainError(Reason.INVALID_ARGUMENT, f"at most {MAX_FEATURES} features")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise DomainError(Reason.INVALID_ARGUMENT, f"unknown feature {quote(unknown[0], 32)}; "
                              f"one of {', '.join(FEATURES)}")
        if len(self.text) > 64:
            raise DomainError(Reason.INVALID_ARGUMENT, "text must be at most 64 characters")
        return GameQuery(self.game_type, self.provider, self.currency, tuple(sorted(set(self.features))),
                         self.text, self.locale.lower(), country_in(self.country))


@dataclass(frozen=True)
class ListedGame:
    """A game as one operator sees it: its name in the asked locale, at the operator's RTP variant."""

    game: "CatalogGame"
    name: str
    locale: str
    rtp_variant: str
    rtp_basis_points: int


@dataclass(frozen=True)
class CatalogGame:
    game_id: str
    provider: str
    info: GameInfo

    def check_bet(self, currency: str, amount_minor: int) -> None:
        """Refuse a stake outside the game's limits or finer than its provider can express."""
        if currency not in self.info.currencies:
            raise DomainError(Reason.CURRENCY_MISMATCH, f"{self.game_id} does not accept {currency}")
        limit = next(lim for lim in self.info.bet_limits if lim.currency == currency)
        if not limit.min_minor <= amount_minor <= limit.max_minor:
            raise DomainError(Reason.BET_OUT_OF_LIMITS,
                              f"bet must be between {limit.min_minor} and {limit.max_minor} minor units")
        if amount_minor % limit.step_minor:
            raise DomainError(Reason.AMOUNT_NOT_REPRESENTABLE,
                              f"bet must be a multiple of {limit.step_minor} minor units for this provider")

    def check_win(self, stake_minor: int, win_minor: int) -> None:
        """Never trust the provider's arithmetic: the adapter re-evaluated the paytable; this bounds it."""
        if not 0 <= win_minor <= stake_minor * self.info.max_win_multiplier:
            raise ProviderProtocolError(f"win {win_minor} outside 0..{self.info.max_win_multiplier}x the bet")


@dataclass(frozen=True)
class StudioConfiguration:
    studio: str
    enabled: bool
    healthy: bool
    blocked_countries: tuple[str, ...]


@dataclass(frozen=True)
class GameConfiguration:
    game_id: str
    blocked_countries: tuple[str, ...]
    rtp_variants: tuple[RtpVariant, ...]
    rtp_variant: str  # "": the studio's default


@dataclass(frozen=True)
class OperatorConfiguration:
    operator_id: str
    studios: tuple[StudioConfiguration, ...]
    games: tuple[GameConfiguration, ...]


class Catalog:
    def __init__(self, adapters: dict[str, ProviderAdapter], page_tokens: PageTokens,
                 settings: CatalogSettings | None = None, health_ttl_s: float = 5.0):
        """settings None: every operator at the defaults (every studio enabled, nothing blocked)."""
        for name in adapters:  # game ids and country blocks tell a studio from a game by the colon
            if not name or ":" in name:
                raise ValueError(f"studio name {name!r} must be non-empty and hold no colon")
        self.adapters = adapters
        self.settings = settings
        self._page_tokens = page_tokens
        self._games: dict[str, CatalogGame] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._health_ttl_s = health_ttl_s
        self._healthy: dict[str, bool] = {}
        self._health_at = -health_ttl_s
        self._health_lock = asyncio.Lock()
        self._health_tasks: set[asyncio.Task[None]] = set()

    async def operator_settings(self, operator_id: str) -> OperatorSettings:
        return await self.settings.get(operator_id) if self.settings else OperatorSettings()

    async def health(self) -> dict[str, bool]:
        """Each studio's health, checked concurrently at most every health_ttl_s. Only the first call
        waits for the checks; later ones answer the last result while a check older than the TTL is
        redone in the background, so a studio that hangs never slows a listing."""
        if not self._healthy:
            await self._check_health()
        elif time.monotonic() - self._health_at >= self._health_ttl_s and not self._health_lock.locked():
            task = asyncio.create_task(self._check_health())
            self._health_tasks.add(task)
            task.add_done_callback(self._health_tasks.discard)
        return self._healthy

    async def _check_health(self) -> None:
        async with self._health_lock:
            if self._healthy and time.monotonic() - self._health_at < self._health_ttl_s:
                return  # another caller just checked
            names = list(self.adapters)
            checks = await asyncio.gather(*(self._probe(n) for n in names))
            for name, healthy in zip(names, checks, strict=True):
                if healthy != self._healthy.get(name, True):
                    log.warning("catalog.studio_health", provider=name, healthy=healthy)
            self._healthy = dict(zip(names, checks, strict=True))
            self._health_at = time.monotonic()

    async def _probe(self, name: str) -> bool:
        adapter = self.adapters[name]
        if isinstance(adapter, GuardedAdapter) and not adapter.accepting():
            return False  # its circuit is open: a launch would fail without reaching the studio
        try:
            return bool(await asyncio.wait_for(adapter.health(), HEALTH_PROBE_S))
        except Exception as exc:  # noqa: BLE001 - a health check that fails in any way says unhealthy
            log.info("catalog.health_failed", provider=name, error=type(exc).__name__)
            return False

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            now = time.monotonic()
            for name, adapter in self.adapters.items():
                if not force and now - self._fetched_at.get(name, -REFRESH_AFTER_S) < REFRESH_AFTER_S:
                    continue
                try:
                    games = await adapter.catalog(CatalogInput())
                except ProviderError as exc:
                    log.warning("catalog.refresh_failed", provider=name, error=str(exc))
                    continue
                self._games = {gid: g for gid, g in self._games.items() if g.provider != name}
                for info in games:
                    game_id = f"{name}:{info.provider_game_id}"
                    self._games[game_id] = CatalogGame(game_id, name, info)
                self._fetched_at[name] = now

    async def game(self, game_id: str) -> tuple[CatalogGame, ProviderAdapter]:
        if game_id not in self._games:
            await self.refresh()
        found = self._games.get(game_id)
        if found is None:
            raise DomainError(Reason.GAME_NOT_FOUND, f"no game {quote(game_id)}")
        return found, self.adapters[found.provider]

    async def offer(self, operator_id: str, game_id: str, country: str) -> tuple[CatalogGame, ProviderAdapter, str]:
        """The game, its adapter and the RTP variant to launch it at for this operator and player country,
        or the reason the operator cannot offer it now."""
        game, adapter = await self.game(game_id)
        settings = await self.operator_settings(operator_id)
        if not settings.studio_enabled(game.provider):
            raise DomainError(Reason.STUDIO_DISABLED, f"studio {game.provider} is disabled for this operator")
        country = country_in(country)
        blocked = settings.blocked_countries(game.provider, game_id)
        if blocked and not country:
            raise DomainError(Reason.COUNTRY_REQUIRED, f"{game_id} is blocked in some countries: say the player's")
        if country in blocked:
            raise DomainError(Reason.GAME_BLOCKED_IN_COUNTRY, f"{game_id} is not offered in {country}")
        if not (await self.health()).get(game.provider, False):
            raise DomainError(Reason.STUDIO_UNAVAILABLE, f"studio {game.provider} fails its health check; "
                              "retry later")
        return game, adapter, self._variant(settings, game)[0]

    @staticmethod
    def _variant(settings: OperatorSettings, game: CatalogGame) -> tuple[str, int]:
        """(variant id, its RTP) the operator runs the game at; a variant the studio dropped: its default."""
        chosen = game.info.variant(settings.rtp_variants.get(game.game_id, "")) or game.info.variant("")
        assert chosen is not None  # the default always exists
        return chosen.variant_id, chosen.rtp_basis_points

    async def list(self, *, operator_id: str, query: GameQuery, page_size: int,
                   page_token: str) -> tuple[list[ListedGame], str]:
        if not 0 <= page_size <= 500:
            raise DomainError(Reason.INVALID_ARGUMENT, "page_size must be 0..500")
        q = query.checked()
        shape: tuple[str, ...] = ("ListGames", operator_id, q.game_type, q.provider, q.currency)
        if q.features or q.text or q.locale or q.country:  # tokens issued before these filters stay valid
            shape += (",".join(q.features), q.text, q.locale, q.country)
        after = str(self._page_tokens.read(page_token, shape)[0]) if page_token else ""
        await self.refresh()
        settings = await self.operator_settings(operator_id)
        healthy = await self.health()
        needle = q.text.casefold()
        matching: list[ListedGame] = []
        for gid, g in sorted(self._games.items()):
            if (gid <= after or not settings.studio_enabled(g.provider) or not healthy.get(g.provider, False)
                    or (q.game_type and g.info.game_type != q.game_type)
                    or (q.provider and g.provider != q.provider)
                    or (q.currency and q.currency not in g.info.currencies)
                    or not set(q.features) <= set(g.info.features)
                    or (q.country and q.country in settings.blocked_countries(g.provider, gid))):
                continue
            name = g.info.name_in(q.locale)
            if needle and needle not in name.casefold() and needle not in gid.casefold():
                continue
            variant, rtp = self._variant(settings, g)
            matching.append(ListedGame(g, name, g.info.locale_of(q.locale), variant, rtp))
        page = matching[: page_size or 100]
        more = len(matching) > len(page)
        return page, self._page_tokens.issue(shape, [page[-1].game.game_id]) if more else ""

    # -- what AdminService configures per operator ----------------------------------------------------

    async def configuration(self, operator_id: str) -> OperatorConfiguration:
        settings = await self.operator_settings(operator_id)
        healthy = await self.health()
        studios = tuple(StudioConfiguration(name, settings.studio_enabled(name), healthy.get(name, False),
                                            tuple(sorted(settings.blocked.get(name, ())))) for name in sorted(self.adapters))
        games = tuple(GameConfiguration(g.game_id, tuple(sorted(settings.blocked.get(g.game_id, ()))),
                                        g.info.rtp_variants, settings.rtp_variants.get(g.game_id, ""))
                      for g in await self.all_games())
        return OperatorConfiguration(operator_id, studios, games)

    async def set_studio_enabled(self, operator_id: str, studio: str, enabled: bool) -> None:
        self._check_studio(studio)
        await self._settings().set_studio_enabled(operator_id, studio, enabled)

    async def set_blocked_countries(self, operator_id: str, studio: str, game_id: str, countries: Sequence[str]) -> None:
        if bool(studio) == bool(game_id):
            raise DomainError(Reason.INVALID_ARGUMENT, "name exactly one of studio and game_id")
        if studio:
            self._check_studio(studio)
        else:
            await self.game(game_id)
        await self._settings().set_blocked_countries(operator_id, studio or game_id, countries)

    async def set_rtp_variant(self, operator_id: str, game_id: str, variant: str) -> None:
        game, _ = await self.game(game_id)
        if len(variant) > 32 or (variant and game.info.variant(variant) is None):
            raise DomainError(Reason.RTP_VARIANT_NOT_OFFERED, f"{game_id} has no RTP variant {quote(variant, 32)}")
        await self._settings().set_rtp_variant(operator_id, game_id, variant)

    def _check_studio(self, studio: str) -> None:
        if studio not in self.adapters:
            raise DomainError(Reason.STUDIO_NOT_FOUND, f"no studio {quote(studio)} in this hub")

    def _settings(self) -> CatalogSettings:
        if self.settings is None:
            raise RuntimeError("this catalog was built without settings storage")
        return self.settings

    async def all_games(self) -> tuple[CatalogGame, ...]:
        await self.refresh()
        return tuple(g for _, g in sorted(self._games.items()))
