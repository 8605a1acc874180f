"""Each operator's abuse limits, set through AdminService.SetOperatorLimits: calls a second and their burst,
open Play streams, live logins per player.

Stored per operator (migration 0015), each figure nullable: NULL (or no row) means the hub's configured
default (rate_limit_per_s, rate_limit_burst, max_play_streams_per_operator; the session cap of [session_caps],
else session_cap). The figures are the operator's totals; splitting them across worker processes is the
edge's business (hub.servicers.admission). Each hub process caches an operator's row for `ttl_s` seconds: a
change made through one process reaches the others within that time (the changing process at once).
"""

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from sqlalchemy import delete, select

from hub.clock import utcnow
from hub.errors import DomainError, Reason
from hub.ledger.db import Database
from hub.ledger.schema import operator_limits
from hub.ledger.uow import UnitOfWork


@dataclass(frozen=True)
class Limits:
    """None: not set (the default applies)."""

    rate_per_s: float | None = None
    burst: int | None = None
    max_play_streams: int | None = None
    session_cap: int | None = None


@dataclass(frozen=True)
class InForce:
    """Every figure, set or default."""

    rate_per_s: float
    burst: int
    max_play_streams: int
    session_cap: int


# Each figure's range, documented in admin_service.proto: wide enough for any casino, small enough that a
# typo (an extra zero or three) is refused rather than switching a limit off in effect.
RANGES: dict[str, tuple[float, float]] = {
    "rate_per_s": (0, 100_000), "burst": (1, 1_000_000), "max_play_streams": (0, 100_000), "session_cap": (1, 1_000)}


@dataclass(frozen=True)
class Defaults:
    rate_per_s: float
    burst: int
    max_play_streams: int
    session_cap: int
    session_caps: Mapping[str, int]  # per operator, from the configuration

    def of(self, operator_id: str) -> InForce:
        return InForce(self.rate_per_s, self.burst, self.max_play_streams,
                      max(1, self.session_caps.get(operator_id, self.session_cap)))


def check(limits: Limits) -> Limits:
    for f in fields(Limits):
        value = getattr(limits, f.name)
        low, high = RANGES[f.name]
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise DomainError(Reason.LIMIT_OUT_OF_RANGE, f"{f.name} must be {low:g}..{high:g}",
                              metadata={"field": f.name, "minimum": f"{low:g}", "maximum": f"{high:g}"})
    return limits


class OperatorLimitSettings:
    def __init__(self, db: Database, defaults: Defaults, ttl_s: float = 5.0):
        self._db = db
        self.defaults = defaults
        self._ttl_s = ttl_s
        self._cached: dict[str, tuple[float, Limits, InForce]] = {}  # read at, set, in force

    async def _entry(self, operator_id: str) -> tuple[float, Limits, InForce]:
        cached = self._cached.get(operator_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl_s:
            return cached
        return self._remember(operator_id, await self._db.run(lambda uow: self._read(uow, operator_id)))

    def _remember(self, operator_id: str, limits: Limits) -> tuple[float, Limits, InForce]:
        entry = self._cached[operator_id] = (time.monotonic(), limits, self.effective(operator_id, limits))
        return entry

    async def get(self, operator_id: str) -> Limits:
        """The figures set for the operator (None where not set)."""
        return (await self._entry(operator_id))[1]

    async def in_force(self, operator_id: str) -> InForce:
        """Every figure, set or default: what the hub enforces (read at most every ttl_s)."""
        return (await self._entry(operator_id))[2]

    def last_known(self, operator_id: str) -> InForce:
        """The figures in force as last read, however old (the defaults if never read), for when the
        database cannot be asked."""
        cached = self._cached.get(operator_id)
        return cached[2] if cached is not None else self.defaults.of(operator_id)

    def effective(self, operator_id: str, limits: Limits) -> InForce:
        """Every figure: the set one, else the default."""
        return replace(self.defaults.of(operator_id), **{f.name: getattr(limits, f.name) for f in fields(Limits)
                                                         if getattr(limits, f.name) is not None})

    async def session_cap(self, operator_id: str) -> int:
        return (await self.in_force(operator_id)).session_cap

    @staticmethod
    def _read(uow: UnitOfWork, operator_id: str) -> Limits:
        row = uow.conn.execute(select(operator_limits).where(operator_limits.c.operator_id == operator_id)).first()
        if row is None:
            return Limits()
        return Limits(row.rate_per_s, row.burst, row.max_play_streams, row.session_cap)

    async def set(self, operator_id: str, limits: Limits) -> Limits:
        """Replaces the operator's figures (the caller has checked the operator exists)."""
        check(limits)

        def _write(uow: UnitOfWork) -> None:
            uow.conn.execute(delete(operator_limits).where(operator_limits.c.operator_id == operator_id))
            if limits != Limits():
                uow.conn.execute(operator_limits.insert().values(
                    operator_id=operator_id, updated_at=utcnow(),
                    **{f.name: getattr(limits, f.name) for f in fields(Limits)}))
            uow.commit()

        await self._db.run(_write)
        self._remember(operator_id, limits)
        return limits
