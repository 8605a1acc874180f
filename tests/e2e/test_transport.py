"""TLS and mutual TLS with certificates the tests make (tests/certs.py): calls, health and reflection over
TLS, plaintext refused on a TLS port, and under mTLS clients without a certificate, or with one from another
CA, refused; `hub serve --workers 2` serves TLS too. The database plays no part here: SQLite only."""

import asyncio
import dataclasses
import pathlib
import sys
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from casinohub.v1 import common_pb2, game_service_pb2 as gpb, wallet_service_pb2 as wpb
from hub.config import Config
from hub.server import create_server
from tests.certs import Authority, Issued
from tests.e2e.play_client import opened_stream
from tests.e2e.processes import HubProcess, free_port, new_operator_id, write_config
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, start_hub
from tests.tcp_proxy import TcpProxy

GRPCURL = pathlib.Path(__file__).resolve().parents[2] / ".venv" / "bin" / "grpcurl"
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite:///{tmp_path}/hub.db"


@pytest.fixture
def ca(tmp_path: pathlib.Path) -> Authority:
    return Authority(tmp_path, "hub")


def tls_channel(port: int, ca: Authority, client: Issued | None = None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem, private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None)
    # A local subchannel pool: each channel its own connection, as separate clients would have.
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)])


async def started(sqlite_url: str, studio: FakeStudio, **tls: object) -> AsyncIterator[Client]:
    client = await start_hub(sqlite_url, {"fake": studio}, **tls)
    await client.channel.close()  # start_hub's channel is plaintext; each test dials its own
    yield client
    await client.server.stop(grace=1)


@pytest.fixture
async def tls_hub(sqlite_url: str, studio: FakeStudio, ca: Authority) -> AsyncIterator[Client]:
    server = ca.server()
    async for client in started(sqlite_url, studio, tls_cert_file=str(server.cert), tls_key_file=str(server.key)):
        yield client


@pytest.fixture
async def mtls_hub(sqlite_url: str, studio: FakeStudio, ca: Authority) -> AsyncIterator[Client]:
    server = ca.server()
    async for client in started(sqlite_url, studio, tls_cert_file=str(server.cert), tls_key_file=str(server.key),
                                tls_client_ca_file=str(ca.cert)):
        yield client


async def list_games(hub: Client, channel: grpc.aio.Channel) -> gpb.ListGamesResponse:
    client = dataclasses.replace(hub, channel=channel)
    client.token = hub.token
    return await client.games.ListGames(gpb.ListGamesRequest(currency="USD"), metadata=client.metadata, timeout=5)


