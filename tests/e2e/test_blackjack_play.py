"""Blackjack through the hub's Play stream against the real Tablehouse studio: hands dealt from a known server
seed (the studio's seed is pinned, the client seed chosen so the deal is the one a test needs), acts with their
extra stakes, replays, refusals, resume mid-hand, GetRound's entries and the reconciler on a hand left open.
Every hand is replayed from its provably-fair seeds with the studio's published rules, and its payout must be
the one the hub credited."""

import asyncio
import os
import pathlib
import re
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select, update

from casinohub.v1 import admin_service_pb2, admin_service_pb2_grpc, common_pb2, game_service_pb2 as pb
from hub.clock import utcnow
from hub.config import ProviderSettings
from hub.ledger.check import check
from hub.ledger.rounds import RoundLedger
from hub.ledger.schema import idempotency_keys, rounds
from hub.ledger.uow import UnitOfWork
from hub.reconciler import Reconciler
from mock_providers.tablehouse import blackjack, fairness
from mock_providers.tablehouse.server import Studio, start_server
from tests.e2e.play_client import PlayStream, kinds, opened_stream
from tests.e2e.test_reelhouse_e2e import ADMIN_TOKEN, ROOT, SECRET as REELHOUSE_SECRET, reelhouse, walkthrough
from tests.support import Client, start_hub

SECRET = "bj-secret"
BLACKJACK = "tablehouse:blackjack"
SERVER_SEED = "5e" * 32  # pinned, so a client seed picks the deal
KIND = {"hit": pb.ACTION_KIND_HIT, "stand": pb.ACTION_KIND_STAND, "double": pb.ACTION_KIND_DOUBLE,
        "split": pb.ACTION_KIND_SPLIT}
NAME = {v: k for k, v in KIND.items()}
__all__ = ["reelhouse"]  # the Reelhouse studio fixture, for the README walkthrough


@pytest.fixture
async def live(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Client, Studio]]:
    monkeypatch.setattr(fairness, "new_server_seed", lambda: SERVER_SEED)
    server, port, studio = await start_server(port=0, secret=SECRET)
    provider = ProviderSettings(name="tablehouse", adapter="tablehouse", url=f"grpc://127.0.0.1:{port}",
                                secret=SECRET, timeout_s=0.5)
    client = await start_hub(database_url, None, providers=(provider,))
    yield client, studio
    await client.channel.close()
    await client.server.stop(grace=1)
    await server.stop(None)


def client_seed_where(wanted: Callable[[blackjack.Table], bool], stake: int = 200) -> str:
    """The first client seed whose first hand (nonce 0) deals a table `wanted` accepts."""
    for i in range(10_000):
        seed = f"seed-{i}"
        if wanted(blackjack.Table.deal(stake, fairness.cards(SERVER_SEED, seed, 0))):
            return seed
    raise AssertionError("no such deal in 10,000 seeds")


def undecided(table: blackjack.Table) -> bool:
    return not table.finished


def pair(table: blackjack.Table) -> bool:
    return blackjack.SPLIT in table.actions()


def replayed_return(client_seed: str, stake: int, actions: list[str], nonce: int = 0) -> int:
    """What the hand pays by the studio's published rules, replayed from its seeds and actions."""
    table = blackjack.Table.deal(stake, fairness.cards(SERVER_SEED, client_seed, nonce))
    for action in actions:
        table.act(action)
    assert table.finished
    return table.returned()


async def blackjack_stream(client: Client, token: str, client_seed: str) -> tuple[PlayStream, str]:
    launched = await client.games.LaunchGame(pb.LaunchGameRequest(
        session_token=token, game_id=BLACKJACK, currency="USD", client_seed=client_seed), metadata=client.metadata)
    stream = PlayStream(client)
    stream.open(launched.game_session_id, token)
    assert (await stream.next()).WhichOneof("event") == "session_opened"
    return stream, launched.game_session_id


