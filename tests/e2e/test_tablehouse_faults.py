"""Roulette and blackjack played at once against a Tablehouse studio with its fault knobs on (latency, errors,
calls carried out then left unanswered), hands abandoned mid-way; then `hub reconcile` and `hub ledger check`
as separate processes. Afterwards no round is open, and every player's balance is exactly what the studio's
own record of their rounds says: each round the hub settled is one the studio finished, with the studio's
stake and win, and each round the hub refunded is one the studio never played."""

import asyncio
import pathlib
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import create_engine, select

from casinohub.v1 import common_pb2, game_service_pb2 as pb
from hub.config import ProviderSettings
from hub.ledger.rounds import ACTIVE
from hub.ledger.schema import bets, rounds
from mock_providers.tablehouse.server import Studio, start_server
from tests.e2e.play_client import PlayStream, kinds
from tests.e2e.processes import hub_cli, ledger_check_cli
from tests.support import CHEAP_HASHES, Client, start_hub

SECRET = "faults-secret"
ROULETTE, BLACKJACK = "tablehouse:european-roulette", "tablehouse:blackjack"
PLAYERS, HANDS, DEPOSIT = 4, 15, 20_000
FAULTS = {"latency_ms": 5, "error_rate": 0.15, "timeout_rate": 0.08, "hang_s": 0.8, "seed": 11}
KIND = {"hit": pb.ACTION_KIND_HIT, "stand": pb.ACTION_KIND_STAND, "double": pb.ACTION_KIND_DOUBLE,
        "split": pb.ACTION_KIND_SPLIT}
NAME = {v: k for k, v in KIND.items()}


@pytest.fixture
async def live(database_url: str, tmp_path: pathlib.Path) -> AsyncIterator[tuple[Client, Studio, pathlib.Path]]:
    server, port, studio = await start_server(port=0, secret=SECRET)
    provider = ProviderSettings(name="tablehouse", adapter="tablehouse", url=f"grpc://127.0.0.1:{port}",
                                secret=SECRET, timeout_s=0.5)
    client = await start_hub(database_url, None, providers=(provider,))
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\nlisten = "127.0.0.1:0"\ndatabase_url = "{database_url}"\n'
        f'sandbox_operator_id = "{client.operator_id}"\n'
        + "".join(f"{knob} = {value}\n" for knob, value in CHEAP_HASHES.items())
        + f'\n[[providers]]\nname = "tablehouse"\nadapter = "tablehouse"\nurl = "grpc://127.0.0.1:{port}"\n'
          f'secret = "{SECRET}"\ntimeout_s = 2.0\n')
    yield client, studio, config
    await client.channel.close()
    await client.server.stop(grace=1)
    await server.stop(None)


class Tally:
    def __init__(self) -> None:
        self.rounds: Counter[str] = Counter()  # game -> rounds the hub opened
        self.faults: Counter[str] = Counter()  # "reason/state" of every error event seen
        self.abandoned = 0  # hands left waiting for an action, for the reconciler

    def error(self, event: pb.PlayResponse) -> None:
        detail = event.error.error
        self.faults[f"{detail.reason}/{common_pb2.ApplyState.Name(detail.state)}"] += 1


async def stream_for(client: Client, token: str, game_id: str) -> PlayStream:
    launched = await client.games.LaunchGame(pb.LaunchGameRequest(
        session_token=token, game_id=game_id, currency="USD"), metadata=client.metadata)
    stream = PlayStream(client)
    stream.open(launched.game_session_id, token)
    assert (await stream.next()).WhichOneof("event") == "session_opened"
    return stream


async def roulette(stream: PlayStream, name: str, tally: Tally) -> None:
    for i in range(HANDS):
        stream.bet(100, f"{name}-spin-{i}", layout="straight:7=50;red=50")
        events = await stream.until("settled", "error")
        if kinds(events)[0] == "round_opened":
            tally.rounds["roulette"] += 1
        if events[-1].WhichOneof("event") == "error":
            tally.error(events[-1])
    await stream.close()


