"""Instanthouse under faults: the mock studio as its own process (`python -m mock_providers.instanthouse`),
concurrent players at its /play with every knob on (latency, /play errors, dropped answers, duplicate
deliveries, out-of-order and late credits, wrong signatures, wrong amounts), then `hub ledger check` clean
and every player's balance at the hub equal to what the studio's record says it settled. Both databases.
"""

import asyncio
import json
import os
import pathlib
import random
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from casinohub.v1 import game_service_pb2 as gpb
from hub.config import ProviderSettings
from tests.e2e.processes import ledger_check_cli
from tests.support import Client, start_hub

SECRET = "instant-faults-secret"
PLAYERS = 8
ROUNDS = 15  # rounds each player tries (a /play refused by the studio's error knob counts as tried)
DEPOSIT = 10_000
FAULTS = {"latency_ms": 5, "error_rate": 0.1, "drop_answer_rate": 0.1, "duplicate_rate": 0.2,
          "out_of_order_rate": 0.3, "late_credit_s": 0.2, "late_rate": 0.3, "bad_signature_rate": 0.1,
          "bad_amount_rate": 0.1, "seed": 11}


@pytest.fixture
async def studio_url() -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mock_providers.instanthouse", "--port", "0", "--secret", SECRET,
        stdout=asyncio.subprocess.PIPE, env={**os.environ})
    try:
        assert process.stdout is not None
        ready = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert ready.startswith("READY port="), ready
        yield f"http://127.0.0.1:{int(ready.split('=')[1])}"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def player(hub: Client, http: aiohttp.ClientSession, studio_url: str, index: int) -> tuple[str, int]:
    """Register, fund, launch both games, play ROUNDS rounds; returns (player id, rounds the studio answered)."""
    player_id, token = await hub.new_player(deposit=DEPOSIT)
    sessions = [(await hub.games.LaunchGame(gpb.LaunchGameRequest(session_token=token, game_id=game, currency="USD"),
                                            metadata=hub.metadata)).game_session_id
                for game in ("instanthouse:crash", "instanthouse:scratch")]
    draw = random.Random(index)
    answered = 0
    for _ in range(ROUNDS):
        body: dict[str, Any] = {"token": draw.choice(sessions), "bet": draw.choice(["0.50", "1.00", "2.50"]),
                                "target": str(draw.choice([2, 3, 5, 10]))}
        async with http.post(f"{studio_url}/play", json=body) as response:
            if response.status == 503:  # the studio's error knob: refused before acting
                continue
            assert response.status == 200, await response.text()
            round_ = await response.json()
        assert round_["status"] == "OK", round_
        answered += 1
    return player_id, answered


async def test_concurrent_players_under_every_fault_settle_exactly_what_the_studio_recorded(
        database_url: str, studio_url: str, tmp_path: pathlib.Path) -> None:
    provider = ProviderSettings(name="instanthouse", adapter="instanthouse", url=studio_url, secret=SECRET)
    hub = await start_hub(database_url, None, providers=(provider,), inbound_listen="127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as http:
            wallet_url = f"http://127.0.0.1:{hub.server.inbound_port}/instanthouse"
            async with http.post(f"{studio_url}/control/faults", json={"walletUrl": wallet_url, **FAULTS}) as set_:
                assert set_.status == 200
            results = await asyncio.gather(*(player(hub, http, studio_url, i) for i in range(PLAYERS)))
            for _ in range(200):  # late credits land
                async with http.get(f"{studio_url}/control/record") as response:
                    record = await response.json()
                if record["pending"] == 0:
                    break
                await asyncio.sleep(0.05)
        assert record["pending"] == 0
        (tmp_path / "hub.toml").write_text(f'[hub]\ndatabase_url = "{database_url}"\n')
        code, output = await ledger_check_cli(tmp_path / "hub.toml", hub.operator_id)
        assert code == 0, output
        for player_id, _ in results:
            net = Decimal(record["net"].get(player_id, {}).get("USD", "0"))
            assert await hub.balance(player_id) == DEPOSIT + int(net * 100), player_id
        seen = record["faultsSeen"]
        for fault in ("play_error", "answer_dropped", "duplicate", "out_of_order", "late_credit", "bad_signature",
                      "bad_amount"):
            assert seen.get(fault, 0) > 0, (fault, seen)
        for never in ("bad_signature_accepted", "bad_amount_accepted", "duplicate_answered_differently"):
            assert never not in seen, seen
        print(json.dumps({"database": database_url.split(":")[0], "players": PLAYERS,
                          "rounds_answered": sum(n for _, n in results), "rounds_played": record["roundsPlayed"],
                          "calls_settled": len(record["settled"]), "faults_seen": seen,
                          "ledger_check_exit": code}, sort_keys=True))
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)
