"""ReelhouseAdapter against a live Reelhouse studio: protocol, money conversion, every failure mapping."""

import asyncio
import hashlib
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from adapters.base import (
    AmountNotRepresentable,
    CatalogInput,
    LaunchInput,
    PlayInput,
    ProviderAdapter,
    ProviderProtocolError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RoundStatusInput,
)
from adapters.reelhouse.client import StudioClient, StudioRejected
from adapters.reelhouse.paytable import Paytable
from mock_providers.reelhouse import fairness
from mock_providers.reelhouse.games import GAMES
from mock_providers.reelhouse.server import Faults
from tests.contract.conftest import SECRET

REPO_ROOT = Path(__file__).resolve().parents[2]


async def launch(adapter, session_id="gs-1", game_id="fruit-classic", currency="USD", client_seed="lucky"):
    return await adapter.launch(LaunchInput(
        game_session_id=session_id, provider_game_id=game_id, operator_id="op-1", player_id="p-1",
        currency=currency, client_seed=client_seed,
    ))


@pytest.fixture
async def launched(adapter):
    """Session gs-1 on fruit-classic in USD, with the catalog (and so the paytables) already fetched."""
    await adapter.catalog(CatalogInput())
    return await launch(adapter)


def spin_input(round_id, bet_minor=100, session_id="gs-1", game_id="fruit-classic", currency="USD"):
    return PlayInput(round_id=round_id, game_session_id=session_id, provider_game_id=game_id,
                     operator_id="op-1", player_id="p-1", currency=currency, bet_minor=bet_minor)


def paid_multiplier(game_id: str, result: str) -> int:
    """The multiplier the adapter's own evaluation gives for a result line of the published paytable."""
    published = GAMES[game_id].to_json()
    return Paytable.from_catalog(published["reels"], published["paytable"]).multiplier(result.split("|"))


