"""The hub against the real Reelhouse studio over the network: the README walkthrough, a full round,
and the studio's faults (timeout after the debit, a cheating answer, a wrong shared secret)."""

import asyncio
import os
import pathlib
import re
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest

from adapters.money import from_scaled_units
from adapters.reelhouse.adapter import UNITS_PER_MAJOR
from casinohub.v1 import admin_service_pb2, admin_service_pb2_grpc, common_pb2, game_service_pb2 as pb
from hub.config import ProviderSettings
from hub.ledger.rounds import RoundLedger
from hub.reconciler import Reconciler
from mock_providers.reelhouse.server import STUDIO, Studio, start_server
from tests.e2e.play_client import kinds, opened_stream
from tests.errors import reason_of
from tests.support import Client, start_hub

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRET = "e2e-secret"
GAME = "reelhouse:fruit-classic"


@pytest.fixture
async def reelhouse() -> AsyncIterator[tuple[str, Studio]]:
    runner, port = await start_server(port=0, secret=SECRET)
    yield f"http://127.0.0.1:{port}", runner.app[STUDIO]
    await runner.cleanup()


async def hub_with_studio(database_url: str, url: str, secret: str = SECRET, **overrides: object) -> Client:
    provider = ProviderSettings(name="reelhouse", adapter="reelhouse", url=url, secret=secret, timeout_s=0.5)
    return await start_hub(database_url, None, providers=(provider,), **overrides)


@pytest.fixture
async def live(database_url: str, reelhouse: tuple[str, Studio]) -> AsyncIterator[tuple[Client, Studio]]:
    client = await hub_with_studio(database_url, reelhouse[0], admin_token=ADMIN_TOKEN)
    yield client, reelhouse[1]
    await client.channel.close()
    await client.server.stop(grace=1)


ADMIN_TOKEN = "walkthrough-admin-" + "t" * 32


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:start -->\n```bash\n(.*?)```\n<!-- walkthrough:end -->", readme, re.S)
    assert block, "README walkthrough block not found"
    return block.group(1)


async def test_readme_grpcurl_walkthrough_runs_as_printed(live: tuple[Client, Studio]) -> None:
    client, _ = live
    # The walkthrough uses the key `make run` prints; here one of this test's operator, made as the README says.
    key = await admin_service_pb2_grpc.AdminServiceStub(client.channel).CreateApiKey(
        admin_service_pb2.CreateApiKeyRequest(operator_id=client.operator_id),
        metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),))
    env = {**os.environ, "HUB": f"127.0.0.1:{client.port}", "KEY_ID": key.api_key.key_id, "SECRET": key.secret,
           "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = walkthrough()
    # Async subprocess: the hub under test serves from this same event loop.
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    stdout = out.decode()
    assert process.returncode == 0, err.decode() + stdout
    for event in ("session_opened", "round_opened", "bet_accepted", "outcome", "settled", "session_closed"):
        assert f'"{event}"' in stdout, event
    assert "casinohub.v1.GameService" in stdout
    assert client.posting_sums() == {"USD": 0}


async def test_full_round_against_the_studio_pays_what_the_paytable_says(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=10_000)
    launched = await client.games.LaunchGame(pb.LaunchGameRequest(
        session_token=token, game_id=GAME, currency="USD", client_seed="my-seed"), metadata=client.metadata)
    stream = await opened_stream(client, token, GAME)
    total_win = 0
    for i in range(20):
        stream.bet(100, f"spin-{i}")
        events = await stream.until("settled", "error")
        assert kinds(events) == ["round_opened", "bet_accepted", "outcome", "settled"]
        outcome, settled = events[2].outcome, events[3].settled
        assert outcome.win.amount_minor == settled.win.amount_minor
        assert outcome.proof.server_seed_hash and len(outcome.proof.server_seed_hash) == 64
        total_win += settled.win.amount_minor
    await stream.close()
    assert await client.balance(player_id) == 10_000 - 20 * 100 + total_win
    assert client.posting_sums() == {"USD": 0}
    round_ = (await client.games.GetRound(pb.GetRoundRequest(round_id=settled.round_id),
                                          metadata=client.metadata)).round
    assert round_.status == pb.ROUND_STATUS_SETTLED and round_.result == outcome.result
    assert launched.server_seed_hash  # the studio committed to a seed at launch


@pytest.mark.parametrize("fault,reason", [
    ({"fail_next": 3, "fail_mode": "error"}, "PROVIDER_UNAVAILABLE"),  # every one of the hub's 3 tries
    ({"cheat_next": 1}, "PROVIDER_OUTCOME_INVALID"),
    ({"bad_signature_next": 1}, "PROVIDER_OUTCOME_INVALID"),
])
async def test_studio_fault_after_the_debit_rolls_the_bet_back(
        live: tuple[Client, Studio], fault: dict[str, object], reason: str) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    stream = await opened_stream(client, token, GAME)
    studio.faults.update(fault)
    stream.bet(250, "faulty")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "error"]
    assert events[1].bet_accepted.balance.amount_minor == 750
    assert events[2].error.error.reason == reason
    assert events[2].error.balance.amount_minor == 1_000
    assert await client.balance(player_id) == 1_000
    assert client.posting_sums() == {"USD": 0}
    round_ = (await client.games.GetRound(pb.GetRoundRequest(round_id=events[2].error.round_id),
                                          metadata=client.metadata)).round
    assert round_.status == pb.ROUND_STATUS_ROLLED_BACK
    stream.bet(250, "after-fault")  # the stream and the studio carry on
    assert kinds(await stream.until("settled", "error"))[-1] == "settled"
    await stream.close()


