"""Authentication and authorization of every call to the hub's own services (a server interceptor).

Before any handler runs, the call's credentials become a Principal (hub.auth): an access token or the
administrator's token in `authorization: Bearer ...`, or an Ed25519 request signature (hub.auth.credentials).
The RPC's `required_scope` (casinohub/v1/options.proto, read from the descriptors) must be among the
principal's scopes, and the principal alone decides the operator a call acts for: an `x-operator-id` header
naming another operator is refused. A studio's signing key (sk_...) makes a studio principal whose one
scope, studio:wallet, is ProviderWalletService's and no operator's: the key decides the kind of caller,
never a header. Refusals are UNAUTHENTICATED (no, bad, expired or replayed credentials)
or PERMISSION_DENIED (address not allowed, scope missing, another operator, a client certificate not among
the operator's bound ones: hub.auth.certificates, read from the call's TLS auth context), each logged as `auth.refused`
with its reason, the method and a key id prefix (never a secret, token or signature) and counted in
casinohub_refusals_total (hub.metrics), nothing done.
Health and reflection are grpc's own and stay open: load balancers and grpcurl use them.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.protobuf.descriptor import ServiceDescriptor

from casinohub.v1 import options_pb2
from hub.auth import certificates, principal as principals
from hub.auth.credentials import KEY_ID_HEADER, SIGNATURE_HEADERS, Authenticator
from hub.auth.principal import Principal
from hub.errors import DomainError, Reason
from hub.servicers.calls import abort_unexpected, first_message, refuse
from hub.servicers.edge import SERVICE_PREFIX

log = structlog.get_logger("hub.auth")
OPERATOR_HEADER = "x-operator-id"
UNDECLARED = "undeclared"  # the scope of an RPC missing from the descriptors: nobody holds it


@dataclass(frozen=True)
class Rule:
    scope: str
    credentials_in_request: bool


def method_rules(services: Iterable[ServiceDescriptor]) -> dict[str, Rule]:
    """Each RPC's rule by gRPC path. An RPC that declares neither option (or both) stops the hub here."""
    rules = {}
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            scope = options.Extensions[options_pb2.required_scope]
            in_request = options.Extensions[options_pb2.credentials_in_request]
            if bool(scope) == in_request:
                raise ValueError(f"{method.full_name} must declare exactly one of required_scope and "
                                 "credentials_in_request (casinohub/v1/options.proto)")
            rules[f"/{service.full_name}/{method.name}"] = Rule(scope, in_request)
    return rules


class _Signed:
    """A request with the bytes it arrived as: a signature covers the bytes, not a re-encoding."""

    __slots__ = ("data", "message")

    def __init__(self, data: bytes, message: Any):
        self.data = data
        self.message = message


def _keeping_bytes(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> _Signed:
        return _Signed(data, deserializer(data) if deserializer is not None else data)

    return parse


def refused(err: DomainError, method: str, metadata: dict[str, str], peer: str) -> None:
    key_id = metadata.get(KEY_ID_HEADER, "")
    log.warning("auth.refused", reason=err.reason.name, rpc=method, key_id=key_id[:12] or None, peer=peer[:64])


class Authentication(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, services: Iterable[ServiceDescriptor]):
        self.authenticator = authenticator
        self.rules = method_rules(services)

    async def authenticate(self, method: str, metadata: dict[str, str], body: bytes | None, peer: str,
                           client_cert: str | None = None) -> Principal:
        """client_cert: the fingerprint of the certificate the peer presented over mutual TLS, if any."""
        rule = self.rules.get(method, Rule(UNDECLARED, False))
        authorization = metadata.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise DomainError(Reason.TOKEN_INVALID, "authorization must be `Bearer <access token>`")
            principal = await self.authenticator.bearer(token.strip(), peer, client_cert)
        elif any(header in metadata for header in SIGNATURE_HEADERS):
            principal = await self.authenticator.signature(metadata, method, body, peer, client_cert)
        else:
            raise DomainError(Reason.CREDENTIALS_MISSING, "send `authorization: Bearer <token>` "
                              "(AuthService.IssueToken) or a request signature")
        if rule.scope not in principal.scopes:
            raise DomainError(Reason.SCOPE_MISSING, f"this RPC needs the scope {rule.scope}",
                              metadata={"scope": rule.scope})
        claimed = metadata.get(OPERATOR_HEADER)
        if claimed is not None and claimed != principal.operator_id:
            raise DomainError(Reason.OPERATOR_MISMATCH, "x-operator-id names another operator than the "
                              "credentials' own; the credentials alone decide the operator")
        return principal

    async def _admit(self, context: grpc.aio.ServicerContext, method: str, body: bytes | None,
                     requests: AsyncIterator[Any] | None = None) -> None:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        peer, name = context.peer() or "", method.rsplit("/", 1)[-1]
        try:
            client_cert = certificates.peer_fingerprint(context.auth_context())
            principals.bind(await self.authenticate(method, metadata, body, peer, client_cert))
        except DomainError as err:
            refused(err, name, metadata, peer)
            if requests is not None:
                await first_message(requests)
            await refuse(context, name, err)
        except Exception as exc:  # noqa: BLE001 - the database down (HUB_UNAVAILABLE), a deadline: as handlers map them
            await abort_unexpected(context, name, exc)

    async def intercept_service(  # type: ignore[override]  # grpc-stubs types the handler as sync
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method  # type: ignore[attr-defined]
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler  # health, reflection: open to load balancers and grpcurl
        rule = self.rules.get(method)
        if rule is not None and rule.credentials_in_request:
            return handler  # AuthService.IssueToken checks the key and secret in its request itself
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: _Signed, context: grpc.aio.ServicerContext) -> Any:
                await self._admit(context, method, request.data)
                return await inner_unary(request.message, context)  # type: ignore[arg-type]  # an aio handler

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=_keeping_bytes(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:
            inner_stream = handler.stream_stream

            async def stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                await self._admit(context, method, None, requests)  # the signature covers the call, not the stream
                async for response in inner_stream(requests, context):  # type: ignore[attr-defined, arg-type]  # an aio handler
                    yield response

            return grpc.stream_stream_rpc_method_handler(
                stream, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        raise TypeError(f"{method}: no authentication for this kind of RPC yet")  # fails at the first call, loudly
