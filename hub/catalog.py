"""The aggregated game catalog and the routing from a hub game id to the adapter that serves it.

Hub game ids are "<provider>:<provider game id>". Catalogs are fetched from the adapters and cached;
a provider that cannot be reached keeps its last known games and is retried on the next refresh.
"""

import asyncio
import time
from dataclasses import dataclass

import structlog

from adapters.base import CatalogInput, GameInfo, ProviderAdapter, ProviderError
from hub.errors import DomainError, Reason, quote
from hub.page_tokens import PageTokens

log = structlog.get_logger(__name__)
REFRESH_AFTER_S = 60.0


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


class Catalog:
    def __init__(self, adapters: dict[str, ProviderAdapter], page_tokens: PageTokens):
        self.adapters = adapters
        self._page_tokens = page_tokens
        self._games: dict[str, CatalogGame] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = asyncio.Lock()

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

    async def list(self, *, operator_id: str, game_type: str, provider: str, currency: str, page_size: int,
                   page_token: str) -> tuple[list[CatalogGame], str]:
        if not 0 <= page_size <= 500:
            raise DomainError(Reason.INVALID_ARGUMENT, "page_size must be 0..500")
        query = ("ListGames", operator_id, game_type, provider, currency)
        after = str(self._page_tokens.read(page_token, query)[0]) if page_token else ""
        await self.refresh()
        matching = [
            g for gid, g in sorted(self._games.items())
            if gid > after
            and (not game_type or g.info.game_type == game_type)
            and (not provider or g.provider == provider)
            and (not currency or currency in g.info.currencies)
        ]
        page = matching[: page_size or 100]
        more = len(matching) > len(page)
        return page, self._page_tokens.issue(query, [page[-1].game_id]) if more else ""