async def test_a_passing_studio_error_is_retried_with_the_rounds_key_and_settles_once(
        live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    stream = await opened_stream(client, token, GAME)
    studio.faults.update({"fail_next": 2, "fail_mode": "error"})  # two 503s, then the spin
    stream.bet(250, "retried")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "outcome", "settled"]
    settled = events[-1].settled
    assert [r for r in studio.rounds if r == settled.round_id] == [settled.round_id]  # one spin at the studio
    assert await client.balance(player_id) == 750 + settled.win.amount_minor
    await stream.close()


async def test_a_round_the_studio_played_but_never_answered_is_settled_by_its_record(
        live: tuple[Client, Studio]) -> None:
    """The studio spins, then hangs past the hub's timeout: the hub keeps the round open (no refund on a
    guess) and the reconciler pays exactly what the studio's own record says."""
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    stream = await opened_stream(client, token, GAME)
    studio.faults.update({"fail_next": 1, "fail_mode": "timeout"})
    stream.bet(250, "unanswered")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "error"]
    error = events[2].error
    assert (error.error.reason, error.error.state, error.balance.amount_minor) == (
        "PROVIDER_TIMEOUT", common_pb2.APPLY_STATE_UNKNOWN, 750)
    await stream.close()
    hub = client.server.hub
    reconciler = Reconciler(hub.db, hub.engine, hub.catalog, RoundLedger(8), timedelta(0), hub.play.reconciled)
    assert (await reconciler.run_once(client.operator_id)).settled == [error.round_id]
    round_ = (await client.games.GetRound(pb.GetRoundRequest(round_id=error.round_id),
                                          metadata=client.metadata)).round
    assert round_.status == pb.ROUND_STATUS_SETTLED
    played = studio.rounds[error.round_id][1]  # the studio's own record of the spin decides
    assert round_.win.amount_minor == from_scaled_units("USD", played["win"], UNITS_PER_MAJOR)
    assert await client.balance(player_id) == 750 + round_.win.amount_minor
    assert client.posting_sums() == {"USD": 0}


async def test_wrong_shared_secret_is_refused_by_the_studio(database_url: str, reelhouse: tuple[str, Studio]) -> None:
    client = await hub_with_studio(database_url, reelhouse[0], secret="not-the-studio-secret")
    try:
        _, token = await client.new_player()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.games.LaunchGame(pb.LaunchGameRequest(session_token=token, game_id=GAME, currency="USD"),
                                          metadata=client.metadata)
        # The catalog could not be fetched with a bad signature either, so the game is unknown.
        assert reason_of(err.value) in {(grpc.StatusCode.NOT_FOUND, "GAME_NOT_FOUND"),
                                        (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_REJECTED")}
    finally:
        await client.channel.close()
        await client.server.stop(grace=1)
