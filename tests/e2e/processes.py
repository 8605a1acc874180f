"""`hub serve` as real OS processes for crash, fault and multi-process tests: start, wait for SERVING,
kill -9; a MariaDB server of a test's own that it may kill and restart; players betting as a load client.

Each hub writes its JSON log to a file (a pipe nobody reads would fill up and block the hub). Every
helper is bounded: waits poll health with a deadline, and `HubProcess.kill()` is safe to call twice.
"""

import asyncio
import contextlib
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pymysql
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from casinohub.v1 import common_pb2, game_service_pb2 as gpb, wallet_service_pb2 as wpb
from hub.ledger.schema import bets, game_sessions, ledger_transactions, rounds
from hub.logs import error_lines
from mock_providers.reelhouse.server import STUDIO, Studio, start_server
from tests.e2e.play_client import PlayStream
from tests.support import CHEAP_HASHES, IN_CI, Client

SERVING = health_pb2.HealthCheckResponse.SERVING
GAME = "reelhouse:fruit-classic"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_operator_id() -> str:
    return f"op-{uuid.uuid4().hex[:12]}"


def write_config(path: pathlib.Path, *, port: int, database_url: str, operator_id: str, studio_url: str,
                 secret: str, db_workers: int = 6, provider_timeout_s: float = 5.0,
                 more_studios: dict[str, str] | None = None) -> pathlib.Path:
    """A `hub serve` config with the Reelhouse studio at studio_url as provider "reelhouse", and each of
    more_studios (provider name -> url of another Reelhouse studio with the same secret) as one more."""
    studios = {"reelhouse": studio_url, **(more_studios or {})}
    path.write_text(
        f'[hub]\nlisten = "127.0.0.1:{port}"\ndatabase_url = "{database_url}"\n'
        f'sandbox_operator_id = "{operator_id}"\nhealth_interval_s = 0.5\nshutdown_grace_s = 2.0\n'
        f'db_workers = {db_workers}\n'
        + "".join(f"{knob} = {value}\n" for knob, value in CHEAP_HASHES.items())
        + "".join(f'\n[[providers]]\nname = "{name}"\nadapter = "reelhouse"\nurl = "{url}"\n'
                  f'secret = "{secret}"\ntimeout_s = {provider_timeout_s}\n' for name, url in studios.items()))
    return path


