"""Admission control: a bounded amount of work in flight, and every call's deadline bound for the work it starts.

grpc's own `maximum_concurrent_rpcs` is not used: past it, under a burst of streams, clients got INTERNAL
("Internal error from Core") or CANCELLED instead of RESOURCE_EXHAUSTED, and it counted health checks too.
Here unary calls and open Play streams have separate limits (a stream holds its slot for minutes, a call
for milliseconds: neither should crowd out the other). Past a limit a call is refused at once, before any
decoding check, database or provider work: RESOURCE_EXHAUSTED / OVERLOADED (retryable, NOT_APPLIED) with a
`grpc-retry-pushback-ms` trailer saying when to try again. Health and reflection are never counted, so
load balancers can still ask while the hub is full.

While the health watch finds the database unreachable (NOT_SERVING), new calls are refused at once with
UNAVAILABLE / HUB_UNAVAILABLE (retryable, NOT_APPLIED) instead of waiting on a database that does not
answer: a frozen or partitioned server answers no query until the driver's 60 s read timeout.

OperatorLimits keeps one operator from taking what the others need; it runs after authentication (it needs
the caller's operator), while Admission runs before it (a flood is refused before any credential check,
which costs a database read or an argon2 hash). Each operator has a token bucket of calls per second
(unary calls and Play stream opens; the messages inside a stream are paced by its rounds) and a cap on open
Play streams: its figures set through AdminService.SetOperatorLimits, else the configured defaults
(hub.operator_limits, read through a cache of operator_limits_ttl_s). Each studio key has a token bucket of
its own for ProviderWalletService calls (studio_rate_limit_per_s, studio_rate_limit_burst). Past any of
them: RESOURCE_EXHAUSTED / RATE_LIMITED or TOO_MANY_STREAMS with the pushback trailer, logged as a count.
Every refusal here is also counted in casinohub_refusals_total (hub.metrics), one by one.

The figures are totals across the hub's processes, and the buckets count per process (keeping them in the
database would cost a write a call): with `--workers N` each process enforces 1/N of the rate, the burst
and the stream cap (at least 1 of each), so an operator whose connections spread over the workers, as
SO_REUSEPORT spreads new connections, reaches the configured total and no more. A client holding a single
connection reaches one worker's share only.
"""

import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from hub import deadline
from hub.auth import principal as principals
from hub.auth.credentials import peer_address
from hub.errors import DomainError, Reason
from hub.logs import ThrottledCount
from hub.operator_limits import InForce, OperatorLimitSettings
from hub.servicers.calls import first_message, refuse
from hub.servicers.edge import SERVICE_PREFIX

log = structlog.get_logger("hub.rpc")
PUSHBACK_HEADER = "grpc-retry-pushback-ms"
LOG_EVERY_S = 1.0  # refusals are logged as a count at most this often: a flood must not flood the logs


def bind_caller(context: grpc.aio.ServicerContext) -> None:
    """Bind this call's deadline, and a flag set when it ends, for the work it starts (hub.deadline)."""
    remaining = context.time_remaining()
    caller = deadline.Caller(None if remaining is None else time.monotonic() + remaining)
    context.add_done_callback(lambda _: caller.gone.set())  # type: ignore[arg-type]  # any callable of one
    deadline.bind(caller)


def jittered(pushback_ms: int) -> int:
    """Jittered up to twice the pushback, so the clients refused together do not all come back together."""
    return random.randint(pushback_ms, 2 * pushback_ms)


async def abort_with_pushback(context: grpc.aio.ServicerContext, rpc: str, err: DomainError,
                              pushback_ms: int) -> None:
    await refuse(context, rpc, err, ((PUSHBACK_HEADER, str(pushback_ms)),))


