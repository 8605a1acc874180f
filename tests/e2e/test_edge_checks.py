"""The edge refuses what no handler should see: bytes that are not a request, strings over their limit."""

import grpc
import pytest
import structlog

from casinohub.v1 import common_pb2, wallet_service_pb2 as wpb
from tests.errors import error_info, reason_of
from tests.support import Client

RAW = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
CORRUPT = b"\xff\xff\xff\xff"  # a field tag with an invalid wire type


async def test_undecodable_bytes_on_a_unary_call_are_a_malformed_request(hub: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.channel.unary_unary("/casinohub.v1.WalletService/GetBalance", **RAW)(CORRUPT, metadata=hub.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")  # was UNKNOWN


async def test_undecodable_bytes_on_the_play_stream_are_a_malformed_request(hub: Client) -> None:
    call = hub.channel.stream_stream("/casinohub.v1.GameService/Play", **RAW)(iter([CORRUPT]), metadata=hub.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")  # was INTERNAL


# Up to just under max_message_bytes (1 MiB): past it grpc refuses the message itself (test_transport.py).
@pytest.mark.parametrize("size", [37, 8192, (1 << 20) - 1024])
async def test_an_oversized_id_is_refused_by_name_and_never_echoed(hub: Client, size: int) -> None:
    """4-8 KB ids used to make the error reply overflow the metadata limit; 1 MB ones were logged whole."""
    player_id, _ = await hub.new_player(deposit=100)
    huge = "P" * size
    with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.GetBalance(wpb.GetBalanceRequest(player_id=huge, currency="USD"), metadata=hub.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG")
    assert {**error_info(err.value).metadata} == {
        "field": "player_id", "max_length": "36", "retryable": "false", "state": "NOT_APPLIED"}
    assert "PPPPP" not in (err.value.details() or "")
    assert logs and all(len(repr(entry)) < 1000 for entry in logs)
    assert await hub.balance(player_id) == 100


async def test_an_unknown_operator_header_is_quoted_by_prefix_only(hub: Client) -> None:
    with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.GetBalance(wpb.GetBalanceRequest(player_id="p", currency="USD"),
                                    metadata=(*hub.metadata, ("x-operator-id", "o" * 3000),
                                              ("x-request-id", "r" * 3000), ("x-casinohub-key-id", "k" * 200)))
    assert reason_of(err.value) == (grpc.StatusCode.PERMISSION_DENIED, "OPERATOR_MISMATCH")
    assert len(err.value.details() or "") < 200
    assert logs and all(len(repr(entry)) < 1000 for entry in logs)


async def test_a_nested_field_over_its_limit_names_its_path(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.Deposit(wpb.DepositRequest(
            player_id=player_id, idempotency_key="k",
            amount=common_pb2.Money(currency="USD" * 1000, amount_minor=1)), metadata=hub.metadata)
    assert error_info(err.value).metadata["field"] == "amount.currency"
    assert hub.ledger_counts() == (0, 0)
