"""Bonus money and free rounds over a live hub on port 0, through the generated stubs, on SQLite and MariaDB.

Every test runs as its own operator; the money-moving ones end with `hub ledger check` for that operator.
"""

import asyncio
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import create_engine, update

from adapters.base import ProviderUnavailable
from casinohub.v1 import common_pb2, game_service_pb2 as game_pb, wallet_service_pb2 as pb
from hub.ledger.check import check
from hub.ledger.schema import players
from tests.e2e.play_client import PlayStream, kinds, launch, opened_stream, without_seqs
from tests.errors import error_info, reason_of
from tests.fakes import FakeStudio
from tests.support import Client, access_token, bearer

USD = "USD"
GAME = "fake:coin-flip"
DAY = 86_400
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]


# -- helpers ------------------------------------------------------------------------------------------

def money(amount: int, currency: str = USD) -> common_pb2.Money:
    return common_pb2.Money(currency=currency, amount_minor=amount)


def in_seconds(seconds: int) -> Timestamp:
    """Whole seconds, so both databases store the instant exactly."""
    return Timestamp(seconds=int(time.time()) + seconds)


def bonus_request(player_id: str, amount: int, key: str, *, wagering: int | None = None,
                  expires_at: Timestamp | None = None, currency: str = USD,
                  wagering_currency: str | None = None) -> pb.GrantBonusRequest:
    request = pb.GrantBonusRequest(
        player_id=player_id, amount=money(amount, currency), idempotency_key=key,
        wagering_requirement=money(amount * 35 if wagering is None else wagering,
                                   currency if wagering_currency is None else wagering_currency))
    request.expires_at.CopyFrom(expires_at if expires_at is not None else in_seconds(DAY))
    return request


async def until_past(stamp: Timestamp, margin: float = 0.3) -> None:
    """Sleep until the clock is margin seconds past stamp (an expires_at): no longer than that takes."""
    await asyncio.sleep(max(0.0, stamp.seconds - time.time()) + margin)


async def grant_bonus(hub: Client, player_id: str, amount: int, key: str,
                      **kw: object) -> pb.GrantBonusResponse:
    request = bonus_request(player_id, amount, key, **kw)  # type: ignore[arg-type]
    return await hub.wallet.GrantBonus(request, metadata=hub.metadata)


def free_rounds_request(player_id: str, bet: int, rounds: int, key: str, *, game_id: str = GAME,
                        currency: str = USD, expires_at: Timestamp | None = None,
                        no_expiry: bool = False) -> game_pb.GrantFreeRoundsRequest:
    request = game_pb.GrantFreeRoundsRequest(player_id=player_id, game_id=game_id, bet=money(bet, currency),
                                             rounds=rounds, idempotency_key=key)
    if not no_expiry:
        request.expires_at.CopyFrom(expires_at if expires_at is not None else in_seconds(DAY))
    return request


async def grant_free_rounds(hub: Client, player_id: str, bet: int, rounds: int, key: str,
                            **kw: object) -> game_pb.GrantFreeRoundsResponse:
    request = free_rounds_request(player_id, bet, rounds, key, **kw)  # type: ignore[arg-type]
    return await hub.games.GrantFreeRounds(request, metadata=hub.metadata)


async def wallet(hub: Client, player_id: str, currency: str = USD) -> pb.GetBalanceResponse:
    return await hub.wallet.GetBalance(pb.GetBalanceRequest(player_id=player_id, currency=currency),
                                       metadata=hub.metadata)


async def get_bonus(hub: Client, bonus_id: str) -> pb.Bonus:
    return (await hub.wallet.GetBonus(pb.GetBonusRequest(bonus_id=bonus_id), metadata=hub.metadata)).bonus


async def transactions(hub: Client, player_id: str, **filters: object) -> list[pb.Transaction]:
    request = pb.ListTransactionsRequest(player_id=player_id, **filters)  # type: ignore[arg-type]
    return list((await hub.wallet.ListTransactions(request, metadata=hub.metadata)).transactions)


async def forfeit(hub: Client, bonus_id: str) -> pb.ForfeitBonusResponse:
    return await hub.wallet.ForfeitBonus(pb.ForfeitBonusRequest(bonus_id=bonus_id), metadata=hub.metadata)


def block(hub: Client, player_id: str) -> None:
    """There is no RPC for it: block the player in the database, as the round-semantics tests do."""
    engine = create_engine(hub.database_url)
    with engine.begin() as conn:
        conn.execute(update(players).where(players.c.player_id == player_id).values(status="blocked"))
    engine.dispose()


def assert_ledger_clean(hub: Client) -> None:
    report, = check(hub.database_url, hub.operator_id)
    assert report.ok, report.violations
    assert report.checked["transactions"] > 0


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() != grpc.StatusCode.INTERNAL, err.value.details()
    return err.value


# -- GrantBonus ---------------------------------------------------------------------------------------

async def test_grant_bonus_credits_the_bonus_balance_and_leaves_cash_alone(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=1_000)
    expires_at = in_seconds(7 * DAY)
    granted = await grant_bonus(hub, player_id, 500, "bonus-1", wagering=17_500, expires_at=expires_at)
    assert granted.transaction_id
    bonus = granted.bonus
    assert bonus.bonus_id and bonus.player_id == player_id
    assert (bonus.amount, bonus.wagering_requirement, bonus.wagered) == (money(500), money(17_500), money(0))
    assert bonus.balance == money(500)
    assert bonus.status == pb.BONUS_STATUS_ACTIVE
    assert bonus.expires_at == expires_at
    assert bonus.created_at.seconds > 0
    assert not bonus.HasField("closed_at") and bonus.closing_transaction_id == ""

    state = await wallet(hub, player_id)
    assert state.balance == money(1_000)
    assert state.bonus_balance == money(500)
    assert state.HasField("active_bonus")
    assert state.active_bonus.SerializeToString() == bonus.SerializeToString()
    assert (await get_bonus(hub, bonus.bonus_id)).SerializeToString() == bonus.SerializeToString()
    assert list(state.free_rounds) == []
    assert_ledger_clean(hub)


