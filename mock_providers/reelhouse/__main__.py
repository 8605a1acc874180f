"""`python -m mock_providers.reelhouse` / `mock-reelhouse`: run the studio until SIGTERM or SIGINT.

Prints one line `READY port=<N>` once listening, so a parent process (tests, the hub's dev scripts) can
start it on port 0 and learn where it is.
"""

import argparse
import asyncio

from mock_providers.process import serve_until_signalled, studio_parser
from mock_providers.reelhouse.server import DEFAULT_SECRET, Faults, start_server


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = studio_parser("mock-reelhouse", "Reelhouse mock slots studio", 8701, DEFAULT_SECRET)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of /v1 requests answered 503")
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="share of /v1 requests that hang")
    parser.add_argument("--seed", type=int, default=0, help="seeds the fault draws")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    faults = Faults(latency_ms=args.latency_ms, error_rate=args.error_rate, timeout_rate=args.timeout_rate,
                    seed=args.seed)
    runner, port = await start_server(args.host, args.port, args.secret, faults)
    await serve_until_signalled(port, runner.cleanup)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_parse(argv)))


if __name__ == "__main__":
    main()
