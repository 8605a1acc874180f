"""The contract declares a maximum on every string a client can send, and the edge enforces it."""

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from sqlalchemy import String

from casinohub.v1 import common_pb2, game_service_pb2 as gpb, options_pb2, wallet_service_pb2 as wpb
from hub.errors import DomainError, Reason
from hub.ledger.schema import metadata
from hub.provider_wallet import bet_and_win_win_key, call_key, transaction_key
from hub.server import SERVICE_DESCRIPTORS
from hub.servicers.edge import UNDECODABLE, check


def request_string_fields() -> dict[str, FieldDescriptor]:
    """Every string field reachable from any request of any hub RPC, by full name."""
    found: dict[str, FieldDescriptor] = {}

    def walk(message: Descriptor) -> None:
        for field in message.fields:
            if field.type == FieldDescriptor.TYPE_STRING:
                found[field.full_name] = field
            elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in found:
                found[field.message_type.full_name] = field
                walk(field.message_type)

    for service in SERVICE_DESCRIPTORS:
        for method in service.methods:
            walk(method.input_type)
    return {name: f for name, f in found.items() if f.type == FieldDescriptor.TYPE_STRING}


def test_every_request_string_declares_a_max_length() -> None:
    fields = request_string_fields()
    assert len(fields) > 30  # the walk really reached the requests
    undeclared = [name for name, f in fields.items() if not f.GetOptions().Extensions[options_pb2.max_length]]
    assert undeclared == []


def test_no_limit_exceeds_the_column_that_stores_the_value() -> None:
    """A longer value would pass the edge and then fail the insert (an INTERNAL on MariaDB)."""
    columns: dict[str, int] = {}
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, String) and column.type.length:
                columns[column.name] = min(columns.get(column.name, column.type.length), column.type.length)
    for name, field in request_string_fields().items():
        column = STORED_AS.get(field.full_name.rsplit(".", 2)[0], {}).get(field.name, field.name)
        if column in columns:
            assert field.GetOptions().Extensions[options_pb2.max_length] <= columns[column], name


# A studio's ids are stored under another name: "<studio>:<id>" as an idempotency key (and a bet id), its
# round id as the round's provider_round_id (the hub's own round_id is a uuid5 of it).
STORED_AS = {"casinohub.provider.v1": {"transaction_id": "idempotency_key", "bet_transaction_id": "bet_id",
                                       "round_id": "provider_round_id"}}


def test_a_studios_ids_fit_their_columns_with_the_studio_prefix() -> None:
    """The keys a studio's longest ids become (studio ids are at most 32 characters) fit the idempotency key and
    bet id columns."""
    columns = {c.name: c.type.length for t in metadata.tables.values() for c in t.columns
               if isinstance(c.type, String)}
    studio, longest = "s" * 32, "t" * 64
    keys = [transaction_key(studio, longest), call_key(studio, longest), bet_and_win_win_key(studio, longest)]
    assert max(map(len, keys)) <= min(columns["idempotency_key"] or 0, columns["bet_id"] or 0)


def test_every_rpc_is_a_kind_the_edge_checks() -> None:
    for service in SERVICE_DESCRIPTORS:
        for method in service.methods:
            assert method.client_streaming == method.server_streaming, method.full_name


def test_a_string_over_its_limit_is_refused_naming_the_field() -> None:
    check(wpb.DepositRequest(player_id="p" * 36, idempotency_key="k" * 128))
    with pytest.raises(DomainError) as err:
        check(wpb.DepositRequest(player_id="p", amount=common_pb2.Money(currency="U" * 9, amount_minor=1)))
    assert err.value.reason is Reason.FIELD_TOO_LONG
    assert err.value.metadata == {"field": "amount.currency", "max_length": "8"}
    assert "UUU" not in err.value.message  # the value itself is never quoted


def test_limits_count_characters_not_bytes() -> None:
    check(gpb.LaunchGameRequest(client_seed="é" * 128))
    with pytest.raises(DomainError):
        check(gpb.LaunchGameRequest(client_seed="é" * 129))


def test_nested_messages_in_a_stream_are_checked() -> None:
    bet = gpb.PlayRequest(bet=gpb.BetAction(idempotency_key="k" * 129))
    with pytest.raises(DomainError) as err:
        check(bet)
    assert err.value.metadata["field"] == "bet.idempotency_key"


def test_undecodable_bytes_are_a_malformed_request() -> None:
    with pytest.raises(DomainError) as err:
        check(UNDECODABLE)
    assert err.value.reason is Reason.MALFORMED_REQUEST
