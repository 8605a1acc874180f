"""Every RPC of every hub service, enumerated from the descriptors (a new RPC is covered without editing
this file), gets a valid request with one field made hostile: oversized or odd strings, case and
whitespace variants of ids that exist, boundary integers, unknown enum values, or bytes that do not
decode at all. Whatever comes back is never INTERNAL or UNKNOWN, every refusal carries ErrorInfo, a
refused call changes no balance, transaction or ledger total, and a variant of an id never reaches the
object the id names.
"""

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import create_engine, func, select

from casinohub.v1 import common_pb2, player_service_pb2 as ppb, wallet_service_pb2 as wpb
from hub.ledger.schema import accounts, ledger_transactions
from hub.server import SERVICE_DESCRIPTORS
from tests.e2e.play_client import launch, opened_stream
from tests.errors import error_info
from tests.support import Client

METHODS = [method for service in SERVICE_DESCRIPTORS for method in service.methods]
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# Fields whose value names an object that exists: a variant of it must never reach that object.
REFERENCES = {"player_id", "round_id", "bonus_id", "withdrawal_id", "game_session_id", "session_token",
              "game_id", "currency", "username", "password", "page_token", "provider"}
CREATES = {("RegisterPlayer", "username")}  # where a new value is a new object, not a reference
INT_BOUNDS = {
    FieldDescriptor.TYPE_INT64: [0, -1, 1, 2**63 - 1, -(2**63), 2**63 - 2, 2**31],
    FieldDescriptor.TYPE_UINT64: [0, 1, 2**64 - 1, 2**63, 2**63 - 1],
    FieldDescriptor.TYPE_INT32: [0, -1, 1, 2**31 - 1, -(2**31), 1001, 501],
    FieldDescriptor.TYPE_UINT32: [0, 1, 2**32 - 1],
}
FLOATS = [0.0, -0.0, -1.0, 0.5, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan]


@dataclass
class World:
    """Objects that exist, by the request field that names them, and what the variants must not reach."""

    known: dict[str, str]
    transaction_id: str  # the deposit made with known["idempotency_key"]
    ints: dict[str, int] = field(default_factory=lambda: {"rounds": 1, "page_size": 10})
    created: set[str] = field(default_factory=set)  # variants an earlier example made real (a username)


@pytest.fixture
async def world(hub: Client) -> World:
    username = f"Alice-{uuid.uuid4().hex[:6]}"
    await hub.players.RegisterPlayer(ppb.RegisterPlayerRequest(username=username, password="correct-horse"),
                                     metadata=hub.metadata)
    login = await hub.players.Login(ppb.LoginRequest(username=username, password="correct-horse"),
                                    metadata=hub.metadata)
    player, token = login.player_id, login.session_token
    key = f"Seed-Key-{uuid.uuid4().hex[:6]}"
    deposit = await hub.wallet.Deposit(wpb.DepositRequest(
        player_id=player, idempotency_key=key, amount=_money("USD", 50_000)), metadata=hub.metadata)
    withdrawal = await hub.wallet.Withdraw(wpb.WithdrawRequest(
        player_id=player, idempotency_key=f"w-{key}", amount=_money("USD", 100)), metadata=hub.metadata)
    bonus = await hub.wallet.GrantBonus(wpb.GrantBonusRequest(
        player_id=player, idempotency_key=f"b-{key}", amount=_money("USD", 100),
        wagering_requirement=_money("USD", 1_000), expires_at=_in(days=1)), metadata=hub.metadata)
    stream = await opened_stream(hub, token)
    stream.bet(100, f"bet-{key}")
    round_id = (await stream.until("settled"))[-1].settled.round_id
    await stream.close()
    for i in range(3):
        await hub.wallet.Deposit(wpb.DepositRequest(player_id=player, idempotency_key=f"more-{i}-{key}",
                                                    amount=_money("USD", 10)), metadata=hub.metadata)
    page = await hub.wallet.ListTransactions(wpb.ListTransactionsRequest(player_id=player, page_size=2),
                                             metadata=hub.metadata)
    return World(known={
        "player_id": player, "session_token": token, "username": username, "password": "correct-horse",
        "idempotency_key": key, "withdrawal_id": withdrawal.withdrawal_id, "bonus_id": bonus.bonus.bonus_id,
        "round_id": round_id, "game_session_id": await launch(hub, token), "game_id": "fake:coin-flip",
        "currency": "USD", "provider": "fake", "page_token": page.next_page_token,
    }, transaction_id=deposit.transaction_id)


def _money(currency: str, amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency=currency, amount_minor=amount)


def _in(**delta: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(**delta))
    return stamp


# -- requests -------------------------------------------------------------------------------------------

