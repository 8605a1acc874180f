"""The Play stream over a live hub with a scriptable studio: ordering, money, failures, replays."""

import asyncio
import dataclasses
from datetime import timedelta

import grpc
import pytest

from adapters.base import (
    AmountNotRepresentable,
    BetLimit,
    ProviderTimeout,
    ProviderUnavailable,
    RoundStatusResult,
)
from casinohub.v1 import common_pb2, game_service_pb2 as pb
from tests.e2e.play_client import PlayStream, kinds, launch, opened_stream, without_seqs
from tests.e2e.test_reconciler import open_round, reconciler
from tests.errors import error_info, reason_of
from tests.fakes import FAKE_GAME, FakeStudio
from tests.support import Client, start_hub

BET_EVENTS = ["round_opened", "bet_accepted", "outcome", "settled"]


async def test_full_round_events_are_ordered_and_settle_the_win(hub: Client, studio: FakeStudio) -> None:
    studio.win = lambda bet: bet * 3
    player_id, token = await hub.new_player(deposit=1_000)
    stream = await opened_stream(hub, token)
    stream.bet(100, "bet-1")
    events = await stream.until("settled", "error")
    assert kinds(events) == BET_EVENTS
    assert [e.seq for e in events] == [2, 3, 4, 5]
    accepted, settled = events[1].bet_accepted, events[3].settled
    assert accepted.balance.amount_minor == 900
    assert settled.win.amount_minor == 300 and settled.balance.amount_minor == 1_200
    assert settled.transaction_ids[0] == accepted.transaction_id and len(settled.transaction_ids) == 2
    assert await hub.balance(player_id) == 1_200
    assert hub.posting_sums() == {"USD": 0}

    round_ = (await hub.games.GetRound(pb.GetRoundRequest(round_id=settled.round_id), metadata=hub.metadata)).round
    assert round_.status == pb.ROUND_STATUS_SETTLED
    assert (round_.bet.amount_minor, round_.win.amount_minor, round_.result) == (100, 300, "HEADS")
    assert list(round_.transaction_ids) == list(settled.transaction_ids)
    await stream.close()


async def test_bet_replay_appends_copies_of_the_original_events_and_debits_once(
        hub: Client, studio: FakeStudio) -> None:
    player_id, token = await hub.new_player(deposit=1_000)
    stream = await opened_stream(hub, token)
    stream.bet(100, "bet-r")
    first = await stream.until("settled")
    counts = hub.ledger_counts()
    stream.bet(100, "bet-r")
    again = await stream.until("settled")
    # New events of this session (seq never goes backwards on a stream) that carry the round's data.
    assert [e.seq for e in again] == [6, 7, 8, 9]
    assert [e.replay_of_seq for e in again] == [2, 3, 4, 5] and {e.replay_of_seq for e in first} == {0}
    assert [without_seqs(e) for e in again] == [without_seqs(e) for e in first]
    stream.bet(100, "bet-r")  # a second replay copies the originals, not the first replay's copies
    third = await stream.until("settled")
    assert [(e.seq, e.replay_of_seq) for e in third] == [(10, 2), (11, 3), (12, 4), (13, 5)]
    assert [without_seqs(e) for e in third] == [without_seqs(e) for e in first]
    assert hub.ledger_counts() == counts
    assert len(studio.plays) == 1
    assert await hub.balance(player_id) == 900

    stream.bet(150, "bet-r")  # same key, different amount
    refused = await stream.next()
    error = refused.error
    assert (refused.seq, refused.replay_of_seq) == (14, 0)
    assert (error.error.reason, error.error.code) == ("IDEMPOTENCY_KEY_REUSED", grpc.StatusCode.ALREADY_EXISTS.value[0])
    assert error.balance.amount_minor == 900 and hub.ledger_counts() == counts
    await stream.close()


