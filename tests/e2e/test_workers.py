"""`hub serve --workers 2`: two processes on one port (SO_REUSEPORT), supervised by their parent.

Connections land on both workers, money moved through either stays exactly once, both workers' refusals
add up in one scrape of the parent's /metrics, SIGTERM stops them all
gracefully, a worker that dies stops the hub with exit 1, the parent's death takes the workers along, and
port 0 is refused (separate processes binding port 0 get separate ports).
"""

import asyncio
import os
import pathlib
import signal
import sys

import grpc
import pytest

from casinohub.v1 import common_pb2, wallet_service_pb2 as wpb
from hub.server import create_server
from tests.e2e.play_client import PlayStream, launch
from tests.e2e.processes import (
    GAME,
    Acks,
    HubProcess,
    free_port,
    ledger_check_cli,
    new_operator_id,
    play_bet,
    read_ledger,
    record_bet,
    studio_server,
    write_config,
)
from tests.e2e.test_metrics import refusals_in, scrape
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, hub_config, start_hub

SECRET = "workers-secret"
CHANNELS = 24  # one TCP connection each: all on one worker by chance with probability 2 * 2**-24
WORKERS = ("--workers", "2")


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def database_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/var/hub.db"  # one WAL file shared by both workers
    return str(request.getfixturevalue("mariadb_url"))


def alive(pid: int) -> bool:
    """Running, not a zombie (a zombie is dead but not yet reaped)."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


async def wait_gone(pids: list[int], timeout: float = 30.0) -> None:
    for _ in range(int(timeout * 10)):
        if not any(alive(pid) for pid in pids):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still running: {[pid for pid in pids if alive(pid)]}")


async def start_workers(tmp_path: pathlib.Path, database_url: str, operator_id: str,
                        studio_url: str = "http://127.0.0.1:9", metrics_port: int = 0) -> HubProcess:
    """metrics_port: where the parent serves every worker's metrics (0: none)."""
    port = free_port()
    config = write_config(tmp_path / "hub.toml", port=port, database_url=database_url, operator_id=operator_id,
                          studio_url=studio_url, secret=SECRET)
    if metrics_port:
        config.write_text(config.read_text().replace("[hub]\n", f'[hub]\nmetrics_listen = "127.0.0.1:{metrics_port}"\n', 1))
    hub = await HubProcess.start(config, port, tmp_path / "hub.log", serve_args=WORKERS)
    await hub.wait_serving()
    for _ in range(100):  # health answered by one worker; wait for the other's hub.serving too
        if sum(r.get("event") == "hub.serving" for r in hub.log_records()) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(hub.worker_pids()) == 2, hub.log_tail()
    return hub


async def deposit(client: Client, acks: Acks, player: str, amount: int, key: str) -> None:
    """One deposit, retried while the same key is in progress on another worker; recorded in acks."""
    for _ in range(100):
        try:
            response = await client.wallet.Deposit(wpb.DepositRequest(
                player_id=player, amount=common_pb2.Money(currency="USD", amount_minor=amount), idempotency_key=key),
                metadata=client.metadata, timeout=30)
        except grpc.aio.AioRpcError as err:
            assert reason_of(err) == (grpc.StatusCode.ABORTED, "REQUEST_IN_PROGRESS"), err
            await asyncio.sleep(0.1)
            continue
        acks.ack(response.transaction_id, player, amount, "deposit")
        return
    raise AssertionError(f"deposit {key} still in progress")


