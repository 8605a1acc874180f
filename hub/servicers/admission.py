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
"""

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from hub import deadline
from hub.errors import DomainError, Reason
from hub.servicers import mapping
from hub.servicers.calls import first_message
from hub.servicers.edge import SERVICE_PREFIX

log = structlog.get_logger("hub.rpc")
PUSHBACK_HEADER = "grpc-retry-pushback-ms"
LOG_EVERY_S = 1.0
FIRST_MESSAGE_WAIT_S = 0.5  # refusals are logged as a count at most this often: a flood must not flood the logs


def bind_caller(context: grpc.aio.ServicerContext) -> None:
    """Bind this call's deadline, and a flag set when it ends, for the work it starts (hub.deadline)."""
    remaining = context.time_remaining()
    caller = deadline.Caller(None if remaining is None else time.monotonic() + remaining)
    context.add_done_callback(lambda _: caller.gone.set())  # type: ignore[arg-type]  # any callable of one
    deadline.bind(caller)


class Admission(grpc.aio.ServerInterceptor):
    def __init__(self, max_calls_in_flight: int, max_play_streams: int, pushback_ms: int):
        self.max_calls = max_calls_in_flight
        self.max_streams = max_play_streams
        self.pushback_ms = pushback_ms
        self.database_up = True  # set by the server's health watch (hub.server)
        self.calls = 0  # one event loop: plain counters, no lock
        self.streams = 0
        self._refused = 0
        self._logged_at = 0.0

    async def _refuse(self, context: grpc.aio.ServicerContext, method: str, what: str, limit: int) -> None:
        self._count_refusal("rpc.overloaded", rpc=method, limit_reached=what, limit=limit)
        await self._abort_with_pushback(context, DomainError(
            Reason.OVERLOADED, f"the hub is at its limit of {limit} {what}; retry after the pushback"))

    async def _database_unavailable(self, context: grpc.aio.ServicerContext, method: str) -> None:
        self._count_refusal("rpc.database_unavailable", rpc=method)
        await self._abort_with_pushback(context, DomainError(Reason.HUB_UNAVAILABLE,
                                                             "the hub's database is unavailable; retry"))

    async def _abort_with_pushback(self, context: grpc.aio.ServicerContext, err: DomainError) -> None:
        status = mapping.status(err)
        # Jittered, so the clients refused together do not all come back together.
        pushback = random.randint(self.pushback_ms, 2 * self.pushback_ms)
        await context.abort(status.code, status.details, (*status.trailing_metadata, (PUSHBACK_HEADER, str(pushback))))

    def _count_refusal(self, event: str, **fields: object) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(event, refused=self._refused, **fields)
            self._logged_at, self._refused = now, 0

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