async def test_resume_from_the_middle_of_a_replay_gets_exactly_the_rest(hub: Client) -> None:
    _, token = await hub.new_player(deposit=1_000)
    game_session_id = await launch(hub, token)
    stream = PlayStream(hub)
    stream.open(game_session_id, token)
    await stream.next()
    stream.bet(100, "replayed-then-dropped")
    await stream.until("settled")
    stream.bet(100, "replayed-then-dropped")
    seen = [await stream.next(), await stream.next()]
    assert [e.seq for e in seen] == [6, 7]
    await stream.close()  # the connection drops mid-replay

    resumed = PlayStream(hub)
    resumed.resume(game_session_id, token, seen[-1].seq)
    rest = [await resumed.next() for _ in range(3)]
    assert [(e.seq, e.replay_of_seq, e.WhichOneof("event")) for e in rest] == [
        (8, 4, "outcome"), (9, 5, "settled"), (10, 0, "session_opened")]
    await resumed.close()


async def test_fifty_concurrent_bets_on_a_balance_of_ten_bets(hub: Client, studio: FakeStudio) -> None:
    studio.delay = 0.05  # keep rounds open while the others race for the balance
    player_id, token = await hub.new_player(deposit=100)
    streams = [await opened_stream(hub, token) for _ in range(50)]
    for i, stream in enumerate(streams):
        stream.bet(10, f"race-{i}")
    outcomes = await asyncio.gather(*(s.until("settled", "error") for s in streams))
    settled = [o for o in outcomes if o[-1].WhichOneof("event") == "settled"]
    refused = [o[-1].error.error.reason for o in outcomes if o[-1].WhichOneof("event") == "error"]
    assert len(settled) == 10
    assert refused == ["INSUFFICIENT_FUNDS"] * 40
    assert await hub.balance(player_id) == 0
    assert hub.posting_sums() == {"USD": 0}
    for stream in streams:
        await stream.close()


@pytest.mark.parametrize("failure,reason,retryable", [
    (ProviderUnavailable("connection refused"), "PROVIDER_UNAVAILABLE", True),
    # The SDK's money refusal keeps the reason clients saw when adapters raised the hub's DomainError.
    (AmountNotRepresentable("200 minor USD is not a whole number of 1/7 units"), "AMOUNT_NOT_REPRESENTABLE", False),
])
async def test_provider_failure_after_the_debit_rolls_the_bet_back(
        hub: Client, studio: FakeStudio, failure: Exception, reason: str, retryable: bool) -> None:
    studio.fail = failure  # type: ignore[assignment]
    player_id, token = await hub.new_player(deposit=500)
    stream = await opened_stream(hub, token)
    stream.bet(200, "doomed")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "error"]
    assert events[1].bet_accepted.balance.amount_minor == 300  # debited before the provider was asked
    error = events[2].error
    assert error.error.reason == reason and error.error.retryable is retryable
    assert error.balance.amount_minor == 500
    assert await hub.balance(player_id) == 500
    round_ = (await hub.games.GetRound(pb.GetRoundRequest(round_id=error.round_id), metadata=hub.metadata)).round
    assert round_.status == pb.ROUND_STATUS_ROLLED_BACK
    assert hub.posting_sums() == {"USD": 0}
    await stream.close()


