"""Livehouse, the live-dealer mock studio, against a live hub on both databases: its table runs betting
windows on its own clock and moves every bet and result through the hub's ProviderWalletService, signed
with its studio key; players join by launching the game and bet at the studio's table."""

import asyncio
import json
import os
import pathlib
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import pytest
from sqlalchemy import create_engine, update

from adapters.base import ProviderConfig
from adapters.livehouse import LivehouseAdapter
from casinohub.v1 import admin_service_pb2 as apb, admin_service_pb2_grpc, game_service_pb2 as gpb
from hub.auth.admin import OperatorAdmin
from hub.ledger.check import check
from hub.ledger.db import Database
from hub.ledger.schema import game_sessions
from hub.page_tokens import load
from mock_providers.livehouse.server import TABLE, Table, colour_of, start_server
from tests.support import Client, bearer, start_hub

SECRET = "livehouse-e2e-secret"
GAME = "livehouse:red-or-black"
WINDOW_S = 0.6
ADMIN_TOKEN = "live-walkthrough-admin-" + "t" * 32
ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass
class Live:
    hub: Client
    table: Table
    url: str


async def studio_key(database_url: str) -> tuple[str, bytes]:
    """The studio's key, made as AdminService.CreateStudioKey makes it, before the hub (whose catalog reads
    the studio at start-up) exists to be asked."""
    db = Database.from_url(database_url, workers=1)
    try:
        new = await OperatorAdmin(db, await load(db)).create_studio_key("livehouse", generate_signing_key=True)
    finally:
        db.close()
    return new.key.key_id, new.private_key_pem.encode()


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[Live]:
    key_id, pem = await studio_key(database_url)
    runner, port = await start_server(secret=SECRET, hub="", key_id=key_id, private_key_pem=pem, window_s=WINDOW_S)
    url = f"http://127.0.0.1:{port}"
    adapter = LivehouseAdapter(ProviderConfig("livehouse", url, SECRET, timeout_s=2.0))
    hub = await start_hub(database_url, {"livehouse": adapter}, admin_token=ADMIN_TOKEN)
    table = runner.app[TABLE]
    table.hub = f"127.0.0.1:{hub.port}"  # the studio learns where the hub listens once it does
    yield Live(hub, table, url)
    await runner.cleanup()
    await hub.channel.close()
    await hub.server.stop(grace=1)


async def seated(live: Live, deposit: int) -> tuple[str, str]:
    """A player of the hub's operator at the table: (player id, the session token the studio knows)."""
    player_id, token = await live.hub.new_player(deposit=deposit)
    launched = await live.hub.games.LaunchGame(gpb.LaunchGameRequest(session_token=token, game_id=GAME,
                                                                     currency="USD"), metadata=live.hub.metadata)
    assert launched.launch_url.startswith(f"{live.url}/tables/red-or-black?session=")
    return player_id, launched.game_session_id


