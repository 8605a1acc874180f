"""A live hub's GET /metrics (metrics_listen), on both databases: refusals of every kind, refused by an
interceptor (no credentials, a rate limit, a field too long), on a Play stream (a refused bet, and its retry
refused again), by the studio wallet API and by the inbound HTTP server (a studio's own protocol), each
counted exactly once in casinohub_refusals_total{rpc, code, reason}; answered calls and methods the hub does
not serve add nothing. `hub serve --workers 2` and `hub dev`: tests/e2e/test_workers.py, tests/e2e/test_cli.py."""

from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from casinohub.v1 import (
    auth_service_pb2 as tpb,
    auth_service_pb2_grpc,
    common_pb2,
    game_service_pb2 as pb,
    wallet_service_pb2 as wpb,
)
from hub.config import ProviderSettings
from mock_providers.instanthouse.server import STUDIO, start_server
from tests.e2e.play_client import PlayStream, launch
from tests.e2e.test_provider_wallet import ADMIN_TOKEN, Studio, studio_key
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, start_hub

Refusals = dict[tuple[str, str, str], float]


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


def refusals_in(exposition: str) -> Refusals:
    """casinohub_refusals_total of one scrape: (rpc, code, reason) -> count."""
    return {(s.labels["rpc"], s.labels["code"], s.labels["reason"]): s.value
            for family in text_string_to_metric_families(exposition) if family.name == "casinohub_refusals"
            for s in family.samples if s.name == "casinohub_refusals_total"}


def added(before: Refusals, after: Refusals) -> Refusals:
    """What a scrape gained since another (this test process's earlier hubs counted in the same registry)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value != before.get(key, 0.0)}


@pytest.fixture
async def hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    client = await start_hub(database_url, {"fake": studio}, admin_token=ADMIN_TOKEN, metrics_listen="127.0.0.1:0",
                             token_issue_per_s=0.01, token_issue_burst=1)
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)


async def refused(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return reason_of(err.value)


async def test_each_refusal_is_counted_once_under_its_rpc_code_and_reason(hub: Client) -> None:
    key_id, private_key = await studio_key(hub, "fake")
    player_id, token = await hub.new_player()  # no money: its bets are refused
    game_session = await launch(hub, token)
    stream = PlayStream(hub)
    stream.open(game_session, token)
    assert (await stream.next()).WhichOneof("event") == "session_opened"
    port = hub.server.metrics_port
    assert port and hub.server.metrics is not None
    before = refusals_in(await scrape(port))

    assert await refused(hub.games.ListGames(pb.ListGamesRequest())) == (
        grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING")
    auth = auth_service_pb2_grpc.AuthServiceStub(hub.channel)
    guess = tpb.IssueTokenRequest(key_id="ck_0000000000000000", secret="guess")
    assert await refused(auth.IssueToken(guess)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CLIENT_CREDENTIALS")
    assert await refused(auth.IssueToken(guess)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert await refused(hub.wallet.GetBalance(wpb.GetBalanceRequest(player_id="p" * 1000, currency="USD"),
                                               metadata=hub.metadata)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG")
    stream.bet(100, "bet-1")
    first = await stream.next()
    assert first.error.error.reason == "INSUFFICIENT_FUNDS"
    stream.bet(100, "bet-1")  # the same bet again: nothing was applied, so it is decided (and refused) again
    again = await stream.next()
    assert again.error.error.reason == "INSUFFICIENT_FUNDS" and again.seq > first.seq and not again.replay_of_seq
    studio = Studio(hub.channel, key_id, private_key, game_session, player_id)
    assert await refused(studio.bet("tx-1", "round-1", 100)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")
    # A method the hub does not serve is grpc's UNIMPLEMENTED, no refusal: its name never becomes a label.
    unknown = hub.channel.unary_unary("/casinohub.v1.GameService/x" + "y" * 50)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await unknown(b"", metadata=hub.metadata)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # Answered calls count nothing.
    await hub.wallet.Deposit(wpb.DepositRequest(player_id=player_id, idempotency_key="deposit-1",
                                                amount=common_pb2.Money(currency="USD", amount_minor=500)),
                             metadata=hub.metadata)
    assert (await studio.bet("tx-2", "round-2", 100)).balance.amount_minor == 400
    await stream.close()

    scraped = await scrape(port)
    assert added(before, refusals_in(scraped)) == {
        ("ListGames", "UNAUTHENTICATED", "CREDENTIALS_MISSING"): 1.0,
        ("IssueToken", "UNAUTHENTICATED", "INVALID_CLIENT_CREDENTIALS"): 1.0,
        ("IssueToken", "RESOURCE_EXHAUSTED", "RATE_LIMITED"): 1.0,
        ("GetBalance", "INVALID_ARGUMENT", "FIELD_TOO_LONG"): 1.0,
        ("Play", "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"): 2.0,
        ("Bet", "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"): 1.0,
    }
    assert "# TYPE casinohub_refusals_total counter" in scraped


async def test_a_refusal_of_a_studio_calling_in_its_own_protocol_is_counted_under_inbound(database_url: str) -> None:
    runner, studio_port = await start_server(port=0, secret="metrics-instant")
    studio_url = f"http://127.0.0.1:{studio_port}"
    provider = ProviderSettings(name="instanthouse", adapter="instanthouse", url=studio_url, secret="metrics-instant")
    hub = await start_hub(database_url, None, providers=(provider,), inbound_listen="127.0.0.1:0",
                          metrics_listen="127.0.0.1:0")
    runner.app[STUDIO].wallet_url = f"http://127.0.0.1:{hub.server.inbound_port}/instanthouse"
    try:
        _, token = await hub.new_player()  # no money: the studio's debit is refused by the hub
        game_session = await launch(hub, token, "instanthouse:crash")
        before = refusals_in(await scrape(hub.server.metrics_port))
        async with aiohttp.ClientSession() as http, http.post(
                f"{studio_url}/play", json={"token": game_session, "bet": "1.00", "target": "2"}) as played:
            answer = await played.json()
        assert answer["status"] != "OK", answer
        assert added(before, refusals_in(await scrape(hub.server.metrics_port))) == {
            ("inbound:instanthouse", "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"): 1.0}
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)
        await runner.cleanup()
