"""Each operator's catalog configuration: the studios it has disabled, the countries where it blocks a
studio or a game, and the RTP variant it runs each game at.

Stored per operator (migration 0012); no row means the default, so a new operator has every studio of the
hub enabled, nothing blocked and every game at its studio's default variant. Each hub process caches an
operator's settings for `ttl_s` seconds: a change made through one process is seen by the others within
that time (by the changing process at once).
"""

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from hub.clock import utcnow
from hub.errors import DomainError, Reason, quote
from hub.ledger.db import Database
from hub.ledger.schema import operator_country_blocks, operator_disabled_studios, operator_rtp_variants
from hub.ledger.uow import UnitOfWork

COUNTRY = re.compile(r"[A-Z]{2}")  # ISO 3166-1 alpha-2
MAX_COUNTRIES = 250  # there are 249 assigned codes


def country_in(value: str, *, field_name: str = "country") -> str:
    """A country code as the client sent it, upper-cased; "" stays "" (no country)."""
    code = value.upper()
    if value and not COUNTRY.fullmatch(code):
        raise DomainError(Reason.INVALID_ARGUMENT, f"{field_name} {quote(value, 8)} is not an ISO 3166-1 "
                          "alpha-2 code such as DE")
    return code


@dataclass(frozen=True)
class OperatorSettings:
    disabled_studios: frozenset[str] = frozenset()
    blocked: Mapping[str, frozenset[str]] = field(default_factory=dict)  # studio or game id -> countries
    rtp_variants: Mapping[str, str] = field(default_factory=dict)  # game id -> variant

    def studio_enabled(self, studio: str) -> bool:
        return studio not in self.disabled_studios

    def blocked_countries(self, studio: str, game_id: str) -> frozenset[str]:
        """Where the game cannot be played: its studio's blocks and its own."""
        return self.blocked.get(studio, frozenset()) | self.blocked.get(game_id, frozenset())


class CatalogSettings:
    def __init__(self, db: Database, ttl_s: float = 5.0):
        self._db = db
        self._ttl_s = ttl_s
        self._cached: dict[str, tuple[float, OperatorSettings]] = {}

    async def get(self, operator_id: str) -> OperatorSettings:
        cached = self._cached.get(operator_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl_s:
            return cached[1]
        settings = await self._db.run(lambda uow: self._read(uow, operator_id))
        self._cached[operator_id] = (time.monotonic(), settings)
        return settings

    @staticmethod
    def _read(uow: UnitOfWork, operator_id: str) -> OperatorSettings:
        disabled = uow.conn.execute(select(operator_disabled_studios.c.studio).where(
            operator_disabled_studios.c.operator_id == operator_id)).scalars()
        blocked: dict[str, set[str]] = {}
        for target, country in uow.conn.execute(select(
                operator_country_blocks.c.target, operator_country_blocks.c.country).where(
                operator_country_blocks.c.operator_id == operator_id)):
            blocked.setdefault(target, set()).add(country)
        variants = uow.conn.execute(select(operator_rtp_variants.c.game_id, operator_rtp_variants.c.variant).where(
            operator_rtp_variants.c.operator_id == operator_id))
        return OperatorSettings(frozenset(disabled), {t: frozenset(c) for t, c in blocked.items()},
                                {game_id: variant for game_id, variant in variants})

    async def set_studio_enabled(self, operator_id: str, studio: str, enabled: bool) -> None:
        def _write(uow: UnitOfWork) -> None:
            table = operator_disabled_studios
            uow.conn.execute(delete(table).where(table.c.operator_id == operator_id, table.c.studio == studio))
            if not enabled:
                uow.conn.execute(table.insert().values(operator_id=operator_id, studio=studio,
                                                       disabled_at=utcnow()))
            uow.commit()

        await self._write(operator_id, _write)

    async def set_blocked_countries(self, operator_id: str, target: str, countries: Sequence[str]) -> None:
        if len(countries) > MAX_COUNTRIES:
            raise DomainError(Reason.INVALID_ARGUMENT, f"at most {MAX_COUNTRIES} countries")
        if "" in countries:
            raise DomainError(Reason.INVALID_ARGUMENT, "countries holds an empty code")
        codes = sorted({country_in(c, field_name="countries") for c in countries})

        def _write(uow: UnitOfWork) -> None:
            table = operator_country_blocks
            uow.conn.execute(delete(table).where(table.c.operator_id == operator_id, table.c.target == target))
            if codes:
                uow.conn.execute(table.insert(), [{"operator_id": operator_id, "target": target, "country": c}
                                                  for c in codes])
            uow.commit()

        await self._write(operator_id, _write)

    async def set_rtp_variant(self, operator_id: str, game_id: str, variant: str) -> None:
        def _write(uow: UnitOfWork) -> None:
            table = operator_rtp_variants
            uow.conn.execute(delete(table).where(table.c.operator_id == operator_id, table.c.game_id == game_id))
            if variant:
                uow.conn.execute(table.insert().values(operator_id=operator_id, game_id=game_id, variant=variant,
                                                       updated_at=utcnow()))
            uow.commit()

        await self._write(operator_id, _write)

    async def _write(self, operator_id: str, write: Callable[[UnitOfWork], None]) -> None:
        # Delete-then-insert in one transaction: the last writer wins, and this process sees it at once.
        await self._db.run(write)
        self._cached.pop(operator_id, None)
