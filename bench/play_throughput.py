"""Settlement throughput of the hub, as a ratio to the database's own durable commit rate.

For each database (SQLite in a temp dir, MariaDB in a throwaway database) this measures, in one run:

  baseline   N small transactions (one INSERT + one UPDATE, committed) through the hub's own Database
             class: same engine settings, same thread pool size, same event-loop-to-thread hop.
             Run once before and once after the hub phases; the mean is the baseline.
  rounds     C players, each on its own Play stream, placing bets one after another through the real
             gRPC server and a FakeStudio (1 round in 4 wins 2x). A round = debit tx + settle tx + events.
  deposits   C callers, each depositing repeatedly into its own player through WalletService.Deposit.
  echo       the gRPC floor: a bare grpc.aio server in the same process and event loop as the hub (no
             interceptors, no database) with one bidirectional-stream method answering each message with
             one message; C clients on one channel, each sending a message and awaiting its reply back to
             back, driven the same way as the Play streams.

Absolute numbers depend on the (shared, noisy) machine; the ratios against the baseline are the result.
Correctness is checked at the end (postings sum to zero, balances match what the events said), and a
failed check makes the whole run fail: no speed is reported for wrong results.

    .venv/bin/python -m bench.play_throughput [--quick] [--rounds K] [--concurrency C] [--db sqlite|mariadb]
"""

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import pymysql
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    event,
    func,
    insert,
    select,
    update,
)

from casinohub.v1 import common_pb2, game_service_pb2, wallet_service_pb2
from hub import logs
from hub.config import Config
from hub.ledger.db import Database
from hub.ledger.uow import UnitOfWork
from hub.server import CORE_OPTIONS
from tests.e2e.play_client import PlayStream, opened_stream
from tests.fakes import FakeStudio
from tests.support import MARIADB_SERVER, Client, start_hub

BET = 100  # minor units
DEPOSIT = 10
WORKERS = Config().db_workers  # the hub's database thread pool; the baseline uses the same

# -- baseline: the database's raw commit rate for a comparable small write --------------------------------

bench_metadata = MetaData()
bench_accounts = Table("bench_accounts", bench_metadata,
                       Column("id", Integer, primary_key=True, autoincrement=False),
                       Column("balance", BigInteger, nullable=False))
bench_entries = Table("bench_entries", bench_metadata,
                      Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                             autoincrement=True),
                      Column("account_id", Integer, nullable=False),
                      Column("amount", BigInteger, nullable=False),
                      Column("note", String(36), nullable=False))


@dataclass
class Phase:
    """What one timed phase did: `done` operations in `seconds`, with per-operation latencies."""

    done: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def percentile_ms(self, p: int) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000


@dataclass
class SqlCount:
    """Statements and commits the hub sends to its database, counted at its engines."""

    statements: int = 0
    commits: int = 0

    def watch(self, *engines: Engine) -> None:
        for engine in set(engines):
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "commit", self._commit)

    def _statement(self, *_: object) -> None:
        self.statements += 1

    def _commit(self, *_: object) -> None:
        self.commits += 1

    def since(self, before: "SqlCount", operations: int) -> str:
        if not operations:
            return "n/a"
        return (f"{(self.statements - before.statements) / operations:.1f} / "
                f"{(self.commits - before.commits) / operations:.2f}")

    def snapshot(self) -> "SqlCount":
        return SqlCount(self.statements, self.commits)


async def timed(drivers: list[Callable[[Phase], Awaitable[None]]]) -> Phase:
    """Run the drivers concurrently; each records its own operations into the shared Phase."""
    phase = Phase()
    start = time.perf_counter()
    await asyncio.gather(*(driver(phase) for driver in drivers))
    phase.seconds = time.perf_counter() - start
    return phase


