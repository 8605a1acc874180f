"""Sandbox and production (hub/environments.py, hub.auth.credentials): a production hub refuses mock studios
at start-up, sandbox keys and the sandbox operator on every path in (access token, IssueToken, request
signature), each with its own reason, logged; a sandbox hub refuses production keys; `hub dev` stays sandbox."""

import asyncio
import dataclasses
import pathlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, select
from structlog.testing import capture_logs

from adapters import registry
from casinohub.v1 import (
    admin_service_pb2 as apb,
    admin_service_pb2_grpc,
    auth_service_pb2 as tpb,
    auth_service_pb2_grpc,
    game_service_pb2 as gpb,
)
from hub import config as hub_config
from hub.auth.credentials import Key as CredentialKey, mint_token
from hub.auth.principal import OPERATOR_SCOPES
from hub.config import DEFAULT_PROVIDERS, Config, ProviderSettings, RefusedConfiguration
from hub.ledger.schema import operators
from hub.server import create_server
from tests.errors import error_info, reason_of
from tests.fakes import FakeStudio
from tests.support import Client, bearer, signed, start_hub, token_key

ADMIN_TOKEN = "admin-" + "e" * 40
ADMIN = bearer(ADMIN_TOKEN)
SANDBOX, PRODUCTION = apb.ENVIRONMENT_SANDBOX, apb.ENVIRONMENT_PRODUCTION


@dataclasses.dataclass
class Key:
    operator_id: str
    key_id: str
    secret: str
    private_key: Ed25519PrivateKey


async def new_key(hub: Client, environment: "apb.Environment.ValueType", operator_id: str = "") -> Key:
    """A key of an operator made through AdminService in the given environment (the key takes the operator's)."""
    admin = admin_service_pb2_grpc.AdminServiceStub(hub.channel)
    operator_id = operator_id or f"op-{uuid.uuid4().hex[:10]}"
    await admin.CreateOperator(apb.CreateOperatorRequest(operator_id=operator_id, environment=environment),
                               metadata=ADMIN)
    created = await admin.CreateApiKey(apb.CreateApiKeyRequest(operator_id=operator_id, generate_signing_key=True),
                                       metadata=ADMIN)
    private = serialization.load_pem_private_key(created.private_key_pem.encode(), None)
    assert isinstance(private, Ed25519PrivateKey)
    assert created.api_key.environment == environment
    return Key(operator_id, created.api_key.key_id, created.secret, private)


async def attempts(hub: Client, key: Key) -> list[tuple[grpc.StatusCode, str, str]]:
    """The key used every way in: IssueToken, then a signed call (a token could not be had)."""
    outcomes = []
    try:
        await auth_service_pb2_grpc.AuthServiceStub(hub.channel).IssueToken(
            tpb.IssueTokenRequest(key_id=key.key_id, secret=key.secret))
        outcomes.append((grpc.StatusCode.OK, "", "token"))
    except grpc.aio.AioRpcError as err:
        outcomes.append((*reason_of(err), "token"))
    request = gpb.ListGamesRequest()
    credentials = signed("/casinohub.v1.GameService/ListGames", request.SerializeToString(), key.key_id,
                         key.private_key)
    try:
        await hub.games.ListGames(request, metadata=credentials)
        outcomes.append((grpc.StatusCode.OK, "", "signature"))
    except grpc.aio.AioRpcError as err:
        outcomes.append((*reason_of(err), "signature"))
    return outcomes


@pytest.fixture
async def production_hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    hub = await start_hub(database_url, {"fake": studio}, environment="production", admin_token=ADMIN_TOKEN)
    hub.server.authenticator.cache_ttl_s = 0
    yield hub
    await hub.channel.close()
    await hub.server.stop(grace=1)


@pytest.fixture
async def sandbox_hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    hub = await start_hub(database_url, {"fake": studio}, admin_token=ADMIN_TOKEN)
    yield hub
    await hub.channel.close()
    await hub.server.stop(grace=1)


async def test_a_production_hub_serves_production_keys_and_refuses_sandbox_ones(production_hub: Client) -> None:
    hub = production_hub
    production = await new_key(hub, PRODUCTION)
    assert await attempts(hub, production) == [(grpc.StatusCode.OK, "", "token"), (grpc.StatusCode.OK, "", "signature")]
    sandbox = await new_key(hub, SANDBOX)
    with capture_logs() as logs:
        outcomes = await attempts(hub, sandbox)
    mismatch = (grpc.StatusCode.PERMISSION_DENIED, "ENVIRONMENT_MISMATCH")
    assert outcomes == [(*mismatch, "token"), (*mismatch, "signature")]
    refusals = [r["reason"] for r in logs if r["event"] in ("auth.refused", "rpc.refused")]
    assert refusals == ["ENVIRONMENT_MISMATCH", "ENVIRONMENT_MISMATCH"]
    # A token of the sandbox key (as if issued before the hub went production) is refused as well.
    token = mint_token(await asyncio.to_thread(token_key, hub.database_url), CredentialKey(
        sandbox.key_id, sandbox.operator_id, None, None, frozenset(OPERATOR_SCOPES), "sandbox", False, ()),
        frozenset(OPERATOR_SCOPES), 600).token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.games.ListGames(gpb.ListGamesRequest(), metadata=bearer(token))
    assert reason_of(err.value) == mismatch
    assert dict(error_info(err.value).metadata) == {"retryable": "false", "state": "NOT_APPLIED",
                                                    "key_environment": "sandbox", "hub_environment": "production"}
    # Moving an operator to production does not move its keys: a key keeps the environment it was made in.
    admin = admin_service_pb2_grpc.AdminServiceStub(hub.channel)
    await admin.SetOperatorEnvironment(apb.SetOperatorEnvironmentRequest(
        operator_id=sandbox.operator_id, environment=PRODUCTION), metadata=ADMIN)
    assert [o[:2] for o in await attempts(hub, sandbox)] == [mismatch, mismatch]