async def test_grant_bonus_replay_is_byte_identical_and_moves_money_once(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=100)
    request = bonus_request(player_id, 500, "bonus-replay")
    first = await hub.wallet.GrantBonus(request, metadata=hub.metadata)
    counts = hub.ledger_counts()
    again = await hub.wallet.GrantBonus(request, metadata=hub.metadata)
    assert again.SerializeToString() == first.SerializeToString()
    assert hub.ledger_counts() == counts
    state = await wallet(hub, player_id)
    assert (state.balance, state.bonus_balance) == (money(100), money(500))
    granted = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_BONUS_GRANTED)
    assert [t.transaction_id for t in granted] == [first.transaction_id]
    assert_ledger_clean(hub)


async def test_grant_bonus_same_key_with_a_different_amount_is_refused(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    expires_at = in_seconds(DAY)
    await grant_bonus(hub, player_id, 500, "bonus-reused", wagering=5_000, expires_at=expires_at)
    counts = hub.ledger_counts()
    err = await refused(
        grant_bonus(hub, player_id, 501, "bonus-reused", wagering=5_000, expires_at=expires_at))
    assert reason_of(err) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert error_info(err).metadata["retryable"] == "false"
    assert hub.ledger_counts() == counts
    assert (await wallet(hub, player_id)).bonus_balance == money(500)


@pytest.mark.parametrize("amount,wagering,currency,wagering_currency,key,expires,expected", [
    (0, 1_000, USD, USD, "k", DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")),
    (-500, 1_000, USD, USD, "k", DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")),
    (500, 0, USD, USD, "k", DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")),
    (500, -1, USD, USD, "k", DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")),
    (500, 1_000, USD, "EUR", "k", DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
    (500, 1_000, USD, "", "k", DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
    (500, 1_000, "XXX", "XXX", "k", DAY, (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_CURRENCY")),
    (500, 1_000, USD, USD, "", DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_IDEMPOTENCY_KEY")),
    (500, 1_000, USD, USD, "k" * 129, DAY, (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG")),
    (500, 1_000, USD, USD, "k", None, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
    (500, 1_000, USD, USD, "k", -60, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
    (500, 1_000, USD, USD, "k", 0, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
], ids=["zero-amount", "negative-amount", "zero-wagering", "negative-wagering", "wagering-in-EUR",
        "wagering-missing", "unknown-currency", "empty-key", "long-key", "no-expiry", "expired",
        "expires-now"])
async def test_bad_bonus_grants_are_refused_precisely_and_change_nothing(
        hub: Client, amount: int, wagering: int, currency: str, wagering_currency: str, key: str,
        expires: int | None, expected: tuple[grpc.StatusCode, str]) -> None:
    player_id, _ = await hub.new_player(deposit=50)
    counts = hub.ledger_counts()
    request = bonus_request(player_id, amount, key, wagering=wagering, currency=currency,
                            wagering_currency=wagering_currency, expires_at=in_seconds(expires or 0))
    if expires is None:
        request.ClearField("expires_at")
    err = await refused(hub.wallet.GrantBonus(request, metadata=hub.metadata))
    assert reason_of(err) == expected
    assert error_info(err).metadata["state"] == "NOT_APPLIED"
    assert hub.ledger_counts() == counts
    state = await wallet(hub, player_id)
    assert (state.balance, state.bonus_balance.amount_minor) == (money(50), 0)
    assert not state.HasField("active_bonus")
    if 0 < len(key) <= 128:  # the refused request did not burn its key: a good request with it goes through
        assert (await grant_bonus(hub, player_id, 300, key)).bonus.amount == money(300)


async def test_an_expires_at_beyond_any_datetime_is_invalid_not_internal(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    beyond = Timestamp(seconds=2**62)
    err = await refused(grant_bonus(hub, player_id, 500, "bonus-far", expires_at=beyond))
    assert reason_of(err) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    err = await refused(grant_free_rounds(hub, player_id, 50, 1, "fr-far", expires_at=beyond))
    assert reason_of(err) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    last_second = Timestamp(seconds=253_402_300_799)  # 9999-12-31T23:59:59Z is fine
    granted = await grant_bonus(hub, player_id, 500, "bonus-9999", expires_at=last_second)
    assert granted.bonus.expires_at == last_second


async def test_bonus_for_an_unknown_player_is_not_found(hub: Client) -> None:
    err = await refused(grant_bonus(hub, "no-such-player", 500, "bonus-ghost"))
    assert reason_of(err) == (grpc.StatusCode.NOT_FOUND, "PLAYER_NOT_FOUND")
    assert hub.ledger_counts() == (0, 0)


async def test_bonus_for_a_blocked_player_is_refused(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=50)
    block(hub, player_id)
    counts = hub.ledger_counts()
    err = await refused(grant_bonus(hub, player_id, 500, "bonus-blocked"))
    assert reason_of(err) == (grpc.StatusCode.FAILED_PRECONDITION, "PLAYER_BLOCKED")
    assert hub.ledger_counts() == counts
    state = await wallet(hub, player_id)
    assert state.bonus_balance.amount_minor == 0 and not state.HasField("active_bonus")


async def test_a_second_bonus_while_one_is_active_is_refused(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    first = await grant_bonus(hub, player_id, 500, "bonus-a")
    counts = hub.ledger_counts()
    err = await refused(grant_bonus(hub, player_id, 700, "bonus-b"))
    assert reason_of(err) == (grpc.StatusCode.FAILED_PRECONDITION, "BONUS_ALREADY_ACTIVE")
    assert hub.ledger_counts() == counts
    state = await wallet(hub, player_id)
    assert state.bonus_balance == money(500) and state.active_bonus.bonus_id == first.bonus.bonus_id
    # one active bonus per wallet: another currency's wallet may have its own
    jpy = await grant_bonus(hub, player_id, 800, "bonus-jpy", currency="JPY")
    assert (await wallet(hub, player_id, "JPY")).active_bonus.bonus_id == jpy.bonus.bonus_id
    assert_ledger_clean(hub)


async def test_concurrent_grants_with_different_keys_leave_one_active_bonus(hub: Client) -> None:
    """Eight grants at once to each of several fresh wallets (new accounts, new promotion shards): exactly
    one wins per wallet, the rest are BONUS_ALREADY_ACTIVE; none may fail INTERNAL."""
    for p in range(10):
        player_id, _ = await hub.new_player()
        outcomes = await asyncio.gather(*(grant_bonus(hub, player_id, 100 + i, f"race-bonus-{p}-{i}")
                                          for i in range(8)), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert [e.code() for e in errors if e.code() == grpc.StatusCode.INTERNAL] == [], f"wallet {p}"
        granted = [o for o in outcomes if isinstance(o, pb.GrantBonusResponse)]
        assert len(granted) == 1, outcomes
        assert {reason_of(e) for e in errors} == {
            (grpc.StatusCode.FAILED_PRECONDITION, "BONUS_ALREADY_ACTIVE")}
        state = await wallet(hub, player_id)
        assert state.bonus_balance == granted[0].bonus.amount
        assert state.active_bonus.bonus_id == granted[0].bonus.bonus_id
    assert_ledger_clean(hub)


# -- ForfeitBonus / GetBonus --------------------------------------------------------------------------

async def test_forfeit_ends_the_bonus_and_asking_again_answers_the_same(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=200)
    granted = await grant_bonus(hub, player_id, 500, "bonus-forfeit")
    bonus_id = granted.bonus.bonus_id
    forfeited = await forfeit(hub, bonus_id)
    bonus = forfeited.bonus
    assert bonus.bonus_id == bonus_id and bonus.status == pb.BONUS_STATUS_FORFEITED
    assert bonus.amount == money(500) and bonus.wagered.amount_minor == 0
    assert bonus.balance.amount_minor == 0
    assert bonus.HasField("closed_at") and bonus.closing_transaction_id
    assert bonus.closing_transaction_id != granted.transaction_id

    state = await wallet(hub, player_id)
    assert (state.balance, state.bonus_balance.amount_minor) == (money(200), 0)
    assert not state.HasField("active_bonus")
    counts = hub.ledger_counts()
    again = await forfeit(hub, bonus_id)
    assert again.SerializeToString() == forfeited.SerializeToString()
    assert hub.ledger_counts() == counts
    assert (await get_bonus(hub, bonus_id)).SerializeToString() == bonus.SerializeToString()

    # the wallet is free for a new bonus
    renewed = await grant_bonus(hub, player_id, 300, "bonus-after-forfeit")
    assert renewed.bonus.status == pb.BONUS_STATUS_ACTIVE
    assert (await wallet(hub, player_id)).bonus_balance == money(300)
    assert_ledger_clean(hub)


async def test_unknown_bonus_is_not_found(hub: Client) -> None:
    for call in (hub.wallet.GetBonus(pb.GetBonusRequest(bonus_id="no-such-bonus"), metadata=hub.metadata),
                 forfeit(hub, "no-such-bonus"),
                 hub.wallet.GetBonus(pb.GetBonusRequest(bonus_id=""), metadata=hub.metadata)):
        assert reason_of(await refused(call)) == (grpc.StatusCode.NOT_FOUND, "BONUS_NOT_FOUND")


async def test_another_operators_bonus_is_refused_and_left_alone(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    bonus_id = (await grant_bonus(hub, player_id, 500, "bonus-tenant")).bonus.bonus_id
    await hub.server.hub.operators.ensure("other-operator", "Other")
    other = bearer(access_token(hub.database_url, "other-operator"))
    for call in (hub.wallet.GetBonus(pb.GetBonusRequest(bonus_id=bonus_id), metadata=other),
                 hub.wallet.ForfeitBonus(pb.ForfeitBonusRequest(bonus_id=bonus_id), metadata=other)):
        assert reason_of(await refused(call)) == (grpc.StatusCode.PERMISSION_DENIED, "OBJECT_OF_ANOTHER_OPERATOR")
    assert (await get_bonus(hub, bonus_id)).status == pb.BONUS_STATUS_ACTIVE


# -- ListTransactions ---------------------------------------------------------------------------------

async def test_grant_and_forfeit_are_listed_with_their_bonus_amounts(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=1_000)
    granted = await grant_bonus(hub, player_id, 500, "bonus-listed")
    forfeited = (await forfeit(hub, granted.bonus.bonus_id)).bonus
    forfeit_tx, grant_tx, deposit_tx = await transactions(hub, player_id)

    assert grant_tx.transaction_id == granted.transaction_id
    assert grant_tx.kind == pb.TRANSACTION_KIND_BONUS_GRANTED
    assert (grant_tx.amount, grant_tx.balance_after) == (money(0), money(1_000))
    assert (grant_tx.bonus_amount, grant_tx.bonus_balance_after) == (money(500), money(500))
    assert grant_tx.idempotency_key == "bonus-listed" and grant_tx.player_id == player_id

    assert forfeit_tx.transaction_id == forfeited.closing_transaction_id
    assert forfeit_tx.kind == pb.TRANSACTION_KIND_BONUS_FORFEITED
    assert (forfeit_tx.amount, forfeit_tx.balance_after) == (money(0), money(1_000))
    assert (forfeit_tx.bonus_amount, forfeit_tx.bonus_balance_after) == (money(-500), money(0))

    assert deposit_tx.kind == pb.TRANSACTION_KIND_DEPOSIT and deposit_tx.bonus_amount.amount_minor == 0
    only_grants = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_BONUS_GRANTED)
    assert [t.SerializeToString() for t in only_grants] == [grant_tx.SerializeToString()]
    assert_ledger_clean(hub)


# -- Play with a bonus --------------------------------------------------------------------------------

async def test_a_bet_above_cash_spends_cash_first_then_bonus(hub: Client, studio: FakeStudio) -> None:
    player_id, token = await hub.new_player(deposit=30)
    bonus_id = (await grant_bonus(hub, player_id, 500, "bonus-play", wagering=10_000)).bonus.bonus_id
    stream = await opened_stream(hub, token)
    stream.bet(100, "bonus-bet-1")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "outcome", "settled"]
    accepted, settled = events[1].bet_accepted, events[3].settled
    assert not accepted.free_round and accepted.free_rounds_left == 0
    assert (accepted.balance, accepted.bonus_balance) == (money(0), money(430))
    assert (settled.win.amount_minor, settled.balance, settled.bonus_balance) == (0, money(0), money(430))
    await stream.close()

    state = await wallet(hub, player_id)
    assert (state.balance, state.bonus_balance) == (money(0), money(430))
    bonus = await get_bonus(hub, bonus_id)
    assert bonus.status == pb.BONUS_STATUS_ACTIVE and bonus.wagered == money(100)  # the whole stake counts
    assert bonus.balance == money(430) and bonus.amount == money(500)
    assert state.active_bonus.balance == money(430)
    bet_tx, = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_BET)
    assert (bet_tx.amount, bet_tx.bonus_amount) == (money(-30), money(-70))
    assert (bet_tx.balance_after, bet_tx.bonus_balance_after) == (money(0), money(430))
    assert hub.posting_sums() == {USD: 0}
    assert_ledger_clean(hub)


async def test_session_opened_shows_the_bonus_balance(hub: Client) -> None:
    player_id, token = await hub.new_player(deposit=40)
    await grant_bonus(hub, player_id, 600, "bonus-open")
    stream = PlayStream(hub)
    stream.open(await launch(hub, token), token)
    opened = (await stream.next()).session_opened
    assert (opened.balance, opened.bonus_balance, opened.free_rounds_left) == (money(40), money(600), 0)
    await stream.close()


async def test_a_win_splits_in_proportion_with_the_bonus_share_rounded_down(
        hub: Client, studio: FakeStudio) -> None:
    studio.win = lambda bet: bet * 3 // 2  # 150 on 100
    player_id, token = await hub.new_player(deposit=33)
    await grant_bonus(hub, player_id, 500, "bonus-split", wagering=10_000)
    stream = await opened_stream(hub, token)
    stream.bet(100, "split-1")  # 33 cash + 67 bonus
    events = await stream.until("settled", "error")
    await stream.close()
    accepted, settled = events[1].bet_accepted, events[-1].settled
    assert (accepted.balance, accepted.bonus_balance) == (money(0), money(433))
    # bonus share 150 * 67 / 100 = 100.5 -> 100; cash gets the rest, 50
    assert settled.win == money(150)
    assert (settled.balance, settled.bonus_balance) == (money(50), money(533))
    win_tx, = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_WIN)
    assert (win_tx.amount, win_tx.bonus_amount) == (money(50), money(100))
    assert hub.posting_sums() == {USD: 0}
    assert_ledger_clean(hub)


async def test_a_bet_above_cash_plus_bonus_is_refused_and_changes_nothing(hub: Client) -> None:
    player_id, token = await hub.new_player(deposit=30)
    await grant_bonus(hub, player_id, 70, "bonus-short")
    stream = await opened_stream(hub, token)
    counts = hub.ledger_counts()
    stream.bet(101, "too-much")
    error = (await stream.next()).error
    assert error.error.reason == "INSUFFICIENT_FUNDS"
    assert error.error.state == common_pb2.APPLY_STATE_NOT_APPLIED
    assert error.balance == money(30)
    stream.bet(100, "exactly-all")  # cash + bonus to the last cent is fine
    accepted = (await stream.until("bet_accepted"))[-1].bet_accepted
    assert (accepted.balance, accepted.bonus_balance) == (money(0), money(0))
    await stream.until("settled")
    await stream.close()
    assert hub.ledger_counts()[0] == counts[0] + 1
    assert_ledger_clean(hub)


async def test_the_bonus_converts_to_cash_once_wagering_is_met(hub: Client, studio: FakeStudio) -> None:
    player_id, token = await hub.new_player()
    bonus_id = (await grant_bonus(hub, player_id, 500, "bonus-convert", wagering=200)).bonus.bonus_id
    stream = await opened_stream(hub, token)
    stream.bet(100, "wager-1")
    first = (await stream.until("settled"))[-1].settled
    assert (first.balance, first.bonus_balance) == (money(0), money(400))
    assert (await get_bonus(hub, bonus_id)).wagered == money(100)
    stream.bet(100, "wager-2")
    second = (await stream.until("settled"))[-1].settled
    await stream.close()
    # 200 wagered: the 300 left became cash
    assert (second.balance, second.bonus_balance) == (money(300), money(0))
    bonus = await get_bonus(hub, bonus_id)
    assert bonus.status == pb.BONUS_STATUS_CONVERTED and bonus.wagered == money(200)
    assert bonus.balance.amount_minor == 0
    assert bonus.HasField("closed_at") and bonus.closing_transaction_id
    state = await wallet(hub, player_id)
    assert (state.balance, state.bonus_balance.amount_minor) == (money(300), 0)
    assert not state.HasField("active_bonus")

    converted, = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_BONUS_CONVERTED)
    assert converted.transaction_id == bonus.closing_transaction_id
    assert (converted.amount, converted.bonus_amount) == (money(300), money(-300))
    assert (converted.balance_after, converted.bonus_balance_after) == (money(300), money(0))

    err = await refused(forfeit(hub, bonus_id))
    assert reason_of(err) == (grpc.StatusCode.FAILED_PRECONDITION, "BONUS_NOT_ACTIVE")
    assert (await get_bonus(hub, bonus_id)).status == pb.BONUS_STATUS_CONVERTED
    assert hub.posting_sums() == {USD: 0}
    assert_ledger_clean(hub)


async def test_a_rolled_back_bet_returns_each_part_where_it_came_from(
        hub: Client, studio: FakeStudio) -> None:
    studio.fail = ProviderUnavailable("connection refused")  # type: ignore[assignment]
    player_id, token = await hub.new_player(deposit=30)
    bonus_id = (await grant_bonus(hub, player_id, 500, "bonus-rb", wagering=10_000)).bonus.bonus_id
    stream = await opened_stream(hub, token)
    stream.bet(100, "doomed")
    events = await stream.until("settled", "error")
    await stream.close()
    assert kinds(events) == ["round_opened", "bet_accepted", "error"]
    assert (events[1].bet_accepted.balance, events[1].bet_accepted.bonus_balance) == (money(0), money(430))
    assert events[2].error.balance == money(30)
    state = await wallet(hub, player_id)
    assert (state.balance, state.bonus_balance) == (money(30), money(500))
    bonus = await get_bonus(hub, bonus_id)
    assert bonus.wagered.amount_minor == 0  # rolled-back stakes do not count
    assert bonus.balance == money(500)
    rollback, = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_ROLLBACK)
    assert (rollback.amount, rollback.bonus_amount) == (money(30), money(70))
    assert_ledger_clean(hub)


async def test_an_expired_bonus_is_not_spendable(hub: Client) -> None:
    player_id, token = await hub.new_player(deposit=100)
    expires_at = in_seconds(3)
    granted = await grant_bonus(hub, player_id, 500, "bonus-expiring", expires_at=expires_at)
    bonus_id = granted.bonus.bonus_id
    stream = await opened_stream(hub, token)
    await until_past(expires_at)
    stream.bet(150, "after-expiry")  # would fit cash + bonus if the bonus were still there
    error = (await stream.next()).error
    assert error.error.reason == "INSUFFICIENT_FUNDS"
    stream.bet(10, "cash-only")  # a bet that touches the wallet expires the bonus for good
    accepted = (await stream.until("bet_accepted"))[-1].bet_accepted
    assert (accepted.balance, accepted.bonus_balance) == (money(90), money(0))
    await stream.until("settled")
    await stream.close()
    bonus = await get_bonus(hub, bonus_id)
    assert bonus.status == pb.BONUS_STATUS_EXPIRED and bonus.closing_transaction_id
    assert bonus.balance.amount_minor == 0
    expired, = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_BONUS_EXPIRED)
    assert (expired.amount, expired.bonus_amount) == (money(0), money(-500))
    state = await wallet(hub, player_id)
    assert state.bonus_balance.amount_minor == 0 and not state.HasField("active_bonus")
    assert_ledger_clean(hub)


async def test_a_win_after_the_bonus_expired_mid_round_returns_its_bonus_share_to_the_operator(
        hub: Client, studio: FakeStudio) -> None:
    studio.win = lambda bet: bet * 2
    player_id, token = await hub.new_player(deposit=30)
    expires_at = in_seconds(3)
    granted = await grant_bonus(hub, player_id, 500, "bonus-mid-round", expires_at=expires_at)
    bonus_id = granted.bonus.bonus_id
    stream = await opened_stream(hub, token)
    studio.delay = max(0.0, expires_at.seconds - time.time()) + 0.5  # the bonus expires while the provider decides
    stream.bet(100, "slow")  # 30 cash + 70 bonus
    events = await stream.until("settled", "error")
    await stream.close()
    assert (events[1].bet_accepted.balance, events[1].bet_accepted.bonus_balance) == (money(0), money(430))
    settled = events[-1].settled
    # the win's bonus share (140) follows the expired bonus back to the operator; cash gets its 60
    assert (settled.win, settled.balance, settled.bonus_balance) == (money(200), money(60), money(0))
    bonus = await get_bonus(hub, bonus_id)
    assert bonus.status == pb.BONUS_STATUS_EXPIRED and bonus.wagered.amount_minor == 0
    expired, = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_BONUS_EXPIRED)
    assert (expired.amount, expired.bonus_amount) == (money(0), money(-430))
    win_tx, = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_WIN)
    assert (win_tx.amount, win_tx.bonus_amount) == (money(60), money(0))
    assert hub.posting_sums() == {USD: 0}
    assert_ledger_clean(hub)


async def test_get_balance_does_not_show_an_expired_bonus_as_spendable(hub: Client) -> None:
    """GetBalance is 'the wallet's active bonus' and its bonus balance: past expires_at a bet can no longer
    spend that money (see test_an_expired_bonus_is_not_spendable), so the balance must not offer it."""
    player_id, _ = await hub.new_player(deposit=100)
    expires_at = in_seconds(2)
    await grant_bonus(hub, player_id, 500, "bonus-stale", expires_at=expires_at)
    await until_past(expires_at)
    state = await wallet(hub, player_id)
    assert state.balance == money(100)
    assert state.bonus_balance.amount_minor == 0
    assert not state.HasField("active_bonus") or state.active_bonus.status != pb.BONUS_STATUS_ACTIVE


async def test_forfeit_after_expiry_is_not_active_and_the_bonus_reads_expired(hub: Client) -> None:
    player_id, _ = await hub.new_player(deposit=100)
    expires_at = in_seconds(2)
    bonus_id = (await grant_bonus(hub, player_id, 500, "bonus-late", expires_at=expires_at)).bonus.bonus_id
    await until_past(expires_at)
    err = await refused(forfeit(hub, bonus_id))
    assert reason_of(err) == (grpc.StatusCode.FAILED_PRECONDITION, "BONUS_NOT_ACTIVE")
    # having answered "it expired", the hub must show it expired, with its money back at the operator
    bonus = await get_bonus(hub, bonus_id)
    assert bonus.status == pb.BONUS_STATUS_EXPIRED and bonus.closing_transaction_id
    state = await wallet(hub, player_id)
    assert state.bonus_balance.amount_minor == 0 and not state.HasField("active_bonus")
    assert_ledger_clean(hub)


# -- free rounds --------------------------------------------------------------------------------------

async def test_grant_free_rounds_answers_the_grant(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    expires_at = in_seconds(DAY)
    grant = (await grant_free_rounds(hub, player_id, 50, 3, "fr-grant", expires_at=expires_at)).grant
    assert grant.grant_id and (grant.player_id, grant.game_id) == (player_id, GAME)
    assert (grant.bet, grant.rounds, grant.rounds_left) == (money(50), 3, 3)
    assert grant.expires_at == expires_at and grant.created_at.seconds > 0
    state = await wallet(hub, player_id)
    assert [g.SerializeToString() for g in state.free_rounds] == [grant.SerializeToString()]
    assert (state.balance.amount_minor, state.bonus_balance.amount_minor) == (0, 0)  # a grant holds no money
    assert list((await wallet(hub, player_id, "JPY")).free_rounds) == []


async def test_a_free_round_bet_costs_the_player_nothing_and_the_win_goes_to_cash(
        hub: Client, studio: FakeStudio) -> None:
    studio.win = lambda bet: bet * 4
    player_id, token = await hub.new_player(deposit=1_000)
    await grant_free_rounds(hub, player_id, 50, 3, "fr-play")
    stream = PlayStream(hub)
    stream.open(await launch(hub, token), token)
    opened = (await stream.next()).session_opened
    assert (opened.free_rounds_left, opened.balance) == (3, money(1_000))

    stream.bet(50, "free-1")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "outcome", "settled"]
    accepted, settled = events[1].bet_accepted, events[3].settled
    assert accepted.free_round and accepted.free_rounds_left == 2
    assert accepted.amount == money(50) and accepted.balance == money(1_000)
    assert settled.win == money(200) and settled.balance == money(1_200)
    assert settled.bonus_balance.amount_minor == 0
    await stream.close()

    state = await wallet(hub, player_id)
    assert state.balance == money(1_200)
    grant, = state.free_rounds
    assert (grant.rounds, grant.rounds_left, grant.bet) == (3, 2, money(50))
    round_ = (await hub.games.GetRound(game_pb.GetRoundRequest(round_id=settled.round_id),
                                       metadata=hub.metadata)).round
    assert (round_.status, round_.bet, round_.win) == (game_pb.ROUND_STATUS_SETTLED, money(50), money(200))
    bet_tx, = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_BET)
    assert (bet_tx.amount, bet_tx.bonus_amount, bet_tx.balance_after) == (money(0), money(0), money(1_000))
    win_tx, = await transactions(hub, player_id, kind=pb.TRANSACTION_KIND_WIN)
    assert (win_tx.amount, win_tx.bonus_amount) == (money(200), money(0))
    assert hub.posting_sums() == {USD: 0}
    assert_ledger_clean(hub)


async def test_a_free_round_needs_no_cash(hub: Client, studio: FakeStudio) -> None:
    player_id, token = await hub.new_player()  # never funded
    await grant_free_rounds(hub, player_id, 25, 1, "fr-broke")
    stream = await opened_stream(hub, token)
    stream.bet(25, "free-broke")
    events = await stream.until("settled", "error")
    await stream.close()
    assert kinds(events)[-1] == "settled"
    accepted = events[1].bet_accepted
    assert accepted.free_round and accepted.free_rounds_left == 0 and accepted.balance.amount_minor == 0
    assert await hub.balance(player_id) == 0
    assert_ledger_clean(hub)


async def test_a_bet_of_another_value_while_free_rounds_remain_is_refused(hub: Client) -> None:
    player_id, token = await hub.new_player(deposit=1_000)
    await grant_free_rounds(hub, player_id, 50, 2, "fr-mismatch")
    stream = await opened_stream(hub, token)
    counts = hub.ledger_counts()
    for amount, key in ((70, "not-fifty"), (49, "forty-nine"), (1_000, "all-in")):
        stream.bet(amount, key)
        event = await stream.next()
        assert event.WhichOneof("event") == "error", key
        error = event.error
        assert (error.error.reason, error.error.code) == ("FREE_ROUND_BET_MISMATCH", FAILED_PRECONDITION), key
        assert error.error.state == common_pb2.APPLY_STATE_NOT_APPLIED and not error.error.retryable
        assert error.balance == money(1_000)
    assert hub.ledger_counts() == counts
    assert await hub.balance(player_id) == 1_000
    grant, = (await wallet(hub, player_id)).free_rounds
    assert grant.rounds_left == 2
    stream.bet(70, "not-fifty")  # the refused key was not burnt: it answers the same again
    assert (await stream.next()).error.error.reason == "FREE_ROUND_BET_MISMATCH"
    await stream.close()


async def test_after_the_last_free_round_bets_charge_cash_again(hub: Client) -> None:
    player_id, token = await hub.new_player(deposit=1_000)
    await grant_free_rounds(hub, player_id, 50, 1, "fr-last")
    stream = await opened_stream(hub, token)
    stream.bet(50, "last-free")
    accepted = (await stream.until("bet_accepted"))[-1].bet_accepted
    assert accepted.free_round and accepted.free_rounds_left == 0 and accepted.balance == money(1_000)
    await stream.until("settled")
    stream.bet(70, "paid")
    accepted = (await stream.until("bet_accepted"))[-1].bet_accepted
    assert not accepted.free_round and accepted.balance == money(930)
    await stream.until("settled")
    stream.bet(50, "paid-fifty")
    accepted = (await stream.until("bet_accepted"))[-1].bet_accepted
    assert not accepted.free_round and accepted.balance == money(880)
    await stream.until("settled")
    await stream.close()
    assert list((await wallet(hub, player_id)).free_rounds) == []
    assert await hub.balance(player_id) == 880
    assert_ledger_clean(hub)


async def test_a_rolled_back_free_round_is_given_back(hub: Client, studio: FakeStudio) -> None:
    studio.fail = ProviderUnavailable("connection refused")  # type: ignore[assignment]
    player_id, token = await hub.new_player(deposit=100)
    await grant_free_rounds(hub, player_id, 50, 2, "fr-rollback")
    stream = await opened_stream(hub, token)
    stream.bet(50, "free-doomed")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "error"]
    assert events[1].bet_accepted.free_rounds_left == 1
    assert events[2].error.balance == money(100)
    grant, = (await wallet(hub, player_id)).free_rounds
    assert grant.rounds_left == 2
    studio.fail = None
    stream.bet(50, "free-retry")
    accepted = (await stream.until("bet_accepted"))[-1].bet_accepted
    assert accepted.free_round and accepted.free_rounds_left == 1
    await stream.until("settled")
    await stream.close()
    assert await hub.balance(player_id) == 100
    assert hub.posting_sums() == {USD: 0}
    assert_ledger_clean(hub)


async def test_get_balance_lists_free_round_grants_in_the_order_play_uses_them(hub: Client) -> None:
    """wallet_service.proto: GetBalanceResponse.free_rounds are listed soonest expiry first."""
    player_id, _ = await hub.new_player()
    later = (await grant_free_rounds(hub, player_id, 50, 3, "fr-older", expires_at=in_seconds(7 * DAY))).grant
    sooner = (await grant_free_rounds(hub, player_id, 30, 2, "fr-newer", expires_at=in_seconds(DAY))).grant
    listed = (await wallet(hub, player_id)).free_rounds
    assert [g.grant_id for g in listed] == [sooner.grant_id, later.grant_id]


async def test_with_two_grants_the_soonest_expiring_is_used_first(hub: Client) -> None:
    player_id, token = await hub.new_player(deposit=1_000)
    await grant_free_rounds(hub, player_id, 50, 3, "fr-later", expires_at=in_seconds(7 * DAY))
    soon = (await grant_free_rounds(hub, player_id, 30, 1, "fr-sooner", expires_at=in_seconds(DAY))).grant
    stream = PlayStream(hub)
    stream.open(await launch(hub, token), token)
    assert (await stream.next()).session_opened.free_rounds_left == 4  # all grants together
    stream.bet(50, "later-value-first")
    assert (await stream.next()).error.error.reason == "FREE_ROUND_BET_MISMATCH"
    stream.bet(30, "sooner-value")
    accepted = (await stream.until("bet_accepted"))[-1].bet_accepted
    assert accepted.free_round and accepted.free_rounds_left == 3
    await stream.until("settled")
    stream.bet(50, "later-value")
    accepted = (await stream.until("bet_accepted"))[-1].bet_accepted
    assert accepted.free_round and accepted.free_rounds_left == 2
    await stream.until("settled")
    await stream.close()
    grants = (await wallet(hub, player_id)).free_rounds
    assert [(g.bet.amount_minor, g.rounds_left) for g in grants] == [(50, 2)]
    assert soon.grant_id not in {g.grant_id for g in grants}
    assert await hub.balance(player_id) == 1_000
    assert_ledger_clean(hub)


async def test_concurrent_bets_use_each_free_round_once(hub: Client, studio: FakeStudio) -> None:
    studio.delay = 0.05  # keep rounds open while the others race for the grant
    player_id, token = await hub.new_player(deposit=1_000)
    await grant_free_rounds(hub, player_id, 50, 2, "fr-race")
    streams = [await opened_stream(hub, token) for _ in range(6)]
    for i, stream in enumerate(streams):
        stream.bet(50, f"fr-race-{i}")
    outcomes = await asyncio.gather(*(s.until("settled", "error") for s in streams))
    for stream in streams:
        await stream.close()
    assert [o[-1].WhichOneof("event") for o in outcomes] == ["settled"] * 6
    accepted = [o[1].bet_accepted for o in outcomes]
    assert sum(a.free_round for a in accepted) == 2
    assert await hub.balance(player_id) == 1_000 - 4 * 50
    assert list((await wallet(hub, player_id)).free_rounds) == []
    assert hub.posting_sums() == {USD: 0}
    assert_ledger_clean(hub)


async def test_a_free_round_bet_replay_uses_one_round(hub: Client, studio: FakeStudio) -> None:
    player_id, token = await hub.new_player()
    await grant_free_rounds(hub, player_id, 50, 3, "fr-replay")
    stream = await opened_stream(hub, token)
    stream.bet(50, "free-replayed")
    first = await stream.until("settled")
    stream.bet(50, "free-replayed")
    again = await stream.until("settled")
    await stream.close()
    assert [without_seqs(e) for e in again] == [without_seqs(e) for e in first]
    assert [e.replay_of_seq for e in again] == [e.seq for e in first]
    grant, = (await wallet(hub, player_id)).free_rounds
    assert grant.rounds_left == 2 and len(studio.plays) == 1


async def test_a_free_round_win_goes_to_cash_and_does_not_count_toward_wagering(
        hub: Client, studio: FakeStudio) -> None:
    studio.win = lambda bet: bet * 2
    player_id, token = await hub.new_player(deposit=10)
    bonus_id = (await grant_bonus(hub, player_id, 500, "fr-bonus", wagering=10_000)).bonus.bonus_id
    await grant_free_rounds(hub, player_id, 50, 1, "fr-with-bonus")
    stream = await opened_stream(hub, token)
    stream.bet(50, "free-with-bonus")
    events = await stream.until("settled", "error")
    await stream.close()
    accepted, settled = events[1].bet_accepted, events[-1].settled
    assert accepted.free_round and (accepted.balance, accepted.bonus_balance) == (money(10), money(500))
    assert (settled.balance, settled.bonus_balance) == (money(110), money(500))
    assert (await get_bonus(hub, bonus_id)).wagered.amount_minor == 0
    assert_ledger_clean(hub)


async def test_grant_free_rounds_replay_is_identical_and_a_reused_key_is_refused(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    request = free_rounds_request(player_id, 50, 5, "fr-idem")
    first = await hub.games.GrantFreeRounds(request, metadata=hub.metadata)
    again = await hub.games.GrantFreeRounds(request, metadata=hub.metadata)
    assert again.SerializeToString() == first.SerializeToString()
    grant, = (await wallet(hub, player_id)).free_rounds
    assert grant.grant_id == first.grant.grant_id and grant.rounds_left == 5
    request.rounds = 6
    err = await refused(hub.games.GrantFreeRounds(request, metadata=hub.metadata))
    assert reason_of(err) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert len((await wallet(hub, player_id)).free_rounds) == 1


@pytest.mark.parametrize("game_id,bet,currency,rounds,expires,expected", [
    ("fake:nope", 50, USD, 3, DAY, (grpc.StatusCode.NOT_FOUND, "GAME_NOT_FOUND")),
    (GAME, 50, USD, 0, DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
    (GAME, 50, USD, 1001, DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
    (GAME, 50, USD, -1, DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
    (GAME, 100_001, USD, 3, DAY, (grpc.StatusCode.INVALID_ARGUMENT, "BET_OUT_OF_LIMITS")),
    (GAME, 0, USD, 3, DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")),
    (GAME, -50, USD, 3, DAY, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT")),
    (GAME, 50, "EUR", 3, DAY, (grpc.StatusCode.FAILED_PRECONDITION, "CURRENCY_MISMATCH")),
    (GAME, 50, "XXX", 3, DAY, (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_CURRENCY")),
    (GAME, 1_500, "BTC", 3, DAY, (grpc.StatusCode.FAILED_PRECONDITION, "AMOUNT_NOT_REPRESENTABLE")),
    (GAME, 50, USD, 3, None, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
    (GAME, 50, USD, 3, -60, (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")),
], ids=["unknown-game", "zero-rounds", "1001-rounds", "negative-rounds", "above-limit", "zero-bet",
        "negative-bet", "currency-not-accepted", "unknown-currency", "finer-than-step", "no-expiry",
        "expired"])
async def test_bad_free_round_grants_are_refused_precisely_and_change_nothing(
        hub: Client, game_id: str, bet: int, currency: str, rounds: int, expires: int | None,
        expected: tuple[grpc.StatusCode, str]) -> None:
    player_id, _ = await hub.new_player(deposit=50)
    counts = hub.ledger_counts()
    request = free_rounds_request(player_id, bet, rounds, "fr-bad", game_id=game_id, currency=currency,
                                  expires_at=in_seconds(expires or 0), no_expiry=expires is None)
    err = await refused(hub.games.GrantFreeRounds(request, metadata=hub.metadata))
    assert reason_of(err) == expected
    assert error_info(err).metadata["state"] == "NOT_APPLIED"
    assert hub.ledger_counts() == counts
    for wallet_currency in (USD, "BTC"):
        assert list((await wallet(hub, player_id, wallet_currency)).free_rounds) == []
    # the key was not burnt
    assert (await grant_free_rounds(hub, player_id, 50, 1, "fr-bad")).grant.rounds == 1


async def test_free_rounds_for_an_unknown_or_blocked_player_are_refused(hub: Client) -> None:
    err = await refused(grant_free_rounds(hub, "no-such-player", 50, 3, "fr-ghost"))
    assert reason_of(err) == (grpc.StatusCode.NOT_FOUND, "PLAYER_NOT_FOUND")
    player_id, _ = await hub.new_player()
    block(hub, player_id)
    err = await refused(grant_free_rounds(hub, player_id, 50, 3, "fr-blocked"))
    assert reason_of(err) == (grpc.StatusCode.FAILED_PRECONDITION, "PLAYER_BLOCKED")
    assert list((await wallet(hub, player_id)).free_rounds) == []


async def test_free_round_limits_1_and_1000_are_accepted(hub: Client) -> None:
    player_id, _ = await hub.new_player()
    assert (await grant_free_rounds(hub, player_id, 1, 1, "fr-one")).grant.rounds_left == 1
    assert (await grant_free_rounds(hub, player_id, 100_000, 1000, "fr-max")).grant.rounds_left == 1000
    assert sorted(g.rounds_left for g in (await wallet(hub, player_id)).free_rounds) == [1, 1000]


# -- everything together ------------------------------------------------------------------------------

async def test_ledger_check_passes_after_bonus_and_free_round_play(hub: Client, studio: FakeStudio) -> None:
    wins = iter([0, 150, 0, 300, 100, 0, 250, 0])
    studio.win = lambda bet: next(wins, 0)
    player_id, token = await hub.new_player(deposit=20)
    first = await grant_bonus(hub, player_id, 400, "all-bonus-1", wagering=300)
    await grant_free_rounds(hub, player_id, 40, 2, "all-fr")
    stream = await opened_stream(hub, token)
    for i, amount in enumerate([40, 40, 90, 110, 60, 75]):  # two free rounds, then cash-and-bonus bets
        stream.bet(amount, f"all-{i}")
        assert kinds(await stream.until("settled", "error"))[-1] == "settled", i
    await stream.close()
    assert (await get_bonus(hub, first.bonus.bonus_id)).status == pb.BONUS_STATUS_CONVERTED
    second = await grant_bonus(hub, player_id, 200, "all-bonus-2", wagering=5_000)
    await forfeit(hub, second.bonus.bonus_id)

    # free rounds: 20 cash, +150 won; 90 from cash; 110 = 80 cash + 30 bonus, its 300 win split
    # 219 cash / 81 bonus (300 * 30 // 110); 60 and its 100 win in cash; 75 from cash; 335 wagered >= 300:
    # the 451 bonus converts
    state = await wallet(hub, player_id)
    assert (state.balance, state.bonus_balance.amount_minor) == (money(635), 0)
    history = await transactions(hub, player_id, page_size=500)
    assert history[0].balance_after == state.balance
    assert history[0].bonus_balance_after.amount_minor == state.bonus_balance.amount_minor == 0
    assert sum(t.amount.amount_minor for t in history) == state.balance.amount_minor
    assert sum(t.bonus_amount.amount_minor for t in history) == 0
    assert hub.posting_sums() == {USD: 0}
    assert_ledger_clean(hub)
