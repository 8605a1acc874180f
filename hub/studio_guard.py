"""Every call the hub makes to a studio goes through that studio's guard.

- Retries: only errors the adapter marks retryable (ProviderError.retryable: by default a studio that could
  not be reached, where nothing happened), with exponential backoff and full jitter, a bounded number of
  times. Every call carries its key (a round's id, a step's number, a game session's id), so a retried call
  the studio did act on is answered from its record, never applied twice. A timeout is not retried: its
  outcome is unknown and goes to the reconciler.
- A circuit breaker per studio: after `failures_to_open` failures in a row (unreachable or timed out; a
  refusal shows the studio is up), calls fail at once with CircuitOpen for `open_s`, then one call is let
  through as a probe: its success closes the breaker, its failure opens it again. Play asks `accepting()`
  before it debits a bet, so a bet for a studio known to be down is refused with nothing taken.

Each studio has its own guard and the guards share nothing, so one failing or slow studio never holds back
another's calls.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from adapters.base import (
    ActionInput,
    CatalogInput,
    GameInfo,
    LaunchInput,
    LaunchResult,
    MultiStepAdapter,
    PlayInput,
    PlayResult,
    ProviderAdapter,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RoundStatusInput,
    RoundStatusResult,
)

log = structlog.get_logger(__name__)
R = TypeVar("R")


@dataclass(frozen=True)
class GuardPolicy:
    attempts: int = 3  # tries per call, the first included
    backoff_s: float = 0.05  # the first retry waits up to this (full jitter); doubles per retry
    max_backoff_s: float = 1.0
    failures_to_open: int = 5  # failures in a row that open the breaker
    open_s: float = 10.0  # how long it stays open before a probe is let through


class CircuitOpen(ProviderUnavailable):
    """The studio's breaker is open: the call was not sent."""

    retryable = False  # retrying at once would only meet the open breaker again


class Breaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, failures_to_open: int, open_s: float, clock: Callable[[], float] = time.monotonic):
        self._failures_to_open = failures_to_open
        self._open_s = open_s
        self._clock = clock
        self.state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0

    def retry_in(self) -> float:
        return max(0.0, self._opened_at + self._open_s - self._clock())

    def admit(self) -> bool:
        """May a call go out now? Past the open period, the first caller becomes the one probe."""
        if self.state == self.CLOSED:
            return True
        if self.state == self.OPEN and self.retry_in() == 0:
            self.state = self.HALF_OPEN
            return True
        return False  # open, or half open with its probe still out

    def accepting(self) -> bool:
        return self.state == self.CLOSED or (self.state == self.OPEN and self.retry_in() == 0)

    def succeeded(self) -> None:
        self.state, self._failures = self.CLOSED, 0

    def failed(self) -> bool:
        """Count a failure; True when this one opened the breaker."""
        self._failures += 1
        if self.state == self.HALF_OPEN or self._failures >= self._failures_to_open:
            opened = self.state != self.OPEN
            self.state, self._opened_at = self.OPEN, self._clock()
            return opened
        return False


class GuardedAdapter:
    """A studio's adapter behind its retries and breaker; the same ProviderAdapter protocol."""

    def __init__(self, adapter: ProviderAdapter, policy: GuardPolicy):
        self.inner = adapter
        self.name = adapter.name
        self.demo_play = getattr(adapter, "demo_play", True)  # a push studio's "no demo" shows through the guard
        # Decided once: isinstance on a runtime Protocol inspects every member, and Play asks on every bet.
        self._stepper = adapter if isinstance(adapter, MultiStepAdapter) else None
        self.multi_step = self._stepper is not None
        self._policy = policy
        self.breaker = Breaker(policy.failures_to_open, policy.open_s)

    def accepting(self) -> bool:
        """False while the breaker is open: a call now would fail without reaching the studio."""
        return self.breaker.accepting()

    async def catalog(self, request: CatalogInput) -> list[GameInfo]:
        return await self._call("catalog", self.inner.catalog, request)

    async def launch(self, request: LaunchInput) -> LaunchResult:
        return await self._call("launch", self.inner.launch, request)

    async def play(self, request: PlayInput) -> PlayResult:
        return await self._call("play", self.inner.play, request, keyed=bool(request.round_id))

    async def act(self, request: ActionInput) -> PlayResult:
        if self._stepper is None:
            raise ProviderRejected(f"studio {self.name} plays no multi-step rounds")
        return await self._call("act", self._stepper.act, request, keyed=bool(request.round_id))

    async def round_status(self, request: RoundStatusInput) -> RoundStatusResult:
        return await self._call("round_status", self.inner.round_status, request)

    async def health(self) -> bool:
        return await self.inner.health()

    async def close(self) -> None:
        await self.inner.close()

    async def _call(self, what: str, method: Callable[[Any], Awaitable[R]], request: Any, keyed: bool = True) -> R:
        policy = self._policy
        for attempt in range(1, policy.attempts + 1):
            if not self.breaker.admit():
                raise CircuitOpen(f"studio {self.name} is failing: its circuit is open for another "
                                  f"{self.breaker.retry_in():.1f} s")
            try:
                result = await method(request)
            except ProviderError as exc:
                if isinstance(exc, (ProviderUnavailable, ProviderTimeout)):
                    if self.breaker.failed():
                        log.warning("studio.circuit_opened", studio=self.name, open_s=policy.open_s, error=str(exc))
                else:
                    self.breaker.succeeded()  # a refusal: the studio is up
                if not (exc.retryable and keyed and attempt < policy.attempts):
                    raise
                backoff = random.uniform(0, min(policy.max_backoff_s, policy.backoff_s * 2 ** (attempt - 1)))
                log.info("studio.retry", studio=self.name, call=what, attempt=attempt, backoff_s=round(backoff, 3),
                         error=str(exc))
                await asyncio.sleep(backoff)
                continue
            except asyncio.CancelledError:
                if self.breaker.state == Breaker.HALF_OPEN:
                    self.breaker.state = Breaker.OPEN  # the probe never finished: the next caller probes
                raise
            if self.breaker.state != Breaker.CLOSED:
                log.info("studio.circuit_closed", studio=self.name)
            self.breaker.succeeded()
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")