async def baseline(db: Database, commits: int, seconds: float) -> Phase:
    """`commits` transactions (or until `seconds` pass), WORKERS at a time, each INSERT + UPDATE + COMMIT."""
    deadline = time.perf_counter() + seconds
    numbers = itertools.count()

    def unit(i: int, uow: UnitOfWork) -> None:
        account = i % 16
        uow.conn.execute(insert(bench_entries).values(account_id=account, amount=1, note=str(uuid.uuid4())))
        uow.conn.execute(update(bench_accounts).where(bench_accounts.c.id == account)
                         .values(balance=bench_accounts.c.balance + 1))
        uow.commit()

    async def driver(phase: Phase) -> None:
        while (i := next(numbers)) < commits and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await db.run(lambda uow: unit(i, uow))
            phase.latencies.append(time.perf_counter() - t0)
            phase.done += 1

    return await timed([driver] * WORKERS)


def setup_baseline_tables(db: Database) -> None:
    bench_metadata.create_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(insert(bench_accounts), [{"id": i, "balance": 0} for i in range(16)])


def check_baseline(db: Database, expected: int) -> list[str]:
    with db.engine.connect() as conn:
        total = conn.execute(select(func.sum(bench_accounts.c.balance))).scalar_one()
        entries = conn.execute(select(func.count()).select_from(bench_entries)).scalar_one()
    if total == entries == expected:
        return []
    return [f"baseline: {entries} entries, balances sum to {total}, {expected} transactions ran"]


# -- the hub: rounds over Play streams, deposits over WalletService ----------------------------------------


@dataclass
class Player:
    player_id: str
    funded: int  # deposited before the timed phase
    stream: PlayStream | None = None
    bets: int = 0  # including the warm-up round
    deposits: int = 0
    wins: int = 0
    wins_count: int = 0
    last_balance: int | None = None  # as reported by the hub's last event / response
    events: int = 0  # Play stream messages the hub sent for this player's timed rounds


def every_fourth_round_wins() -> Callable[[int], int]:
    plays = itertools.count(1)
    return lambda bet: 2 * bet if next(plays) % 4 == 0 else 0


async def place_bet(player: Player, key: str) -> float:
    """One round, start to Settled; returns its latency. Any Error event aborts the bench."""
    assert player.stream is not None
    t0 = time.perf_counter()
    player.stream.bet(BET, key)
    events = await player.stream.until("settled", "error")
    latency = time.perf_counter() - t0
    last = events[-1]
    if last.WhichOneof("event") == "error":
        raise RuntimeError(f"bet {key} failed: {last.error.error.reason} {last.error.error.message}")
    player.bets += 1
    player.wins += last.settled.win.amount_minor
    player.wins_count += bool(last.settled.win.amount_minor)
    player.last_balance = last.settled.balance.amount_minor
    player.events += len(events)
    return latency


async def deposit(client: Client, player: Player, key: str) -> float:
    t0 = time.perf_counter()
    response = await client.wallet.Deposit(wallet_service_pb2.DepositRequest(
        player_id=player.player_id, amount=common_pb2.Money(currency="USD", amount_minor=DEPOSIT),
        idempotency_key=key), metadata=client.metadata)
    latency = time.perf_counter() - t0
    player.deposits += 1
    player.last_balance = response.balance.amount_minor
    return latency


async def per_player(players: list[Player], per_player_ops: int, seconds: float,
                     operation: Callable[[Player, str], Awaitable[float]]) -> Phase:
    """Each player runs up to per_player_ops operations back to back, all players concurrently."""
    deadline = time.perf_counter() + seconds

    def driver(player: Player) -> Callable[[Phase], Awaitable[None]]:
        async def run(phase: Phase) -> None:
            for k in range(per_player_ops):
                if time.perf_counter() >= deadline:
                    return
                phase.latencies.append(await operation(player, f"bench-{player.player_id}-{k}"))
                phase.done += 1
        return run

    return await timed([driver(p) for p in players])


