"""The load client: C sessions, each running rounds back to back for a fixed time.

The same code drives the bare echo server and the hub: a session is anything with `async round(n)`
(echo: one message out, its copy back; hub: a bet out, its events back up to `settled`). The clock,
latencies and error accounting live here, so both sides are measured the same way.
"""

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class RoundRefused(Exception):
    """The round ended with a refusal on a stream that goes on (the hub's in-band Play error event)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Session(Protocol):
    async def round(self, number: int) -> None:
        """One round trip; raises RoundRefused (counted, the session goes on) or anything else (counted,
        the session stops: its stream is dead or in an unknown state)."""
        ...


@dataclass
class Phase:
    """What one timed phase did: `done` rounds in `seconds`, their latencies, and the errors by label."""

    done: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lost: list[int] = field(default_factory=list)  # sessions (by index) that stopped on an error

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def percentile_ms(self, p: int) -> float | None:
        if len(self.latencies) < 2:
            return None
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000


def error_label(exc: BaseException) -> str:
    """A stable name for a failure: `STATUS/REASON` for a gRPC status (reason from its ErrorInfo, if any),
    `event/REASON` for an in-band refusal, TIMEOUT, or the exception's type."""
    if isinstance(exc, RoundRefused):
        return f"event/{exc.reason}"
    if isinstance(exc, grpc.aio.AioRpcError):
        label = exc.code().name
        try:
            status = rpc_status.from_call(exc)  # type: ignore[arg-type]  # an aio call reads the same
        except ValueError:
            status = None
        if status is not None:
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return f"{label}/{info.reason}"
        return label
    if isinstance(exc, TimeoutError):
        return "TIMEOUT"
    return type(exc).__name__


async def drive(sessions: Sequence[Session], seconds: float, rounds: int | None = None) -> Phase:
    """Every session runs rounds back to back until `seconds` have passed (or it has run `rounds`); a round
    started before then runs to its end. Latency is the whole round trip of a successful round."""
    phase = Phase()
    deadline = time.perf_counter() + seconds

    async def run(index: int, session: Session) -> None:
        number = 0
        while time.perf_counter() < deadline and (rounds is None or number < rounds):
            number += 1
            started = time.perf_counter()
            try:
                await session.round(number)
            except RoundRefused as refused:
                phase.errors[error_label(refused)] += 1
                continue
            except (grpc.aio.AioRpcError, TimeoutError, ConnectionError) as exc:
                phase.errors[error_label(exc)] += 1
                phase.lost.append(index)
                return
            phase.latencies.append(time.perf_counter() - started)
            phase.done += 1

    started = time.perf_counter()
    await asyncio.gather(*(run(i, session) for i, session in enumerate(sessions)))
    phase.seconds = time.perf_counter() - started
    return phase


def channels(address: str, count: int) -> list[grpc.aio.Channel]:
    """`count` channels, one TCP connection each (without a local subchannel pool, equal channels share
    one), so the kernel spreads them over the hub's SO_REUSEPORT workers."""
    return [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(count)]
