"""Checks every request to the hub's own services before a handler runs (a server interceptor).

The request bytes must decode into the RPC's request type (grpc would answer UNKNOWN or INTERNAL) and
every string field must be within the `max_length` the contract declares on it (casinohub/v1/options.proto),
so no handler, query or log line ever sees an oversized value. Refusals are INVALID_ARGUMENT with
MALFORMED_REQUEST or FIELD_TOO_LONG; a Play stream is checked message by message.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from casinohub.v1 import options_pb2
from hub.errors import DomainError, Reason
from hub.servicers.calls import abort

SERVICE_PREFIX = "/casinohub."
# For a string field that declares no max_length (a unit test keeps every request field declared).
DEFAULT_MAX_LENGTH = 256


class _Undecodable:
    """What a request that failed to parse becomes, so the handler wrapper can refuse it properly."""


UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # noqa: BLE001 - DecodeError and friends: the client's bytes, not a hub failure
            return UNDECODABLE

    return parse


def max_length(field: FieldDescriptor) -> int:
    declared = field.GetOptions().Extensions[options_pb2.max_length]
    return int(declared) or DEFAULT_MAX_LENGTH


def check(message: Any, path: str = "") -> None:
    """Refuse an undecodable request or any string longer than its field's max_length."""
    if message is UNDECODABLE:
        raise DomainError(Reason.MALFORMED_REQUEST, "the request bytes are not a valid message of this RPC")
    if not isinstance(message, Message):
        return
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.type == FieldDescriptor.TYPE_STRING:
            limit = max_length(field)
            for text in (value if field.is_repeated else (value,)):
                if len(text) > limit:
                    raise DomainError(Reason.FIELD_TOO_LONG,
                                      f"{name} is {len(text)} characters; at most {limit} allowed",
                                      metadata={"field": name, "max_length": str(limit)})
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            items = value.values() if field.message_type.GetOptions().map_entry else (  # type: ignore[union-attr]  # set for messages
                value if field.is_repeated else (value,))
            for item in items:
                check(item, f"{name}.")


class RequestChecks(grpc.aio.ServerInterceptor):
    async def intercept_service(  # type: ignore[override]  # grpc-stubs types the handler as sync
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method  # type: ignore[attr-defined]
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler  # health, reflection: grpc's own
        name = method.rsplit("/", 1)[-1]
        parse = _tolerant(handler.request_deserializer)
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    check(request)
                except DomainError as err:
                    structlog.contextvars.bind_contextvars(rpc=name)
                    await abort(context, name, err)
                return await inner_unary(request, context)  # type: ignore[arg-type]  # an aio handler

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=parse, response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:
            inner_stream = handler.stream_stream

            async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
                async for request in requests:
                    check(request)  # the handler maps the DomainError to its status
                    yield request

            async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async for response in inner_stream(checked(requests), context):  # type: ignore[attr-defined, arg-type]  # an aio handler
                    yield response

            return grpc.stream_stream_rpc_method_handler(
                stream, request_deserializer=parse, response_serializer=handler.response_serializer)
        raise TypeError(f"{method}: no check for this kind of RPC yet")  # fails at the first call, loudly