@dataclass
class HubProcess:
    """One `python -m hub.cli --config FILE serve` child process."""

    config: pathlib.Path
    port: int
    log_path: pathlib.Path
    process: asyncio.subprocess.Process | None = None
    channel: grpc.aio.Channel | None = None

    @classmethod
    async def start(cls, config: pathlib.Path, port: int, log_path: pathlib.Path,
                    serve_args: tuple[str, ...] = ()) -> "HubProcess":
        """serve_args: extra `hub serve` arguments, e.g. ("--workers", "2")."""
        hub = cls(config, port, log_path)
        log = open(log_path, "ab")  # noqa: SIM115 - the child keeps its own copy of the descriptor
        try:
            hub.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.cli", "--config", str(config), "serve", *serve_args,
                stdout=log, stderr=asyncio.subprocess.STDOUT, env={**os.environ})
        finally:
            log.close()
        hub.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return hub

    async def wait_serving(self, timeout: float = 90.0) -> None:
        """Poll health until SERVING; fail with the hub's log if it exits or never gets there."""
        assert self.process is not None and self.channel is not None
        health = health_pb2_grpc.HealthStub(self.channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.process.returncode is not None:
                raise AssertionError(f"hub on port {self.port} exited with {self.process.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                if (await health.Check(health_pb2.HealthCheckRequest(), timeout=2)).status == SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"hub on port {self.port} not SERVING after {timeout}s:\n{self.log_tail()}")

    def client(self, database_url: str, operator_id: str) -> Client:
        client = Client(server=None, port=self.port, channel=self.channel,  # type: ignore[arg-type]
                        operator_id=operator_id, database_url=database_url)
        assert client.metadata  # its credentials made now: tests stop the database later
        return client

    async def kill(self) -> None:
        """SIGKILL (no grace, no cleanup in the hub) and reap; idempotent. The channel stays open, so
        calls in flight fail as a client really sees a crash (UNAVAILABLE), not as a local cancel."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), 30)

    async def close(self) -> None:
        """Kill the process if still running, then close the channel; idempotent."""
        await self.kill()
        if self.channel is not None:
            await self.channel.close()
            self.channel = None

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within a bounded wait."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                pass
        await self.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_records(self) -> list[dict]:
        """The hub's JSON log lines, parsed (anything else skipped)."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def worker_pids(self) -> dict[int, int]:
        """Under --workers N: worker index -> pid, as the supervising parent logged them."""
        return {r["worker"]: r["worker_pid"] for r in self.log_records() if r.get("event") == "worker.started"}

    def log_errors(self) -> list[str]:
        """Log lines at level error (e.g. rpc.failed: a hub bug answered with INTERNAL)."""
        return error_lines(self.log_path)


async def ledger_check_cli(config: pathlib.Path, operator_id: str) -> tuple[int, str]:
    """`hub --config FILE ledger check --operator X` as a separate process: (exit code, output)."""
    return await hub_cli(config, "ledger", "check", "--operator", operator_id)


async def hub_cli(config: pathlib.Path, *args: str) -> tuple[int, str]:
    """`hub --config FILE <args>` as a separate process: (exit code, output)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ})
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode or 0, output.decode(errors="replace")


@dataclass
class LedgerRows:
    """This operator's ledger straight from the database."""

    transactions: dict[str, dict] = field(default_factory=dict)  # transaction_id -> row
    by_key: dict[str, list[dict]] = field(default_factory=dict)  # idempotency_key -> rows
    rounds: dict[str, dict] = field(default_factory=dict)  # round_id -> row
    bets: dict[str, dict] = field(default_factory=dict)  # bet_id -> row
    player_balance: dict[str, int] = field(default_factory=dict)  # player_id -> sum of its transactions
    sessions: dict[str, int] = field(default_factory=dict)  # game_session_id -> last_seq

    def bet_key(self, row: dict) -> str:
        """The client's bet key a bet, win or rollback row belongs to (Play rounds hold one bet); for a
        deposit or withdrawal, its own key."""
        if row["kind"] in ("win", "rollback"):
            return next(b["bet_id"] for b in self.bets.values() if b["round_id"] == row["round_id"])
        return row["idempotency_key"]

    def round_kinds(self, round_id: str) -> list[str]:
        return sorted(r["kind"] for r in self.transactions.values() if r["round_id"] == round_id)
    transaction_id_rows: int = 0  # rows counted, to prove no transaction id appears twice


def read_ledger(database_url: str, operator_id: str) -> LedgerRows:
    engine = create_engine(database_url, poolclass=NullPool)
    rows = LedgerRows()
    try:
        with engine.connect() as conn:
            for r in conn.execute(select(ledger_transactions).where(
                    ledger_transactions.c.operator_id == operator_id)).mappings():
                row = dict(r)
                rows.transaction_id_rows += 1
                rows.transactions[row["transaction_id"]] = row
                rows.by_key.setdefault(row["idempotency_key"], []).append(row)
                rows.player_balance[row["player_id"]] = rows.player_balance.get(row["player_id"], 0) + row["amount"]
            for r in conn.execute(select(rounds).where(rounds.c.operator_id == operator_id)).mappings():
                rows.rounds[r["round_id"]] = dict(r)
            for r in conn.execute(select(bets).where(bets.c.operator_id == operator_id)).mappings():
                rows.bets[r["bet_id"]] = dict(r)
            for session_id, last_seq in conn.execute(select(
                    game_sessions.c.game_session_id, game_sessions.c.last_seq).where(
                    game_sessions.c.operator_id == operator_id)):
                rows.sessions[session_id] = last_seq
    finally:
        engine.dispose()
    return rows


@contextlib.asynccontextmanager
async def studio_server(secret: str) -> AsyncIterator[tuple[str, Studio]]:
    """The Reelhouse mock studio in this test process (its Faults are set directly)."""
    runner, port = await start_server(port=0, secret=secret)
    try:
        yield f"http://127.0.0.1:{port}", runner.app[STUDIO]
    finally:
        await runner.cleanup()


@dataclass
class Acks:
    """Every effect a client saw acknowledged, by ledger transaction id."""

    effects: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # tx id -> (player, amount, kind)
    balances: dict[str, int] = field(default_factory=dict)  # tx id -> balance the response reported
    refunds: dict[str, tuple[str, int]] = field(default_factory=dict)  # bet key -> (player, refund)
    rounds: dict[str, tuple[str, int]] = field(default_factory=dict)  # round id -> (outcome, win)
    counts: Counter[str] = field(default_factory=Counter)

    def ack(self, tx_id: str, player: str, amount: int, kind: str, balance: int | None = None) -> None:
        assert tx_id, f"an acknowledged {kind} without a transaction id"
        seen = self.effects.setdefault(tx_id, (player, amount, kind))
        assert seen == (player, amount, kind), f"transaction {tx_id} acknowledged as {seen} and {kind} {amount}"
        if balance is not None:
            assert self.balances.setdefault(tx_id, balance) == balance, (tx_id, self.balances[tx_id], balance)

    def expected_balance(self, player: str) -> int:
        return (sum(a for p, a, _ in self.effects.values() if p == player)
                + sum(a for p, a in self.refunds.values() if p == player))


async def play_bet(stream: PlayStream, key: str, amount: int, events: list[gpb.PlayResponse] | None = None,
                   timeout: float = 60.0) -> list[gpb.PlayResponse]:
    """Send one bet and read its events up to its end (settled, or an error event for this key).
    Events are appended to `events` as they arrive, so a caller keeps what it saw if the stream dies."""
    events = [] if events is None else events
    stream.bet(amount, key)
    while True:
        event = await stream.next(timeout=timeout)
        events.append(event)
        kind = event.WhichOneof("event")
        if kind == "settled" or (kind == "error" and event.error.idempotency_key == key):
            return events


def check_retried_bet(acks: "Acks", ledger: LedgerRows, player: str, key: str, amount: int,
                      events: list[gpb.PlayResponse]) -> str:
    """A bet cut short, retried with its key: a round the ledger (read before the retries) shows OPEN
    answers REQUEST_IN_PROGRESS; a closed one replays its events (same debit); one never debited plays
    now, once. Books it in acks and returns how it ended."""
    outcome = record_bet(acks, player, key, amount, events)
    was = ledger.by_key.get(key)
    if was and ledger.rounds[was[0]["round_id"]]["status"] == "OPEN":
        assert outcome == "REQUEST_IN_PROGRESS", events
    else:
        assert outcome in ("settled", "rolled_back"), events
        if was:
            assert events[1].bet_accepted.transaction_id == was[0]["transaction_id"], events
    return outcome


def record_bet(acks: Acks, player: str, key: str, amount: int, events: list[gpb.PlayResponse],
               complete: bool = True) -> str:
    """Book what the bet's events acknowledged; returns how it ended ("in_flight" if cut short)."""
    kinds = [e.WhichOneof("event") for e in events]
    if kinds == ["error"]:
        reason = events[0].error.error.reason
        # PROVIDER_UNAVAILABLE alone: the studio's circuit is open, nothing was taken.
        assert reason in ("REQUEST_IN_PROGRESS", "INSUFFICIENT_FUNDS", "PROVIDER_UNAVAILABLE"), events[0]
        acks.counts[f"bet_refused_{reason}"] += 1
        return reason
    if not complete and kinds in ([], ["round_opened"]):
        return "unacknowledged"
    # Cut short after the debit: the round may be open, or settled with its last event lost in flight
    # (outcome and settled commit together and are sent one after the other, so a kill can fall between).
    if not complete and kinds in (["round_opened", "bet_accepted"], ["round_opened", "bet_accepted", "outcome"]):
        accepted = events[1].bet_accepted
        acks.ack(accepted.transaction_id, player, -amount, "bet", accepted.balance.amount_minor)
        return "in_flight"
    assert kinds in (["round_opened", "bet_accepted", "outcome", "settled"],
                     ["round_opened", "bet_accepted", "error"]), kinds
    accepted = events[1].bet_accepted
    assert accepted.amount.amount_minor == amount
    assert events[0].round_opened.idempotency_key == key
    acks.ack(accepted.transaction_id, player, -amount, "bet", accepted.balance.amount_minor)
    round_id = accepted.round_id
    if kinds[-1] == "settled":
        settled = events[-1].settled
        win = settled.win.amount_minor
        assert settled.transaction_ids[0] == accepted.transaction_id
        if win:
            assert len(settled.transaction_ids) == 2
            acks.ack(settled.transaction_ids[1], player, win, "win")
        else:
            assert list(settled.transaction_ids) == [accepted.transaction_id]
        acks.rounds.setdefault(round_id, ("settled", win))
        return "settled"
    error = events[-1].error
    if error.error.state == common_pb2.APPLY_STATE_UNKNOWN:  # the studio timed out: the round stays open
        assert error.round_id == round_id and error.error.reason == "PROVIDER_TIMEOUT", error
        return "unknown"
    assert error.round_id == round_id and error.error.reason == "PROVIDER_UNAVAILABLE", error
    acks.refunds.setdefault(key, (player, amount))
    acks.rounds.setdefault(round_id, ("rolled_back", 0))
    return "rolled_back"


def error_reason(err: grpc.aio.AioRpcError) -> tuple[str, bool]:
    """(reason, retryable) from a failed call's ErrorInfo; ("", False) when it has none (e.g. a dead hub)."""
    status = rpc_status.from_call(err)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason, info.metadata.get("retryable") == "true"
    return "", False


@dataclass
class Failure:
    """A call or stream that failed, as the client saw it."""

    code: grpc.StatusCode | None  # None: no answer within the client's own read timeout
    reason: str
    retryable: bool  # ErrorInfo says so
    seconds: float  # from the request to the failure
    at: float  # loop.time() of the failure

    @classmethod
    def of(cls, exc: BaseException, started: float, now: float) -> "Failure":
        if isinstance(exc, grpc.aio.AioRpcError):
            return cls(exc.code(), *error_reason(exc), now - started, now)
        return cls(None, f"no answer: {exc!r}", False, now - started, now)


@dataclass
class Bettor:
    """A load client: one player betting back to back on one Play stream, as fast as rounds end.

    Every bet's events are kept as they arrive, so what the player saw acknowledged can be checked against
    the ledger whatever cut the stream short (a hub killed, a database gone)."""

    hub: Client
    player: str
    game_session_id: str
    token: str
    acks: Acks
    name: str  # bet keys are f"{name}-{n}"
    amounts: tuple[int, ...] = (10, 100, 1000)
    read_timeout: float = 60.0
    sent: dict[str, int] = field(default_factory=dict)  # key -> amount
    events: dict[str, list[gpb.PlayResponse]] = field(default_factory=dict)  # key -> the events seen
    cut: list[str] = field(default_factory=list)  # bets whose stream failed before their last event
    outcomes: Counter[str] = field(default_factory=Counter)  # how the bets that ran to their end ended
    rounds: list[tuple[float, float]] = field(default_factory=list)  # (loop.time() at the end, seconds)
    failures: list[Failure] = field(default_factory=list)
    stream: PlayStream | None = None

    async def open(self) -> None:
        """A new stream on the player's game session; raises AioRpcError (recorded) if the hub refuses."""
        await self.close()
        loop = asyncio.get_running_loop()
        started = loop.time()
        stream = PlayStream(self.hub)
        stream.open(self.game_session_id, self.token)
        try:
            event = await stream.next(timeout=self.read_timeout)
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            self._failed(exc, started)
            await stream.close()
            raise
        assert event.WhichOneof("event") == "session_opened", event
        self.stream = stream

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()
            self.stream = None

    async def run(self, stop: asyncio.Event, reopen_after: float | None = None) -> None:
        """Bet until `stop` is set. When the stream fails, the run ends; or, with reopen_after, a new
        stream is opened after that pause (again and again until one opens or `stop` is set)."""
        rng = random.Random(self.name)
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            if self.stream is None:
                try:
                    await self.open()
                except (grpc.aio.AioRpcError, TimeoutError):
                    if reopen_after is None:
                        return
                    await asyncio.sleep(reopen_after)
                    continue
            assert self.stream is not None
            key, amount = f"{self.name}-{len(self.sent)}", rng.choice(self.amounts)
            self.sent[key] = amount
            events = self.events[key] = []
            started = loop.time()
            try:
                await play_bet(self.stream, key, amount, events, timeout=self.read_timeout)
            except (grpc.aio.AioRpcError, TimeoutError) as exc:
                self._failed(exc, started)
                self.cut.append(key)
                await self.close()
                if reopen_after is None:
                    return
                await asyncio.sleep(reopen_after)
                continue
            self.outcomes[record_bet(self.acks, self.player, key, amount, events)] += 1
            self.rounds.append((loop.time(), loop.time() - started))

    def book_cut(self) -> Counter[str]:
        """Book what the bets cut short acknowledged (their BetAccepted); how many ended how."""
        return Counter(record_bet(self.acks, self.player, key, self.sent[key], self.events[key], complete=False)
                       for key in self.cut)

    def _failed(self, exc: BaseException, started: float) -> None:
        self.failures.append(Failure.of(exc, started, asyncio.get_running_loop().time()))


async def new_bettors(hub: Client, players: int, name: str, acks: Acks, game_id: str = GAME,
                      streams_per_player: int = 1, funding: int = 1_000_000, **options: object) -> list[Bettor]:
    """Funded players, each with streams_per_player game sessions of game_id and a stream open on each
    (set up concurrently: registering and logging in cost the hub an argon2 hash each)."""

    async def one(n: int) -> list[Bettor]:
        player, token = await hub.new_player()
        response = await hub.wallet.Deposit(wpb.DepositRequest(
            player_id=player, amount=common_pb2.Money(currency="USD", amount_minor=funding),
            idempotency_key=f"fund-{player}"), metadata=hub.metadata, timeout=60)
        acks.ack(response.transaction_id, player, funding, "deposit", response.balance.amount_minor)
        bettors = []
        for k in range(streams_per_player):
            game_session = await hub.games.LaunchGame(gpb.LaunchGameRequest(
                session_token=token, game_id=game_id, currency="USD"), metadata=hub.metadata, timeout=60)
            bettor = Bettor(hub, player, game_session.game_session_id, token, acks, f"{name}-{n}-{k}",
                            **options)  # type: ignore[arg-type]
            await bettor.open()
            bettors.append(bettor)
        return bettors

    return [b for group in await asyncio.gather(*(one(n) for n in range(players))) for b in group]


def settled_balances_agree(bettor: Bettor, ledger: LedgerRows, only_stream: bool) -> int:
    """Check that every round the player saw settled is settled in the ledger as its Settled event said,
    with the balance it reported; returns how many were checked.

    A Settled balance is the player's cash once the round's win is in: the win's own balance after, or
    without a win, a balance the account had at or after the bet (ledger order). When this stream is the only
    thing moving the player's money (only_stream), it is exactly the bet's balance after, plus the win."""
    checked = 0
    for key, events in bettor.events.items():
        if not events or events[-1].WhichOneof("event") != "settled":
            continue
        settled, accepted = events[-1].settled, events[1].bet_accepted
        row = ledger.rounds[settled.round_id]
        assert (row["status"], row["win_amount"]) == ("SETTLED", settled.win.amount_minor), (key, row)
        bet_row = ledger.transactions[accepted.transaction_id]
        assert bet_row["balance_after"] == accepted.balance.amount_minor, (key, bet_row)
        if settled.win.amount_minor:
            win_row = ledger.transactions[settled.transaction_ids[1]]
            assert win_row["balance_after"] == settled.balance.amount_minor, (key, win_row, settled)
        else:
            since_bet = {r["balance_after"] for r in ledger.transactions.values()
                         if r["player_id"] == bettor.player and r["seq"] >= bet_row["seq"]}
            assert settled.balance.amount_minor in since_bet, (key, settled, bet_row)
        if only_stream:
            assert settled.balance.amount_minor == bet_row["balance_after"] + settled.win.amount_minor, (
                key, settled, bet_row)
        checked += 1
    return checked


# --- a MariaDB server of the test's own ------------------------------------------------------------------

SBIN = os.pathsep.join(("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin"))


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path=SBIN)
        if found:
            return found
    return None


@dataclass
class MariaDBServer:
    """A MariaDB server of one test: its own data directory, port and socket; root without a password.
    Killing or restarting it affects nothing else (never the shared server tests/support.py names)."""

    base: pathlib.Path
    port: int
    mariadbd: str
    process: subprocess.Popen[bytes] | None = None

    # Small memory and redo log: a test database holds a few thousand rows. Durability settings are the
    # defaults (every commit flushed), as in production.
    OPTIONS = ("--innodb-buffer-pool-size=128M", "--innodb-log-file-size=32M", "--skip-name-resolve",
               "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci")

    @property
    def datadir(self) -> pathlib.Path:
        return self.base / "data"

    @property
    def log_path(self) -> pathlib.Path:
        return self.base / "mariadb.log"

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def _user(self) -> tuple[str, ...]:
        return ("--user=root",) if os.geteuid() == 0 else ()  # mariadbd refuses to run as root unless told

    def install(self, install_db: str) -> None:
        with open(self.log_path, "ab") as log:
            subprocess.run([install_db, "--no-defaults", f"--datadir={self.datadir}", *self._user(),
                            "--auth-root-authentication-method=normal", "--skip-test-db", *self.OPTIONS],
                           stdout=log, stderr=subprocess.STDOUT, check=True, timeout=120)

    def start(self) -> None:
        """Start the server on the data directory and port it had before (restart after kill())."""
        assert self.process is None or self.process.poll() is not None, "already running"
        # setpriv (util-linux): SIGKILL the server if the test process dies, so none outlives a crashed run.
        setpriv = shutil.which("setpriv")
        die_with_parent = (setpriv, "--pdeathsig", "KILL") if setpriv else ()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*die_with_parent, self.mariadbd, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
                 "--bind-address=127.0.0.1", f"--socket={self.base / 'mariadb.sock'}",
                 f"--pid-file={self.base / 'mariadb.pid'}", *self._user(), *self.OPTIONS],
                stdout=log, stderr=subprocess.STDOUT)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"mariadbd exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                await asyncio.to_thread(self.execute, "SELECT 1")
                return
            except pymysql.err.OperationalError:
                await asyncio.sleep(0.1)
        raise AssertionError(f"mariadbd on port {self.port} not ready after {timeout}s:\n{self.log_tail()}")

    def execute(self, sql: str) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server with `sig` and wait for it to exit (SIGKILL after 60 s); idempotent."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.asynccontextmanager
async def own_mariadb() -> AsyncIterator[MariaDBServer]:
    """A fresh MariaDB server, killed and its data directory removed afterwards whatever happens. Without
    the binaries the test skips, or fails when CI=true."""
    mariadbd, install_db = _find("mariadbd", "mysqld"), _find("mariadb-install-db", "mysql_install_db")
    if mariadbd is None or install_db is None:
        message = "mariadbd and mariadb-install-db are needed to run a MariaDB server of the test's own"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's tmp_path: a unix socket path must stay under 108 bytes.
    base = pathlib.Path(tempfile.mkdtemp(prefix="casinohub-mariadb-"))
    server = MariaDBServer(base, free_port(), mariadbd)
    try:
        await asyncio.to_thread(server.install, install_db)
        server.start()
        await server.wait_ready()
        yield server
    finally:
        server.kill()
        shutil.rmtree(base, ignore_errors=True)
