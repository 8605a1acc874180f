"""The hub against the real Tablehouse studio over gRPC: its games in the catalog, roulette rounds through
the Play stream (the default layout, the whole stake on red, and layouts the bet names). Blackjack, which
takes actions, is in test_blackjack_play.py."""

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


# A layout worked by hand from the studio's published table (README): a hit returns amount * 36 / numbers.
LAYOUT = "straight:17=100;split:17-20=50;dozen:2=50;black=200"


def hand_worked_return(pocket: int) -> int:
    black = {2, 4, 6, 8, 10, 11, 13, 15, 17, 20, 22, 24, 26, 28, 29, 31, 33, 35}
    return ((3600 if pocket == 17 else 0) + (900 if pocket in (17, 20) else 0)
            + (150 if 13 <= pocket <= 24 else 0) + (400 if pocket in black else 0))


async def test_a_bet_s_layout_reaches_the_table_and_pays_each_position(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=20_000)
    stream = await opened_stream(client, token, ROULETTE)
    total_win = 0
    for i in range(15):
        stream.bet(400, f"layout-{i}", layout=LAYOUT)
        events = await stream.until("settled", "error")
        assert kinds(events) == ["round_opened", "bet_accepted", "outcome", "settled"]
        pocket = int(events[2].outcome.result.split()[0])
        assert events[3].settled.win.amount_minor == hand_worked_return(pocket), pocket
        total_win += hand_worked_return(pocket)
    # The layout is part of the bet: the same key with another layout is refused and changes nothing.
    stream.bet(400, "layout-0", layout="red")
    [refused] = await stream.until("error")
    assert refused.error.error.reason == "IDEMPOTENCY_KEY_REUSED"
    # The same key with the same layout replays the original round.
    stream.bet(400, "layout-0", layout=LAYOUT)
    replayed = await stream.until("settled")
    assert all(e.replay_of_seq for e in replayed)
    await stream.close()
    assert await client.balance(player_id) == 20_000 - 15 * 400 + total_win
    assert client.posting_sums() == {"USD": 0}
    assert len(studio.rounds) == 15


async def test_a_layout_the_table_cannot_take_is_rolled_back(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    stream = await opened_stream(client, token, ROULETTE)
    for key, layout in (("short", "straight:17=100"), ("bogus", "straight:99=300"), ("kind", "zigzag=300")):
        stream.bet(300, key, layout=layout)
        events = await stream.until("settled", "error")
        assert kinds(events) == ["round_opened", "bet_accepted", "error"], layout
        assert events[-1].error.error.reason == "PROVIDER_REJECTED"
    await stream.close()
    assert await client.balance(player_id) == 1_000
    assert studio.rounds == {}
