"""TablehouseAdapter against a live Tablehouse studio over gRPC: catalog, launch, roulette and blackjack
rounds (a hand replayed from its seed), duplicates, every failure mapping, exact money conversion."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from adapters.base import (
    LAYOUT,
    ActionInput,
    AmountNotRepresentable,
    CatalogInput,
    LaunchInput,
    MultiStepAdapter,
    PlayInput,
    PlayResult,
    ProviderAdapter,
    ProviderConfig,
    ProviderProtocolError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RoundStatusInput,
)
from adapters.tablehouse import TablehouseAdapter
from casinohub.provider.v1 import provider_game_service_pb2 as pb, provider_game_service_pb2_grpc as pb_grpc
from mock_providers.tablehouse import blackjack, fairness, roulette
from mock_providers.tablehouse.server import CONTROL_METHOD
from tests.contract.conftest import SECRET

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO_ROOT / "mock_providers" / "tablehouse" / "test_vectors.json").read_text())
ROULETTE, BLACKJACK = "european-roulette", "blackjack"


async def launch(adapter, session_id="gs-1", game_id=ROULETTE, currency="USD", client_seed="lucky"):
    return await adapter.launch(LaunchInput(
        game_session_id=session_id, provider_game_id=game_id, operator_id="op-1", player_id="p-1",
        currency=currency, client_seed=client_seed))


def bet(round_id, bet_minor=100, bets="", session_id="gs-1", game_id=ROULETTE, currency="USD", multi_step=False):
    return PlayInput(round_id=round_id, game_session_id=session_id, provider_game_id=game_id, operator_id="op-1",
                     player_id="p-1", currency=currency, bet_minor=bet_minor,
                     params={LAYOUT: bets} if bets else {}, multi_step=multi_step)


def action(round_id, step, name, extra=0, session_id="gs-bj"):
    return ActionInput(round_id=round_id, game_session_id=session_id, provider_game_id=BLACKJACK,
                       operator_id="op-1", player_id="p-1", currency="USD", step=step, action=name,
                       extra_stake_minor=extra)


def next_pocket(studio, session_id="gs-1") -> int:
    """The pocket the session's next round will land on: the test reads the seed the studio committed to."""
    session = studio.state.sessions[session_id]
    return fairness.pocket(session.server_seed, session.request.client_seed, session.next_nonce)


async def play_hand(adapter, round_id, policy, bet_minor=200, session_id="gs-bj") -> list[PlayResult]:
    """Deal, then act as `policy(result)` says until the round is finished; every step's result."""
    results = [await adapter.play(bet(round_id, bet_minor, session_id=session_id, game_id=BLACKJACK,
                                      multi_step=True))]
    while not results[-1].finished:
        chosen = policy(results[-1])
        option = next(o for o in results[-1].actions if o.action == chosen)
        results.append(await adapter.act(action(round_id, results[-1].step + 1, chosen, option.extra_stake_minor,
                                                session_id=session_id)))
    return results


def stand_on_17(result: PlayResult) -> str:
    return "stand" if "stand" in {o.action for o in result.actions} and _player_total(result) >= 17 else "hit"


def _player_total(result: PlayResult) -> int:
    active = result.result.split(" vs ")[0].split(" / ")[-1].split()
    values = [min("A23456789TJQK".index(c[0]) + 1, 10) for c in active]
    total = sum(values)
    return total + 10 if 1 in values and total + 10 <= 21 else total


def unused_target() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"grpc://127.0.0.1:{sock.getsockname()[1]}"


async def test_adapter_satisfies_both_protocols(table_adapter):
    assert isinstance(table_adapter, ProviderAdapter) and isinstance(table_adapter, MultiStepAdapter)
    assert table_adapter.name == "tablehouse"
    assert await table_adapter.health() is True


async def test_catalog_has_roulette_and_blackjack_with_limits_in_hub_units(table_adapter):
    games = {g.provider_game_id: g for g in await table_adapter.catalog(CatalogInput())}
    assert set(games) == {ROULETTE, BLACKJACK}
    assert {g.game_type for g in games.values()} == {"table"}
    assert (games[ROULETTE].rtp_basis_points, games[ROULETTE].max_win_multiplier) == (9730, 36)
    assert (games[BLACKJACK].rtp_basis_points, games[BLACKJACK].max_win_multiplier) == (9943, 8)
    limits = {lim.currency: (lim.min_minor, lim.max_minor, lim.step_minor) for lim in games[ROULETTE].bet_limits}
    assert limits["USD"] == (10, 50_000, 1)
    assert limits["BTC"] == (100, 1_000_000, 100)  # the studio counts micro-bitcoin, the hub satoshi
    assert limits["USDT"] == (100_000, 500_000_000, 10_000)  # cents at the studio, 10^-6 at the hub
    assert {lim.currency: lim.step_minor for lim in games[BLACKJACK].bet_limits}["USD"] == 2


