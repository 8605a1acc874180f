"""Security and tenancy: every RPC of every service, enumerated from the descriptors (a new RPC is covered
without editing this file), attacked with missing, expired, forged, under-scoped, badly signed, stale,
replayed, wrong-address and other-operator credentials. Each attack is refused with UNAUTHENTICATED or
PERMISSION_DENIED and an ErrorInfo reason, logged as auth.refused, and changes nothing in the database.

Operators, keys and allowlists are made through AdminService and tokens through AuthService.IssueToken,
as an operator would; tests/support.py's helpers only make the tokens the rest of the suite calls with.
"""

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, func, select

from casinohub.v1 import (
    admin_service_pb2 as apb,
    admin_service_pb2_grpc,
    auth_service_pb2 as tpb,
    auth_service_pb2_grpc,
    common_pb2,
    game_service_pb2 as gpb,
    options_pb2,
    player_service_pb2 as ppb,
    wallet_service_pb2 as wpb,
)
from hub.auth.credentials import Key, mint_token
from hub.auth.principal import OPERATOR_SCOPES
from hub.ledger.schema import accounts, api_keys, auth_nonces, hub_keys, metadata
from hub.operators import OWNED
from hub.server import SERVICE_DESCRIPTORS, create_server
from hub.servicers.authentication import method_rules
from tests.e2e.play_client import launch, opened_stream
from tests.errors import error_info, reason_of
from tests.fakes import FakeStudio
from tests.support import Client, bearer, hub_config, signed, start_hub, token_key

ADMIN_TOKEN = "admin-" + "x" * 40
ADMIN = bearer(ADMIN_TOKEN)
METHODS = [m for service in SERVICE_DESCRIPTORS for m in service.methods
           if not m.GetOptions().Extensions[options_pb2.credentials_in_request]]
ELSEWHERE = "203.0.113.0/24"  # TEST-NET-3: never the loopback address the tests call from