def act(stream: PlayStream, round_id: str, action: str, key: str) -> None:
    stream.send(pb.PlayRequest(act=pb.RoundAction(round_id=round_id, action=KIND[action], idempotency_key=key)))


async def deal(stream: PlayStream, amount: int, key: str) -> tuple[str, list[pb.PlayResponse]]:
    stream.bet(amount, key)
    events = await stream.until("action_required", "settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "action_required"], events
    return events[0].round_opened.round_id, events


async def finish(stream: PlayStream, round_id: str, prefix: str, first: list[str],
                 then: str = "stand") -> tuple[list[str], pb.PlayResponse, list[pb.PlayResponse]]:
    """Act `first` in order, then `then` until the hand ends; returns the actions taken, the Settled event
    and every event."""
    taken: list[str] = []
    seen: list[pb.PlayResponse] = []
    plan = list(first)
    while True:
        action = plan.pop(0) if plan else then
        act(stream, round_id, action, f"{prefix}-{len(taken)}")
        events = await stream.until("action_required", "settled", "error")
        seen += events
        assert events[-1].WhichOneof("event") != "error", events[-1]
        taken.append(action)
        if events[-1].WhichOneof("event") == "settled":
            return taken, events[-1], seen


async def test_a_hand_hit_then_stood_settles_what_the_cards_pay(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(lambda t: undecided(t) and blackjack.total(t.hands[0].cards)[0] <= 11)
    stream, _ = await blackjack_stream(client, token, seed)
    round_id, dealt = await deal(stream, 200, "hand-1")
    waiting = dealt[-1].action_required
    assert (waiting.round_id, waiting.step, waiting.stake.amount_minor, waiting.idempotency_key) == (
        round_id, 0, 200, "hand-1")
    offered = {NAME[c.action]: c.extra_stake.amount_minor for c in waiting.actions}
    assert offered["hit"] == 0 and offered["stand"] == 0 and offered["double"] == 200
    assert " vs " in waiting.hand and waiting.balance.amount_minor == 800
    taken, settled, events = await finish(stream, round_id, "h1", ["hit"])
    assert taken[0] == "hit"
    win = replayed_return(seed, 200, taken)
    assert settled.settled.win.amount_minor == win
    assert "bet_accepted" not in kinds(events)  # hit and stand stake nothing
    # The outcome's proof names the seeds and nonce the hand was dealt from: replayed, it pays the same.
    proof = next(e.outcome.proof for e in events if e.WhichOneof("event") == "outcome")
    assert (proof.server_seed_hash, proof.client_seed, proof.nonce) == (fairness.seed_hash(SERVER_SEED), seed, 0)
    # A second hand takes the session's next nonce; stood at once, whatever it was dealt.
    stream.bet(200, "hand-2")
    second = await stream.until("action_required", "settled", "error")
    while second[-1].WhichOneof("event") == "action_required":  # stand until the hand (or a split's) ends
        act(stream, second[0].round_opened.round_id, "stand", f"h2-{len(second)}")
        second += await stream.until("action_required", "settled", "error")
    proof = next(e.outcome.proof for e in second if e.WhichOneof("event") == "outcome")
    assert proof.nonce == 1
    stood = blackjack.Table.deal(200, fairness.cards(SERVER_SEED, proof.client_seed, proof.nonce))
    while not stood.finished:
        stood.act(blackjack.STAND)
    assert second[-1].settled.win.amount_minor == stood.returned()
    win += stood.returned() - 200
    await stream.close()
    assert await client.balance(player_id) == 1_000 - 200 + win
    assert client.posting_sums() == {"USD": 0}
    assert studio.rounds[round_id].finished and len(studio.rounds) == 2
    [ledger] = check(client.database_url, client.operator_id)
    assert ledger.ok, ledger.render()


async def test_a_double_debits_the_stake_again_before_the_studio_hears_of_it(live: tuple[Client, Studio]) -> None:
    client, _ = live
    player_id, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(undecided)
    stream, _ = await blackjack_stream(client, token, seed)
    round_id, _ = await deal(stream, 200, "dbl")
    act(stream, round_id, "double", "dbl-1")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["bet_accepted", "outcome", "settled"]
    assert (events[0].bet_accepted.amount.amount_minor, events[0].bet_accepted.balance.amount_minor) == (200, 600)
    win = replayed_return(seed, 200, ["double"])
    assert events[-1].settled.win.amount_minor == win
    assert len(events[-1].settled.transaction_ids) == 2 + (1 if win else 0)
    await stream.close()
    assert await client.balance(player_id) == 1_000 - 400 + win
    round_ = (await client.games.GetRound(pb.GetRoundRequest(round_id=round_id), metadata=client.metadata)).round
    assert round_.bet.amount_minor == 400 and round_.status == pb.ROUND_STATUS_SETTLED


async def test_a_split_stakes_the_second_hand_exactly(live: tuple[Client, Studio]) -> None:
    client, _ = live
    player_id, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(pair)
    stream, _ = await blackjack_stream(client, token, seed)
    round_id, _ = await deal(stream, 200, "spl")
    act(stream, round_id, "split", "spl-0")
    events = await stream.until("action_required", "settled", "error")
    assert kinds(events)[0] == "bet_accepted" and events[0].bet_accepted.amount.amount_minor == 200
    assert events[0].bet_accepted.balance.amount_minor == 600
    taken = ["split"]
    settled = events[-1]
    if settled.WhichOneof("event") != "settled":
        assert settled.action_required.stake.amount_minor == 400
        more, settled, _ = await finish(stream, round_id, "spl-s", [])
        taken += more
    win = replayed_return(seed, 200, taken)
    assert settled.settled.win.amount_minor == win
    await stream.close()
    assert await client.balance(player_id) == 1_000 - 400 + win
    assert client.posting_sums() == {"USD": 0}


async def test_refusals_change_nothing(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=300)
    seed = client_seed_where(lambda t: undecided(t) and blackjack.SPLIT not in t.actions())
    stream, session_id = await blackjack_stream(client, token, seed)
    round_id, _ = await deal(stream, 200, "ref")
    steps_before = len(studio.rounds[round_id].steps)

    async def refused(round_: str, action: str, key: str) -> str:
        act(stream, round_, action, key)
        [error] = await stream.until("error")
        return error.error.error.reason

    # Not offered now (no pair): refused; the round still waits for the same step.
    assert await refused(round_id, "split", "ref-a") == "ACTION_NOT_ALLOWED"
    # The double's extra 200 is more than the 100 left: refused before the studio hears of it.
    assert await refused(round_id, "double", "ref-b") == "INSUFFICIENT_FUNDS"
    assert await refused("no-such-round", "hit", "ref-c") == "ROUND_NOT_FOUND"
    assert len(studio.rounds[round_id].steps) == steps_before
    assert await client.balance(player_id) == 100
    # Another player's stream cannot act on this round.
    _, other_token = await client.new_player(deposit=300)
    other, _ = await blackjack_stream(client, other_token, seed)
    act(other, round_id, "stand", "other-1")
    assert (await other.until("error"))[-1].error.error.reason == "ROUND_NOT_FOUND"
    await other.close()
    # A missing action is a bad request.
    stream.send(pb.PlayRequest(act=pb.RoundAction(round_id=round_id, idempotency_key="ref-d")))
    with pytest.raises(Exception) as bad:
        await stream.until("error")
    assert "INVALID_ARGUMENT" in str(bad.value)
    await stream.close()
    # The hand is still playable, on a new stream, and a stand ends it; then it takes no more actions.
    stream, _ = await resumed(client, session_id, token, 0)
    act(stream, round_id, "stand", "ref-e")
    settled = (await stream.until("settled"))[-1]
    assert settled.settled.win.amount_minor == replayed_return(seed, 200, ["stand"])
    assert await refused(round_id, "hit", "ref-f") == "ROUND_CLOSED"
    await stream.close()
    assert await client.balance(player_id) == 100 + settled.settled.win.amount_minor


async def resumed(client: Client, session_id: str, token: str, last_seen: int) -> tuple[PlayStream, list[pb.PlayResponse]]:
    stream = PlayStream(client)
    stream.resume(session_id, token, last_seen)
    return stream, await stream.until("session_opened")


async def test_a_replayed_act_repeats_its_events_and_never_debits_twice(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(undecided)
    stream, _ = await blackjack_stream(client, token, seed)
    round_id, _ = await deal(stream, 200, "rep")
    act(stream, round_id, "double", "rep-1")
    first = await stream.until("settled")
    act(stream, round_id, "double", "rep-1")
    again = await stream.until("settled")
    assert [e.replay_of_seq for e in again] == [e.seq for e in first]
    assert all(a.seq > first[-1].seq for a in again)
    assert [e.WhichOneof("event") for e in again] == kinds(first)
    # The same key for another action is refused.
    act(stream, round_id, "stand", "rep-1")
    assert (await stream.until("error"))[-1].error.error.reason == "IDEMPOTENCY_KEY_REUSED"
    # The replayed bet repeats the whole round, acts included.
    stream.bet(200, "rep")
    whole = await stream.until("settled")
    assert kinds(whole) == ["round_opened", "bet_accepted", "action_required", "bet_accepted", "outcome", "settled"]
    await stream.close()
    win = replayed_return(seed, 200, ["double"])
    assert await client.balance(player_id) == 1_000 - 400 + win
    assert len(studio.rounds[round_id].steps) == 2


async def test_resume_mid_hand_sends_the_pending_action_again(live: tuple[Client, Studio]) -> None:
    client, _ = live
    player_id, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(undecided)
    stream, session_id = await blackjack_stream(client, token, seed)
    round_id, dealt = await deal(stream, 200, "res")
    await stream.close()  # the connection drops mid-hand
    stream, backlog = await resumed(client, session_id, token, dealt[0].seq - 1)
    assert kinds(backlog) == ["round_opened", "bet_accepted", "action_required", "session_opened"]
    pending = await stream.next()
    assert pending.action_required.round_id == round_id and pending.replay_of_seq == dealt[-1].seq
    act(stream, round_id, "stand", "res-1")
    settled = (await stream.until("settled"))[-1]
    assert settled.settled.win.amount_minor == replayed_return(seed, 200, ["stand"])
    await stream.close()
    # Resuming after the hand ended re-sends nothing.
    stream, backlog = await resumed(client, session_id, token, settled.seq)
    assert kinds(backlog) == ["session_opened"]
    await stream.close()
    assert await client.balance(player_id) == 800 + settled.settled.win.amount_minor


async def test_get_round_lists_the_bets_and_wins_and_the_replay_url(live: tuple[Client, Studio]) -> None:
    client, _ = live
    _, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(lambda t: undecided(t) and replayed_return_of(t) > 0)
    stream, _ = await blackjack_stream(client, token, seed)
    round_id, _ = await deal(stream, 200, "gr")
    act(stream, round_id, "double", "gr-1")
    settled = (await stream.until("settled"))[-1].settled
    await stream.close()
    round_ = (await client.games.GetRound(pb.GetRoundRequest(round_id=round_id), metadata=client.metadata)).round
    entries = [(e.kind, e.amount.amount_minor, e.key) for e in round_.entries]
    assert entries == [(pb.ROUND_ENTRY_KIND_BET, 200, "gr"), (pb.ROUND_ENTRY_KIND_BET, 200, f"{round_id}:stake:1"),
                       (pb.ROUND_ENTRY_KIND_WIN, settled.win.amount_minor, f"{round_id}:win")]
    assert [e.transaction_id for e in round_.entries] == list(settled.transaction_ids)
    assert all(e.time.seconds for e in round_.entries)
    assert round_.replay_url == f"https://tablehouse.example/replay/{round_id}"


def replayed_return_of(table: blackjack.Table) -> int:
    """What doubling this deal pays."""
    table.act(blackjack.DOUBLE)
    return table.returned()


async def test_the_reconciler_settles_a_hand_left_open_by_the_studio_s_record(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(undecided)
    stream, _ = await blackjack_stream(client, token, seed)
    round_id, _ = await deal(stream, 200, "rec")
    await stream.close()  # the player walks away mid-hand
    hub = client.server.hub

    def _age(uow: UnitOfWork) -> None:
        uow.conn.execute(update(rounds).where(rounds.c.operator_id == client.operator_id,
                                              rounds.c.round_id == round_id).values(opened_at=utcnow() - timedelta(hours=1)))
        uow.commit()

    await hub.db.run(_age)
    reconciler = Reconciler(hub.db, hub.engine, hub.catalog, RoundLedger(8), timedelta(minutes=5), hub.play.reconciled)
    # The studio still waits for the player: the round is left alone.
    report = await reconciler.run_once(client.operator_id)
    assert (report.examined, report.settled, report.rolled_back, report.in_progress) == (1, [], [], [round_id])
    assert await client.balance(player_id) == 800
    # Once the studio stands the hand out (its abandon rule), the round settles with its win.
    studio.faults.abandon_after_s = 0
    report = await reconciler.run_once(client.operator_id)
    assert report.settled == [round_id]
    win = replayed_return(seed, 200, ["stand"])
    assert await client.balance(player_id) == 800 + win
    [ledger] = check(client.database_url, client.operator_id)
    assert ledger.ok, ledger.render()


async def age(client: Client, round_id: str) -> None:
    def _age(uow: UnitOfWork) -> None:
        uow.conn.execute(update(rounds).where(rounds.c.operator_id == client.operator_id,
                                              rounds.c.round_id == round_id).values(opened_at=utcnow() - timedelta(hours=1)))
        uow.commit()

    await client.server.hub.db.run(_age)


async def test_a_step_the_studio_never_took_is_refunded_by_the_reconciler(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(undecided)
    stream, _ = await blackjack_stream(client, token, seed)
    round_id, _ = await deal(stream, 200, "lost")
    studio.faults.fail_next = 3  # every attempt of the double: UNAVAILABLE, nothing done at the studio
    act(stream, round_id, "double", "lost-1")
    events = await stream.until("error")
    assert kinds(events) == ["bet_accepted", "error"]
    assert (events[-1].error.error.reason, events[-1].error.error.state) == ("PROVIDER_UNAVAILABLE",
                                                                            common_pb2.APPLY_STATE_UNKNOWN)
    # The round waits for that step's answer: another action is refused, nothing moves.
    act(stream, round_id, "stand", "lost-2")
    assert (await stream.until("error"))[-1].error.error.reason == "ROUND_NOT_AWAITING_ACTION"
    await stream.close()
    assert await client.balance(player_id) == 600 and len(studio.rounds[round_id].steps) == 1
    await age(client, round_id)
    studio.faults.abandon_after_s = 0  # the studio stands the hand out: its record has the first stake only
    hub = client.server.hub
    report = await Reconciler(hub.db, hub.engine, hub.catalog, RoundLedger(8), timedelta(minutes=5),
                              hub.play.reconciled).run_once(client.operator_id)
    assert report.settled == [round_id], report.render()
    win = replayed_return(seed, 200, ["stand"])
    assert await client.balance(player_id) == 1_000 - 200 + win
    round_ = (await client.games.GetRound(pb.GetRoundRequest(round_id=round_id), metadata=client.metadata)).round
    assert [(e.kind, e.amount.amount_minor) for e in round_.entries][:3] == [
        (pb.ROUND_ENTRY_KIND_BET, 200), (pb.ROUND_ENTRY_KIND_BET, 200), (pb.ROUND_ENTRY_KIND_REFUND, 200)]
    [ledger] = check(client.database_url, client.operator_id)
    assert ledger.ok, ledger.render()


async def test_a_step_whose_answer_was_lost_is_asked_again_by_the_same_act(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(undecided)
    stream, _ = await blackjack_stream(client, token, seed)
    round_id, _ = await deal(stream, 200, "late")
    studio.faults.update({"fail_next": 1, "fail_mode": "timeout", "hang_s": 2.0})  # played, answer lost
    act(stream, round_id, "double", "late-1")
    events = await stream.until("error")
    assert kinds(events) == ["bet_accepted", "error"] and events[-1].error.error.reason == "PROVIDER_TIMEOUT"
    act(stream, round_id, "double", "late-1")  # the same act: the studio answers the stored step, no new debit
    again = await stream.until("settled", "error")
    assert kinds(again) == ["outcome", "settled"]
    win = replayed_return(seed, 200, ["double"])
    assert again[-1].settled.win.amount_minor == win
    await stream.close()
    assert await client.balance(player_id) == 1_000 - 400 + win
    assert len(studio.rounds[round_id].steps) == 2


def table_walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- table-walkthrough:start -->\n```bash\n(.*?)```\n<!-- table-walkthrough:end -->",
                      readme, re.S)
    assert block, "README table walkthrough block not found"
    return block.group(1)


async def test_readme_table_games_walkthrough_runs_as_printed(
        database_url: str, reelhouse: tuple[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's main walkthrough (its set-up: token, player, deposit), then its table-games block: one
    roulette round, one blackjack hand dealt, stood on another stream, and GetRound, as printed."""
    # A server seed whose deal for the README's client seed waits for the player.
    seeds = (f"{i:064x}" for i in range(10_000))
    seed = next(s for s in seeds if undecided(blackjack.Table.deal(200, fairness.cards(s, "walkthrough", 0))))
    monkeypatch.setattr(fairness, "new_server_seed", lambda: seed)
    server, port, studio = await start_server(port=0, secret=SECRET)
    providers = (ProviderSettings(name="reelhouse", adapter="reelhouse", url=reelhouse[0], secret=REELHOUSE_SECRET,
                                  timeout_s=0.5),
                 ProviderSettings(name="tablehouse", adapter="tablehouse", url=f"grpc://127.0.0.1:{port}",
                                  secret=SECRET, timeout_s=0.5))
    client = await start_hub(database_url, None, providers=providers, admin_token=ADMIN_TOKEN)
    try:
        key = await admin_service_pb2_grpc.AdminServiceStub(client.channel).CreateApiKey(
            admin_service_pb2.CreateApiKeyRequest(operator_id=client.operator_id),
            metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),))
        env = {**os.environ, "HUB": f"127.0.0.1:{client.port}", "KEY_ID": key.api_key.key_id, "SECRET": key.secret,
               "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        process = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", walkthrough() + table_walkthrough(), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 120)
        stdout = out.decode()
        assert process.returncode == 0, err.decode() + stdout
        assert '"action_required"' in stdout and '"ACTION_KIND_STAND"' in stdout
        assert stdout.count('"settled"') == 3 and '"error"' not in stdout  # the slot, the spin, the hand
        assert '"ROUND_ENTRY_KIND_BET"' in stdout and "https://tablehouse.example/replay/" in stdout
        assert [r.finished for r in studio.rounds.values()] == [True, True]
        assert client.posting_sums() == {"USD": 0}
    finally:
        await client.channel.close()
        await client.server.stop(grace=1)
        await server.stop(None)


async def test_a_demo_session_refuses_blackjack_and_returns_the_fun_stake(live: tuple[Client, Studio]) -> None:
    client, studio = live
    launched = await client.games.LaunchGame(pb.LaunchGameRequest(
        game_id=BLACKJACK, currency="USD", demo=True), metadata=client.metadata)
    stream = PlayStream(client)
    stream.open(launched.game_session_id, "")
    assert (await stream.next()).WhichOneof("event") == "session_opened"
    stream.bet(200, "fun-hand")
    events = await stream.until("settled", "error")
    assert kinds(events) == ["round_opened", "bet_accepted", "error"]
    assert events[-1].error.error.reason == "PROVIDER_REJECTED" and "actions" in events[-1].error.error.message
    assert events[-1].error.balance.amount_minor == launched.demo_balance.amount_minor
    act(stream, events[0].round_opened.round_id, "stand", "fun-act")
    assert (await stream.until("error"))[-1].error.error.reason == "ROUND_NOT_AWAITING_ACTION"
    await stream.close()
    assert studio.rounds == {}


async def test_a_slot_round_names_the_studio_s_replay_page(
        database_url: str, reelhouse: tuple[str, object]) -> None:
    provider = ProviderSettings(name="reelhouse", adapter="reelhouse", url=reelhouse[0], secret=REELHOUSE_SECRET,
                                timeout_s=0.5)
    client = await start_hub(database_url, None, providers=(provider,))
    try:
        _, token = await client.new_player(deposit=1_000)
        stream = await opened_stream(client, token, "reelhouse:fruit-classic")
        stream.bet(100, "spin-1")
        settled = (await stream.until("settled"))[-1].settled
        await stream.close()
        round_ = (await client.games.GetRound(pb.GetRoundRequest(round_id=settled.round_id),
                                              metadata=client.metadata)).round
        assert round_.replay_url == f"{reelhouse[0]}/replay/{settled.round_id}"
        assert [e.kind for e in round_.entries] == [pb.ROUND_ENTRY_KIND_BET] + (
            [pb.ROUND_ENTRY_KIND_WIN] if settled.win.amount_minor else [])
        async with aiohttp.ClientSession() as http, http.get(round_.replay_url) as page:
            assert page.status == 200 and "Reelhouse replay" in await page.text()
        async with aiohttp.ClientSession() as http, http.get(f"{reelhouse[0]}/replay/unknown") as page:
            assert page.status == 404
    finally:
        await client.channel.close()
        await client.server.stop(grace=1)


async def test_resume_while_a_step_is_in_play_follows_it_to_its_answer(live: tuple[Client, Studio]) -> None:
    client, studio = live
    player_id, token = await client.new_player(deposit=1_000)
    seed = client_seed_where(undecided)
    stream, session_id = await blackjack_stream(client, token, seed)
    round_id, _ = await deal(stream, 200, "fly")
    studio.faults.latency_ms = 300  # the studio takes its time (within the hub's 0.5 s deadline)
    act(stream, round_id, "stand", "fly-1")

    def _claimed(uow: UnitOfWork) -> bool:
        return uow.conn.execute(select(idempotency_keys.c.idempotency_key).where(
            idempotency_keys.c.operator_id == client.operator_id,
            idempotency_keys.c.idempotency_key == f"{round_id}:step:1")).first() is not None

    while not await client.server.hub.db.run(_claimed):  # the step is claimed; its answer is not in yet
        await asyncio.sleep(0.01)
    other, backlog = await resumed(client, session_id, token, 1)  # after the first SessionOpened
    assert kinds(backlog) == ["round_opened", "bet_accepted", "action_required", "session_opened"]  # the deal's, in the backlog; not sent again: the step is in play
    followed = await other.until("settled")
    assert kinds(followed) == ["outcome", "settled"]
    assert kinds(await stream.until("settled")) == ["outcome", "settled"]
    await stream.close()
    await other.close()
    assert await client.balance(player_id) == 800 + followed[-1].settled.win.amount_minor
