"""`python -m mock_providers.instanthouse`: run the instant-games studio until SIGTERM or SIGINT.

Prints one line `READY port=<N>` once listening, so a parent process can start it on port 0.
"""

import argparse
import asyncio

from mock_providers.instanthouse.server import DEFAULT_SECRET, DEFAULT_WALLET_URL, Faults, start_server
from mock_providers.process import serve_until_signalled, studio_parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = studio_parser("mock-instanthouse", "Instanthouse mock instant-games studio", 8704, DEFAULT_SECRET,
                           "the adapter's bearer and the HMAC key of the wallet calls")
    parser.add_argument("--wallet-url", default=DEFAULT_WALLET_URL,
                        help="where the hub serves this studio's wallet protocol (POST <url>/<method>)")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of /play requests answered 503")
    parser.add_argument("--seed", type=int, default=0, help="seeds the fault draws")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    faults = Faults(latency_ms=args.latency_ms, error_rate=args.error_rate, seed=args.seed)
    runner, port = await start_server(args.host, args.port, args.secret, args.wallet_url, faults)
    await serve_until_signalled(port, runner.cleanup)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_parse(argv)))


if __name__ == "__main__":
    main()