def path_of(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def scope_of(method: MethodDescriptor) -> str:
    return str(method.GetOptions().Extensions[options_pb2.required_scope])


@dataclass
class Tenant:
    """An operator made through AdminService, with a key that has a secret and a signing key."""

    operator_id: str
    key_id: str
    secret: str
    private_key: Ed25519PrivateKey
    token: str = ""
    known: dict[str, str] = field(default_factory=dict)  # its objects, by the request field naming them


@dataclass
class World:
    hub: Client
    a: Tenant
    b: Tenant


async def new_tenant(hub: Client) -> Tenant:
    admin = admin_service_pb2_grpc.AdminServiceStub(hub.channel)
    operator_id = f"op-{uuid.uuid4().hex[:10]}"
    await admin.CreateOperator(apb.CreateOperatorRequest(operator_id=operator_id, name="Casino"), metadata=ADMIN)
    created = await admin.CreateApiKey(apb.CreateApiKeyRequest(operator_id=operator_id, generate_signing_key=True),
                                       metadata=ADMIN)
    private = serialization.load_pem_private_key(created.private_key_pem.encode(), None)
    assert isinstance(private, Ed25519PrivateKey)
    tenant = Tenant(operator_id, created.api_key.key_id, created.secret, private)
    tenant.token = (await auth_service_pb2_grpc.AuthServiceStub(hub.channel).IssueToken(
        tpb.IssueTokenRequest(key_id=tenant.key_id, secret=tenant.secret))).access_token
    return tenant


def as_tenant(hub: Client, tenant: Tenant) -> Client:
    client = replace(hub, operator_id=tenant.operator_id)
    client.token = tenant.token
    return client


async def seed(hub: Client, tenant: Tenant) -> None:
    """Objects of every kind a request can name: player, session, withdrawal, bonus, round, game session."""
    client = as_tenant(hub, tenant)
    username = f"alice-{uuid.uuid4().hex[:6]}"
    await client.players.RegisterPlayer(ppb.RegisterPlayerRequest(username=username, password="correct-horse"),
                                        metadata=client.metadata)
    login = await client.players.Login(ppb.LoginRequest(username=username, password="correct-horse"),
                                       metadata=client.metadata)
    player, token = login.player_id, login.session_token
    await client.wallet.Deposit(wpb.DepositRequest(player_id=player, idempotency_key="seed",
                                                   amount=_money(50_000)), metadata=client.metadata)
    withdrawal = await client.wallet.Withdraw(wpb.WithdrawRequest(player_id=player, idempotency_key="w",
                                                                  amount=_money(100)), metadata=client.metadata)
    bonus = await client.wallet.GrantBonus(wpb.GrantBonusRequest(
        player_id=player, idempotency_key="b", amount=_money(100), wagering_requirement=_money(1_000),
        expires_at=_in(days=1)), metadata=client.metadata)
    stream = await opened_stream(client, token)
    stream.bet(100, "bet-1")
    round_id = (await stream.until("settled"))[-1].settled.round_id
    await stream.close()
    tenant.known = {
        "player_id": player, "session_token": token, "username": username, "password": "correct-horse",
        "withdrawal_id": withdrawal.withdrawal_id, "bonus_id": bonus.bonus.bonus_id, "round_id": round_id,
        "game_session_id": await launch(client, token), "game_id": "fake:coin-flip", "currency": "USD",
        "provider": "fake", "operator_id": tenant.operator_id, "key_id": tenant.key_id, "name": "Renamed",
    }


@pytest.fixture
async def world(database_url: str, studio: FakeStudio) -> AsyncIterator[World]:
    hub = await start_hub(database_url, {"fake": studio}, admin_token=ADMIN_TOKEN)
    a, b = await new_tenant(hub), await new_tenant(hub)
    await seed(hub, a)
    await seed(hub, b)
    hub.server.authenticator.cache_ttl_s = 0  # allowlist and revocation reach tokens at once, not in 5 s
    yield World(hub, a, b)
    await hub.channel.close()
    await hub.server.stop(grace=1)


def _money(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency="USD", amount_minor=amount)


def _in(**delta: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(**delta))
    return stamp


def valid(message: Descriptor, known: dict[str, str], oneof_member: str | None = None) -> Message:
    """A request a well-behaved client would send, naming the objects in known."""
    out = GetMessageClass(message)()
    for f in message.fields:
        if (f.containing_oneof is not None and f.name != (oneof_member or f.containing_oneof.fields[0].name)) \
                or f.is_repeated:
            continue
        if f.message_type is not None and f.message_type.full_name == "casinohub.v1.Money":
            getattr(out, f.name).CopyFrom(_money(100))
        elif f.message_type is not None and f.message_type.full_name == "google.protobuf.Timestamp":
            getattr(out, f.name).CopyFrom(_in(days=1))
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(out, f.name).CopyFrom(valid(f.message_type, known))
        elif f.type == FieldDescriptor.TYPE_STRING:
            setattr(out, f.name, f"k-{uuid.uuid4()}" if f.name == "idempotency_key" else known.get(f.name, ""))
        elif f.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
            setattr(out, f.name, 1)
    return out


def body_of(method: MethodDescriptor, known: dict[str, str]) -> bytes:
    return valid(method.input_type, known, "open" if method.client_streaming else None).SerializeToString()


async def invoke(channel: grpc.aio.Channel, method: MethodDescriptor, body: bytes,
                 metadata: tuple[tuple[str, str], ...]) -> tuple[grpc.StatusCode, list[bytes], Any]:
    raw = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
    try:
        if method.client_streaming:
            call = channel.stream_stream(path_of(method), **raw)(iter([body]), metadata=metadata, timeout=10)
            return grpc.StatusCode.OK, [r async for r in call], None
        reply = await channel.unary_unary(path_of(method), **raw)(body, metadata=metadata, timeout=10)
        return grpc.StatusCode.OK, [reply], None
    except grpc.aio.AioRpcError as err:
        return err.code(), [], err


def snapshot(database_url: str, operator_id: str | None = None) -> dict[str, Any]:
    """Every table's row count and every balance (only the operator's, if given), except the nonces a signed
    call spends by design."""
    engine = create_engine(database_url)

    def rows(table: Any) -> Any:
        query = select(func.count()).select_from(table)
        return query.where(table.c.operator_id == operator_id) if operator_id and "operator_id" in table.c else query

    with engine.connect() as conn:
        found: dict[str, Any] = {name: conn.execute(rows(table)).scalar_one()
                                 for name, table in metadata.tables.items() if table is not auth_nonces}
        found["balances"] = conn.execute(select(accounts.c.account_id, accounts.c.balance)
                                         .where(accounts.c.operator_id == (operator_id or accounts.c.operator_id))
                                         .order_by(accounts.c.account_id)).all()
        found["keys"] = conn.execute(select(api_keys.c.key_id, api_keys.c.revoked_at)
                                     .order_by(api_keys.c.key_id)).all()
    engine.dispose()
    return found


async def refused_everywhere(world: World, attack: str, credentials: Any,
                             expected: tuple[grpc.StatusCode, str] | None = None) -> None:
    """credentials(method, body) -> metadata. Every RPC refused with `expected` (or, if None, with the reason
    the RPC's scope demands), logged, and nothing in the database changed."""
    before = snapshot(world.hub.database_url)
    wrong = []
    for method in METHODS:
        body = body_of(method, world.a.known)
        want = expected or (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
        with structlog.testing.capture_logs() as logs:
            code, _, err = await invoke(world.hub.channel, method, body, credentials(method, body))
        got = (code, error_info(err).reason if err is not None else "")
        logged = [e for e in logs if e["event"] == "auth.refused" and e["reason"] == want[1]]
        if got != want or not logged or logged[0]["rpc"] != method.name:
            wrong.append((method.full_name, got, [e.get("event") for e in logs]))
    assert wrong == [], attack
    assert snapshot(world.hub.database_url) == before, attack


# -- tokens -------------------------------------------------------------------------------------------------

async def test_no_credentials_are_refused(world: World) -> None:
    await refused_everywhere(world, "none", lambda m, b: (),
                             (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING"))


async def test_an_expired_token_is_refused(world: World) -> None:
    key = Key(world.a.key_id, world.a.operator_id, None, None, frozenset(OPERATOR_SCOPES), "sandbox", False, ())
    expired = mint_token(token_key(world.hub.database_url), key, key.scopes, ttl_s=-60).token
    await refused_everywhere(world, "expired", lambda m, b: bearer(expired),
                             (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED"))


@pytest.mark.parametrize("forgery", ["other-key", "alg-none", "edited-claims", "garbage", "admin-lookalike"])
async def test_a_forged_token_is_refused(world: World, forgery: str) -> None:
    claims = jwt.decode(world.a.token, options={"verify_signature": False})
    if forgery == "other-key":  # well formed, signed with a key that is not the hub's
        token = jwt.encode(claims, "k" * 32, algorithm="HS256")
    elif forgery == "alg-none":
        token = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    elif forgery == "edited-claims":  # the real signature over A's claims, with B as the subject
        header, _, signature = world.a.token.split(".")
        edited = jwt.encode({**claims, "sub": world.b.operator_id}, "x" * 32, algorithm="HS256").split(".")[1]
        token = f"{header}.{edited}.{signature}"
    elif forgery == "garbage":
        token = "not.a.token"
    else:
        token = ADMIN_TOKEN[:-1] + "y"
    await refused_everywhere(world, forgery, lambda m, b: bearer(token),
                             (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"))


async def test_a_token_without_the_rpcs_scope_is_refused(world: World) -> None:
    auth = auth_service_pb2_grpc.AuthServiceStub(world.hub.channel)
    tokens = {}
    for scope in {scope_of(m) for m in METHODS}:
        wanted = [s for s in OPERATOR_SCOPES if s != scope]
        tokens[scope] = (await auth.IssueToken(tpb.IssueTokenRequest(
            key_id=world.a.key_id, secret=world.a.secret, scopes=wanted))).access_token
    await refused_everywhere(world, "scope", lambda m, b: bearer(tokens[scope_of(m)]))


async def test_the_administrator_reaches_no_operators_players_or_money(world: World) -> None:
    before = snapshot(world.hub.database_url)
    for method in METHODS:
        if scope_of(method) == "admin":
            continue
        code, _, err = await invoke(world.hub.channel, method, body_of(method, world.a.known), ADMIN)
        assert (code, error_info(err).reason) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING"), method.name
    assert snapshot(world.hub.database_url) == before


# -- request signatures -------------------------------------------------------------------------------------

async def test_a_valid_signature_is_accepted_for_a_unary_call_and_a_stream(world: World) -> None:
    client = as_tenant(world.hub, world.a)
    request = wpb.GetBalanceRequest(player_id=world.a.known["player_id"], currency="USD")
    method = "/casinohub.v1.WalletService/GetBalance"
    reply = await client.wallet.GetBalance(request, metadata=signed(
        method, request.SerializeToString(), world.a.key_id, world.a.private_key))
    assert reply.balance.amount_minor > 0
    play = next(m for m in METHODS if m.client_streaming)
    code, events, _ = await invoke(world.hub.channel, play, body_of(play, world.a.known),
                                   signed(path_of(play), None, world.a.key_id, world.a.private_key))
    assert code == grpc.StatusCode.OK and events


async def test_a_wrong_signature_is_refused(world: World) -> None:
    stranger = Ed25519PrivateKey.generate()

    def credentials(method: MethodDescriptor, body: bytes) -> tuple[tuple[str, str], ...]:
        return signed(path_of(method), None if method.client_streaming else body, world.a.key_id, stranger)

    await refused_everywhere(world, "stranger's key", credentials,
                             (grpc.StatusCode.UNAUTHENTICATED, "SIGNATURE_INVALID"))

    def other_body(method: MethodDescriptor, body: bytes) -> tuple[tuple[str, str], ...]:
        """A's own key, but over another method (a stream's) or another body (a unary call's)."""
        if method.client_streaming:
            return signed("/casinohub.v1.WalletService/GetBalance", None, world.a.key_id, world.a.private_key)
        return signed(path_of(method), body + b"\x08\x01", world.a.key_id, world.a.private_key)

    await refused_everywhere(world, "other body", other_body, (grpc.StatusCode.UNAUTHENTICATED, "SIGNATURE_INVALID"))


async def test_a_stale_or_future_timestamp_is_refused(world: World) -> None:
    window = world.hub.server.authenticator.window_s
    for skew in (-window - 30, window + 30):
        def credentials(method: MethodDescriptor, body: bytes, skew: int = skew) -> tuple[tuple[str, str], ...]:
            return signed(path_of(method), None if method.client_streaming else body, world.a.key_id,
                          world.a.private_key, timestamp=int(time.time()) + skew)

        await refused_everywhere(world, f"skew {skew}", credentials,
                                 (grpc.StatusCode.UNAUTHENTICATED, "TIMESTAMP_OUT_OF_WINDOW"))


async def test_a_replayed_nonce_is_refused_by_this_hub_and_by_another(world: World) -> None:
    """Each RPC, signed once and sent three times: to this hub, again, then to a second hub server on the
    same database (its own authenticator; only the database is shared). Only the first is accepted."""
    config = hub_config(world.hub.database_url, admin_token=ADMIN_TOKEN)
    second, port = await create_server(config, {"fake": FakeStudio()})
    await second.start()
    other = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        for method in METHODS:
            body = body_of(method, world.a.known)
            credentials = signed(path_of(method), None if method.client_streaming else body, world.a.key_id,
                                 world.a.private_key)
            code, _, err = await invoke(world.hub.channel, method, body, credentials)
            assert err is None or error_info(err).reason != "NONCE_REUSED", method.name
            before = snapshot(world.hub.database_url)
            for channel in (world.hub.channel, other):
                with structlog.testing.capture_logs() as logs:
                    code, _, err = await invoke(channel, method, body, credentials)
                assert (code, error_info(err).reason if err else "") == (
                    grpc.StatusCode.UNAUTHENTICATED, "NONCE_REUSED"), method.name
                assert any(e["event"] == "auth.refused" for e in logs)
            assert snapshot(world.hub.database_url) == before, method.name
    finally:
        await other.close()
        await second.stop(grace=1)


async def test_malformed_signature_headers_are_refused(world: World) -> None:
    def partial(method: MethodDescriptor, body: bytes) -> tuple[tuple[str, str], ...]:
        full = signed(path_of(method), body, world.a.key_id, world.a.private_key)
        return tuple((k, v) for k, v in full if k != "x-casinohub-nonce")

    await refused_everywhere(world, "no nonce", partial, (grpc.StatusCode.UNAUTHENTICATED, "SIGNATURE_INVALID"))


# -- IP allowlist ------------------------------------------------------------------------------------------

async def test_calls_from_outside_the_allowlist_are_refused(world: World) -> None:
    admin = admin_service_pb2_grpc.AdminServiceStub(world.hub.channel)
    await admin.SetIpAllowlist(apb.SetIpAllowlistRequest(operator_id=world.a.operator_id, cidrs=[ELSEWHERE]),
                               metadata=ADMIN)
    denied = (grpc.StatusCode.PERMISSION_DENIED, "IP_NOT_ALLOWED")
    operator_methods = [m for m in METHODS if scope_of(m) != "admin"]  # the administrator's are not A's
    before = snapshot(world.hub.database_url)
    for method in operator_methods:
        body = body_of(method, world.a.known)
        for credentials in (bearer(world.a.token), signed(path_of(method), None if method.client_streaming else body,
                                                          world.a.key_id, world.a.private_key)):
            code, _, err = await invoke(world.hub.channel, method, body, credentials)
            assert (code, error_info(err).reason if err else "") == denied, method.name
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth_service_pb2_grpc.AuthServiceStub(world.hub.channel).IssueToken(
            tpb.IssueTokenRequest(key_id=world.a.key_id, secret=world.a.secret))
    assert reason_of(err.value) == denied
    assert snapshot(world.hub.database_url) == before
    # The loopback network is allowed: the same token works again.
    await admin.SetIpAllowlist(apb.SetIpAllowlistRequest(operator_id=world.a.operator_id,
                                                         cidrs=[ELSEWHERE, "127.0.0.0/8", "::1"]), metadata=ADMIN)
    client = as_tenant(world.hub, world.a)
    assert await client.balance(world.a.known["player_id"]) > 0


# -- tenancy ---------------------------------------------------------------------------------------------

async def test_operator_b_cannot_reach_operator_as_objects(world: World) -> None:
    """B's valid token on requests naming all of A's objects at once: refused, each with a reason (those naming
    an object by id: PERMISSION_DENIED / OBJECT_OF_ANOTHER_OPERATOR; those carrying A's session token, or a
    refresh token that is not B's: UNAUTHENTICATED / INVALID_SESSION), or, for a listing, answered with B's own data only; A's rows unchanged.
    An x-operator-id header naming A is PERMISSION_DENIED / OPERATOR_MISMATCH."""
    before = snapshot(world.hub.database_url, world.a.operator_id)
    a_ids = {v for k, v in world.a.known.items() if k.endswith("_id") and k != "game_id" or k == "session_token"}
    for method in METHODS:
        body = body_of(method, world.a.known)
        code, replies, err = await invoke(world.hub.channel, method, body, bearer(world.b.token))
        if err is not None:
            got = (code, error_info(err).reason)
            if scope_of(method) in ("admin", "studio:wallet"):
                assert got == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING"), method.name
            elif {"session_token", "refresh_token"} & set(method.input_type.fields_by_name) or method.client_streaming:
                assert got == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_SESSION"), method.name
            else:
                assert got == (grpc.StatusCode.PERMISSION_DENIED, "OBJECT_OF_ANOTHER_OPERATOR"), method.name
        else:
            assert not id_fields(method.input_type), (method.name, "answered a request naming A's objects")
        for reply in replies:
            assert not any(a_id.encode() in reply for a_id in a_ids if a_id), (method.name, "leaked an id of A")
        code, _, err = await invoke(world.hub.channel, method, body,
                                    (*bearer(world.b.token), ("x-operator-id", world.a.operator_id)))
        expected = ("SCOPE_MISSING" if scope_of(method) in ("admin", "studio:wallet") else "OPERATOR_MISMATCH")
        assert (code, error_info(err).reason if err else "") == (grpc.StatusCode.PERMISSION_DENIED, expected)
    # B registering and logging in its own player with A's username is B's business; nothing of A changed.
    assert snapshot(world.hub.database_url, world.a.operator_id) == before


# Request fields ending in _id that name no operator's object: the catalog's games are every operator's.
NOT_OBJECTS = {"game_id"}


def id_fields(message: Descriptor, seen: tuple[str, ...] = ()) -> set[str]:
    """The names of the fields, nested ones included, that name an operator's object by id."""
    found = set()
    for f in message.fields:
        if f.message_type is not None and f.message_type.full_name not in seen:
            found |= id_fields(f.message_type, (*seen, message.full_name))
        elif f.name.endswith("_id") and f.name not in NOT_OBJECTS:
            found.add(f.name)
    return found


def with_id(message: Message, name: str, value: str) -> Message:
    """The message with every set field called `name`, nested ones included, naming value instead."""
    for f, current in message.ListFields():
        if f.message_type is not None and not f.is_repeated:
            with_id(current, name, value)
        elif f.name == name:
            setattr(message, name, value)
    return message


def play_bodies(known: dict[str, str], name: str, value: str) -> list[bytes]:
    """A Play stream naming value: in its open (game_session_id) or, on B's own open stream, in an action."""
    play = next(m for m in METHODS if m.client_streaming).input_type
    opening = valid(play, known, "open")
    if name == "game_session_id":
        return [with_id(opening, name, value).SerializeToString()]
    act = valid(play, known, "act")
    act.act.action = gpb.ACTION_KIND_HIT  # type: ignore[attr-defined]  # a PlayRequest
    return [opening.SerializeToString(), with_id(act, name, value).SerializeToString()]


async def call(world: World, method: MethodDescriptor, bodies: list[bytes]) -> tuple[str, str, str, str]:
    """B's call: (status, reason, ErrorInfo "field", message) of its refusal, or of the error event a Play
    stream answers an action with; ("OK", "", "", "") if neither."""
    raw = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
    metadata = bearer(world.b.token)
    try:
        if method.client_streaming:
            stream = world.hub.channel.stream_stream(path_of(method), **raw)
            for reply in [r async for r in stream(iter(bodies), metadata=metadata, timeout=10)]:
                event = gpb.PlayResponse.FromString(reply)
                if event.WhichOneof("event") == "error":
                    detail = event.error.error
                    code = next(c for c in grpc.StatusCode if c.value[0] == detail.code)
                    return code.name, detail.reason, "", detail.message
        else:
            await world.hub.channel.unary_unary(path_of(method), **raw)(bodies[0], metadata=metadata, timeout=10)
        return "OK", "", "", ""
    except grpc.aio.AioRpcError as err:
        info = error_info(err)
        return err.code().name, info.reason, info.metadata.get("field", ""), err.details() or ""


async def test_every_id_of_operator_a_named_by_operator_b_is_refused_as_another_operators(world: World) -> None:
    """Each RPC that takes an object's id (found in the descriptors: a new one is covered without editing this
    test), called by B with B's own objects but for one id of A's: PERMISSION_DENIED /
    OBJECT_OF_ANOTHER_OPERATOR, logged with both operators and the RPC, the id quoted by a short prefix only;
    with an id that exists nowhere: NOT_FOUND. Nothing of A or B changes."""
    cases = [(m, name) for m in METHODS if scope_of(m) not in ("admin", "studio:wallet")
             for name in sorted(id_fields(m.input_type))]
    assert len(cases) >= 18 and {n for _, n in cases} == set(OWNED)  # each kind of id is one the hub can place
    before = snapshot(world.hub.database_url)
    wrong = []
    for method, name in cases:
        for value, want in ((world.a.known[name], "OBJECT_OF_ANOTHER_OPERATOR"), (str(uuid.uuid4()), "NOT_FOUND")):
            bodies = (play_bodies(world.b.known, name, value) if method.client_streaming
                      else [with_id(valid(method.input_type, world.b.known), name, value).SerializeToString()])
            with structlog.testing.capture_logs() as logs:
                code, reason, field, message = await call(world, method, bodies)
            if want == "NOT_FOUND":
                if code != "NOT_FOUND" or not reason.endswith("_NOT_FOUND"):
                    wrong.append((method.name, name, "unknown id", code, reason))
                continue
            logged = [e for e in logs if e["event"] == "rpc.object_of_another_operator"]
            if (code, reason) != ("PERMISSION_DENIED", want) or not logged or field not in ("", name):
                wrong.append((method.name, name, code, reason, [e["event"] for e in logs]))
                continue
            entry = logged[0]
            assert (entry["operator"], entry["owner"], entry["rpc"], entry["field"]) == (
                world.b.operator_id, world.a.operator_id, method.name, name)
            assert value not in entry["object_id"] and value[:8] in entry["object_id"] and value not in message
    assert wrong == []
    after = snapshot(world.hub.database_url)
    # B's own Play streams record their openings and refused actions in B's own game session; nothing else.
    assert after.pop("play_events") > before.pop("play_events")
    assert after == before


async def test_an_idempotency_key_is_per_operator(world: World) -> None:
    """Keys are per operator: B using the key A used is B's own key, a new deposit for B, not A's reply."""
    a, b = as_tenant(world.hub, world.a), as_tenant(world.hub, world.b)
    a_player, b_player = world.a.known["player_id"], world.b.known["player_id"]
    a_before, b_before = await a.balance(a_player), await b.balance(b_player)
    first = await a.wallet.Deposit(wpb.DepositRequest(player_id=a_player, idempotency_key="same-key",
                                                      amount=_money(700)), metadata=a.metadata)
    second = await b.wallet.Deposit(wpb.DepositRequest(player_id=b_player, idempotency_key="same-key",
                                                       amount=_money(300)), metadata=b.metadata)
    assert second.transaction_id != first.transaction_id
    assert (await a.balance(a_player), await b.balance(b_player)) == (a_before + 700, b_before + 300)


async def test_listing_the_transactions_of_an_unknown_round_is_refused(world: World) -> None:
    b = as_tenant(world.hub, world.b)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.wallet.ListTransactions(wpb.ListTransactionsRequest(round_id=str(uuid.uuid4())), metadata=b.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "ROUND_NOT_FOUND")
    page = await b.wallet.ListTransactions(wpb.ListTransactionsRequest(round_id=world.b.known["round_id"]),
                                           metadata=b.metadata)
    assert page.transactions and {t.round_id for t in page.transactions} == {world.b.known["round_id"]}


# -- AuthService and AdminService ------------------------------------------------------------------------

async def test_issue_token_refuses_bad_client_credentials(world: World) -> None:
    auth = auth_service_pb2_grpc.AuthServiceStub(world.hub.channel)

    async def refusal(**fields: Any) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await auth.IssueToken(tpb.IssueTokenRequest(**fields))
        return reason_of(err.value)

    bad = (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CLIENT_CREDENTIALS")
    assert await refusal(key_id=world.a.key_id, secret=world.b.secret) == bad
    assert await refusal(key_id="ck_0000000000000000", secret=world.a.secret) == bad
    assert await refusal(key_id=world.a.key_id.upper(), secret=world.a.secret) == bad
    assert await refusal(key_id=world.a.key_id, secret=world.a.secret, scopes=["admin"]) == (
        grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
    admin = admin_service_pb2_grpc.AdminServiceStub(world.hub.channel)
    await admin.RevokeApiKey(apb.RevokeApiKeyRequest(key_id=world.a.key_id), metadata=ADMIN)
    revoked = (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED")
    assert await refusal(key_id=world.a.key_id, secret=world.a.secret) == revoked
    with pytest.raises(grpc.aio.AioRpcError) as err:  # its token issued before, too
        await as_tenant(world.hub, world.a).balance(world.a.known["player_id"])
    assert reason_of(err.value) == revoked


async def test_admin_manages_operators_and_keys_and_secrets_are_stored_hashed(world: World) -> None:
    admin = admin_service_pb2_grpc.AdminServiceStub(world.hub.channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.CreateOperator(apb.CreateOperatorRequest(operator_id=world.a.operator_id), metadata=ADMIN)
    assert reason_of(err.value) == (grpc.StatusCode.ALREADY_EXISTS, "OPERATOR_EXISTS")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.GetOperator(apb.GetOperatorRequest(operator_id=world.a.operator_id.upper()), metadata=ADMIN)
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "OPERATOR_NOT_FOUND")
    production = await admin.SetOperatorEnvironment(apb.SetOperatorEnvironmentRequest(
        operator_id=world.b.operator_id, environment=apb.ENVIRONMENT_PRODUCTION), metadata=ADMIN)
    assert production.operator.environment == apb.ENVIRONMENT_PRODUCTION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.SetIpAllowlist(apb.SetIpAllowlistRequest(operator_id=world.a.operator_id, cidrs=["10.0.0.0/33"]),
                                   metadata=ADMIN)
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    seen, token = [], ""
    while True:
        page = await admin.ListOperators(apb.ListOperatorsRequest(page_size=1, page_token=token), metadata=ADMIN)
        seen += [o.operator_id for o in page.operators]
        if not (token := page.next_page_token):
            break
    assert {world.a.operator_id, world.b.operator_id, world.hub.operator_id} <= set(seen) and seen == sorted(seen)
    keys = (await admin.ListApiKeys(apb.ListApiKeysRequest(operator_id=world.a.operator_id), metadata=ADMIN)).api_keys
    assert [k.key_id for k in keys] == [world.a.key_id] and keys[0].has_secret and keys[0].public_key
    assert world.a.secret not in str(keys)
    engine = create_engine(world.hub.database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(api_keys.c.secret_hash, api_keys.c.public_key)
                              .where(api_keys.c.key_id == world.a.key_id)).one()
        everything = " ".join(str(row) for table in (api_keys, hub_keys)
                              for row in conn.execute(select(table)).all())
    engine.dispose()
    assert stored.secret_hash.startswith("$argon2") and world.a.secret not in everything
    private_raw = world.a.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                    serialization.NoEncryption()).hex()
    assert private_raw not in everything  # only the public half is kept


async def test_health_and_reflection_stay_open(world: World) -> None:
    health = health_pb2_grpc.HealthStub(world.hub.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="casinohub.v1.AdminService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_every_rpc_declares_who_may_call_it() -> None:
    rules = method_rules(SERVICE_DESCRIPTORS)
    assert len(rules) == sum(len(s.methods) for s in SERVICE_DESCRIPTORS)
    assert {m.name for m in METHODS} >= {"Deposit", "Play", "CreateApiKey", "GetLedgerTotals", "SetOperatorLimits",
                                        "GetOperatorLimits"}  # so every attack above reaches them
    with pytest.raises(ValueError, match="must declare exactly one"):  # an RPC without a scope stops the hub
        method_rules([health_pb2.DESCRIPTOR.services_by_name["Health"]])


async def test_expired_nonces_are_swept_and_fresh_ones_kept(world: World) -> None:
    client = as_tenant(world.hub, world.a)
    request = wpb.GetBalanceRequest(player_id=world.a.known["player_id"], currency="USD")
    credentials = signed("/casinohub.v1.WalletService/GetBalance", request.SerializeToString(), world.a.key_id,
                         world.a.private_key)
    await client.wallet.GetBalance(request, metadata=credentials)
    engine = create_engine(world.hub.database_url)
    with engine.begin() as conn:
        conn.execute(auth_nonces.insert().values(key_id=world.a.key_id, nonce="old-" + "n" * 20,
                                                 operator_id=world.a.operator_id,
                                                 expires_at=datetime(2020, 1, 1)))
    assert await world.hub.server.authenticator.sweep_nonces() >= 1
    with engine.connect() as conn:
        left = {row.nonce for row in conn.execute(select(auth_nonces.c.nonce)
                                                  .where(auth_nonces.c.key_id == world.a.key_id))}
    engine.dispose()
    assert left == {dict(credentials)["x-casinohub-nonce"]}  # the fresh one still refuses a replay
