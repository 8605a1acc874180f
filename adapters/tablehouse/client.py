"""gRPC to a studio serving casinohub.provider.v1.ProviderGameService, and the ONE place where its failures
become ProviderErrors. Every call has a deadline (the provider's timeout_s) and the bearer secret."""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2

from adapters.base import ProviderProtocolError, ProviderRejected, ProviderTimeout, ProviderUnavailable
from casinohub.provider.v1 import provider_game_service_pb2_grpc as pb_grpc

Reply = TypeVar("Reply")

# The studio refused and did nothing: a request it judged, not a fault of the link.
_REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND,
             grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAUTHENTICATED,
             grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED}
# It did nothing and may be asked again: overloaded or unreachable.
_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
# Everything else (DEADLINE_EXCEEDED, CANCELLED, UNKNOWN, INTERNAL, ABORTED, DATA_LOSS): it may have acted.


class StudioRejected(ProviderRejected):
    """A refusal; `reason` is the studio's ErrorInfo reason, e.g. ROUND_ID_REUSED."""

    def __init__(self, code: grpc.StatusCode, reason: str):
        super().__init__(f"tablehouse refused the request: {code.name} {reason}")
        self.code = code
        self.reason = reason


def reason_of(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason in the status details, or UNKNOWN."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except Exception:  # noqa: BLE001 - a malformed detail is just no reason
                return "UNKNOWN"
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason[:64] or "UNKNOWN"
    return "UNKNOWN"


class StudioClient:
    def __init__(self, target: str, secret: str, timeout_s: float):
        self._target = target
        self._metadata = (("authorization", f"Bearer {secret}"),)
        self._timeout_s = timeout_s
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    @property
    def stub(self) -> Any:
        # Created on first use so the channel belongs to the running event loop.
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self._target)
            self._stub = pb_grpc.ProviderGameServiceStub(self._channel)
        return self._stub

    async def call(self, method: Callable[..., Awaitable[Reply]], request: Any, what: str) -> Reply:
        try:
            return await method(request, timeout=self._timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in _REFUSALS:
                raise StudioRejected(code, reason_of(exc)) from exc
            if code in _UNAVAILABLE:
                raise ProviderUnavailable(f"tablehouse {what}: {code.name} {reason_of(exc)}") from exc
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ProviderTimeout(f"tablehouse did not answer {what} in {self._timeout_s} s") from exc
            raise ProviderTimeout(f"tablehouse {what} ended with {code.name}: the outcome is unknown") from exc
        except grpc.aio.UsageError as exc:
            raise ProviderUnavailable(f"tablehouse channel closed: {exc}") from exc
        except (ValueError, TypeError) as exc:  # an answer that does not parse as the contract's message
            raise ProviderProtocolError(f"tablehouse {what} answer is malformed: {exc}") from exc

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub = None, None
