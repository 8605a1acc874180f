"""What every mock studio's `python -m mock_providers.<studio>` shares: the common arguments, and running until
SIGTERM or SIGINT after printing one line `READY port=<N>`, so a parent process (tests, `hub dev`) can start
it on port 0 and learn where it is."""

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web


async def listen(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve an HTTP studio's app; port 0 picks a free port. Returns the runner (cleanup() stops it) and the port."""
    # Cancel a hung handler when its client gives up, and do not wait long for stragglers on shutdown.
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, runner.addresses[0][1]


def studio_parser(prog: str, description: str, port: int, default_secret: str,
                  secret_help: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port, help="0 picks a free port")
    parser.add_argument("--secret", default=default_secret, help=secret_help)
    return parser


async def serve_until_signalled(port: int, stop_serving: Callable[[], Awaitable[object]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY port={port}", flush=True)
    try:
        await stop.wait()
    finally:
        await stop_serving()