async def test_launch_commits_to_a_server_seed_and_is_idempotent(table_adapter, table_studio):
    first = await launch(table_adapter)
    assert await launch(table_adapter) == first
    assert first.server_seed_hash == fairness.seed_hash(table_studio.state.sessions["gs-1"].server_seed)
    with pytest.raises(ProviderRejected, match="SESSION_ID_REUSED"):
        await launch(table_adapter, game_id=BLACKJACK)


async def test_a_winning_and_a_losing_roulette_round(table_adapter, table_studio):
    await launch(table_adapter)
    pocket = next_pocket(table_studio)
    won = await table_adapter.play(bet("r-win", 100, bets=f"straight:{pocket}=100"))
    assert (won.win_minor, won.finished, won.result.split()[0], won.proof.nonce) == (3600, True, str(pocket), 0)
    pocket = next_pocket(table_studio)
    lost = await table_adapter.play(bet("r-lose", 100, bets=f"straight:{(pocket + 1) % 37}=100"))
    assert (lost.win_minor, lost.proof.nonce) == (0, 1)


async def test_default_layout_is_the_whole_stake_on_red(table_adapter, table_studio):
    await launch(table_adapter)
    pocket = next_pocket(table_studio)
    result = await table_adapter.play(bet("r-1", 250))
    assert result.win_minor == (500 if pocket in roulette.RED else 0)