async def test_a_provider_timeout_leaves_the_round_open_for_the_reconciler_never_a_guess(
        hub: Client, studio: FakeStudio) -> None:
    """The studio may have played a round it did not answer in time: no refund; its own record decides."""
    studio.fail = ProviderTimeout("no answer in 0.5s")
    player_id, token = await hub.new_player(deposit=500)
    game_session_id = await launch(hub, token)
    stream = PlayStream(hub)
    stream.open(game_session_id, token)
    await stream.until("session_opened")
    stream.bet(200, "unanswered")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "error"]
    error = events[2].error
    assert (error.error.reason, error.error.state, error.error.retryable, error.balance.amount_minor) == (
        "PROVIDER_TIMEOUT", common_pb2.APPLY_STATE_UNKNOWN, True, 300)  # retry the key later
    assert await hub.balance(player_id) == 300  # still debited: nothing is guessed
    get = pb.GetRoundRequest(round_id=error.round_id)
    assert (await hub.games.GetRound(get, metadata=hub.metadata)).round.status == pb.ROUND_STATUS_OPEN
    stream.bet(200, "unanswered")  # the same key while the outcome is unknown
    again = await stream.until("error")
    assert (again[-1].error.error.reason, again[-1].error.error.state) == (
        "REQUEST_IN_PROGRESS", common_pb2.APPLY_STATE_UNKNOWN)
    await stream.close()

    studio.statuses[error.round_id] = RoundStatusResult(status="settled", win_minor=450)  # it had played it
    assert (await reconciler(hub, timedelta(0)).run_once(hub.operator_id)).settled == [error.round_id]
    assert await hub.balance(player_id) == 500 - 200 + 450
    assert (await hub.games.GetRound(get, metadata=hub.metadata)).round.status == pb.ROUND_STATUS_SETTLED
    resumed = PlayStream(hub)
    resumed.resume(game_session_id, token, error_seq := events[2].seq)
    told = await resumed.until("settled")  # the round's end reaches the session's log
    assert told[-1].settled.round_id == error.round_id and told[-1].settled.balance.amount_minor == 750
    assert told[-1].seq > error_seq
    await resumed.close()
    assert hub.posting_sums() == {"USD": 0}


async def test_a_bet_for_a_studio_whose_circuit_is_open_is_refused_with_nothing_taken(database_url: str) -> None:
    studio = FakeStudio()
    hub = await start_hub(database_url, {"fake": studio}, studio_attempts=1, breaker_failures=2, breaker_open_s=0.5)
    try:
        player_id, token = await hub.new_player(deposit=1_000)
        stream = await opened_stream(hub, token)
        stream.bet(100, "played")  # a round the studio played before it went down
        played = await stream.until("settled")
        studio.fail = ProviderUnavailable("connection refused")
        for key in ("down-1", "down-2"):  # sent, failed, refunded: the second opens the circuit
            stream.bet(100, key)
            assert kinds(await stream.until("error")) == ["round_opened", "bet_accepted", "error"]
        counts, sent = hub.ledger_counts(), len(studio.plays)
        stream.bet(100, "while-open")
        refused = await stream.until("error")
        assert kinds(refused) == ["error"]  # no round, no debit, nothing sent to the studio
        assert (refused[0].error.error.reason, refused[0].error.error.state, refused[0].error.round_id) == (
            "PROVIDER_UNAVAILABLE", common_pb2.APPLY_STATE_NOT_APPLIED, "")
        assert hub.ledger_counts() == counts and len(studio.plays) == sent
        assert await hub.balance(player_id) == 900
        stream.bet(100, "played")  # a key already answered gets its answer, whatever the studio's state
        replayed = await stream.until("settled")
        assert [(e.WhichOneof("event"), e.replay_of_seq) for e in replayed] == [
            (e.WhichOneof("event"), e.seq) for e in played]
        assert len(studio.plays) == sent and await hub.balance(player_id) == 900

        studio.fail = None  # the studio is back: after open_s one bet probes, and the circuit closes
        await asyncio.sleep(0.5)
        stream.bet(100, "probe")
        assert kinds(await stream.until("settled", "error"))[-1] == "settled"
        await stream.close()
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)


async def test_a_settled_bet_replayed_after_its_games_limits_narrowed_gets_its_round(
        hub: Client, studio: FakeStudio) -> None:
    player_id, token = await hub.new_player(deposit=1_000)
    stream = await opened_stream(hub, token)
    stream.bet(500, "before-the-change")
    played = await stream.until("settled")
    studio.games = [dataclasses.replace(FAKE_GAME, bet_limits=(BetLimit("USD", 1, 100),))]
    await hub.server.hub.catalog.refresh(force=True)
    stream.bet(500, "after-the-change")  # a new bet of 500 is out of the new limits: refused, nothing taken
    refused = await stream.until("error")
    assert (kinds(refused), refused[0].error.error.reason) == (["error"], "BET_OUT_OF_LIMITS")
    stream.bet(500, "before-the-change")  # the key already answered gets its answer
    replayed = await stream.until("settled")
    assert [(e.WhichOneof("event"), e.replay_of_seq) for e in replayed] == [
        (e.WhichOneof("event"), e.seq) for e in played]
    assert len(studio.plays) == 1 and await hub.balance(player_id) == played[-1].settled.balance.amount_minor
    await stream.close()


