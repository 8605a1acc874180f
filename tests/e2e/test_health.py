"""Health follows the database: NOT_SERVING while MariaDB is unreachable, SERVING once it is back."""

import asyncio
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy.engine import make_url

from casinohub.v1 import common_pb2, wallet_service_pb2 as pb
from tests.errors import error_info, reason_of
from tests.support import Client, start_hub
from tests.tcp_proxy import TcpProxy

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def wait_for_status(client: Client, service: str, expected: int) -> None:
    stub = health_pb2_grpc.HealthStub(client.channel)
    for _ in range(300):
        if (await stub.Check(health_pb2.HealthCheckRequest(service=service))).status == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health of {service!r} never became {expected}")


@pytest.mark.mariadb
async def test_health_is_not_serving_while_the_database_is_unreachable(mariadb_url: str) -> None:
    url = make_url(mariadb_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    await proxy.start()
    client = await start_hub(url.set(port=proxy.port).render_as_string(hide_password=False), {})
    try:
        await wait_for_status(client, "", SERVING)
        await wait_for_status(client, "casinohub.v1.WalletService", SERVING)
        player_id, _ = await client.new_player(deposit=100)

        await proxy.cut()
        await wait_for_status(client, "", NOT_SERVING)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.wallet.Deposit(pb.DepositRequest(
                player_id=player_id, idempotency_key=str(uuid.uuid4()),
                amount=common_pb2.Money(currency="USD", amount_minor=5)), metadata=client.metadata)
        assert reason_of(err.value) == (grpc.StatusCode.UNAVAILABLE, "HUB_UNAVAILABLE")
        assert error_info(err.value).metadata["retryable"] == "true"

        await proxy.start()
        await wait_for_status(client, "", SERVING)
        assert await client.balance(player_id) == 100
    finally:
        await client.channel.close()
        await client.server.stop(grace=1)
        await proxy.close()


@pytest.mark.mariadb
async def test_a_database_that_goes_silent_is_detected_too(mariadb_url: str) -> None:
    """A partition leaves sockets open but silent: without read timeouts the probe would hang forever."""
    url = make_url(mariadb_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    await proxy.start()
    client = await start_hub(url.set(port=proxy.port).render_as_string(hide_password=False), {})
    try:
        await wait_for_status(client, "", SERVING)
        proxy.silent = True
        await wait_for_status(client, "", NOT_SERVING)
        proxy.silent = False
        await wait_for_status(client, "", SERVING)
    finally:
        await client.channel.close()
        await client.server.stop(grace=1)
        await proxy.close()


async def test_reflection_lists_the_hub_services(hub: Client) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(hub.channel)

    async def one_request():  # type: ignore[no-untyped-def]
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for response in stub.ServerReflectionInfo(one_request()):
        names |= {s.name for s in response.list_services_response.service}
    assert {"casinohub.v1.GameService", "casinohub.v1.WalletService", "casinohub.v1.PlayerService",
            "grpc.health.v1.Health"} <= names