async def test_several_bets_in_one_round_are_paid_by_the_adapters_own_count(table_adapter, table_studio):
    await launch(table_adapter)
    for i in range(12):
        pocket = next_pocket(table_studio)
        layout = "straight:17=10;split:17-20=10;street:13-14-15=10;corner:0-1-2-3=10;line:31-32-33-34-35-36=10;" \
                 "dozen:2=10;column:3=10;black=10;odd=10;high=10"
        result = await table_adapter.play(bet(f"r-{i}", 100, bets=layout))
        numbers = [{17}, {17, 20}, {13, 14, 15}, {0, 1, 2, 3}, set(range(31, 37)), set(range(13, 25)),
                   set(range(3, 37, 3)), roulette.BLACK, set(range(1, 37, 2)), set(range(19, 37))]
        assert result.win_minor == sum(360 // len(n) for n in numbers if pocket in n)


async def test_layouts_are_checked_before_and_at_the_studio(table_adapter, table_studio):
    await launch(table_adapter)
    await table_adapter.catalog(CatalogInput())
    seen = table_studio.state.calls_seen
    for layout in ("red=60;black=50", "triple:1-2-3=100", "straight:37=100", "dozen:4=100"):
        with pytest.raises(ProviderRejected):
            await table_adapter.play(bet("r-bad", 100, bets=layout))
    assert table_studio.state.calls_seen == seen
    with pytest.raises(ProviderRejected, match="INVALID_BET"):
        await table_adapter.play(bet("r-geometry", 100, bets="split:3-4=100"))  # not adjacent on the layout


async def test_blackjack_hand_replays_from_its_seed(table_adapter, table_studio):
    """The published split-and-double vector, played through gRPC step by step: same cards, same win."""
    vector = VECTORS["blackjack"][0]
    assert vector["actions"][:2] == ["split", "double"]
    await launch(table_adapter, session_id="gs-bj", game_id=BLACKJACK, client_seed=vector["client_seed"])
    session = table_studio.state.sessions["gs-bj"]
    session.server_seed, session.next_nonce = vector["server_seed"], vector["nonce"]  # as if committed at launch
    actions = iter(vector["actions"])
    steps = await play_hand(table_adapter, "r-bj", lambda _: next(actions), bet_minor=vector["stake"])
    assert [s.step for s in steps] == list(range(len(vector["actions"]) + 1))
    assert steps[0].actions[-1].action == "split" and steps[0].actions[-1].extra_stake_minor == vector["stake"]
    final = steps[-1]
    hands = " / ".join(" ".join(h["cards"]) for h in vector["hands"])
    assert final.result == f"{hands} vs {' '.join(vector['dealer'])}"
    assert (final.finished, final.win_minor, final.stake_minor) == (True, vector["returned"], 3 * vector["stake"])
    assert (final.proof.server_seed_hash, final.proof.nonce) == (vector["server_seed_hash"], vector["nonce"])
    # The mock's own engine, fed the revealed seed and the same actions, deals the same hand.
    table = blackjack.Table.deal(vector["stake"], fairness.cards(vector["server_seed"], vector["client_seed"],
                                                                 vector["nonce"]))
    for name in vector["actions"]:
        table.act(name)
    assert table.returned() == final.win_minor


async def test_blackjack_hands_follow_the_rules_and_stakes_grow(table_adapter):
    await launch(table_adapter, session_id="gs-bj", game_id=BLACKJACK)
    for i in range(15):
        steps = await play_hand(table_adapter, f"r-{i}", stand_on_17)
        assert all(s.win_minor == 0 and not s.finished for s in steps[:-1])
        assert steps[-1].finished and steps[-1].win_minor in (0, 200, 400, 500)

    def double_first(result):
        return "double" if result.step == 0 else "stand"

    doubled = await play_hand(table_adapter, "r-double", double_first)
    assert doubled[-1].stake_minor in (200, 400)  # 200 if the deal ended the round (a natural)


async def test_blackjack_needs_a_caller_that_can_act(table_adapter, table_studio):
    await launch(table_adapter, session_id="gs-bj", game_id=BLACKJACK)
    await table_adapter.catalog(CatalogInput())
    seen = table_studio.state.calls_seen
    with pytest.raises(ProviderRejected, match="actions"):
        await table_adapter.play(bet("r-1", 200, session_id="gs-bj", game_id=BLACKJACK))
    assert table_studio.state.calls_seen == seen


async def test_duplicate_delivery_of_a_round_id_returns_the_same_outcome(table_adapter, table_studio):
    await launch(table_adapter)
    first = await table_adapter.play(bet("r-dup", 100))
    assert await table_adapter.play(bet("r-dup", 100)) == first
    concurrent = await asyncio.gather(*(table_adapter.play(bet("r-dup-2", 100)) for _ in range(5)))
    assert len(set(concurrent)) == 1
    assert table_studio.state.sessions["gs-1"].next_nonce == 2
    with pytest.raises(ProviderRejected, match="ROUND_ID_REUSED"):
        await table_adapter.play(bet("r-dup", 200))


async def test_duplicate_action_returns_the_same_step(table_adapter):
    await launch(table_adapter, session_id="gs-bj", game_id=BLACKJACK)
    for i in range(20):  # until a deal leaves the round open
        dealt = await table_adapter.play(bet(f"r-{i}", 200, session_id="gs-bj", game_id=BLACKJACK, multi_step=True))
        if not dealt.finished:
            break
    stood = await table_adapter.act(action(f"r-{i}", 1, "stand"))
    assert await table_adapter.act(action(f"r-{i}", 1, "stand")) == stood
    with pytest.raises(ProviderRejected, match="ROUND_ID_REUSED"):
        await table_adapter.act(action(f"r-{i}", 1, "hit"))
    with pytest.raises(ProviderRejected, match="ROUND_FINISHED"):
        await table_adapter.act(action(f"r-{i}", 2, "hit"))


async def test_timeout_with_unknown_outcome_is_resolved_by_round_status(table_adapter, table_studio):
    await launch(table_adapter)
    await table_adapter.catalog(CatalogInput())
    table_studio.faults.fail_next, table_studio.faults.fail_mode = 1, "timeout"
    with pytest.raises(ProviderTimeout):
        await table_adapter.play(bet("r-1", 100))
    status = await table_adapter.round_status(RoundStatusInput("r-1", "op-1"))
    assert (status.status, status.stake_minor) == ("settled", 100)
    assert status.win_minor == (await table_adapter.play(bet("r-1", 100))).win_minor


async def test_an_abandoned_hand_is_in_progress_then_stood_out(table_adapter, table_studio):
    await launch(table_adapter, session_id="gs-bj", game_id=BLACKJACK)
    for i in range(20):
        dealt = await table_adapter.play(bet(f"r-{i}", 200, session_id="gs-bj", game_id=BLACKJACK, multi_step=True))
        if not dealt.finished:
            break
    assert (await table_adapter.round_status(RoundStatusInput(f"r-{i}", "op-1"))).status == "in_progress"
    table_studio.faults.abandon_after_s = 0
    settled = await table_adapter.round_status(RoundStatusInput(f"r-{i}", "op-1"))
    assert settled.status == "settled" and settled.stake_minor == 200 and settled.win_minor in (0, 200, 400)


async def test_studio_error_is_unavailable_and_nothing_happened(table_adapter, table_studio):
    await launch(table_adapter)
    await table_adapter.catalog(CatalogInput())
    table_studio.faults.fail_next = 1
    with pytest.raises(ProviderUnavailable, match="UNAVAILABLE"):
        await table_adapter.play(bet("r-1", 100))
    assert (await table_adapter.round_status(RoundStatusInput("r-1", "op-1"))).status == "unknown"


async def test_an_amount_that_cannot_be_converted_exactly_is_refused(table_adapter, table_studio):
    await launch(table_adapter, currency="BTC")
    await table_adapter.catalog(CatalogInput())
    seen = table_studio.state.calls_seen
    for satoshi in (1, 150):  # the studio counts whole micro-bitcoin: 100 satoshi
        with pytest.raises(AmountNotRepresentable):
            await table_adapter.play(bet(f"r-{satoshi}", satoshi, currency="BTC"))
    assert table_studio.state.calls_seen == seen
    result = await table_adapter.play(bet("r-ok", 300, currency="BTC"))
    assert result.win_minor in (0, 600)


async def test_wrong_amounts_from_the_studio_are_protocol_errors(table_adapter, table_studio):
    await launch(table_adapter)
    await table_adapter.catalog(CatalogInput())
    table_studio.faults.cheat_next = 1
    with pytest.raises(ProviderProtocolError, match="claims win"):
        await table_adapter.play(bet("r-1", 100))
    honest = await table_adapter.play(bet("r-1", 100))  # the stored round is the honest one
    assert honest.win_minor in (0, 200)
    table_studio.faults.wrong_stake_next = 1
    with pytest.raises(ProviderProtocolError, match="stake"):
        await table_adapter.play(bet("r-2", 100))


async def test_wrong_secret_is_rejected(table_studio, make_table_adapter):
    with pytest.raises(ProviderRejected, match="INVALID_CREDENTIALS"):
        await make_table_adapter(table_studio.url, secret="not-the-secret").catalog(CatalogInput())


async def test_nothing_listening_is_unavailable(make_table_adapter):
    adapter = make_table_adapter(unused_target())
    with pytest.raises(ProviderUnavailable):
        await adapter.catalog(CatalogInput())
    assert await adapter.health() is False


async def test_latency_past_the_deadline_is_a_timeout(table_adapter, table_studio):
    await table_adapter.catalog(CatalogInput())
    table_studio.faults.latency_ms = 800  # the adapter's deadline is 0.5 s
    with pytest.raises(ProviderTimeout):
        await table_adapter.catalog(CatalogInput())


async def test_faults_are_settable_over_the_control_rpc_and_per_call(table_studio):
    async with grpc.aio.insecure_channel(table_studio.url.removeprefix("grpc://")) as channel:
        auth = (("authorization", f"Bearer {SECRET}"),)
        set_faults = channel.unary_unary(CONTROL_METHOD)
        knobs = json.loads(await set_faults(json.dumps({"fail_next": 1}).encode(), metadata=auth, timeout=2))
        assert knobs["fail_next"] == 1
        stub = pb_grpc.ProviderGameServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.ListGames(pb.ListGamesRequest(), metadata=auth, timeout=2)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await set_faults(json.dumps({"fail_mode": "explode", "fail_next": 3}).encode(), metadata=auth, timeout=2)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and table_studio.faults.fail_next == 0
        with pytest.raises(grpc.aio.AioRpcError) as per_call:
            await stub.ListGames(pb.ListGamesRequest(), metadata=(*auth, ("x-tablehouse-fault", "error")), timeout=2)
        assert per_call.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_overlong_fields_are_refused_by_the_studio(table_adapter):
    with pytest.raises(ProviderRejected, match="FIELD_TOO_LONG"):
        await launch(table_adapter, client_seed="x" * 129)


def test_cli_process_starts_serves_and_stops_on_sigterm():
    process = subprocess.Popen([sys.executable, "-m", "mock_providers.tablehouse", "--port", "0"],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        ready = process.stdout.readline().strip()
        assert ready.startswith("READY port="), ready
        port = int(ready.removeprefix("READY port="))

        async def healthy() -> bool:
            adapter = TablehouseAdapter(ProviderConfig(name="tablehouse", url=f"grpc://127.0.0.1:{port}",
                                                       secret="tablehouse-sandbox-secret", timeout_s=5))
            try:
                return await adapter.health()
            finally:
                await adapter.close()

        assert asyncio.run(healthy()) is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
