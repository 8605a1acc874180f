"""(a) The gRPC floor: a bare grpc.aio bidirectional-stream server, each message answered with itself.

Run as its own process (`python -m bench.echo --port 0` prints `READY port=<N>`), with the hub's core
options and nothing else: no proto (messages stay bytes), no interceptors, no database, one process. It
imports nothing from hub/, so its RSS is that of grpc.aio alone.

The bench drives it with the load client that drives the hub (bench.load): EchoSession is one stream,
one message per round trip, driven like a Play stream (a queue-fed request iterator, replies read with a
timeout).
"""

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import grpc

SERVICE = "casinohub.bench.Echo"
METHOD = f"/{SERVICE}/Stream"
# hub.server.CORE_OPTIONS, copied rather than imported (bench.__main__ checks they are equal).
CORE_OPTIONS = [("grpc.server.max_pending_requests", 10_000), ("grpc.server.max_pending_requests_hard_limit", 30_000)]


async def _echo(requests: AsyncIterator[bytes], _context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for message in requests:
        yield message


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server(options=CORE_OPTIONS)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        SERVICE, {"Stream": grpc.stream_stream_rpc_method_handler(_echo)})])
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY port={bound}", flush=True)
    await stop.wait()
    await server.stop(grace=1)


class EchoSession:
    """One echo stream: round() sends the message and awaits its copy."""

    def __init__(self, channel: grpc.aio.Channel, message: bytes, timeout: float = 30.0):
        self._message = message
        self._timeout = timeout
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        # grpc-stubs type a request iterator as sync; grpc.aio takes an async one.
        self.call: grpc.aio.StreamStreamCall = channel.stream_stream(METHOD)(self._requests())  # type: ignore[arg-type]
        self.mismatches = 0

    async def _requests(self) -> AsyncIterator[bytes]:
        while (request := await self._outbox.get()) is not None:
            yield request

    async def round(self, number: int) -> None:
        self._outbox.put_nowait(self._message)
        reply = await asyncio.wait_for(self.call.read(), self._timeout)
        if reply != self._message:  # a correctness failure, not a speed: it fails the run
            self.mismatches += 1

    async def close(self) -> None:
        self._outbox.put_nowait(None)
        self.call.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