async def test_two_workers_share_the_port_and_move_money_exactly_once(tmp_path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    operator_id = new_operator_id()
    acks = Acks()
    channels: list[grpc.aio.Channel] = []
    metrics_port = free_port()
    async with studio_server(SECRET) as (studio_url, _studio):
        hub = await start_workers(tmp_path, database_url, operator_id, studio_url, metrics_port)
        try:
            pids = hub.worker_pids()
            # A channel per connection: without a local subchannel pool, equal channels share one.
            channels = [grpc.aio.insecure_channel(f"127.0.0.1:{hub.port}",
                                                  options=[("grpc.use_local_subchannel_pool", 1)])
                        for _ in range(CHANNELS)]
            clients = [Client(server=None, port=hub.port, channel=c,  # type: ignore[arg-type]
                              operator_id=operator_id, database_url=database_url) for c in channels]

            # Which worker serves each connection: a refused call is logged with the worker's pid.
            for client in clients:
                with pytest.raises(grpc.aio.AioRpcError):
                    await client.wallet.GetBalance(wpb.GetBalanceRequest(player_id="x" * 10_000),
                                                   metadata=client.metadata, timeout=30)
            served_by = [r["pid"] for r in hub.log_records() if r.get("event") == "rpc.refused"]
            assert len(served_by) == CHANNELS and set(served_by) == set(pids.values()), served_by
            # ... and counted by both: one scrape of the parent adds their counts up.
            assert refusals_in(await scrape(metrics_port)) == {
                ("GetBalance", "INVALID_ARGUMENT", "FIELD_TOO_LONG"): float(CHANNELS)}

            player, token = await clients[0].new_player()
            await asyncio.gather(*(deposit(c, acks, player, 10_000 + i, f"dep-{i}") for i, c in enumerate(clients)))
            # The same key through every connection at once: one deposit.
            await asyncio.gather(*(deposit(c, acks, player, 777, "dep-same") for c in clients))

            session = await launch(clients[0], token, GAME)
            streams = [PlayStream(c) for c in clients[:6]]
            for stream in streams:
                stream.open(session, token)
                assert (await stream.next(timeout=30)).WhichOneof("event") == "session_opened"

            async def bets(i: int, stream: PlayStream) -> None:
                for n in range(3):
                    key = f"bet-{i}-{n}"
                    record_bet(acks, player, key, 100, await play_bet(stream, key, 100, timeout=30))

            await asyncio.gather(*(bets(i, s) for i, s in enumerate(streams)))
            for stream in streams:
                await stream.close()

            ledger = read_ledger(database_url, operator_id)
            assert ledger.transaction_id_rows == len(ledger.transactions)
            player_rows = {tx: row for tx, row in ledger.transactions.items() if row["player_id"] == player}
            assert set(player_rows) == set(acks.effects), (sorted(player_rows), sorted(acks.effects))
            assert len(ledger.by_key["dep-same"]) == 1
            assert ledger.player_balance[player] == acks.expected_balance(player)
            code, output = await ledger_check_cli(hub.config, operator_id)
            assert code == 0, output

            assert hub.process is not None
            hub.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(hub.process.wait(), 30) == 0, hub.log_tail()
            await wait_gone(list(pids.values()), timeout=5)
            assert not hub.log_errors(), hub.log_errors()
            serving = [r for r in hub.log_records() if r.get("event") == "hub.metrics_serving"]
            assert [r["port"] for r in serving] == [metrics_port]  # the parent's alone
            assert not pathlib.Path(serving[0]["multiprocess_dir"]).exists()  # the workers' files removed
        finally:
            for channel in channels:
                await channel.close()
            await hub.close()


async def test_a_worker_that_dies_stops_the_hub_with_exit_1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hub = await start_workers(tmp_path, f"sqlite:///{tmp_path}/var/hub.db", new_operator_id())
    try:
        pids = hub.worker_pids()
        os.kill(pids[1], signal.SIGKILL)
        assert hub.process is not None
        assert await asyncio.wait_for(hub.process.wait(), 30) == 1, hub.log_tail()
        await wait_gone(list(pids.values()), timeout=5)
        died = [r for r in hub.log_records() if r.get("event") == "worker.died"]
        assert [(r["worker"], r["worker_pid"], r["exit_code"]) for r in died] == [(1, pids[1], -signal.SIGKILL)]
        stopped = [r["pid"] for r in hub.log_records() if r.get("event") == "hub.stopped"]
        assert stopped == [pids[0]]  # the survivor stopped gracefully
    finally:
        await hub.close()


async def test_workers_die_with_a_killed_parent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hub = await start_workers(tmp_path, f"sqlite:///{tmp_path}/var/hub.db", new_operator_id())
    try:
        pids = list(hub.worker_pids().values())
        await hub.kill()  # SIGKILL: the parent cannot forward anything
        await wait_gone(pids, timeout=20)
        stopped = {r["pid"] for r in hub.log_records() if r.get("event") == "hub.stopped"}
        assert stopped == set(pids)  # each got SIGTERM from the kernel and stopped gracefully
    finally:
        await hub.close()


async def test_workers_refuse_port_0(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "hub.toml").write_text(f'[hub]\nlisten = "127.0.0.1:0"\ndatabase_url = "sqlite:///{tmp_path}/h.db"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "--config", str(tmp_path / "hub.toml"), "serve", *WORKERS,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "needs a fixed port" in output.decode(), output.decode()


async def test_a_single_hub_does_not_share_its_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """grpc turns SO_REUSEPORT on by default: a second hub started by mistake on a port in use used to bind
    and silently take half the connections. Only --workers shares a port."""
    url = f"sqlite:///{tmp_path}/hub.db"
    first = await start_hub(url, {"fake": FakeStudio()})
    try:
        with pytest.raises(OSError, match="could not bind"):
            await create_server(hub_config(url, listen=f"127.0.0.1:{first.port}"), {"fake": FakeStudio()})
    finally:
        await first.channel.close()
        await first.server.stop(grace=1)