async def blackjack(stream: PlayStream, name: str, tally: Tally) -> None:
    """Hand i: double when offered on every third hand, else hit once on every other hand, then stand; an act
    left unanswered is asked again on even hands and abandoned on odd ones (the reconciler's)."""
    for i in range(HANDS):
        stream.bet(200, f"{name}-hand-{i}")
        events = await stream.until("action_required", "settled", "error")
        if kinds(events)[0] == "round_opened":
            tally.rounds["blackjack"] += 1
        step = 0
        while events[-1].WhichOneof("event") == "action_required":
            waiting = events[-1].action_required
            offered = {NAME[c.action] for c in waiting.actions}
            action = ("double" if i % 3 == 0 and "double" in offered
                      else "hit" if i % 2 and step == 0 and "hit" in offered else "stand")
            key = f"{name}-hand-{i}-act-{step}"
            stream.send(pb.PlayRequest(act=pb.RoundAction(round_id=waiting.round_id, action=KIND[action],
                                                          idempotency_key=key)))
            events = await stream.until("action_required", "settled", "error")
            if events[-1].WhichOneof("event") == "error":
                tally.error(events[-1])
                if i % 2 == 0:  # ask again with the same key; a second failure leaves it to the reconciler
                    stream.send(pb.PlayRequest(act=pb.RoundAction(round_id=waiting.round_id, action=KIND[action],
                                                                  idempotency_key=key)))
                    events = await stream.until("action_required", "settled", "error")
                    if events[-1].WhichOneof("event") == "error":
                        tally.error(events[-1])
                        tally.abandoned += 1
                else:
                    tally.abandoned += 1
            step += 1
        if events[-1].WhichOneof("event") == "error" and step == 0:
            tally.error(events[-1])
    await stream.close()


def hub_rounds(database_url: str, operator_id: str) -> tuple[dict[str, dict], dict[str, int]]:
    """Every round of the operator, and each round's standing stake (its ACTIVE bets)."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        found = {r.round_id: dict(r._mapping) for r in conn.execute(
            select(rounds).where(rounds.c.operator_id == operator_id))}
        standing: Counter[str] = Counter()
        for bet in conn.execute(select(bets.c.round_id, bets.c.amount).where(
                bets.c.operator_id == operator_id, bets.c.status == ACTIVE)):
            standing[bet.round_id] += bet.amount
    engine.dispose()
    return found, dict(standing)


async def test_roulette_and_blackjack_under_studio_faults_end_as_the_studio_recorded(
        live: tuple[Client, Studio, pathlib.Path]) -> None:
    client, studio, config = live
    players = [await client.new_player(deposit=DEPOSIT) for _ in range(PLAYERS)]
    # Launched before the faults: a launch the studio does not answer is refused, and proves nothing here.
    tables = [(await stream_for(client, token, ROULETTE), await stream_for(client, token, BLACKJACK))
              for _, token in players]
    studio.faults.update(FAULTS)
    injected: Counter[str] = Counter()  # what the studio's knobs did to each call
    draw = studio.faults.draw

    def counted() -> str | None:
        fault = draw()
        injected[fault or "none"] += 1
        return fault

    studio.faults.draw = counted  # type: ignore[method-assign]
    tally = Tally()
    await asyncio.gather(*(play(stream, f"p{n}", tally) for n, streams in enumerate(tables)
                           for play, stream in zip((roulette, blackjack), streams, strict=True)))
    studio.faults.update({"latency_ms": 0, "error_rate": 0.0, "timeout_rate": 0.0, "abandon_after_s": 0.0})
    await asyncio.sleep(FAULTS["hang_s"] + 0.2)  # the studio's hung answers are all given up by now

    code, reconciled = await hub_cli(config, "reconcile", "--operator", client.operator_id, "--older-than", "0")
    assert code == 0, reconciled
    ledger_code, ledger = await ledger_check_cli(config, client.operator_id)
    print(f"\nrounds {dict(tally.rounds)}; studio faults injected {dict(injected)}; error events seen "
          f"{dict(tally.faults)}; hands abandoned {tally.abandoned}; studio calls {studio.calls_seen}\nreconcile: {reconciled.strip()}\nledger check (exit {ledger_code}): "
          f"{ledger.strip()}")
    assert ledger_code == 0, ledger
    assert injected["error"] and injected["timeout"] and tally.faults
    assert tally.rounds["roulette"] and tally.rounds["blackjack"]

    found, standing = hub_rounds(client.database_url, client.operator_id)
    assert len(found) == sum(tally.rounds.values())
    expected: Counter[str] = Counter()
    for round_id, round_ in found.items():
        assert round_["status"] in ("SETTLED", "ROLLED_BACK"), round_
        played = studio.rounds.get(round_id)
        if round_["status"] == "ROLLED_BACK":
            assert played is None, (round_id, "refunded, but the studio played it")
            continue
        assert played is not None and played.finished, round_id
        # USD counts in cents on both sides.
        assert (standing.get(round_id, 0), round_["win_amount"]) == (played.total_stake, played.win), round_id
        expected[round_["player_id"]] += played.win - played.total_stake
    for player_id, _ in players:
        assert await client.balance(player_id) == DEPOSIT + expected[player_id], player_id
    assert client.posting_sums() == {"USD": 0}
