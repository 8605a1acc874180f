"""What every RPC shares: request id and operator bound to the logs, and errors turned into statuses.

The operator is the authenticated principal's (hub.servicers.authentication ran before any handler): a
header the caller chooses never decides it.

A DomainError becomes its status with ErrorInfo, counted in casinohub_refusals_total (hub.metrics: every
refusal of a call, the interceptors' included, passes `refuse`); a database outage becomes
UNAVAILABLE/HUB_UNAVAILABLE (state UNKNOWN: retry with the same idempotency key); anything else is a hub
bug, logged with its stack, answered with a bare INTERNAL (no stack trace reaches the client) and counted
in casinohub_internal_errors_total. Work dropped because its caller's deadline passed before it started
(hub.deadline) is DEADLINE_EXCEEDED, nothing applied.
"""

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.message import Message
from sqlalchemy.exc import OperationalError

from hub import metrics
from hub.auth import principal as principals
from hub.deadline import CallerGone
from hub.errors import DomainError, Reason, State
from hub.ledger.db import is_unreachable
from hub.operators import OWNED, Operators
from hub.servicers import mapping

log = structlog.get_logger("hub.rpc")
REQUEST_ID_HEADER = "x-request-id"


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


def bind_call(context: grpc.aio.ServicerContext, method: str) -> str:
    """Bind request id, operator, API key and method to this call's log context; returns the operator id of
    the call's principal ("" for the administrator and AuthService): the principal decides, never a header."""
    metadata = _metadata(context)
    principal = principals.current_or_none()
    structlog.contextvars.clear_contextvars()
    # Header values are client input: logs carry a prefix at most.
    structlog.contextvars.bind_contextvars(
        request_id=(metadata.get(REQUEST_ID_HEADER) or str(uuid.uuid4()))[:64], rpc=method,
        operator=principal.operator_id if principal else None, key_id=principal.key_id if principal else None)
    return principal.operator_id if principal else ""


def as_domain_error(exc: BaseException) -> DomainError | None:
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, OperationalError) or is_unreachable(exc):  # connection refused, lost, timed out
        return DomainError(Reason.HUB_UNAVAILABLE, "the hub's database is unavailable; retry", State.UNKNOWN)
    return None


async def refuse(context: grpc.aio.ServicerContext, rpc: str, err: DomainError,
                 trailing_metadata: tuple[tuple[str, str], ...] = ()) -> None:
    """End the call with err's status, counted as a refusal of rpc (a method name of the server's, never a
    client's string). The one way a call is refused; the caller logs it (or counts it, in a flood)."""
    metrics.refused(rpc, err.reason)
    status = mapping.status(err)
    await context.abort(status.code, status.details, (*status.trailing_metadata, *trailing_metadata))


async def abort(context: grpc.aio.ServicerContext, rpc: str, err: DomainError) -> None:
    log.info("rpc.refused", reason=err.reason.name, message=err.message)
    await refuse(context, rpc, err)


async def abort_unexpected(context: grpc.aio.ServicerContext, rpc: str, exc: BaseException) -> None:
    err = as_domain_error(exc)
    if err is not None:
        await abort(context, rpc, err)
    if isinstance(exc, CallerGone):  # work dropped before it started; the client has (nearly) given up
        log.info("rpc.dropped", message=str(exc))
        code = grpc.StatusCode.DEADLINE_EXCEEDED if exc.deadline_exceeded else grpc.StatusCode.CANCELLED
        await context.abort(code, str(exc))
    log.error("rpc.failed", exc_info=exc)
    metrics.failed(rpc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")


Handler = Callable[[Any, str, Any, grpc.aio.ServicerContext], Awaitable[Any]]


def named_ids(request: Message) -> dict[str, str]:
    """The ids of operators' objects a request names (fields of hub.operators.OWNED, nested ones included)."""
    found: dict[str, str] = {}
    for f, value in request.ListFields():
        if f.message_type is not None and not f.is_repeated:
            found |= named_ids(value)
        elif f.name in OWNED and isinstance(value, str):
            found[f.name] = value
    return found


async def tenancy_checked(operators: Operators, operator_id: str, rpc: str, request: Message | None,
                          err: DomainError) -> DomainError:
    """err, or OBJECT_OF_ANOTHER_OPERATOR if it is NOT_FOUND and the request names another operator's object."""
    if request is None or err.reason.code != grpc.StatusCode.NOT_FOUND:
        return err
    return await operators.refusal(operator_id, rpc, named_ids(request), err)


async def answered(context: grpc.aio.ServicerContext, rpc: str, work: Awaitable[Any]) -> Any:
    """A unary handler's work, its refusal (DomainError) or failure mapped to a status, never leaked. Every
    unary wrapper (operator, administrator, studio) answers through it."""
    try:
        response = await work
    except DomainError as err:
        await abort(context, rpc, err)
    except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
        await abort_unexpected(context, rpc, exc)
    log.info("rpc.ok")
    return response


def unary(handler: Handler) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    """Wrap a unary handler(self, operator_id, request, context) with operator check and error mapping."""

    @functools.wraps(handler)
    async def call(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        operators: Operators = self.operators
        operator_id = bind_call(context, handler.__name__)

        async def work() -> Any:
            await operators.require(operator_id)
            try:
                return await handler(self, operator_id, request, context)
            except DomainError as err:
                raise await tenancy_checked(operators, operator_id, handler.__name__, request, err) from None

        return await answered(context, handler.__name__, work())

    return call


FIRST_MESSAGE_WAIT_S = 0.5


async def first_message(requests: AsyncIterator[Any]) -> None:
    """Read the stream's first message (briefly) before refusing it. A stream ended while its client is
    still writing the first message fails on the client as INTERNAL ("Internal error from Core", seen in
    a Play reopened during a database outage), not with the refusal's status."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(anext(aiter(requests)), FIRST_MESSAGE_WAIT_S)