async def test_bet_above_balance_and_out_of_limits_change_nothing(hub: Client) -> None:
    player_id, token = await hub.new_player(deposit=50)
    stream = await opened_stream(hub, token)
    counts = hub.ledger_counts()
    for amount, key, currency, reason in [
        (51, "too-much", "USD", "INSUFFICIENT_FUNDS"),
        (0, "zero", "USD", "INVALID_AMOUNT"),
        (-1, "negative", "USD", "INVALID_AMOUNT"),
        (10, "", "USD", "INVALID_IDEMPOTENCY_KEY"),
        (10, "eur", "EUR", "CURRENCY_MISMATCH"),
        (10, "xxx", "XXX", "UNKNOWN_CURRENCY"),
        (100_001, "limit", "USD", "BET_OUT_OF_LIMITS"),
    ]:
        stream.bet(amount, key, currency)
        event = await stream.next()
        assert event.error.error.reason == reason, key
        assert event.error.error.state == common_pb2.APPLY_STATE_NOT_APPLIED
    assert await hub.balance(player_id) == 50
    assert hub.ledger_counts() == counts
    await stream.close()


async def test_bet_before_open_is_refused(hub: Client) -> None:
    stream = PlayStream(hub)
    stream.bet(10, "early")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream.next()
    assert reason_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "STREAM_NOT_OPEN")


@pytest.mark.parametrize("token", ["", "garbage", "chs_" + "x" * 43])
async def test_malformed_or_unknown_session_token_is_unauthenticated(hub: Client, token: str) -> None:
    _, good = await hub.new_player()
    game_session_id = await launch(hub, good)
    stream = PlayStream(hub)
    stream.open(game_session_id, token)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream.next()
    assert reason_of(err.value) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_SESSION")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await launch(hub, token)
    assert reason_of(err.value) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_SESSION")


async def test_another_players_game_session_is_not_found(hub: Client) -> None:
    _, alice = await hub.new_player()
    _, mallory = await hub.new_player()
    alices_session = await launch(hub, alice)
    stream = PlayStream(hub)
    stream.open(alices_session, mallory)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream.next()
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "GAME_SESSION_NOT_FOUND")


async def test_unknown_game_and_unsupported_currency(hub: Client) -> None:
    _, token = await hub.new_player()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await launch(hub, token, game_id="fake:nope")
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "GAME_NOT_FOUND")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await launch(hub, token, currency="EUR")
    assert reason_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "CURRENCY_MISMATCH")


async def test_resume_replays_exactly_the_missed_events(hub: Client, studio: FakeStudio) -> None:
    _, token = await hub.new_player(deposit=1_000)
    game_session_id = await launch(hub, token)
    stream = PlayStream(hub)
    stream.open(game_session_id, token)
    await stream.next()
    stream.bet(10, "r-1")
    first = await stream.until("settled")
    stream.bet(10, "r-2")
    second = await stream.until("settled")
    await stream.close()  # pretend the client saw only the first round

    resumed = PlayStream(hub)
    resumed.send(pb.PlayRequest(resume=pb.ResumeAction(
        game_session_id=game_session_id, session_token=token, last_seen_seq=first[-1].seq)))
    replay = [await resumed.next() for _ in second]
    assert [e.SerializeToString() for e in replay] == [e.SerializeToString() for e in second]
    reopened = await resumed.next()
    assert reopened.WhichOneof("event") == "session_opened" and reopened.seq == second[-1].seq + 1
    await resumed.close()


async def test_round_settles_even_if_the_client_disconnects_mid_round(hub: Client, studio: FakeStudio) -> None:
    studio.delay = 0.3
    studio.win = lambda bet: bet * 2
    player_id, token = await hub.new_player(deposit=100)
    stream = await opened_stream(hub, token)
    stream.bet(40, "gone")
    assert kinds(await stream.until("bet_accepted")) == ["round_opened", "bet_accepted"]
    await stream.close()
    for _ in range(100):
        if await hub.balance(player_id) == 140:
            break
        await asyncio.sleep(0.05)
    assert await hub.balance(player_id) == 140


