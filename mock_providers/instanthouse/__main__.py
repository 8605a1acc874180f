"""`python -m mock_providers.instanthouse`: run the instant-games studio until SIGTERM or SIGINT.

Prints one line `READY port=<N>` once listening, so a parent process can start it on port 0.
"""

import argparse
import asyncio
import signal

from mock_providers.instanthouse.server import DEFAULT_SECRET, DEFAULT_WALLET_URL, Faults, start_server


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mock-instanthouse", description="Instanthouse mock instant-games studio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8704, help="0 picks a free port")
    parser.add_argument("--secret", default=DEFAULT_SECRET,
                        help="the adapter's bearer and the HMAC key of the wallet calls")
    parser.add_argument("--wallet-url", default=DEFAULT_WALLET_URL,
                        help="where the hub serves this studio's wallet protocol (POST <url>/<method>)")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of /play requests answered 503")
    parser.add_argument("--seed", type=int, default=0, help="seeds the fault draws")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    faults = Faults(latency_ms=args.latency_ms, error_rate=args.error_rate, seed=args.seed)
    runner, port = await start_server(args.host, args.port, args.secret, args.wallet_url, faults)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY port={port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_parse(argv)))


if __name__ == "__main__":
    main()