class Admission(grpc.aio.ServerInterceptor):
    def __init__(self, max_calls_in_flight: int, max_play_streams: int, pushback_ms: int):
        self.max_calls = max_calls_in_flight
        self.max_streams = max_play_streams
        self.pushback_ms = pushback_ms
        self.database_up = True  # set by the server's health watch (hub.server)
        self.calls = 0  # one event loop: plain counters, no lock
        self.streams = 0
        self._refusals = ThrottledCount(log, LOG_EVERY_S)

    async def _refuse(self, context: grpc.aio.ServicerContext, method: str, what: str, limit: int) -> None:
        self._count_refusal("rpc.overloaded", rpc=method, limit_reached=what, limit=limit)
        await self._abort_with_pushback(context, method, DomainError(
            Reason.OVERLOADED, f"the hub is at its limit of {limit} {what}; retry after the pushback"))

    async def _database_unavailable(self, context: grpc.aio.ServicerContext, method: str) -> None:
        self._count_refusal("rpc.database_unavailable", rpc=method)
        await self._abort_with_pushback(context, method, DomainError(Reason.HUB_UNAVAILABLE,
                                                                     "the hub's database is unavailable; retry"))

    async def _abort_with_pushback(self, context: grpc.aio.ServicerContext, method: str, err: DomainError) -> None:
        await abort_with_pushback(context, method, err, jittered(self.pushback_ms))

    def _count_refusal(self, event: str, **fields: object) -> None:
        self._refusals.add(event, **fields)

    async def intercept_service(  # type: ignore[override]  # grpc-stubs types the handler as sync
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method  # type: ignore[attr-defined]
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler  # health, reflection: always answered
        name = method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if not self.database_up:
                    await self._database_unavailable(context, name)
                if self.calls >= self.max_calls:
                    await self._refuse(context, name, "calls in flight", self.max_calls)
                self.calls += 1
                try:
                    bind_caller(context)
                    return await inner_unary(request, context)  # type: ignore[arg-type]  # an aio handler
                finally:
                    self.calls -= 1

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:
            inner_stream = handler.stream_stream

            async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                # Decided before reading the first message, never again after: a stream refused is ended.
                database_down, full = not self.database_up, self.streams >= self.max_streams
                if database_down or full:
                    await first_message(requests)
                if database_down:
                    await self._database_unavailable(context, name)
                if full:
                    await self._refuse(context, name, "open Play streams", self.max_streams)
                self.streams += 1
                try:
                    bind_caller(context)
                    async for response in inner_stream(requests, context):  # type: ignore[attr-defined, arg-type]  # an aio handler
                        yield response
                finally:
                    self.streams -= 1

            return grpc.stream_stream_rpc_method_handler(
                stream, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        raise TypeError(f"{method}: no admission for this kind of RPC yet")  # fails at the first call, loudly


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; a call takes one."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float):
        self.rate = rate
        self.burst = float(max(1, burst))
        self.tokens = self.burst
        self.updated = now

    def change(self, rate: float, burst: int, now: float) -> None:
        """New figures from now on: what refilled until now at the old rate is kept, up to the new burst."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.rate, self.burst, self.updated = rate, float(max(1, burst)), now
        self.tokens = min(self.tokens, self.burst)

    def take(self, now: float) -> float:
        """0 if a token was taken; else the seconds until one will be there (nothing taken)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Buckets:
    """A token bucket per key (an operator, a studio key, a peer address), made on first use."""

    MAX_KEYS = 10_000  # past this many, buckets that have refilled (the same as new ones) are dropped

    def __init__(self, rate_per_s: float = 0.0, burst: int = 1):
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def wait_s(self, key: str, rate_per_s: float | None = None, burst: int | None = None) -> float:
        """0 if the key may call now (rate 0: no limit); else the seconds until it may. rate_per_s and burst,
        if given, are this key's own figures (they may change between calls: its bucket follows them)."""
        rate = self.rate_per_s if rate_per_s is None else rate_per_s
        most = self.burst if burst is None else burst
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._buckets = {k: b for k, b in self._buckets.items()
                                 if b.tokens + (now - b.updated) * b.rate < b.burst}
            bucket = self._buckets[key] = TokenBucket(rate, most, now)
        elif bucket.rate != rate or bucket.burst != max(1, most):
            bucket.change(rate, most, now)
        return bucket.take(now)


@dataclass(frozen=True)
class Share:
    """This hub process's part of an operator's figures."""

    rate_per_s: float
    burst: int
    max_streams: int


def share_of(limits: InForce, workers: int) -> Share:
    """1/workers of each figure, at least 1 of each (0, no limit, stays 0)."""
    return Share(limits.rate_per_s / workers, max(1, limits.burst // workers),
                 limits.max_play_streams and max(1, limits.max_play_streams // workers))


class OperatorLimits(grpc.aio.ServerInterceptor):
    """Per operator: calls a second (rate_per_s, 0: no limit, with `burst` saved up) and open Play streams
    (max_streams, 0: only Admission's hub-wide limit), each this process's share (share_of) of the figures
    hub.operator_limits has for the operator. Per studio key: ProviderWalletService calls a second
    (studio_per_s, burst studio_burst; shared out the same way). Placed after Authentication.

    A call with no operator yet (AuthService.IssueToken, which checks the key and secret in its request, an
    argon2 hash each) is limited per peer address instead, at issue_per_s (burst issue_burst): guessing
    secrets, or burning the hub's CPU on hashes, stays slow."""

    def __init__(self, limits: OperatorLimitSettings, workers: int, pushback_ms: int,
                 issue_per_s: float = 0.0, issue_burst: int = 1, studio_per_s: float = 0.0, studio_burst: int = 1):
        self.limits = limits
        self.workers = max(1, workers)
        self.operators = Buckets()  # each operator's own figures, given at each call
        self.peers = Buckets(issue_per_s, issue_burst)
        self.studios = Buckets(studio_per_s / self.workers, max(1, studio_burst // self.workers))
        self.pushback_ms = pushback_ms
        self.streams: Counter[str] = Counter()
        self._refused: Counter[tuple[str, str]] = Counter()  # (reason, caller) -> refusals not yet logged
        self._logged_at = 0.0

    async def share(self, operator_id: str) -> Share:
        """This process's share of the operator's figures ("": the administrator's, the defaults)."""
        if not operator_id:
            return share_of(self.limits.defaults.of(""), self.workers)
        try:
            return share_of(await self.limits.in_force(operator_id), self.workers)
        except Exception:  # noqa: BLE001 - a database hiccup must not fail the call; Admission watches the database
            log.warning("rpc.operator_limits_unread", caller=operator_id, exc_info=True)
            return share_of(self.limits.last_known(operator_id), self.workers)

    def _count_refusal(self, reason: Reason, caller: str, method: str) -> None:
        """Logged as a count per reason and caller (an operator id, "studio key <id>" or "peer <address>") at
        most every LOG_EVERY_S: a flood must not flood the logs."""
        self._refused[reason.name, caller] += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            for (name, who), count in self._refused.items():
                log.warning("rpc.operator_limited", reason=name, caller=who, refused=count, rpc=method)
            self._refused.clear()
            self._logged_at = now

    async def _rate_limited(self, context: grpc.aio.ServicerContext, who: str, caller: str, method: str,
                            wait_s: float, rate_per_s: float) -> None:
        self._count_refusal(Reason.RATE_LIMITED, who, method)
        await abort_with_pushback(context, method, DomainError(
            Reason.RATE_LIMITED, f"{caller} is past its limit of {rate_per_s:g} calls a second on this hub "
            "process; retry after the pushback", metadata={"limit_per_s": f"{rate_per_s:g}"}),
            max(1, math.ceil(wait_s * 1000)))

    async def intercept_service(  # type: ignore[override]  # grpc-stubs types the handler as sync
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method  # type: ignore[attr-defined]
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        name = method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                principal = principals.current_or_none()  # None: IssueToken, which checks its own request
                if principal is None:
                    who = f"peer {peer_address(context.peer() or '')}"
                    caller, rate, wait_s = "this address", self.peers.rate_per_s, self.peers.wait_s(who)
                elif principal.how == "studio":
                    who = f"studio key {principal.key_id}"
                    caller, rate, wait_s = "this studio key", self.studios.rate_per_s, self.studios.wait_s(who)
                else:
                    who, caller, share = principal.operator_id, "this operator", await self.share(principal.operator_id)
                    rate, wait_s = share.rate_per_s, self.operators.wait_s(who, share.rate_per_s, share.burst)
                if wait_s:
                    await self._rate_limited(context, who, caller, name, wait_s, rate)
                return await inner_unary(request, context)  # type: ignore[arg-type]  # an aio handler

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:
            inner_stream = handler.stream_stream

            async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                principal = principals.current_or_none()
                operator_id = principal.operator_id if principal is not None else ""
                share = await self.share(operator_id)
                # Decided before reading the first message, which is read (briefly) before a refusal, as
                # Admission does (hub.servicers.calls.first_message).
                wait_s = (self.operators.wait_s(operator_id, share.rate_per_s, share.burst)
                          if principal is not None else 0.0)
                full = 0 < share.max_streams <= self.streams[operator_id]
                if wait_s or full:
                    await first_message(requests)
                if wait_s:
                    await self._rate_limited(context, operator_id, "this operator", name, wait_s, share.rate_per_s)
                if full:
                    self._count_refusal(Reason.TOO_MANY_STREAMS, operator_id, name)
                    await abort_with_pushback(context, name, DomainError(
                        Reason.TOO_MANY_STREAMS, f"this operator has {share.max_streams} Play streams open on "
                        "this hub process, its limit; close one or retry after the pushback",
                        metadata={"limit": str(share.max_streams)}), jittered(self.pushback_ms))
                self.streams[operator_id] += 1
                try:
                    async for response in inner_stream(requests, context):  # type: ignore[attr-defined, arg-type]  # an aio handler
                        yield response
                finally:
                    self.streams[operator_id] -= 1
                    if not self.streams[operator_id]:
                        del self.streams[operator_id]

            return grpc.stream_stream_rpc_method_handler(
                stream, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        raise TypeError(f"{method}: no operator limits for this kind of RPC yet")  # fails at the first call, loudly