async def test_a_production_hub_refuses_the_sandbox_operator(production_hub: Client) -> None:
    hub = production_hub
    sandbox_operator = hub.server.hub.config.sandbox_operator_id
    engine = create_engine(hub.database_url)
    with engine.connect() as conn:  # a production hub does not create it ...
        assert conn.execute(select(operators).where(operators.c.operator_id == sandbox_operator)).first() is None
    engine.dispose()
    key = await new_key(hub, PRODUCTION, operator_id=sandbox_operator)  # ... and refuses even a production key of it
    with capture_logs() as logs:
        outcomes = await attempts(hub, key)
    refused = (grpc.StatusCode.PERMISSION_DENIED, "SANDBOX_OPERATOR_REFUSED")
    assert outcomes == [(*refused, "token"), (*refused, "signature")]
    assert [r["reason"] for r in logs if r["event"] in ("auth.refused", "rpc.refused")] == [
        "SANDBOX_OPERATOR_REFUSED"] * 2


async def test_a_sandbox_hub_refuses_production_keys(sandbox_hub: Client) -> None:
    hub = sandbox_hub
    assert await attempts(hub, await new_key(hub, SANDBOX)) == [
        (grpc.StatusCode.OK, "", "token"), (grpc.StatusCode.OK, "", "signature")]
    mismatch = (grpc.StatusCode.PERMISSION_DENIED, "ENVIRONMENT_MISMATCH")
    assert await attempts(hub, await new_key(hub, PRODUCTION)) == [(*mismatch, "token"), (*mismatch, "signature")]


class RealStudioAdapter(FakeStudio):
    """An adapter kind that declares nothing: a real studio unless its config says sandbox_only."""


class MockStudioAdapter(FakeStudio):
    sandbox_only = True


@pytest.fixture
def adapter_kinds() -> object:
    registry.register("test-real", lambda _config: RealStudioAdapter())
    registry.register("test-mock", lambda _config: FakeStudio(), sandbox_only=True)  # declared at registration
    yield
    registry.unregister("test-real")
    registry.unregister("test-mock")


def provider(adapter: str, **more: object) -> ProviderSettings:
    return ProviderSettings(name=adapter.removeprefix("test-"), adapter=adapter, url="http://127.0.0.1:9",
                            secret="s", **more)  # type: ignore[arg-type]


@pytest.mark.usefixtures("adapter_kinds")
@pytest.mark.parametrize("providers, adapters, refused", [
    # The first sandbox-only default by name (instanthouse, then livehouse).
    (tuple(ProviderSettings(**p) for p in DEFAULT_PROVIDERS), None, "instanthouse"),  # type: ignore[arg-type]
    ((provider("test-real"), provider("test-mock")), None, "mock"),
    ((provider("test-real", sandbox_only=True),), None, "real"),
    ((), {"mock": MockStudioAdapter()}, "mock"),
    ((provider("test-real"),), None, None),
    ((), {"fake": FakeStudio()}, None),
])
async def test_a_production_hub_refuses_to_start_with_a_sandbox_only_studio(
        tmp_path: pathlib.Path, providers: tuple[ProviderSettings, ...], adapters: dict[str, object] | None,
        refused: str | None) -> None:
    config = Config(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path}/hub.db", environment="production",
                    providers=providers)
    if refused is None:
        server, _ = await create_server(config, adapters)  # type: ignore[arg-type]
        await server.stop(grace=0)
        return
    with capture_logs() as logs, pytest.raises(RefusedConfiguration, match=f"provider '{refused}' is a sandbox-only"):
        await create_server(config, adapters)  # type: ignore[arg-type]
    assert [(r["event"], r["reason"], r["provider"]) for r in logs if r["event"] == "hub.refused"] == [
        ("hub.refused", "SANDBOX_STUDIO_IN_PRODUCTION", refused)]
    assert not (tmp_path / "hub.db").exists()  # refused before any work: not even a migration


def test_environment_is_read_from_the_file_and_env_and_mode_is_its_old_name(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\nenvironment = "production"\n')
    assert hub_config.load(path, env={}).environment == "production"
    assert hub_config.load(path, env={"HUB_ENVIRONMENT": "sandbox"}).environment == "sandbox"
    path.write_text('[hub]\nmode = "production"\n')
    assert hub_config.load(path, env={}).environment == "production"
    assert hub_config.load(None, env={"HUB_MODE": "production"}).environment == "production"
    assert hub_config.load(None, env={}).environment == "sandbox"
    with pytest.raises(ValueError, match="sandbox or production"):
        hub_config.load(None, env={"HUB_ENVIRONMENT": "staging"})


@pytest.mark.parametrize("command, message", [
    ("dev", "`hub dev` runs the sandbox"),
    ("serve", "provider 'instanthouse' is a sandbox-only"),
])
async def test_hub_dev_stays_sandbox_and_serve_refuses_mock_studios_in_production(
        tmp_path: pathlib.Path, command: str, message: str) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(f'[hub]\nenvironment = "production"\nlisten = "127.0.0.1:0"\n'
                    f'database_url = "sqlite:///{tmp_path}/hub.db"\n')
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "hub.cli", "--config", str(path), command, "--workers", "1"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
