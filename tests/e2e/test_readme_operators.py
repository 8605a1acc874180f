"""The README's "Authentication" blocks, run as printed against a live hub on both databases: the grpcurl
block that creates an operator and a key and calls the hub with it, and the Python snippets (an access
token, then a signed request) with the generated stubs. Only the placeholders a reader fills in are
replaced, so a README that drifts from the hub fails here."""

import ast
import asyncio
import os
import pathlib
import re
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator

import pytest

from casinohub.v1 import admin_service_pb2 as apb, admin_service_pb2_grpc
from tests.fakes import FakeStudio
from tests.support import Client, bearer, start_hub

ROOT = pathlib.Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "readme-admin-" + "t" * 32


def block(name: str, language: str) -> list[str]:
    found = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", (ROOT / "README.md").read_text(), re.S)
    assert found, f"README block {name} not found"
    return re.findall(rf"```{language}\n(.*?)```", found.group(1), re.S)


@pytest.fixture
async def hub(database_url: str) -> AsyncIterator[Client]:
    client = await start_hub(database_url, {"fake": FakeStudio()}, admin_token=ADMIN_TOKEN)
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)


async def test_the_operator_setup_block_creates_an_operator_and_a_key_that_calls_the_hub(hub: Client) -> None:
    script, = block("operator-setup", "bash")
    operator = f"acme-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "HUB": f"127.0.0.1:{hub.port}", "ADMIN_TOKEN": ADMIN_TOKEN, "OPERATOR": operator,
           "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = await asyncio.create_subprocess_exec(  # async: the hub serves from this event loop
        "bash", "-euo", "pipefail", "-c", script, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode() + out.decode()
    assert '"game_id": "fake:coin-flip"' in out.decode(), out.decode()  # ListGames with the new key's token
    admin = admin_service_pb2_grpc.AdminServiceStub(hub.channel)
    made = await admin.GetOperator(apb.GetOperatorRequest(operator_id=operator), metadata=bearer(ADMIN_TOKEN))
    assert list(made.operator.ip_allowlist) == ["127.0.0.1/32", "10.0.0.0/8"]
    keys = await admin.ListApiKeys(apb.ListApiKeysRequest(operator_id=operator), metadata=bearer(ADMIN_TOKEN))
    assert len(keys.api_keys) == 1 and keys.api_keys[0].public_key  # with its signing key


async def test_the_python_snippets_read_a_balance_with_a_token_and_with_a_signature(hub: Client) -> None:
    token_snippet, signed_snippet = block("client-python", "python")
    player_id, _ = await hub.new_player(deposit=1_234)
    key = await admin_service_pb2_grpc.AdminServiceStub(hub.channel).CreateApiKey(
        apb.CreateApiKeyRequest(operator_id=hub.operator_id, generate_signing_key=True), metadata=bearer(ADMIN_TOKEN))

    def filled(source: str, placeholder: str, value: str) -> str:
        assert source.count(placeholder) == 1, placeholder
        return source.replace(placeholder, value)

    token_snippet = filled(token_snippet, '"127.0.0.1:50051"', repr(f"127.0.0.1:{hub.port}"))
    token_snippet = filled(token_snippet, 'KEY_ID, SECRET, PLAYER_ID = "ck_...", "cks_...", "..."',
                           f"KEY_ID, SECRET, PLAYER_ID = {key.api_key.key_id!r}, {key.secret!r}, {player_id!r}")
    signed_snippet = filled(signed_snippet, 'PRIVATE_KEY_PEM = "-----BEGIN PRIVATE KEY-----\\n..."',
                            f"PRIVATE_KEY_PEM = {key.private_key_pem!r}")
    for source in (token_snippet, token_snippet + textwrap.indent(signed_snippet, "    ")):  # on the same channel
        namespace: dict[str, object] = {}
        code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        await eval(code, namespace)  # noqa: S307 - the README's own snippet
        reply = namespace["reply"]
        assert (reply.balance.currency, reply.balance.amount_minor) == ("USD", 1_234)  # type: ignore[attr-defined]
    assert "signature" in namespace  # the second run signed its call
