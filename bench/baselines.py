"""Driving the baselines: (a) the echo server through the hub's load client, (b) raw pymysql bets."""

import asyncio
import pathlib

from bench import raw
from bench.databases import MariaDB, ServerCounters
from bench.echo import EchoSession
from bench.load import channels, drive
from bench.players import BET
from bench.procs import Sampler, echo_server
from bench.report import Figures
from casinohub.v1 import common_pb2, game_service_pb2

# A message the size of a Play bet, so the bytes on the wire are comparable.
ECHO_MESSAGE = game_service_pb2.PlayRequest(bet=game_service_pb2.BetAction(
    amount=common_pb2.Money(currency="USD", amount_minor=BET),
    idempotency_key="c64-0123-456789")).SerializeToString()


async def echo(folder: pathlib.Path, concurrencies: list[int], seconds: float, channel_count: int,
               ) -> tuple[list[Figures], list[str]]:
    """The bare grpc.aio stream server (its own process), C streams over the same channels as the hub's."""
    figures, problems = [], []
    async with echo_server(folder) as (port, pid):
        for concurrency in concurrencies:
            links = channels(f"127.0.0.1:{port}", channel_count)
            sessions = [EchoSession(links[i % channel_count], ECHO_MESSAGE) for i in range(concurrency)]
            try:
                await drive(sessions, float("inf"), rounds=1)  # every stream open before the clock starts
                async with Sampler([pid]) as sampler:
                    phase = await drive(sessions, seconds)
            finally:
                for session in sessions:
                    await session.close()
                for link in links:
                    await link.close()
            mismatches = sum(s.mismatches for s in sessions)
            if mismatches:
                problems.append(f"echo C={concurrency}: {mismatches} replies differ from their message")
            figures.append(Figures.from_phase("echo", None, concurrency, phase, rss_bytes=sampler.peak, processes=1,
                                              **sampler.per_round_ms(phase.done)))
            print(f"  echo C={concurrency}: {phase.rate:.0f} msgs/s")
    return figures, problems


async def raw_bets(db: MariaDB, concurrencies: list[int], seconds: float, server: ServerCounters,
                   ) -> tuple[list[Figures], list[str]]:
    """One transaction per bet on `db`, C connections (capped below max_connections)."""
    players = max(concurrencies)
    await asyncio.to_thread(raw.setup, db, players)
    cap = await asyncio.to_thread(raw.max_connections, db) - raw.CONNECTION_MARGIN
    figures, bets = [], 0
    for concurrency in concurrencies:
        connections = min(concurrency, cap)
        before = server.read()
        phase = await asyncio.to_thread(raw.run, db, connections, seconds)
        after = server.read()
        bets += phase.done
        server_per_round = ServerCounters.per_round(before, after, phase.done)
        # No hub.stats inside: statements are what the server counted less transaction control.
        sql = {} if server_per_round is None else {
            "statements_per_round": round(server_per_round["Questions"] - server_per_round["Com_commit"]
                                          - server_per_round["Com_rollback"], 2),
            "commits_per_round": round(server_per_round["Com_commit"], 3)}
        figures.append(Figures.from_phase("raw", "mariadb", concurrency, phase, connections=connections,
                                          server_per_round=server_per_round, **sql))
        print(f"  raw C={concurrency} ({connections} connections): {phase.rate:.0f} bets/s")
    return figures, await asyncio.to_thread(raw.check, db, players, bets)
