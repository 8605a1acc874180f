"""The hub against the real Tablehouse studio over gRPC: its games in the catalog, roulette rounds through
the Play stream (the default layout: the whole stake on red), and blackjack refused until Play has actions."""

from collections.abc import AsyncIterator

import pytest

from casinohub.v1 import game_service_pb2 as pb
from hub.config import ProviderSettings
from mock_providers.tablehouse.server import Studio, start_server
from tests.e2e.play_client import kinds, opened_stream
from tests.support import Client, start_hub

SECRET = "e2e-secret"
ROULETTE, BLACKJACK = "tablehouse:european-roulette", "tablehouse:blackjack"


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[tuple[Client, Studio]]:
    server, port, studio = await start_server(port=0, secret=SECRET)
    provider = ProviderSettings(name="tablehouse", adapter="tablehouse", url=f"grpc://127.0.0.1:{port}",
                                secret=SECRET, timeout_s=0.5)
    client = await start_hub(database_url, None, providers=(provider,))
    yield client, studio
    await client.channel.close()
    await client.server.stop(grace=1)
    await server.stop(None)


async def test_table_games_are_in_the_catalog(live: tuple[Client, Studio]) -> None:
    client, _ = live
    games = {g.game_id: g for g in (await client.games.ListGames(
        pb.ListGamesRequest(game_type=pb.GAME_TYPE_TABLE), metadata=client.metadata)).games}
    assert set(games) == {ROULETTE, BLACKJACK}
    assert (games[ROULETTE].rtp_basis_points, games[ROULETTE].max_win_multiplier) == (9730, 36)
    assert games[BLACKJACK].rtp_basis_points == 9943 and "BTC" in games[BLACKJACK].currencies


async def test_roulette_rounds_settle_what_the_pocket_pays(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=10_000)
    stream = await opened_stream(client, token, ROULETTE)
    total_win = 0
    for i in range(12):
        stream.bet(100, f"spin-{i}")
        events = await stream.until("settled", "error")
        assert kinds(events) == ["round_opened", "bet_accepted", "outcome", "settled"]
        pocket = int(events[2].outcome.result.split()[0])
        win = events[3].settled.win.amount_minor
        assert win == (200 if events[2].outcome.result.endswith("RED") else 0), (pocket, win)
        total_win += win
    await stream.close()
    assert await client.balance(player_id) == 10_000 - 12 * 100 + total_win
    assert client.posting_sums() == {"USD": 0}
    assert len(studio.rounds) == 12


async def test_blackjack_is_refused_and_rolled_back_until_play_has_actions(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    stream = await opened_stream(client, token, BLACKJACK)
    stream.bet(200, "hand-1")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "error"]
    assert events[2].error.error.reason == "PROVIDER_REJECTED"
    await stream.close()
    assert await client.balance(player_id) == 1_000
    assert studio.rounds == {}
