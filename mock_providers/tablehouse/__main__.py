"""`python -m mock_providers.tablehouse` / `mock-tablehouse`: run the studio until SIGTERM or SIGINT.

Prints one line `READY port=<N>` once listening, so a parent process (tests, `hub dev`) can start it on
port 0 and learn where it is.
"""

import argparse
import asyncio
import signal

from mock_providers.tablehouse.server import DEFAULT_SECRET, Faults, start_server


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mock-tablehouse", description="Tablehouse mock table-games studio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8702, help="0 picks a free port")
    parser.add_argument("--secret", default=DEFAULT_SECRET)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of calls answered UNAVAILABLE")
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="share of calls acted on, then hung")
    parser.add_argument("--abandon-after-s", type=float, default=60.0,
                        help="an idle blackjack hand is stood out when its status is asked after this long")
    parser.add_argument("--seed", type=int, default=0, help="seeds the fault draws")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    faults = Faults(latency_ms=args.latency_ms, error_rate=args.error_rate, timeout_rate=args.timeout_rate,
                    abandon_after_s=args.abandon_after_s, seed=args.seed)
    server, port, _ = await start_server(args.host, args.port, args.secret, faults)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY port={port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1.0)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_parse(argv)))


if __name__ == "__main__":
    main()
