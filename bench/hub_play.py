"""(d) The hub as `make run` starts it: the Reelhouse mock studio over HTTP and `hub serve --workers N`
(N = CPUs), real processes, on one database; C Play streams bet 1.00 and await `settled`, back to back,
for a fixed time, at each concurrency in turn."""

import pathlib
import uuid
from dataclasses import dataclass, field

from bench.databases import ServerCounters
from bench.load import Phase, channels, drive
from bench.players import Player, check_balances, new_players, open_sessions
from bench.procs import HubProcesses, Sampler, hub_processes, mock_studio
from hub.stats import Counts
from tests.support import Client

FUNDING = 100_000_000  # per player: a million bets
SEQUENTIAL_WARMUP = 16  # a fresh operator's first bets create its house-shard accounts: one at a time
ROUND_TIMEOUT_S = 60.0  # per event; a round slower than this counts as TIMEOUT and ends its stream


@dataclass
class HubPhase:
    concurrency: int
    phase: Phase
    counts: Counts  # hub.stats change over the phase, all workers
    server: dict[str, float] | None  # MariaDB server counters per round
    rss_peak: int
    cpu_ms: dict[str, float | None]  # per round: all hub processes, and the load client
    processes: int


@dataclass
class HubRun:
    database: str
    workers: int
    phases: list[HubPhase] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _delta(before: Counts, after: Counts) -> Counts:
    return Counts(*(getattr(after, n) - getattr(before, n) for n in ("statements", "commits", "batches", "commands")))


async def hub_play(database: str, url: str, folder: pathlib.Path, concurrencies: list[int], seconds: float,
                   workers: int, channel_count: int, server: ServerCounters | None) -> HubRun:
    run = HubRun(database, workers)
    operator_id = f"op-bench-{uuid.uuid4().hex[:8]}"
    async with mock_studio(folder) as studio_url, \
            hub_processes(folder, url, operator_id, studio_url, workers) as hub:
        links = channels(hub.address, channel_count)
        clients = [Client(server=None, port=hub.port, channel=c, operator_id=operator_id,  # type: ignore[arg-type]
                          database_url=url) for c in links]
        try:
            print(f"  hub {database}: {len(hub.pids)} processes up; registering {max(concurrencies)} players")
            players = await new_players(clients, max(concurrencies), FUNDING)
            warmup = await open_sessions(clients, players[:SEQUENTIAL_WARMUP], min(SEQUENTIAL_WARMUP, len(players)),
                                         "warmup", ROUND_TIMEOUT_S)
            for session in warmup:
                await session.round(0)
                await session.close()
            for concurrency in concurrencies:
                run.phases.append(await _phase(hub, clients, players[:concurrency], seconds, server))
                p = run.phases[-1].phase
                print(f"  hub {database} C={concurrency}: {p.rate:.0f} rounds/s")
            problems, unchecked = await check_balances(clients[0], players)
            run.problems += problems
            if unchecked:
                run.warnings.append(f"{unchecked} players not checked: a round of theirs was cut off in flight")
            code, output = await hub.ledger_check(operator_id)
            if code != 0:
                run.problems.append(f"hub ledger check exited {code}:\n{output[-2000:]}")
            run.warnings += [f"hub logged: {line}" for line in hub.log_errors()[:5]]
        finally:
            for link in links:
                await link.close()
    return run


async def _phase(hub: HubProcesses, clients: list[Client], players: list[Player], seconds: float,
                 server: ServerCounters | None) -> HubPhase:
    concurrency = len(players)
    sessions = await open_sessions(clients, players, concurrency, f"c{concurrency}", ROUND_TIMEOUT_S)
    try:
        # Untimed: every stream carries one round before the clock starts; one that died is left out.
        warm = await drive(sessions, seconds=float("inf"), rounds=1)
        timed = [s for i, s in enumerate(sessions) if i not in set(warm.lost)]
        before = await hub.settled_counts()
        server_before = server.read() if server else None
        async with Sampler(hub.pids) as sampler:
            phase = await drive(timed, seconds)
        after = await hub.settled_counts()
        server_after = server.read() if server else None
    finally:
        for session in sessions:
            await session.close()
    phase.errors.update({f"warm-up {label}": n for label, n in warm.errors.items()})
    per_round = (ServerCounters.per_round(server_before, server_after, phase.done)
                 if server_before is not None and server_after is not None else None)
    return HubPhase(concurrency, phase, _delta(before, after), per_round, sampler.peak,
                    sampler.per_round_ms(phase.done), len(hub.pids))