async def new_players(client: Client, count: int, funded: int) -> tuple[list[Player], list[str]]:
    """Registered, logged-in players with `funded` already deposited; and their session tokens."""
    created = await asyncio.gather(*(client.new_player(deposit=funded) for _ in range(count)))
    return [Player(player_id, funded) for player_id, _ in created], [token for _, token in created]


async def check_hub(client: Client, players: list[Player]) -> list[str]:
    problems = []
    sums = await asyncio.to_thread(client.posting_sums)
    if any(sums.values()):
        problems.append(f"postings do not sum to zero: {sums}")
    for p in players:
        expected = p.funded - p.bets * BET + p.wins + p.deposits * DEPOSIT
        actual = await client.balance(p.player_id)
        if not actual == expected == p.last_balance:
            problems.append(f"player {p.player_id}: balance {actual}, expected {expected}, "
                            f"last event said {p.last_balance}")
    # Ledger transactions: one funding deposit per player, then one per bet, win and deposit.
    expected_tx = sum(1 + p.bets + p.wins_count + p.deposits for p in players)
    transactions, entries = await asyncio.to_thread(client.ledger_counts)
    if (transactions, entries) != (expected_tx, 2 * expected_tx):
        problems.append(f"ledger has {transactions} transactions / {entries} postings, "
                        f"expected {expected_tx} / {2 * expected_tx}")
    return problems


# -- echo: the bare grpc.aio stream floor, same process, loop and client pattern as the Play streams ------

ECHO_METHOD = "/casinohub.bench.Echo/Stream"


