"""Open streams: N Play streams held open at once (many players, several channels), the hub's memory with
all of them open, then one bet on every stream at once, each of which must be answered.

The hub's admission control refuses Play streams past max_play_streams (2000 by default): this scenario
raises it to N + STREAM_HEADROOM in the hub's config file, and says so. It also turns the operator's rate
limit off (rate_limit_per_s = 0): its one operator opening N streams at once (a launch and an open each) is
the load measured here, not abuse, and the default, 1000 calls a second across all workers, would pace it.
"""

import asyncio
import math
import os
import pathlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from bench.load import channels, error_label
from bench.players import BET, PlaySession, check_balances, new_players, open_sessions
from bench.procs import Sampler, hub_processes, mock_studio, raise_open_files_limit, rss_bytes
from tests.support import Client

STREAMS_PER_PLAYER = 100
STREAMS_PER_CHANNEL = 500
STREAM_HEADROOM = 100
EVENT_TIMEOUT_S = 600.0  # N bets at once queue behind the database: minutes on a busy 2-core machine


@dataclass
class StreamsRun:
    database: str
    streams: int
    players: int
    channels: int
    max_play_streams: int
    open_files: tuple[int, int]
    opened: int = 0
    open_seconds: float = 0.0
    rss_open: int = 0  # all hub processes, every stream open and idle
    rss_by_process: dict[int, int] = field(default_factory=dict)
    answered: int = 0  # bets that reached `settled`
    bet_seconds: float = 0.0
    rss_peak: int = 0  # while the bets ran
    errors: Counter[str] = field(default_factory=Counter)
    client_rss: int = 0  # the bench process itself (the client side of every stream)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def open_streams(database: str, url: str, folder: pathlib.Path, count: int, workers: int) -> StreamsRun:
    players_count = math.ceil(count / STREAMS_PER_PLAYER)
    channel_count = max(2, math.ceil(count / STREAMS_PER_CHANNEL))
    limit = count + STREAM_HEADROOM
    # Streams share their connection's socket, so N streams need few descriptors; the soft limit is raised past
    # N anyway (as far as the hard limit allows) so a low default never caps the run. The hub inherits it.
    run = StreamsRun(database, count, players_count, channel_count, limit, raise_open_files_limit(count + 1024))
    operator_id = f"op-bench-{uuid.uuid4().hex[:8]}"
    async with mock_studio(folder) as studio_url, \
            hub_processes(folder, url, operator_id, studio_url, workers, extra={"max_play_streams": limit, "rate_limit_per_s": 0}) as hub:
        links = channels(hub.address, channel_count)
        clients = [Client(server=None, port=hub.port, channel=c, operator_id=operator_id,  # type: ignore[arg-type]
                          database_url=url) for c in links]
        sessions: list[PlaySession] = []
        try:
            print(f"  streams: registering {players_count} players")
            players = await new_players(clients, players_count, funding=2 * STREAMS_PER_PLAYER * BET)
            print(f"  streams: opening {count} Play streams over {channel_count} channels")
            started = time.perf_counter()
            sessions = await open_sessions(clients, players, count, "open", EVENT_TIMEOUT_S, at_once=128)
            run.open_seconds = time.perf_counter() - started
            run.opened = len(sessions)
            await asyncio.sleep(2.0)  # let allocations settle before reading memory
            run.rss_by_process = {pid: rss_bytes([pid]) for pid in hub.pids}
            run.rss_open = sum(run.rss_by_process.values())
            print(f"  streams: {run.opened} open, hub RSS {run.rss_open / 2**20:.0f} MiB; one bet on each")
            started = time.perf_counter()
            async with Sampler(hub.pids) as sampler:
                outcomes = await asyncio.gather(*(s.round(1) for s in sessions), return_exceptions=True)
            run.bet_seconds = time.perf_counter() - started
            run.rss_peak = sampler.peak
            run.client_rss = rss_bytes([os.getpid()])
            for outcome in outcomes:
                if outcome is None:
                    run.answered += 1
                elif isinstance(outcome, Exception):
                    run.errors[error_label(outcome)] += 1
                else:
                    raise outcome
            for session in sessions:
                await session.close()
            if run.answered != run.streams:
                run.problems.append(f"open streams: {run.answered} of {run.streams} bets answered "
                                    f"({dict(run.errors)})")
            problems, unchecked = await check_balances(clients[0], players)
            run.problems += problems
            if unchecked:
                run.warnings.append(f"{unchecked} players not checked: a round of theirs was cut off in flight")
        finally:
            for session in sessions:
                await session.close()
            for link in links:
                await link.close()
        code, output = await hub.ledger_check(operator_id)
        if code != 0:
            run.problems.append(f"hub ledger check exited {code}:\n{output[-2000:]}")
        run.warnings += [f"hub logged: {line}" for line in hub.log_errors()[:5]]
    return run
