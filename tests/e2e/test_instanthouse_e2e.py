"""The README's "Instant games (instanthouse)" block, run as printed against a live hub and the mock studio:
grpcurl launches the crash game, curl plays one round at the studio, which calls the hub's inbound HTTP
server in its own protocol; the hub's balance agrees with the studio's answer. Both databases."""

import asyncio
import json
import os
import pathlib
import re
import socket
import sys
from decimal import Decimal

import aiohttp
import pytest

from casinohub.v1 import admin_service_pb2 as apb, admin_service_pb2_grpc
from hub.config import ProviderSettings
from hub.ledger.check import check
from hub.server import create_server
from mock_providers.instanthouse.server import STUDIO, start_server
from tests.support import bearer, hub_config, start_hub

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRET = "instant-readme-secret"
ADMIN_TOKEN = "instant-admin-" + "t" * 32


async def test_readme_instant_games_block_runs_as_printed(database_url: str) -> None:
    block = re.search(r"<!-- instant:start -->\n```bash\n(.*?)```\n<!-- instant:end -->",
                      (ROOT / "README.md").read_text(), re.S)
    assert block, "README instant games block not found"
    runner, port = await start_server(port=0, secret=SECRET)
    studio_url = f"http://127.0.0.1:{port}"
    provider = ProviderSettings(name="instanthouse", adapter="instanthouse", url=studio_url, secret=SECRET)
    hub = await start_hub(database_url, None, providers=(provider,), inbound_listen="127.0.0.1:0",
                          admin_token=ADMIN_TOKEN)
    runner.app[STUDIO].wallet_url = f"http://127.0.0.1:{hub.server.inbound_port}/instanthouse"
    try:
        key = await admin_service_pb2_grpc.AdminServiceStub(hub.channel).CreateApiKey(
            apb.CreateApiKeyRequest(operator_id=hub.operator_id), metadata=bearer(ADMIN_TOKEN))
        env = {**os.environ, "HUB": f"127.0.0.1:{hub.port}", "STUDIO": studio_url, "KEY_ID": key.api_key.key_id,
               "SECRET": key.secret, "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        process = await asyncio.create_subprocess_exec(  # async: the hub and studio serve from this event loop
            "bash", "-euo", "pipefail", "-c", block.group(1), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 180)
        assert process.returncode == 0, err.decode() + out.decode()
        printed = out.decode()
        assert "ロケットクラッシュ" in printed and "ラッキースクラッチ" in printed
        assert re.search(rf"^{re.escape(studio_url)}/games/crash\?token=[0-9a-f-]{{36}}$", printed, re.M), printed
        _, line, after = printed.partition(next(line for line in printed.splitlines()
                                                     if line.startswith('{"status"')))
        played = json.loads(line)
        assert played["status"] == "OK" and played["win"] in ("0.00", "2.00")
        balance = json.loads(after)  # GetBalance's answer, printed last
        assert int(balance["balance"]["amount_minor"]) == int(Decimal(played["balance"]) * 100) in (1900, 2100)
        report, = check(database_url, hub.operator_id)
        assert report.ok, report.render()
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)
        await runner.cleanup()


async def test_the_inbound_server_starts_and_stops_with_the_hub_and_a_taken_port_stops_the_hub(
        tmp_path: pathlib.Path) -> None:
    runner, port = await start_server(port=0, secret=SECRET)
    provider = ProviderSettings(name="instanthouse", adapter="instanthouse", url=f"http://127.0.0.1:{port}",
                                secret=SECRET)
    database_url = f"sqlite:///{tmp_path}/hub.db"
    try:
        hub = await start_hub(database_url, None, providers=(provider,), inbound_listen="127.0.0.1:0",
                              inbound_max_calls_in_flight=3)
        inbound = hub.server.inbound_port
        assert inbound > 0
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{inbound}/instanthouse/balance", data=b"{}") as answered:
            assert await answered.json() == {"status": "INVALID_SIGNATURE"}
        studio = hub.server.inbound.limits["instanthouse"]  # type: ignore[union-attr]
        studio.in_flight = studio.limit  # as if its every slot held a call: the next is refused before its body
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{inbound}/instanthouse/balance", data=b"{}") as answered:
            assert (answered.status, answered.headers["Retry-After"]) == (503, "1")
            assert "retry with the same transaction id" in (await answered.json())["error"]
        studio.in_flight = 0
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{inbound}/instanthouse/balance", data=b"{}") as answered:
            assert answered.status == 200 and studio.in_flight == 0  # a slot is freed when its call ends
        with socket.socket() as taken:  # while a port is held, a second hub cannot have it
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(OSError, match="inbound HTTP"):
                await create_server(hub_config(database_url, providers=(provider,),
                                               inbound_listen=f"127.0.0.1:{taken.getsockname()[1]}"))
        await hub.channel.close()
        await hub.server.stop(grace=1)
        with socket.socket() as probe:  # gone with the hub
            assert probe.connect_ex(("127.0.0.1", inbound)) != 0
    finally:
        await runner.cleanup()