def leaf_paths(message: Descriptor, prefix: tuple[FieldDescriptor, ...] = ()) -> list[tuple[FieldDescriptor, ...]]:
    """Every scalar field reachable from a request type, as the chain of fields that leads to it."""
    paths = []
    for f in message.fields:
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if len(prefix) < 3:
                paths.extend(leaf_paths(f.message_type, (*prefix, f)))
        else:
            paths.append((*prefix, f))
    return paths


def valid(message: Descriptor, world: World, oneof_member: str | None, fresh: str) -> Message:
    """A request a well-behaved client would send; oneof_member picks which member of a oneof is set."""
    out = GetMessageClass(message)()
    for f in message.fields:
        if (f.containing_oneof is not None and f.name != oneof_member) or f.is_repeated:
            continue  # a repeated field (scopes, CIDRs) is valid empty
        if f.message_type is not None and f.message_type.full_name == "casinohub.v1.Money":
            getattr(out, f.name).CopyFrom(_money("USD", 100))
        elif f.message_type is not None and f.message_type.full_name == "google.protobuf.Timestamp":
            if f.name == "expires_at":
                getattr(out, f.name).CopyFrom(_in(days=1))
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(out, f.name).CopyFrom(valid(f.message_type, world, None, fresh))
        elif f.type == FieldDescriptor.TYPE_STRING:
            # Keys of new requests are new, or every example would replay the seed deposit.
            setattr(out, f.name, fresh if f.name == "idempotency_key" else world.known.get(f.name, ""))
        elif f.type in INT_BOUNDS:
            setattr(out, f.name, world.ints.get(f.name, 0))
    return out


def set_path(message: Message, path: tuple[FieldDescriptor, ...], value: Any) -> None:
    for f in path[:-1]:
        message = getattr(message, f.name)
    if path[-1].is_repeated:
        getattr(message, path[-1].name)[:] = [value]
    else:
        setattr(message, path[-1].name, value)


def variants(value: str) -> list[str]:
    """What a case-folding or space-padding database would take for value itself."""
    forms = [value.upper(), value.lower(), value.swapcase(), value + " ", " " + value, value + "\t",
             value + "\u00a0", value + "\u200b", value.title()]
    return [v for v in dict.fromkeys(forms) if v != value]


odd_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)
# Up to 512 KiB of UTF-8: beyond max_message_bytes (1 MiB) grpc itself refuses the call, without ErrorInfo
# (tests/e2e/test_transport.py).
oversized = st.sampled_from([129, 4096, 8192, 1 << 17]).flatmap(
    lambda n: st.sampled_from("xÉ😀\u0000").map(lambda c: c * n))


def hostile_value(f: FieldDescriptor, world: World) -> st.SearchStrategy[tuple[Any, bool]]:
    """(value, is a variant of an existing id)."""
    if f.type == FieldDescriptor.TYPE_STRING:
        plain = st.one_of(odd_text, oversized, st.just("")).map(lambda v: (v, False))
        if f.name in world.known:
            return st.one_of(st.sampled_from(variants(world.known[f.name])).map(lambda v: (v, True)), plain)
        return plain
    if f.type == FieldDescriptor.TYPE_ENUM:
        top = max(v.number for v in f.enum_type.values)
        return st.sampled_from([0, -1, top + 1, 2**31 - 1]).map(lambda v: (v, False))
    if f.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans().map(lambda v: (v, False))
    if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.sampled_from(FLOATS).map(lambda v: (v, False))
    return st.sampled_from(INT_BOUNDS[f.type]).map(lambda v: (v, False))


@dataclass
class Call:
    method: MethodDescriptor
    messages: list[bytes]
    variant_of: str | None = None  # the field whose value is a variant of an existing id
    value: object = None  # that variant

    def __repr__(self) -> str:
        shown = [GetMessageClass(self.method.input_type).FromString(m) if len(m) < 2000 else f"<{len(m)} bytes>"
                 for m in self.messages]
        return f"Call({self.method.name}, {shown!r}, variant_of={self.variant_of})"


@st.composite
def calls(draw: st.DrawFn, world: World) -> Call:
    method = draw(st.sampled_from(METHODS))
    fresh = f"k-{uuid.uuid4()}"
    if draw(st.booleans().map(lambda b: b and draw(st.integers(0, 9)) == 0)):
        return Call(method, [draw(st.binary(min_size=1, max_size=64))])  # bytes that may not decode at all
    path = draw(st.sampled_from(leaf_paths(method.input_type)))
    oneof = path[0].name if path[0].containing_oneof is not None else None
    request = valid(method.input_type, world, oneof, fresh)
    value, is_variant = draw(hostile_value(path[-1], world))
    set_path(request, path, value)
    messages = [request.SerializeToString()]
    if method.client_streaming and draw(st.booleans()):  # the hostile message on an opened stream
        messages.insert(0, valid(method.input_type, world, "open", fresh).SerializeToString())
    name = path[-1].name
    if is_variant and (method.name, name) in CREATES:
        world.created.add(value)
    elif is_variant and value not in world.created:
        return Call(method, messages, name, value)
    return Call(method, messages)