async def echo_handler(requests: AsyncIterator[bytes], _context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for message in requests:
        yield message


async def start_echo_server() -> tuple[grpc.aio.Server, int]:
    """Started like the hub (tests.support.start_hub): in-process, 127.0.0.1 port 0, the hub's core options.
    No serializers given, so messages stay bytes: no generated proto."""
    server = grpc.aio.server(options=CORE_OPTIONS)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "casinohub.bench.Echo", {"Stream": grpc.stream_stream_rpc_method_handler(echo_handler)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


class EchoStream:
    """PlayStream's pattern (tests.e2e.play_client): a queue-fed request iterator, replies read with a timeout."""

    def __init__(self, channel: grpc.aio.Channel):
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.call = channel.stream_stream(ECHO_METHOD)(self._requests())

    async def _requests(self) -> AsyncIterator[bytes]:
        while (request := await self._outbox.get()) is not None:
            yield request

    async def roundtrip(self, message: bytes, timeout: float = 10) -> float:
        t0 = time.perf_counter()
        self._outbox.put_nowait(message)
        reply = await asyncio.wait_for(self.call.read(), timeout)
        latency = time.perf_counter() - t0
        if reply != message:
            raise RuntimeError(f"echo answered {reply!r} to {message!r}")
        return latency

    async def close(self) -> None:
        self._outbox.put_nowait(None)
        self.call.cancel()


async def echo(concurrency: int, seconds: float) -> Phase:
    """C echo streams over one channel (as the hub's clients share one), each a message at a time, for the
    whole phase time: no per-client cap (the echo is ~100x faster than a round, --rounds would end it early)."""
    server, port = await start_echo_server()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    # A message the size of a Play bet, so the bytes on the wire are comparable.
    message = game_service_pb2.PlayRequest(bet=game_service_pb2.BetAction(
        amount=common_pb2.Money(currency="USD", amount_minor=BET),
        idempotency_key=f"bench-{uuid.uuid4()}-999")).SerializeToString()
    streams = [EchoStream(channel) for _ in range(concurrency)]
    try:
        for stream in streams:  # warm-up, untimed: every stream open before the clock starts
            await stream.roundtrip(message)
        deadline = time.perf_counter() + seconds

        def driver(stream: EchoStream) -> Callable[[Phase], Awaitable[None]]:
            async def run(phase: Phase) -> None:
                while time.perf_counter() < deadline:
                    phase.latencies.append(await stream.roundtrip(message))
                    phase.done += 1
            return run

        return await timed([driver(s) for s in streams])
    finally:
        for stream in streams:
            await stream.close()
        await channel.close()
        await server.stop(grace=1)


# -- one database ------------------------------------------------------------------------------------------


@dataclass
class Report:
    database: str
    baseline: list[Phase]
    rounds: Phase
    deposits: Phase
    echo: Phase
    events_per_round: float  # stream messages the hub sends per round (the client sends one: the bet)
    problems: list[str]
    sql_per_round: str  # "statements / commits"
    sql_per_deposit: str

    def print(self) -> None:
        base = statistics.mean(b.rate for b in self.baseline)
        echo = self.echo.rate
        stream_rate = self.events_per_round * self.rounds.rate
        rows = [  # metric, value, vs baseline, vs echo
            ("baseline commits/s (before, after)",
             f"{self.baseline[0].rate:.0f}, {self.baseline[1].rate:.0f}", "", ""),
            ("baseline commits/s (mean)", f"{base:.0f}", "1.00", ""),
            ("baseline commit latency p50 / p99 ms", f"{self.baseline[0].percentile_ms(50):.1f} / "
             f"{self.baseline[0].percentile_ms(99):.1f}", "", ""),
            ("echo msgs/s (bare grpc.aio stream)", f"{echo:.0f}", "", "1.000"),
            ("echo latency p50 / p99 ms",
             f"{self.echo.percentile_ms(50):.2f} / {self.echo.percentile_ms(99):.2f}", "", ""),
            ("hub settled rounds/s", f"{self.rounds.rate:.0f}", f"{self.rounds.rate / base:.2f}",
             f"{self.rounds.rate / echo:.3f}"),
            (f"hub stream msgs/s ({self.events_per_round:.1f} out / round)", f"{stream_rate:.0f}", "",
             f"{stream_rate / echo:.3f}"),
            ("hub transactions/s (2 per round)", f"{2 * self.rounds.rate:.0f}",
             f"{2 * self.rounds.rate / base:.2f}", ""),
            ("round latency p50 / p99 ms",
             f"{self.rounds.percentile_ms(50):.1f} / {self.rounds.percentile_ms(99):.1f}", "", ""),
            ("hub deposits/s", f"{self.deposits.rate:.0f}", f"{self.deposits.rate / base:.2f}",
             f"{self.deposits.rate / echo:.3f}"),
            ("deposit latency p50 / p99 ms",
             f"{self.deposits.percentile_ms(50):.1f} / {self.deposits.percentile_ms(99):.1f}", "", ""),
            ("SQL statements / commits per round", self.sql_per_round, "", ""),
            ("SQL statements / commits per deposit", self.sql_per_deposit, "", ""),
        ]
        print(f"\n{self.database}: {self.rounds.done} rounds in {self.rounds.seconds:.1f}s, "
              f"{self.deposits.done} deposits in {self.deposits.seconds:.1f}s, "
              f"{self.echo.done} echoes in {self.echo.seconds:.1f}s, "
              f"{sum(b.done for b in self.baseline)} baseline commits")
        print(f"  {'metric':<40} {'value':>14} {'vs baseline':>12} {'vs echo':>8}")
        for metric, value, ratio, vs_echo in rows:
            print(f"  {metric:<40} {value:>14} {ratio:>12} {vs_echo:>8}")
        if self.problems:
            print("  correctness: FAILED")
            for problem in self.problems:
                print(f"    - {problem}")
        else:
            print("  correctness: OK (postings sum to zero; every balance matches the events and the ledger)")


async def bench_database(name: str, url: str, args: argparse.Namespace) -> Report:
    phase_s = args.seconds
    db = Database.from_url(url, workers=WORKERS)
    client = await start_hub(url, {"fake": FakeStudio(win=every_fourth_round_wins())}, health_interval_s=5.0)
    try:
        await asyncio.to_thread(setup_baseline_tables, db)
        before = await baseline(db, args.commits, phase_s / 2)

        # Untimed set-up: players (argon2 hashing is slow on purpose), streams, one warm-up round each.
        players, tokens = await new_players(client, args.concurrency, funded=(args.rounds + 1) * BET)
        for player, token in zip(players, tokens, strict=True):
            player.stream = await opened_stream(client, token)
        # One at a time: a fresh operator's first bets create its house-shard accounts inside the posting
        # transaction, and on MariaDB concurrent first bets can deadlock past the hub's retries.
        for player in players:
            await place_bet(player, f"warmup-{player.player_id}")
        # The gRPC floor, measured while the hub is up and idle (same process, same loop, same client pattern).
        echoes = await echo(args.concurrency, phase_s)
        sql = SqlCount()
        sql.watch(*client.server.hub.db.engines)
        start = sql.snapshot()
        rounds = await per_player(players, args.rounds, phase_s, place_bet)
        sql_per_round = sql.since(start, rounds.done)
        for player in players:
            await player.stream.close()

        # The same players, now as deposit callers.
        start = sql.snapshot()
        deposits = await per_player(players, args.rounds, phase_s,
                                    lambda p, key: deposit(client, p, f"d-{key}"))
        sql_per_deposit = sql.since(start, deposits.done)

        after = await baseline(db, args.commits, phase_s / 2)
        problems = await check_hub(client, players)
        problems += await asyncio.to_thread(check_baseline, db, before.done + after.done)
        events_per_round = sum(p.events for p in players) / rounds.done if rounds.done else 0.0
        return Report(name, [before, after], rounds, deposits, echoes, events_per_round, problems,
                      sql_per_round, sql_per_deposit)
    finally:
        await client.channel.close()
        await client.server.stop(grace=1)
        db.close()


@contextlib.contextmanager
def sqlite_database():
    with tempfile.TemporaryDirectory(prefix="casinohub-bench-") as folder:
        yield f"sqlite:///{folder}/hub.db"


@contextlib.contextmanager
def mariadb_database():
    """A fresh database on the shared server, dropped afterwards; None if the server is unreachable."""
    user, _, hostport = MARIADB_SERVER.partition("@")
    host, _, port = hostport.partition(":")
    try:
        conn = pymysql.connect(host=host, port=int(port or 3306), user=user, password="", connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        print(f"\nmariadb: skipped, {MARIADB_SERVER} unreachable ({exc})")
        yield None
        return
    name = f"casinohub_bench_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        yield f"mysql+pymysql://{user}@{host}:{port or 3306}/{name}?charset=utf8mb4"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {name}")
        conn.close()


DATABASES = {"sqlite": sqlite_database, "mariadb": mariadb_database}


async def main(args: argparse.Namespace) -> int:
    # The hub logs as in production (JSON at INFO), into --log (default /dev/null): the table stays readable.
    with contextlib.redirect_stdout(open(args.log, "w")):  # noqa: SIM115 - lives as long as the process
        logs.configure("json")
    print(f"casinohub play throughput: {args.concurrency} players x up to {args.rounds} rounds, "
          f"<= {args.seconds:.0f}s per phase, {WORKERS} database workers")
    failed = False
    for name in args.db:
        with DATABASES[name]() as url:
            if url is None:
                continue
            report = await bench_database(name, url, args)
            report.print()
            failed |= bool(report.problems)
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (~25 s in all)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent players / depositors")
    parser.add_argument("--rounds", type=int, default=None, help="bets (and deposits) per player, at most")
    parser.add_argument("--commits", type=int, default=None, help="baseline transactions per run, at most")
    parser.add_argument("--seconds", type=float, default=None, help="time cap per phase")
    parser.add_argument("--log", default=os.devnull, help="file for the hub's JSON logs")
    parser.add_argument("--db", choices=sorted(DATABASES), action="append", help="default: both")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 12.0)
    args.rounds = args.rounds or 1_000
    args.commits = args.commits or 100_000
    args.db = args.db or ["sqlite", "mariadb"]
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