async def test_unknown_round_is_not_found(hub: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await hub.games.GetRound(pb.GetRoundRequest(round_id="nope"), metadata=hub.metadata)
    assert reason_of(err.value) == (grpc.StatusCode.NOT_FOUND, "ROUND_NOT_FOUND")


async def test_same_key_while_the_first_bet_is_in_flight_is_aborted_retryable(hub: Client, studio: FakeStudio) -> None:
    studio.hold = asyncio.Event()  # the first round waits on the provider
    player_id, token = await hub.new_player(deposit=1_000)
    game_session_id = await launch(hub, token)
    first, second = PlayStream(hub), PlayStream(hub)
    for stream in (first, second):
        stream.open(game_session_id, token)
        await stream.next()
    first.bet(100, "twice")
    await first.until("bet_accepted")
    second.bet(100, "twice")
    error = (await second.next()).error.error
    assert (error.code, error.reason, error.retryable) == (grpc.StatusCode.ABORTED.value[0], "REQUEST_IN_PROGRESS", True)
    assert error.state == common_pb2.APPLY_STATE_UNKNOWN
    studio.hold.set()
    assert kinds(await first.until("settled")) == ["outcome", "settled"]
    second.bet(100, "twice")  # once the first has finished, the retry gets its stored events
    assert kinds(await second.until("settled")) == BET_EVENTS
    assert await hub.balance(player_id) == 900 and len(studio.plays) == 1
    await first.close()
    await second.close()


async def test_resume_during_a_round_delivers_the_rest_of_that_round(hub: Client, studio: FakeStudio) -> None:
    studio.hold = asyncio.Event()  # the round is still in play when the client comes back
    studio.win = lambda bet: bet * 2
    _, token = await hub.new_player(deposit=1_000)
    game_session_id = await launch(hub, token)
    dropped = PlayStream(hub)
    dropped.open(game_session_id, token)
    dropped.bet(100, "mid-round")
    assert [e.seq for e in await dropped.until("bet_accepted")] == [1, 2, 3]
    await dropped.close()

    resumed = PlayStream(hub)
    resumed.resume(game_session_id, token, 3)
    events = [await resumed.next()]
    studio.hold.set()
    events += await resumed.until("settled")
    assert [(e.seq, e.WhichOneof("event")) for e in events] == [
        (4, "session_opened"), (5, "outcome"), (6, "settled")]
    assert events[-1].settled.balance.amount_minor == 1_100
    resumed.bet(10, "after-resume")  # then the stream plays on as usual
    assert [e.seq for e in await resumed.until("settled")] == [7, 8, 9, 10]
    await resumed.close()


async def test_resume_follows_every_round_in_play_a_page_at_a_time(
        hub: Client, studio: FakeStudio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hub.play.PAGE", 1)  # the backlog and the followed rounds, one event per read
    studio.hold = asyncio.Event()
    _, token = await hub.new_player(deposit=1_000)
    game_session_id = await launch(hub, token)
    dropped = [PlayStream(hub), PlayStream(hub)]
    for i, stream in enumerate(dropped):  # two streams of one session, each with a round in play
        stream.open(game_session_id, token)
        stream.bet(100, f"in-play-{i}")
        await stream.until("bet_accepted")
        await stream.close()
    resumed = PlayStream(hub)
    resumed.resume(game_session_id, token, 1)
    events = [await resumed.next() for _ in range(6)]
    assert kinds(events) == ["round_opened", "bet_accepted", "session_opened"] * 2
    studio.hold.set()
    events += [await resumed.next() for _ in range(4)]
    assert [e.seq for e in events] == list(range(2, 12))
    assert sorted(kinds(events[6:])) == ["outcome", "outcome", "settled", "settled"]
    assert {e.settled.round_id for e in events if e.HasField("settled")} == {
        e.round_opened.round_id for e in events if e.HasField("round_opened")}
    await resumed.close()


async def test_resume_on_another_hub_delivers_a_round_in_flight_on_the_first(
        hub: Client, studio: FakeStudio, database_url: str) -> None:
    """Two hubs on one database, as two processes: only the database tells the second about the round."""
    studio.hold = asyncio.Event()
    other = await start_hub(database_url, {"fake": studio}, sandbox_operator_id=hub.operator_id)
    try:
        # A first call reads the caller's key: done now, so the resume below attaches within the round's delay.
        await other.games.ListGames(pb.ListGamesRequest(), metadata=other.metadata)
        _, token = await hub.new_player(deposit=1_000)
        game_session_id = await launch(hub, token)
        dropped = PlayStream(hub)
        dropped.open(game_session_id, token)
        dropped.bet(100, "elsewhere")
        await dropped.until("bet_accepted")
        await dropped.close()
        resumed = PlayStream(other)
        resumed.resume(game_session_id, token, 3)
        events = [await resumed.next()]
        studio.hold.set()
        events += await resumed.until("settled")
        assert [(e.seq, e.WhichOneof("event")) for e in events] == [
            (4, "session_opened"), (5, "outcome"), (6, "settled")]
        await resumed.close()
    finally:
        await other.channel.close()
        await other.server.stop(grace=1)


async def test_resume_waits_for_a_round_left_open_until_it_is_closed(hub: Client, studio: FakeStudio) -> None:
    """A round a crashed hub left OPEN gets no more events; the reconciler closing it ends the wait."""
    player_id, token = await hub.new_player(deposit=1_000)
    game_session_id = await launch(hub, token)
    await open_round(hub, player_id, 100, game_session_id=game_session_id)
    resumed = PlayStream(hub)
    resumed.resume(game_session_id, token, 0)
    assert (await resumed.next()).WhichOneof("event") == "session_opened"
    resumed.bet(10, "queued")  # read only once the open round is done
    first = asyncio.ensure_future(resumed.next())
    await asyncio.sleep(0.3)
    assert not first.done()
    assert (await reconciler(hub).run_once(hub.operator_id)).rolled_back
    refund = await first  # how the reconciler ended the round, then the queued bet
    assert (refund.WhichOneof("event"), refund.error.error.reason, refund.error.balance.amount_minor) == (
        "error", "PROVIDER_UNAVAILABLE", 1_000)
    assert kinds(await resumed.until("settled")) == BET_EVENTS
    assert await hub.balance(player_id) == 990
    await resumed.close()


async def test_a_round_the_reconciler_closes_ends_with_an_event_on_its_game_session(
        hub: Client, studio: FakeStudio) -> None:
    """Play ends every round with settled or error; a round a dead hub left open gets the same from the
    reconciler, so Resume and a replay of its bet tell the client how it ended, once."""
    player_id, token = await hub.new_player(deposit=1_000)
    game_session_id = await launch(hub, token)
    refunded = await open_round(hub, player_id, 100, game_session_id=game_session_id)
    won = await open_round(hub, player_id, 200, game_session_id=game_session_id)
    studio.statuses[won] = RoundStatusResult(status="settled", win_minor=500)
    for _ in range(2):  # the second pass finds nothing open: no second event
        await reconciler(hub).run_once(hub.operator_id)
    # A racing closer finds the round ended already.
    await hub.server.hub.engine.submit(lambda book, _: hub.server.hub.play.reconciled(book, hub.operator_id, won,
                                                                                      False), None)

    resumed = PlayStream(hub)
    resumed.resume(game_session_id, token, 0)
    events = await resumed.until("session_opened")
    await resumed.close()
    ends = [e for e in events if e.WhichOneof("event") in ("settled", "error")]
    assert sorted((e.WhichOneof("event"), e.settled.round_id or e.error.round_id) for e in ends) == sorted(
        [("error", refunded), ("settled", won)])
    settled = next(e.settled for e in ends if e.settled.round_id == won)
    assert (settled.win.amount_minor, len(settled.transaction_ids)) == (500, 2)
    error = next(e.error for e in ends if e.error.round_id == refunded)
    assert (error.idempotency_key, error.error.reason, error.error.state) == (
        f"bet-{refunded}", "PROVIDER_UNAVAILABLE", common_pb2.APPLY_STATE_NOT_APPLIED)
    assert await hub.balance(player_id) == 1_000 - 200 + 500


async def test_a_resumed_stream_waiting_for_a_round_honours_its_deadline(
        hub: Client, studio: FakeStudio) -> None:
    # The deadline leaves room for session_opened on a loaded machine (0.3 s did not, under parallel
    # suites) and passes long before the round ends.
    studio.delay = 3.0
    _, token = await hub.new_player(deposit=1_000)
    game_session_id = await launch(hub, token)
    dropped = PlayStream(hub)
    dropped.open(game_session_id, token)
    dropped.bet(100, "slow")
    await dropped.until("bet_accepted")
    await dropped.close()
    resumed = PlayStream(hub, timeout=1.0)
    resumed.resume(game_session_id, token, 3)
    assert (await resumed.next()).WhichOneof("event") == "session_opened"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await resumed.next()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    play = hub.server.hub.play
    for _ in range(50):  # the server stops waiting too, well before the round ends
        if not play._waiters:
            break
        await asyncio.sleep(0.01)
    assert not play._waiters


async def test_a_round_in_play_past_the_reconciliation_window_ends_the_resume_retryable(
        database_url: str, studio: FakeStudio) -> None:
    hub = await start_hub(database_url, {"fake": studio}, reconcile_after_s=0.3, reconcile_interval_s=0)
    try:
        player_id, token = await hub.new_player(deposit=1_000)
        game_session_id = await launch(hub, token)
        await open_round(hub, player_id, 100, game_session_id=game_session_id)
        resumed = PlayStream(hub)
        resumed.resume(game_session_id, token, 0)
        opened = await resumed.next()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await resumed.next()
        assert reason_of(err.value) == (grpc.StatusCode.ABORTED, "REQUEST_IN_PROGRESS")
        assert error_info(err.value).metadata["retryable"] == "true"
        await reconciler(hub).run_once(hub.operator_id)
        again = PlayStream(hub)  # once the round is closed, resuming works at once
        again.resume(game_session_id, token, opened.seq)
        assert [((e := await again.next()).WhichOneof("event"), e.seq) for _ in range(2)] == [
            ("error", 2), ("session_opened", 3)]  # the reconciler's refund, then this attach
        await again.close()
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)


@pytest.mark.parametrize("second", ["open", "resume"])
async def test_a_second_open_or_resume_on_a_stream_is_refused(hub: Client, second: str) -> None:
    _, token = await hub.new_player()
    game_session_id = await launch(hub, token)
    stream = PlayStream(hub)
    stream.open(game_session_id, token)
    assert (await stream.next()).seq == 1
    if second == "open":
        stream.open(game_session_id, token)
    else:
        stream.resume(game_session_id, token, 1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stream.next()
    assert reason_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "STREAM_ALREADY_OPEN")
    check = PlayStream(hub)  # nothing was appended: the next event of the session is seq 2
    check.resume(game_session_id, token, 1)
    assert ((event := await check.next()).WhichOneof("event"), event.seq) == ("session_opened", 2)
    await check.close()


async def test_resume_beyond_the_last_stored_seq_is_out_of_range(hub: Client) -> None:
    _, token = await hub.new_player()
    game_session_id = await launch(hub, token)
    stream = PlayStream(hub)
    stream.open(game_session_id, token)
    opened = await stream.next()
    await stream.close()
    for last_seen in (2**64 - 1, 2**63, opened.seq + 1):
        resumed = PlayStream(hub)
        resumed.resume(game_session_id, token, last_seen)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await resumed.next()
        assert reason_of(err.value) == (grpc.StatusCode.OUT_OF_RANGE, "SEQ_OUT_OF_RANGE"), last_seen
    check = PlayStream(hub)  # nothing was appended, and the last stored seq itself is fine
    check.resume(game_session_id, token, opened.seq)
    assert ((event := await check.next()).WhichOneof("event"), event.seq) == ("session_opened", 2)
    await check.close()