async def refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    """A handshake the hub refuses never gets a call through: the client sees UNAVAILABLE."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    await channel.close()
    return err.value.code()


async def test_tls_serves_calls_health_and_reflection(tls_hub: Client, ca: Authority) -> None:
    async with tls_channel(tls_hub.port, ca) as channel:
        assert (await list_games(tls_hub, channel)).games
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = [reply async for reply in reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)]
        names = {s.name for s in replies[0].list_services_response.service}
        assert {"casinohub.v1.WalletService", "grpc.health.v1.Health"} <= names


async def test_a_plaintext_client_gets_nothing_from_a_tls_port(tls_hub: Client) -> None:
    assert await refused(grpc.aio.insecure_channel(f"127.0.0.1:{tls_hub.port}")) == grpc.StatusCode.UNAVAILABLE


async def test_a_client_trusting_another_ca_refuses_the_hub(tls_hub: Client, tmp_path: pathlib.Path) -> None:
    other = Authority(tmp_path, "other")
    assert await refused(tls_channel(tls_hub.port, other)) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_admits_only_clients_with_a_certificate_of_its_ca(mtls_hub: Client, ca: Authority,
                                                                    tmp_path: pathlib.Path) -> None:
    async with tls_channel(mtls_hub.port, ca, ca.client()) as channel:
        assert (await list_games(mtls_hub, channel)).games
    assert await refused(tls_channel(mtls_hub.port, ca)) == grpc.StatusCode.UNAVAILABLE  # no certificate
    stranger = Authority(tmp_path, "stranger").client()
    assert await refused(tls_channel(mtls_hub.port, ca, stranger)) == grpc.StatusCode.UNAVAILABLE
    assert await refused(grpc.aio.insecure_channel(f"127.0.0.1:{mtls_hub.port}")) == grpc.StatusCode.UNAVAILABLE


async def test_grpcurl_lists_services_over_tls_and_mtls(mtls_hub: Client, ca: Authority) -> None:
    """The README's grpcurl -cacert (and -cert/-key for mTLS) lines, as printed."""
    client = ca.client()
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL), "-cacert", str(ca.cert), "-cert", str(client.cert), "-key", str(client.key),
        f"127.0.0.1:{mtls_hub.port}", "list", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode()
    assert "casinohub.v1.GameService" in output.decode()
    process = await asyncio.create_subprocess_exec(  # without its certificate: refused
        str(GRPCURL), "-cacert", str(ca.cert), f"127.0.0.1:{mtls_hub.port}", "list",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode != 0


@pytest.mark.parametrize("settings, message", [
    ({"tls_cert_file": "x.pem"}, "both tls_cert_file and tls_key_file"),
    ({"tls_client_ca_file": "ca.pem"}, "both tls_cert_file and tls_key_file"),
])
async def test_half_configured_tls_stops_the_hub(sqlite_url: str, settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await create_server(Config(listen="127.0.0.1:0", database_url=sqlite_url, providers=(), **settings))


async def test_a_file_without_a_certificate_stops_the_hub(sqlite_url: str, ca: Authority) -> None:
    server = ca.server()
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        await create_server(Config(listen="127.0.0.1:0", database_url=sqlite_url, providers=(),
                                   tls_cert_file=str(server.key), tls_key_file=str(server.key)))


async def test_hub_serve_exits_2_with_a_missing_certificate(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(f'[hub]\nlisten = "127.0.0.1:0"\ndatabase_url = "sqlite:///{tmp_path}/hub.db"\n'
                    f'tls_cert_file = "{tmp_path}/missing.pem"\ntls_key_file = "{tmp_path}/missing.key"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "--config", str(path), "serve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2 and f"cannot read {tmp_path}/missing.pem" in stderr.decode(), stderr.decode()


async def test_workers_serve_tls(tmp_path: pathlib.Path, ca: Authority) -> None:
    """`hub serve --workers 2` from a config file naming the certificates: every worker speaks TLS."""
    port, operator_id, server = free_port(), new_operator_id(), ca.server()
    database_url = f"sqlite:///{tmp_path}/var/hub.db"
    config = write_config(tmp_path / "hub.toml", port=port, database_url=database_url, operator_id=operator_id,
                          studio_url="http://127.0.0.1:9", secret="s")
    config.write_text(config.read_text().replace(
        "[hub]\n", f'[hub]\ntls_cert_file = "{server.cert}"\ntls_key_file = "{server.key}"\n', 1))
    hub = await HubProcess.start(config, port, tmp_path / "hub.log", serve_args=("--workers", "2"))
    assert hub.channel is not None
    await hub.channel.close()
    hub.channel = tls_channel(port, ca)
    try:
        await hub.wait_serving()
        for _ in range(100):
            if sum(r.get("event") == "hub.serving" for r in hub.log_records()) == 2:
                break
            await asyncio.sleep(0.1)
        serving = [r for r in hub.log_records() if r.get("event") == "hub.serving"]
        assert len(serving) == 2 and {r["transport"] for r in serving} == {"tls"}, hub.log_tail()
        # One connection per channel, and the kernel spreads connections: 12 reach both workers but for
        # a chance of 2**-11; each must handshake TLS with whichever worker took it.
        channels = [tls_channel(port, ca) for _ in range(12)]
        try:
            for channel in channels:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
                assert reply.status == SERVING
        finally:
            for channel in channels:
                await channel.close()
        assert await refused(grpc.aio.insecure_channel(f"127.0.0.1:{port}")) == grpc.StatusCode.UNAVAILABLE
    finally:
        await hub.stop()


# --- connection and message limits (hub.transport.connection_options) ---------------------------------------


async def test_a_request_over_max_message_bytes_or_with_huge_headers_is_resource_exhausted_never_internal(
        sqlite_url: str, studio: FakeStudio) -> None:
    hub = await start_hub(sqlite_url, {"fake": studio}, max_message_bytes=2048)
    try:
        huge = wpb.DepositRequest(player_id="p", idempotency_key="k" * 4096,
                                  amount=common_pb2.Money(currency="USD", amount_minor=1))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await hub.wallet.Deposit(huge, metadata=hub.metadata, timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        # Under the limit, the same field is the hub's own refusal: core's limit is the outer one.
        fits = wpb.DepositRequest(player_id="p", idempotency_key="k" * 1024,
                                  amount=common_pb2.Money(currency="USD", amount_minor=1))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await hub.wallet.Deposit(fits, metadata=hub.metadata, timeout=5)
        assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG")
        # A Play stream's message too: the stream ends RESOURCE_EXHAUSTED.
        call = hub.games.Play(metadata=hub.metadata, timeout=5)
        await call.write(gpb.PlayRequest(open=gpb.OpenAction(game_session_id="s" * 4096, session_token="t")))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        # Headers past grpc's hard metadata limit (16 KiB) are RESOURCE_EXHAUSTED as well, unary or stream
        # (between its soft limit, 8 KiB, and the hard one, core refuses a growing share of calls at random).
        for size in (17_000, 100_000):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await hub.games.ListGames(gpb.ListGamesRequest(), metadata=(*hub.metadata, ("x-big", "a" * size)),
                                          timeout=5)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        call = hub.games.Play(metadata=(*hub.metadata, ("x-big", "a" * 20_000)), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        # The connection is still good for the next call.
        assert (await hub.games.ListGames(gpb.ListGamesRequest(), metadata=hub.metadata, timeout=5)).games
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)


async def test_a_connection_that_never_says_anything_is_closed_after_the_handshake_timeout(
        sqlite_url: str, studio: FakeStudio) -> None:
    """Slow loris: a TCP connection that never sends the HTTP/2 preface holds its socket only so long."""
    hub = await start_hub(sqlite_url, {"fake": studio}, handshake_timeout_s=0.5)
    try:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        await asyncio.wait_for(reader.read(), 10)  # the hub's SETTINGS, then end of file: closed by the hub
        closed_after = time.monotonic() - started
        writer.close()
        assert 0.4 < closed_after < 5, closed_after
        # A client that talks gets served as usual.
        assert (await hub.games.ListGames(gpb.ListGamesRequest(), metadata=hub.metadata, timeout=5)).games
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)


async def test_an_idle_connection_is_closed_after_max_connection_idle(sqlite_url: str, studio: FakeStudio) -> None:
    hub = await start_hub(sqlite_url, {"fake": studio}, max_connection_idle_s=0.5)
    try:
        started = time.monotonic()  # before the call: its end starts the idle clock
        await health_pb2_grpc.HealthStub(hub.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert hub.channel.get_state() == grpc.ChannelConnectivity.READY
        await asyncio.wait_for(hub.channel.wait_for_state_change(grpc.ChannelConnectivity.READY), 10)
        assert 0.4 < time.monotonic() - started < 5
        assert hub.channel.get_state() != grpc.ChannelConnectivity.READY  # the hub sent GOAWAY
        # The channel reconnects for the next call.
        assert (await hub.games.ListGames(gpb.ListGamesRequest(), metadata=hub.metadata, timeout=5)).games
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)


async def test_a_peer_that_vanishes_mid_stream_is_found_by_keepalive_and_frees_its_stream(
        sqlite_url: str, studio: FakeStudio) -> None:
    """A partitioned client (its socket open, nothing getting through) stops holding its Play stream's slot
    once the hub's keepalive ping goes unanswered."""
    hub = await start_hub(sqlite_url, {"fake": studio}, keepalive_time_s=0.3, keepalive_timeout_s=0.5)
    proxy = TcpProxy("127.0.0.1", hub.port)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{await proxy.start()}")
    try:
        _, token = await hub.new_player()
        stream = await opened_stream(dataclasses.replace(hub, channel=channel), token)
        assert hub.server.admission.streams == 1
        await asyncio.sleep(1.0)  # pings answered: a quiet but present client keeps its stream
        assert hub.server.admission.streams == 1
        proxy.silent = True
        started = time.monotonic()
        while hub.server.admission.streams and time.monotonic() - started < 10:
            await asyncio.sleep(0.05)
        assert hub.server.admission.streams == 0
        assert time.monotonic() - started < 5
        await stream.close()
    finally:
        await channel.close()
        await proxy.close()
        await hub.channel.close()
        await hub.server.stop(grace=1)
