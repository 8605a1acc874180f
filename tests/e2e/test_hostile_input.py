"""Whatever a client sends, the answer is a precise status, never INTERNAL, and nothing moves."""

import uuid

import grpc
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from casinohub.v1 import (
    common_pb2,
    game_service_pb2 as gpb,
    player_service_pb2 as ppb,
    wallet_service_pb2 as wpb,
)
from tests.errors import error_info, reason_of
from tests.support import Client, access_token, bearer

texts = st.text(max_size=300)
amounts = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Header values a gRPC client can send at all (printable ASCII); anything else never leaves the client.
header_values = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=200)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(player_id=texts, currency=texts, amount=amounts, key=texts, operator=st.one_of(st.none(), header_values))
async def test_arbitrary_deposits_never_cause_internal_errors(
        hub: Client, player_id: str, currency: str, amount: int, key: str, operator: str | None) -> None:
    # A header naming another operator is refused (OPERATOR_MISMATCH): the credentials decide the operator.
    metadata = hub.metadata if operator is None else (*hub.metadata, ("x-operator-id", operator))
    before = hub.ledger_counts()
    try:
        await hub.wallet.Deposit(wpb.DepositRequest(
            player_id=player_id, idempotency_key=key,
            amount=common_pb2.Money(currency=currency, amount_minor=amount)), metadata=metadata)
    except grpc.aio.AioRpcError as err:
        assert err.code() != grpc.StatusCode.INTERNAL, err.details()
        assert error_info(err).reason  # every refusal carries a stable reason
    assert hub.ledger_counts() == before  # no such player exists, so nothing may have moved


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(username=texts, password=texts, game_id=texts, round_id=texts, token=texts)
async def test_arbitrary_player_and_game_calls_never_cause_internal_errors(
        hub: Client, username: str, password: str, game_id: str, round_id: str, token: str) -> None:
    calls = [
        hub.players.RegisterPlayer(ppb.RegisterPlayerRequest(username=username, password=password),
                                   metadata=hub.metadata),
        hub.players.Login(ppb.LoginRequest(username=username, password=password), metadata=hub.metadata),
        hub.games.LaunchGame(gpb.LaunchGameRequest(session_token=token, game_id=game_id, currency="USD"),
                             metadata=hub.metadata),
        hub.games.GetRound(gpb.GetRoundRequest(round_id=round_id), metadata=hub.metadata),
    ]
    for call in calls:
        try:
            await call
        except grpc.aio.AioRpcError as err:
            assert err.code() != grpc.StatusCode.INTERNAL, err.details()
            assert error_info(err).reason


async def test_a_session_token_from_another_operator_is_refused(hub: Client) -> None:
    _, token = await hub.new_player()
    await hub.server.hub.operators.ensure("operator-b", "B")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.games.LaunchGame(gpb.LaunchGameRequest(session_token=token, game_id="fake:coin-flip",
                                                         currency="USD"),
                                   metadata=bearer(access_token(hub.database_url, "operator-b")))
    assert reason_of(err.value) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_SESSION")


async def test_an_expired_deadline_is_honoured_and_a_retry_applies_once(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    request = wpb.DepositRequest(player_id=player_id, idempotency_key=str(uuid.uuid4()),
                                 amount=common_pb2.Money(currency="USD", amount_minor=300))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.wallet.Deposit(request, metadata=hub.metadata, timeout=0.0001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The client cannot know whether it applied; retrying with the same key settles it exactly once.
    await hub.wallet.Deposit(request, metadata=hub.metadata)
    await hub.wallet.Deposit(request, metadata=hub.metadata)
    assert await hub.balance(player_id) == 300
