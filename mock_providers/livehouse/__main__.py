"""`python -m mock_providers.livehouse`: run the live table until SIGTERM or SIGINT.

It needs the hub's address and this studio's key (AdminService.CreateStudioKey; `hub dev` makes one and
passes it). Prints one line `READY port=<N>` once listening, so a parent process can start it on port 0.
"""

import argparse
import asyncio
import json
import pathlib

from mock_providers.livehouse.faults import Faults
from mock_providers.livehouse.server import DEFAULT_SECRET, start_server
from mock_providers.process import serve_until_signalled, studio_parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = studio_parser("mock-livehouse", "Livehouse mock live-dealer studio", 8703, DEFAULT_SECRET,
                           "what the hub's adapter sends as its bearer")
    parser.add_argument("--hub", default="127.0.0.1:50051", help="the hub's gRPC address (ProviderWalletService)")
    parser.add_argument("--key-id", required=True, help="this studio's key id (sk_...)")
    parser.add_argument("--key-file", required=True, help="its Ed25519 private key, PKCS#8 PEM")
    parser.add_argument("--window-s", type=float, default=15.0, help="each round's betting window, in seconds")
    parser.add_argument("--fault", action="append", default=[], metavar="KNOB=VALUE",
                        help="a fault knob (README), e.g. --fault latency_ms=50 --fault duplicate_rate=0.1")
    args = parser.parse_args(argv)
    args.faults = Faults()
    try:
        args.faults.update({name: json.loads(value) for name, _, value in (f.partition("=") for f in args.fault)})
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def _serve(args: argparse.Namespace) -> None:
    runner, port = await start_server(args.host, args.port, args.secret, hub=args.hub, key_id=args.key_id,
                                      private_key_pem=pathlib.Path(args.key_file).read_bytes(),
                                      window_s=args.window_s, faults=args.faults)
    await serve_until_signalled(port, runner.cleanup)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_parse(argv)))


if __name__ == "__main__":
    main()
