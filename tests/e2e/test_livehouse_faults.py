"""Livehouse under faults, against a live hub on both databases: several seated players bet in every one of
many short betting windows while the table misbehaves at random (latency, studio-side errors, answers lost
after the hub acted, duplicate deliveries, wins before their bets, rollbacks before their bets, bad and
replayed signatures, wrong amounts). Afterwards `hub ledger check` is clean and every player's balance is
exactly what the studio's record says it settled."""

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters.base import ProviderConfig
from adapters.livehouse import LivehouseAdapter
from casinohub.v1 import game_service_pb2 as gpb
from hub.ledger.check import check
from mock_providers.livehouse.server import TABLE, Table, start_server
from tests.conformance.push_studios import studio_key
from tests.support import Client, start_hub

SECRET = "livehouse-faults-secret"
GAME = "livehouse:red-or-black"
WINDOW_S = 0.25  # the sandbox table's is 15 s; short windows keep the run to seconds
PLAYERS, WINDOWS, DEPOSIT = 6, 24, 50_000
# Rates for everything, plus a few deterministic firings so no kind can be missed on a slow machine.
FAULTS = {"seed": 9, "latency_ms": 5, "rollback_before_bet_next": 2, "win_before_bet_next": 4, "error_rate": 0.1,
          "timeout_rate": 0.1, "duplicate_rate": 0.15, "out_of_order_rate": 0.2, "bad_signature_rate": 0.05, "replay_rate": 0.05, "wrong_amount_rate": 0.05}


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[tuple[Client, Table, str]]:
    key_id, pem = await studio_key(database_url, "livehouse")
    runner, port = await start_server(secret=SECRET, hub="", key_id=key_id, private_key_pem=pem, window_s=WINDOW_S)
    url = f"http://127.0.0.1:{port}"
    hub = await start_hub(database_url, {"livehouse": LivehouseAdapter(ProviderConfig("livehouse", url, SECRET, 2.0))})
    table = runner.app[TABLE]
    table.hub = f"127.0.0.1:{hub.port}"
    yield hub, table, url
    await runner.cleanup()
    await hub.channel.close()
    await hub.server.stop(grace=1)


async def test_many_windows_under_faults_leave_every_balance_as_the_studio_settled_it(
        live: tuple[Client, Table, str]) -> None:
    hub, table, url = live
    players = []
    for _ in range(PLAYERS):
        player_id, token = await hub.new_player(deposit=DEPOSIT)
        launched = await hub.games.LaunchGame(gpb.LaunchGameRequest(session_token=token, game_id=GAME,
                                                                    currency="USD"), metadata=hub.metadata)
        players.append((player_id, launched.game_session_id))
    answers: Counter[str] = Counter()

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {SECRET}"}) as http:
        async with http.post(f"{url}/_admin/faults", json=FAULTS) as response:  # the control endpoint
            assert response.status == 200, await response.text()
        first = table.round_no + 1
        last = first + WINDOWS - 1

        async def player(n: int, session: str) -> None:
            """One bet in each window from `first` to `last`: a stake and a colour of its own."""
            draws = random.Random(n)
            while table.round_no <= last:
                round_no = table.round_no
                if not table.betting_open or round_no < first:
                    await asyncio.sleep(0.01)
                    continue
                async with http.post(f"{url}/v1/bets", json={
                        "session_token": session, "amount_minor": draws.randrange(10, 1_000),
                        "colour": draws.choice(("red", "black"))}) as response:
                    answer = await response.json()
                answers[str(answer.get("error", response.status))] += 1
                if response.status == 503:  # the studio failed: nothing happened, bet again in this window
                    continue
                while table.round_no == round_no:  # one bet a window
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(player(n, session) for n, (_, session) in enumerate(players)))
        for _ in range(600):  # every drawn round settled, each player's calls delivered
            if table.in_flight == 0 and all(table.unsettled[r] <= 0 for r in range(first, last + 1)):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the table never finished settling")
        async with http.get(f"{url}/v1/record") as response:
            record: dict[str, Any] = await response.json()

    report, = check(hub.database_url, hub.operator_id)
    settled = {player_id: record["players"].get(player_id, {}).get("USD", {}) for player_id, _ in players}
    bets = sum(r.get("bets", 0) for r in settled.values())
    print(f"\nlivehouse fault run: {WINDOWS} windows ({record['rounds_drawn']} rounds drawn), {PLAYERS} players, "
          f"{sum(answers.values())} bets sent at the table {dict(answers)}, {bets} taken by the hub, "
          f"{sum(r.get('wins', 0) for r in settled.values())} wins; faults injected "
          f"{dict(record['faults_injected'])} ({sum(record['faults_injected'].values())}); hub refusals "
          f"{record['refusals']}; {record['wallet_calls']} wallet calls; ledger check "
          f"{'clean' if report.ok else 'FAILED'}")
    assert report.ok, report.render()
    for player_id, _ in players:
        assert await hub.balance(player_id) == DEPOSIT + settled[player_id].get("net_minor", 0), settled[player_id]
    injected = record["faults_injected"]
    for kind in ("error", "timeout", "duplicate", "win_before_bet", "rollback_before_bet", "bad_signature",
                 "replay", "wrong_amount"):
        assert injected.get(kind, 0) > 0, kind  # every kind happened
    assert bets >= WINDOWS  # a slow machine misses windows, never all of them
    assert record["refusals"]["BET_NOT_FOUND"] > 0  # a win came before its bet (some 20 such bets: one of them won)
