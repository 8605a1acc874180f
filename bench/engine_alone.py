"""The settlement engine alone (no gRPC, no studio): C concurrent players, each placing a bet and then
settling its round (a win on one round in four) back to back, through `SettlementEngine.submit`, the
same commands Play submits. Reports rounds/s, latency, batches and SQL statements and commits per round.

    .venv/bin/python -m bench.engine_alone --url sqlite:////tmp/x.db --concurrency 64 --seconds 5
"""

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event

from hub.clock import utcnow
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import Bet, RoundLedger, Win
from hub.ledger.schema import players
from hub.ledger.uow import UnitOfWork
from hub.migrate import upgrade
from hub.money import Money
from hub.operators import Operators
from hub.page_tokens import PageTokens
from hub.wallet import Wallet

SHARDS = 8
BET = 100


@dataclass(frozen=True)
class Settle:
    """What Play's SettleRound does to the ledger: the win, if any, then close the round."""

    operator_id: str
    player_id: str
    round_id: str
    win: int

    @property
    def win_command(self) -> Win:
        return Win(self.operator_id, self.round_id, f"win-{self.round_id}", self.win or 1)

    @property
    def wallets(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.operator_id, self.player_id, "USD"),)

    @property
    def needs(self) -> tuple[Any, ...]:
        return self.win_command.needs


@dataclass
class EngineFigures:
    rounds: int
    seconds: float
    latencies_ms: list[float]
    batches: int
    commands: int
    statements: int
    commits: int

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms) or [0.0]
        return {"rounds_per_s": self.rounds / self.seconds, "rounds": self.rounds,
                "p50_ms": statistics.median(lat), "p99_ms": lat[int(len(lat) * 0.99) - 1 if len(lat) > 1 else 0],
                "mean_batch": self.commands / self.batches if self.batches else None,
                "statements_per_round": self.statements / self.rounds if self.rounds else None,
                "commits_per_round": self.commits / self.rounds if self.rounds else None}


async def run(url: str, concurrency: int, seconds: float, writers: int | None = None) -> EngineFigures:
    """url: a migrated or empty database (it is migrated here)."""
    await asyncio.to_thread(upgrade, url)
    db = Database.from_url(url)
    engine = SettlementEngine(db, writers=writers)
    operator_id = f"bench-{uuid.uuid4().hex[:8]}"
    await Operators(db).ensure(operator_id, "engine bench")
    player_ids = [str(uuid.uuid4()) for _ in range(concurrency)]

    def _players(uow: UnitOfWork) -> None:
        uow.conn.execute(players.insert(), [
            {"player_id": p, "operator_id": operator_id, "username": f"e{n}", "password_hash": "-",
             "status": "active", "created_at": utcnow()} for n, p in enumerate(player_ids)])
        uow.commit()

    await db.run(_players)
    wallet = Wallet(db, engine, SHARDS, PageTokens(b"bench"))
    await asyncio.gather(*(wallet.deposit(operator_id, p, Money("USD", 10_000_000), f"fund-{p}") for p in player_ids))
    ledger = RoundLedger(SHARDS)
    counts = {"statements": 0, "commits": 0}

    def _statement(*_: object) -> None:
        counts["statements"] += 1

    def _commit(*_: object) -> None:
        counts["commits"] += 1

    for e in db.engines:
        event.listen(e, "before_cursor_execute", _statement)
        event.listen(e, "commit", _commit)
    base = (engine.stats.batches, engine.stats.commands)
    latencies: list[float] = []
    done = 0
    stop_at = time.monotonic() + seconds

    async def player(player_id: str) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            round_id = str(uuid.uuid4())
            started = time.perf_counter()
            await engine.submit(ledger.bet, Bet(operator_id, player_id, "USD", round_id, "bench:game",
                                                f"bet-{round_id}", BET))
            win = 2 * BET if n % 4 == 0 else 0
            await engine.submit(_settle, Settle(operator_id, player_id, round_id, win))
            latencies.append((time.perf_counter() - started) * 1000)
            done += 1

    def _settle(book: Any, cmd: Settle) -> None:
        if cmd.win:
            ledger.win(book, cmd.win_command)
        ledger.close(book, cmd.operator_id, cmd.round_id)

    started = time.monotonic()
    await asyncio.gather(*(player(p) for p in player_ids))
    elapsed = time.monotonic() - started
    figures = EngineFigures(done, elapsed, latencies, engine.stats.batches - base[0],
                            engine.stats.commands - base[1], counts["statements"], counts["commits"])
    engine.close()
    db.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--writers", type=int, default=None, help="the engine's writer threads (default: its own)")
    args = parser.parse_args()
    print(asyncio.run(run(args.url, args.concurrency, args.seconds, args.writers)).as_dict())


if __name__ == "__main__":
    main()