# -- the property ---------------------------------------------------------------------------------------

@pytest.fixture
def engine(hub: Client) -> Iterator[Any]:
    engine = create_engine(hub.database_url)
    yield engine
    engine.dispose()


def snapshot(engine: Any, operator_id: str) -> tuple[Any, ...]:
    with engine.connect() as conn:
        balances = conn.execute(select(accounts.c.kind, accounts.c.owner, accounts.c.currency, accounts.c.balance)
                                .where(accounts.c.operator_id == operator_id).order_by(accounts.c.account_id)).all()
        count = conn.execute(select(func.count()).select_from(ledger_transactions)
                             .where(ledger_transactions.c.operator_id == operator_id)).scalar_one()
    return tuple(balances), count


async def invoke(hub: Client, call: Call) -> tuple[grpc.StatusCode, list[bytes], grpc.aio.AioRpcError | None]:
    path = f"/{call.method.containing_service.full_name}/{call.method.name}"
    raw = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
    try:
        if call.method.client_streaming:
            stream = hub.channel.stream_stream(path, **raw)(iter(call.messages), metadata=hub.metadata, timeout=10)
            return grpc.StatusCode.OK, [r async for r in stream], None
        reply = await hub.channel.unary_unary(path, **raw)(call.messages[0], metadata=hub.metadata, timeout=10)
        return grpc.StatusCode.OK, [reply], None
    except grpc.aio.AioRpcError as err:
        return err.code(), [], err


@pytest.mark.timeout(300)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
async def test_no_hostile_request_breaks_the_hub_or_moves_money(
        hub: Client, world: World, engine: Any, data: st.DataObject) -> None:
    call = data.draw(calls(world))
    before = snapshot(engine, hub.operator_id)
    code, replies, err = await invoke(hub, call)
    assert code not in NEVER, (call.method.full_name, err and err.details())
    if err is not None:
        assert error_info(err).reason  # every refusal says why, in ErrorInfo
        assert snapshot(engine, hub.operator_id) == before, call.method.full_name
    output = GetMessageClass(call.method.output_type)
    events = [output.FromString(r) for r in replies]
    if call.method.client_streaming:  # Play refuses a bet inside the stream: the same rules hold there
        kinds = [event.WhichOneof("event") for event in events]
        assert all(e.error.error.reason for e in events if e.WhichOneof("event") == "error")
        if "bet_accepted" not in kinds:
            assert snapshot(engine, hub.operator_id) == before, kinds
    if call.variant_of == "idempotency_key":  # a new key: never the seed deposit's stored answer
        assert all(getattr(e, "transaction_id", "") != world.transaction_id for e in events)
    elif call.variant_of is not None:
        reached_object(call, events)


def reached_object(call: Call, replies: list[Message]) -> None:
    """A variant of an existing id named nothing: the call is refused, or (a list filter) finds nothing."""
    name = f"{call.method.name} took a variant of {call.variant_of} for the original"
    if call.method.client_streaming:  # only the stream's valid Open may attach; a variant bet is refused
        events = [r.WhichOneof("event") for r in replies]  # type: ignore[attr-defined]
        assert events.count("session_opened") <= 1 and "bet_accepted" not in events, name
        return
    assert call.method.name.startswith("List") or not replies, name
    for reply in replies:
        for f, value in reply.ListFields():
            if f.is_repeated and f.type == FieldDescriptor.TYPE_MESSAGE:
                assert len(value) == 0, name


async def test_a_replayed_key_variant_is_a_new_request(hub: Client, world: World) -> None:
    """The seed deposit's key, case-changed or padded, is a different key: a second deposit."""
    balance = await hub.balance(world.known["player_id"])
    for key in variants(world.known["idempotency_key"]):
        reply = await hub.wallet.Deposit(wpb.DepositRequest(
            player_id=world.known["player_id"], idempotency_key=key, amount=_money("USD", 50_000)),
            metadata=hub.metadata)
        balance += 50_000
        assert (reply.transaction_id != world.transaction_id, reply.balance.amount_minor) == (True, balance), key


def test_every_rpc_is_reachable_by_the_generator() -> None:
    assert {m.name for m in METHODS} >= {"Deposit", "Play", "ListGames", "RegisterPlayer", "GetLedgerTotals"}
    assert all(leaf_paths(m.input_type) for m in METHODS if m.input_type.fields)
