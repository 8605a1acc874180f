"""(c) The settlement engine alone, no gRPC, no studio: bench.engine_alone (C players, each a bet then its
settlement, back to back, through `SettlementEngine.submit`) on a throwaway MariaDB database of its own,
beside the raw baseline (bench.raw) on the same server at the same C, so the ratio says what batching buys
over one transaction per bet. A round here is two commands (bet, settle), as a hub round is.

After each run the database must pass `hub ledger check` (hub.ledger.check), or the bench fails.
"""

import asyncio
import statistics

from bench import engine_alone as lead
from bench.databases import MariaDB
from bench.report import Figures
from hub.ledger.check import check


async def engine_alone(db: MariaDB, concurrency: int, seconds: float) -> tuple[Figures, list[str]]:
    """Figures of one run at concurrency C (statements and commits counted by bench.engine_alone over its
    timed loop only; the server's counters would include its set-up), and what the ledger check found wrong."""
    run = await lead.run(db.url, concurrency, seconds)
    figures = Figures("engine", "mariadb", concurrency, rounds=run.rounds, seconds=round(run.seconds, 3),
                      rounds_per_s=round(run.rounds / run.seconds, 1) if run.seconds else 0.0)
    if len(run.latencies_ms) >= 2:
        cuts = statistics.quantiles(run.latencies_ms, n=100, method="inclusive")
        figures.p50_ms, figures.p95_ms, figures.p99_ms = (round(cuts[p - 1], 3) for p in (50, 95, 99))
    if run.rounds:
        figures.statements_per_round = round(run.statements / run.rounds, 2)
        figures.commits_per_round = round(run.commits / run.rounds, 3)
        figures.mean_batch = round(run.commands / run.batches, 2) if run.batches else None
    reports = await asyncio.to_thread(check, db.url, None)
    problems = [f"engine C={concurrency}: hub ledger check: {report.render()}" for report in reports if not report.ok]
    return figures, problems

