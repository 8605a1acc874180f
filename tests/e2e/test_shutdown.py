"""`hub serve` as its own process: SIGTERM stops new calls but lets the round in flight settle."""

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, select

from hub.ledger.schema import rounds
from mock_providers.reelhouse.server import STUDIO, Studio, start_server
from tests.e2e.play_client import kinds, opened_stream
from tests.support import Client

GAME = "reelhouse:fruit-classic"
SERVING = health_pb2.HealthCheckResponse.SERVING


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def slow_studio() -> AsyncIterator[tuple[str, Studio]]:
    runner, port = await start_server(port=0, secret="shutdown-secret")
    yield f"http://127.0.0.1:{port}", runner.app[STUDIO]
    await runner.cleanup()


async def test_sigterm_finishes_the_round_in_flight_then_exits_cleanly(
        tmp_path, slow_studio: tuple[str, Studio]) -> None:  # type: ignore[no-untyped-def]
    url, studio = slow_studio
    port = free_port()
    database_url = f"sqlite:///{tmp_path}/hub.db"
    (tmp_path / "hub.toml").write_text(
        f'[hub]\nlisten = "127.0.0.1:{port}"\ndatabase_url = "{database_url}"\nshutdown_grace_s = 5.0\n\n'
        f'[[providers]]\nname = "reelhouse"\nadapter = "reelhouse"\nurl = "{url}"\nsecret = "shutdown-secret"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "--config", str(tmp_path / "hub.toml"), "serve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ})
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(100):
            try:
                if (await health.Check(health_pb2.HealthCheckRequest(), timeout=1)).status == SERVING:
                    break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        client = Client(server=None, port=port, channel=channel, operator_id="sandbox",  # type: ignore[arg-type]
                        database_url=database_url)
        player_id, token = await client.new_player(deposit=1_000)
        stream = await opened_stream(client, token, GAME)

        studio.faults.update({"latency_ms": 1500})  # the studio answers only after SIGTERM arrives
        stream.bet(100, "in-flight")
        assert kinds(await stream.until("bet_accepted")) == ["round_opened", "bet_accepted"]
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)

        with pytest.raises(grpc.aio.AioRpcError) as refused:  # no new calls once stopping
            await client.balance(player_id)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        events = await stream.until("settled", "error")
        assert kinds(events) == ["outcome", "settled"]
        await stream.close()
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        await channel.close()
        if process.returncode is None:
            process.kill()
            await process.wait()

    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(select(rounds.c.status)).scalars().all() == ["SETTLED"]
    engine.dispose()
    output = (await process.stdout.read()).decode()  # type: ignore[union-attr]
    assert '"hub.stopping"' in output and '"hub.stopped"' in output