def unused_url() -> str:
    """A URL on a port that was free a moment ago, so nothing is listening there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_adapter_satisfies_the_protocol(adapter):
    assert isinstance(adapter, ProviderAdapter)
    assert adapter.name == "reelhouse"
    assert await adapter.health() is True


async def test_catalog_has_distinct_slot_games_with_published_rtps(adapter):
    games = {g.provider_game_id: g for g in await adapter.catalog(CatalogInput())}
    assert set(games) >= {"fruit-classic", "gem-rush", "lucky-sevens"}
    assert {g.game_type for g in games.values()} == {"slot"}
    assert len({g.rtp_basis_points for g in games.values()}) == len(games)
    assert len({g.max_win_multiplier for g in games.values()}) == len(games)
    assert games["fruit-classic"].rtp_basis_points == 9614
    assert all(9000 <= g.rtp_basis_points <= 9800 for g in games.values())


async def test_catalog_converts_limits_to_hub_minor_units(adapter):
    games = {g.provider_game_id: g for g in await adapter.catalog(CatalogInput())}
    limits = {limit.currency: limit for limit in games["fruit-classic"].bet_limits}
    assert set(limits) == {"USD", "EUR", "JPY", "KWD", "BTC"}  # DOGE: unknown to the hub, skipped
    assert (limits["USD"].min_minor, limits["USD"].max_minor, limits["USD"].step_minor) == (10, 10_000, 1)
    assert (limits["JPY"].min_minor, limits["JPY"].max_minor) == (10, 15_000)
    assert (limits["KWD"].min_minor, limits["KWD"].max_minor) == (30, 30_000)
    btc = limits["BTC"]
    assert (btc.min_minor, btc.max_minor, btc.step_minor) == (1000, 1_000_000, 1000)  # 1000 sat = 1/100000
    high = {limit.currency: limit for limit in games["lucky-sevens"].bet_limits}
    assert (high["USD"].min_minor, high["USD"].max_minor) == (100, 50_000)


async def test_launch_commits_to_a_server_seed_and_is_idempotent(adapter):
    first = await launch(adapter)
    again = await launch(adapter)
    assert len(first.server_seed_hash) == 64
    int(first.server_seed_hash, 16)
    assert again == first
    async with aiohttp.ClientSession() as http, http.get(first.launch_url) as page:
        assert page.status == 200


async def test_launch_reusing_a_session_id_for_another_game_is_rejected(adapter, launched):
    with pytest.raises(ProviderRejected, match="SESSION_ID_REUSED"):
        await launch(adapter, game_id="gem-rush")


@pytest.mark.parametrize("game_id", ["fruit-classic", "gem-rush", "lucky-sevens"])
async def test_spin_wins_match_the_adapters_own_paytable(adapter, game_id):
    await launch(adapter, session_id=f"gs-{game_id}", game_id=game_id)
    results = [await adapter.play(spin_input(f"r-{game_id}-{i}", bet_minor=100, session_id=f"gs-{game_id}",
                                             game_id=game_id))
               for i in range(40)]
    for result in results:
        assert result.win_minor == 100 * paid_multiplier(game_id, result.result)
        assert len(result.result.split("|")) == 3
    assert [r.proof.nonce for r in results] == list(range(40))
    if game_id == "fruit-classic":  # a cherry on ~40% of lines: some spins must have paid
        assert any(r.win_minor > 0 for r in results)


async def test_replaying_a_round_id_returns_the_stored_spin(adapter, launched, studio):
    first = await adapter.play(spin_input("r-1"))
    replay = await adapter.play(spin_input("r-1"))
    assert replay == first
    assert len(studio.state.rounds) == 1
    following = await adapter.play(spin_input("r-2"))
    assert following.proof.nonce == first.proof.nonce + 1


async def test_concurrent_duplicates_spin_once(adapter, launched, studio):
    results = await asyncio.gather(*(adapter.play(spin_input("r-dup")) for _ in range(5)))
    assert len(set(results)) == 1
    assert studio.state.sessions["gs-1"].next_nonce == 1


async def test_round_id_reused_for_another_bet_is_rejected(adapter, launched):
    await adapter.play(spin_input("r-1", bet_minor=100))
    with pytest.raises(ProviderRejected, match="ROUND_ID_REUSED"):
        await adapter.play(spin_input("r-1", bet_minor=200))


async def test_bet_outside_the_limits_is_rejected(adapter, launched):
    with pytest.raises(ProviderRejected, match="BET_OUT_OF_LIMITS"):
        await adapter.play(spin_input("r-1", bet_minor=5))


async def test_amount_the_studio_cannot_represent_never_reaches_it(adapter, studio):
    await launch(adapter, currency="BTC")
    seen = studio.state.requests_seen
    with pytest.raises(AmountNotRepresentable):
        await adapter.play(spin_input("r-sat", bet_minor=1, currency="BTC"))  # 1 satoshi < 1/100000 BTC
    assert studio.state.requests_seen == seen
    result = await adapter.play(spin_input("r-ok", bet_minor=1000, currency="BTC"))
    assert result.win_minor % 1000 == 0


async def test_wrong_secret_is_rejected(studio, make_adapter):
    with pytest.raises(ProviderRejected, match="INVALID_SIGNATURE"):
        await make_adapter(studio.url, secret="not-the-secret").catalog(CatalogInput())


async def test_bad_response_signature_is_a_protocol_error(adapter, studio):
    studio.faults.bad_signature_next = 1
    with pytest.raises(ProviderProtocolError, match="signature"):
        await adapter.catalog(CatalogInput())
    assert await adapter.catalog(CatalogInput())


async def test_inflated_win_is_a_protocol_error(adapter, launched, studio):
    studio.faults.cheat_next = 1
    with pytest.raises(ProviderProtocolError, match="paytable gives"):
        await adapter.play(spin_input("r-1"))
    honest = await adapter.play(spin_input("r-1"))  # the studio's stored round is the honest one
    assert honest.win_minor == 100 * GAMES["fruit-classic"].multiplier(honest.result.split("|"))


async def test_studio_error_is_unavailable(adapter, launched, studio):
    studio.faults.fail_next = 1
    with pytest.raises(ProviderUnavailable, match="503"):
        await adapter.play(spin_input("r-1"))
    status = await adapter.round_status(RoundStatusInput("r-1", "op-1"))
    assert status.status == "unknown"  # a 503 means nothing happened


async def test_hanging_studio_is_a_timeout_and_the_round_is_reconcilable(adapter, launched, studio):
    studio.faults.fail_next, studio.faults.fail_mode = 1, "timeout"
    with pytest.raises(ProviderTimeout):
        await adapter.play(spin_input("r-1"))
    status = await adapter.round_status(RoundStatusInput("r-1", "op-1"))
    assert status.status == "settled"
    assert status.win_minor == (await adapter.play(spin_input("r-1"))).win_minor


async def test_nothing_listening_is_unavailable(make_adapter):
    adapter = make_adapter(unused_url())
    with pytest.raises(ProviderUnavailable):
        await adapter.catalog(CatalogInput())
    assert await adapter.health() is False


async def test_round_status_settled_and_unknown(adapter, launched):
    played = await adapter.play(spin_input("r-1", bet_minor=250))
    settled = await adapter.round_status(RoundStatusInput("r-1", "op-1"))
    assert (settled.status, settled.win_minor) == ("settled", played.win_minor)
    assert (await adapter.round_status(RoundStatusInput("r-unseen", "op-1"))).status == "unknown"


async def test_revealed_seed_matches_commitment_and_reproduces_stops(adapter):
    session = await launch(adapter, client_seed="my-own-seed")
    played = [await adapter.play(spin_input(f"r-{i}")) for i in range(5)]
    reveal = await adapter.rotate_seed("gs-1")
    assert hashlib.sha256(reveal.server_seed.encode()).hexdigest() == session.server_seed_hash
    assert reveal.next_server_seed_hash != session.server_seed_hash
    game = GAMES["fruit-classic"]
    for result in played:
        assert result.proof.server_seed_hash == session.server_seed_hash
        stops = fairness.reel_stops(reveal.server_seed, result.proof.client_seed, result.proof.nonce,
                                    [len(reel) for reel in game.reels])
        assert "|".join(game.symbols_at(stops)) == result.result
    after = await adapter.play(spin_input("r-after"))
    assert (after.proof.server_seed_hash, after.proof.nonce) == (reveal.next_server_seed_hash, 5)


async def test_faults_are_settable_over_signed_http(adapter, studio):
    admin = StudioClient(studio.url, SECRET, timeout_s=1.0)
    try:
        await admin.request("POST", "/_admin/faults", {"fail_next": 1, "fail_mode": "error"})
        with pytest.raises(ProviderUnavailable):
            await adapter.catalog(CatalogInput())
        with pytest.raises(StudioRejected, match="INVALID_FAULT"):
            await admin.request("POST", "/_admin/faults", {"fail_mode": "explode"})
    finally:
        await admin.close()


def test_fault_rates_repeat_with_the_same_seed():
    def draws(seed):
        faults = Faults(error_rate=0.3, timeout_rate=0.2, seed=seed)
        return [faults.draw() for _ in range(50)]

    assert draws(7) == draws(7)
    assert {"error", "timeout", None} == set(draws(7))


def test_cli_process_starts_serves_and_stops_on_sigterm():
    process = subprocess.Popen([sys.executable, "-m", "mock_providers.reelhouse", "--port", "0"],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        ready = process.stdout.readline().strip()
        assert ready.startswith("READY port="), ready
        port = int(ready.removeprefix("READY port="))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()



# -- RTP variants: the variant chosen at launch is the paytable the studio pays by --------------------------


async def test_catalog_carries_types_names_features_and_rtp_variants(adapter):
    games = {g.provider_game_id: g for g in await adapter.catalog(CatalogInput())}
    fruit = games["fruit-classic"]
    assert fruit.game_type == "slot" and fruit.features == ("free_spins",)
    assert fruit.name_in("de") == "Fruchtklassiker" and fruit.name_in("ja") == "フルーツクラシック"
    assert games["lucky-sevens"].name_in("ja") == "Lucky Sevens"  # no translation: English
    assert [(v.variant_id, v.rtp_basis_points) for v in fruit.rtp_variants] == [("96", 9614), ("94", 9401)]
    assert fruit.max_win_multiplier == 150  # the highest of both variants
    assert games["gem-rush"].rtp_variants == ()


@pytest.mark.parametrize("variant", ["94", "96"])
async def test_the_launched_variant_reaches_the_studio_and_pays_its_own_paytable(adapter, studio, variant):
    """A line the two paytables pay differently (three BELLs: 30x at 96, 20x at 94) is forced by choosing the
    session's seeds, so the win proves which paytable the studio used and the adapter accepted."""
    await adapter.catalog(CatalogInput())
    game = GAMES["fruit-classic"]
    server_seed = "0" * 64
    lengths = [len(r) for r in game.reels]
    client_seed = next(c for c in (f"seed-{i}" for i in range(200_000))
                       if game.symbols_at(fairness.reel_stops(server_seed, c, 0, lengths)) == ["BELL"] * 3)
    await adapter.launch(LaunchInput(game_session_id="gs-v", provider_game_id="fruit-classic", operator_id="op-1",
                                     player_id="p-1", currency="USD", client_seed=client_seed, rtp_variant=variant))
    assert studio.state.sessions["gs-v"].rtp_variant == variant
    studio.state.sessions["gs-v"].server_seed = server_seed
    result = await adapter.play(PlayInput(round_id="r-v", game_session_id="gs-v", provider_game_id="fruit-classic",
                                          operator_id="op-1", player_id="p-1", currency="USD", bet_minor=100,
                                          rtp_variant=variant))
    assert result.result == "BELL|BELL|BELL"
    assert result.win_minor == {"96": 3000, "94": 2000}[variant]


async def test_a_variant_the_studio_does_not_offer_is_refused_at_launch(adapter):
    await adapter.catalog(CatalogInput())
    with pytest.raises(ProviderRejected):
        await adapter.launch(LaunchInput(game_session_id="gs-x", provider_game_id="fruit-classic",
                                         operator_id="op-1", player_id="p-1", currency="USD", client_seed="c",
                                         rtp_variant="99"))