async def bet(live: Live, session: str, amount: int, colour: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as http, http.post(f"{live.url}/v1/bets", json={
            "session_token": session, "amount_minor": amount, "colour": colour}) as response:
        return response.status, await response.json()


async def place(live: Live, session: str, amount: int, colour: str) -> dict:  # type: ignore[type-arg]
    """Bet in the next open window (a closed one answers 409: wait for the table to open again)."""
    for _ in range(100):
        status, answer = await bet(live, session, amount, colour)
        if status != 409:
            assert status == 200, answer
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError("the table never opened a window")


async def settled(live: Live, count: int) -> None:
    for _ in range(200):
        if live.table.settled >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{live.table.settled} of {count} bets settled")


async def test_the_catalog_lists_the_live_table(live: Live) -> None:
    games = await live.hub.games.ListGames(gpb.ListGamesRequest(), metadata=live.hub.metadata)
    assert [(g.game_id, g.game_type) for g in games.games] == [(GAME, gpb.GAME_TYPE_LIVE)]
    names = {}
    for locale in ("en", "de-DE", "ja"):
        found = await live.hub.games.ListGames(gpb.ListGamesRequest(locale=locale), metadata=live.hub.metadata)
        names[locale] = found.games[0].name
    assert names == {"en": "Red or Black Live", "de-DE": "Rot oder Schwarz Live", "ja": "レッド・オア・ブラック ライブ"}


async def test_players_bet_at_the_table_and_the_studio_settles_every_bet_through_the_hub(live: Live) -> None:
    """Eight players, both colours, two rounds each: every balance is what the table's draws say."""
    players = [await seated(live, 10_000) for _ in range(8)]
    placed = []
    for round_ in range(2):
        answers = await asyncio.gather(*(place(live, session, 100 + i, ("red", "black")[(i + round_) % 2])
                                         for i, (_, session) in enumerate(players)))
        placed += [(i, a, ("red", "black")[(i + round_) % 2], 100 + i) for i, a in enumerate(answers)]
        await settled(live, len(placed))
    both = players[0][1]  # one player backs both colours in one round: one Win, then one EndRound
    answers = await asyncio.gather(place(live, both, 300, "red"), place(live, both, 300, "black"))
    placed += [(0, answers[0], "red", 300), (0, answers[1], "black", 300)]
    await settled(live, len(placed))
    expected = {i: 10_000 for i in range(len(players))}
    for i, answer, colour, amount in placed:
        pocket = live.table.results[answer["round"]]
        expected[i] += amount if colour_of(pocket) == colour else -amount
    for i, (player_id, _) in enumerate(players):
        assert await live.hub.balance(player_id) == expected[i], i
    report, = check(live.hub.database_url, live.hub.operator_id)
    assert report.ok, report.render()


async def test_a_bet_the_wallet_refuses_is_refused_at_the_table_with_the_balance(live: Live) -> None:
    _, session = await seated(live, 50)
    for _ in range(100):
        status, answer = await bet(live, session, 100, "red")
        if status != 409:
            break
        await asyncio.sleep(0.05)
    assert (status, answer) == (402, {"error": "INSUFFICIENT_FUNDS", "balance_minor": "50",
                                      "bonus_balance_minor": "0"})
    assert (await bet(live, "no-such-session", 100, "red"))[0] == 404


async def test_play_bets_on_a_live_game_are_refused_and_refunded(live: Live) -> None:
    from tests.e2e.play_client import kinds, opened_stream

    player_id, token = await live.hub.new_player(deposit=1_000)
    stream = await opened_stream(live.hub, token, GAME)
    stream.bet(100, "play-bet")
    events = await stream.until("error")
    await stream.close()
    assert kinds(events)[-1] == "error" and events[-1].error.error.reason == "PROVIDER_REJECTED"
    assert await live.hub.balance(player_id) == 1_000


async def test_the_studios_key_is_what_lets_it_in(live: Live) -> None:
    """A table signing with a stranger's key moves nothing: its bets are refused at the table."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _, session = await seated(live, 1_000)
    live.table.private_key = Ed25519PrivateKey.generate()
    status, answer = await place_any(live, session)
    assert (status, answer["error"]) == (400, "SIGNATURE_INVALID")


async def place_any(live: Live, session: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    for _ in range(100):
        status, answer = await bet(live, session, 100, "red")
        if status != 409:
            return status, answer
        await asyncio.sleep(0.05)
    raise AssertionError("the table never opened a window")


async def test_duplicate_and_late_results_are_paid_once_even_after_the_session_expired(live: Live) -> None:
    """Every result sent twice and a window late; one player's session expires before its result arrives."""
    live.table.faults.update({"duplicate_rate": 1, "result_delay_s": WINDOW_S * 1.5})
    players = [await seated(live, 5_000) for _ in range(4)]
    answers = await asyncio.gather(*(place(live, session, 200, "red") for _, session in players))
    engine = create_engine(live.hub.database_url)
    with engine.begin() as conn:  # the first player's session ends while its round waits for its result
        conn.execute(update(game_sessions).where(game_sessions.c.game_session_id == players[0][1])
                     .values(expires_at=datetime(2020, 1, 1)))
    engine.dispose()
    await settled(live, len(players))
    for (player_id, _), answer in zip(players, answers, strict=True):
        won = colour_of(live.table.results[answer["round"]]) == "red"
        assert await live.hub.balance(player_id) == 5_000 + (200 if won else -200)
    report, = check(live.hub.database_url, live.hub.operator_id)
    assert report.ok, report.render()


async def test_readme_live_walkthrough_plays_one_round_as_printed(live: Live) -> None:
    """The README's live-dealer block against a live hub and table: launch by grpcurl, a bet in the next
    betting window by curl, the round's result, the balance it left."""
    block = re.search(r"<!-- live-walkthrough -->\n```bash\n(.*?)```\n<!-- live-walkthrough:end -->",
                      (ROOT / "README.md").read_text(), re.S)
    assert block, "README live walkthrough block not found"
    key = await admin_service_pb2_grpc.AdminServiceStub(live.hub.channel).CreateApiKey(
        apb.CreateApiKeyRequest(operator_id=live.hub.operator_id), metadata=bearer(ADMIN_TOKEN))
    env = {**os.environ, "HUB": f"127.0.0.1:{live.hub.port}", "TABLE": live.url, "KEY_ID": key.api_key.key_id,
           "SECRET": key.secret, "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = await asyncio.create_subprocess_exec(  # async: the hub and the table serve from this event loop
        "bash", "-euo", "pipefail", "-c", block.group(1), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode() + out.decode()
    catalog, placed, result, balance = documents(out.decode())
    assert [g["name"] for g in catalog["games"]] == ["レッド・オア・ブラック ライブ"]
    pocket = live.table.results[placed["round"]]
    assert placed["balance_minor"] == 1_900
    assert result == {"pocket": pocket, "colour": colour_of(pocket), "settled": True}
    assert balance["balance"]["amount_minor"] == ("2100" if colour_of(pocket) == "red" else "1900")
    report, = check(live.hub.database_url, live.hub.operator_id)
    assert report.ok, report.render()


def documents(text: str) -> list[dict]:  # type: ignore[type-arg]
    """The JSON objects a script printed (grpcurl's indented, curl's on one line), other lines skipped."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at] == "{":
            value, at = decoder.raw_decode(text, at)
            found.append(value)
        else:
            at = text.find("\n", at) + 1 or len(text)
    return found


async def test_the_control_and_record_endpoints_need_the_secret_and_refuse_bad_knobs(live: Live) -> None:
    auth = {"Authorization": f"Bearer {SECRET}"}
    async with aiohttp.ClientSession() as http:
        for method, path in (("GET", "/v1/record"), ("GET", "/_admin/faults"), ("POST", "/_admin/faults")):
            async with http.request(method, live.url + path, json={}) as response:
                assert response.status == 401, path
        async with http.post(f"{live.url}/_admin/faults", json={"timeout_next": 2, "error_rate": 2},
                             headers=auth) as response:
            assert (response.status, (await response.json())["error"]) == (400, "INVALID_FAULT")
        async with http.post(f"{live.url}/_admin/faults", data=b"{not json", headers=auth) as response:
            assert response.status == 400
        async with http.post(f"{live.url}/_admin/faults", json={"timeout_next": 2}, headers=auth) as response:
            knobs = (await response.json())["faults"]
        assert knobs["timeout_next"] == 2 and knobs["error_rate"] == 0
        async with http.get(f"{live.url}/v1/record", headers=auth) as response:
            assert (await response.json())["players"] == {}
