"""A signed request's nonce is used once across hub processes: the same call, signed once, is accepted by
this hub and refused NONCE_REUSED by a separate `hub serve` process on the same database (the seen nonces
live in the database, not in a process), logged there as auth.refused, and applies nothing the second time.
Both databases; test_security.py replays every RPC to a second server in this process."""

import pathlib
from collections.abc import AsyncIterator

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from casinohub.v1 import (
    admin_service_pb2 as apb,
    admin_service_pb2_grpc,
    wallet_service_pb2 as wpb,
    wallet_service_pb2_grpc,
)
from tests.e2e.processes import HubProcess, free_port, new_operator_id, write_config
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, bearer, signed, start_hub

ADMIN_TOKEN = "replay-admin-" + "t" * 32
DEPOSIT = "/casinohub.v1.WalletService/Deposit"


@pytest.fixture
async def two_hubs(database_url: str, tmp_path: pathlib.Path) -> AsyncIterator[tuple[Client, HubProcess]]:
    here = await start_hub(database_url, {"fake": FakeStudio()}, admin_token=ADMIN_TOKEN)
    port = free_port()
    config = write_config(tmp_path / "hub.toml", port=port, database_url=database_url,
                          operator_id=new_operator_id(), studio_url="http://127.0.0.1:9", secret="unused")
    there = await HubProcess.start(config, port, tmp_path / "hub.log")
    try:
        await there.wait_serving()
        yield here, there
    finally:
        await there.stop()
        await here.channel.close()
        await here.server.stop(grace=1)


async def test_a_nonce_used_at_one_hub_process_is_refused_by_another(two_hubs: tuple[Client, HubProcess]) -> None:
    here, there = two_hubs
    player_id, _ = await here.new_player()
    key = await admin_service_pb2_grpc.AdminServiceStub(here.channel).CreateApiKey(
        apb.CreateApiKeyRequest(operator_id=here.operator_id, generate_signing_key=True), metadata=bearer(ADMIN_TOKEN))
    private_key = load_pem_private_key(key.private_key_pem.encode(), None)
    request = wpb.DepositRequest(player_id=player_id, amount={"currency": "USD", "amount_minor": 500},
                                 idempotency_key="replayed-deposit")
    credentials = signed(DEPOSIT, request.SerializeToString(), key.api_key.key_id, private_key)  # type: ignore[arg-type]
    await here.wallet.Deposit(request, metadata=credentials)
    assert await here.balance(player_id) == 500
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await wallet_service_pb2_grpc.WalletServiceStub(there.channel).Deposit(request, metadata=credentials)
    assert reason_of(err.value) == (grpc.StatusCode.UNAUTHENTICATED, "NONCE_REUSED")
    assert await here.balance(player_id) == 500
    refused = [r for r in there.log_records() if r.get("event") == "auth.refused"]
    assert [r.get("reason") for r in refused] == ["NONCE_REUSED"], there.log_tail()
