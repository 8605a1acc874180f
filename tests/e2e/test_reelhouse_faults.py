"""Reelhouse misbehaving under concurrent play: late answers, 503s the hub retries with the round's key (the
studio sees those requests twice), answers lost after the studio played the round, forged signatures and
inflated wins. Afterwards the reconciler has closed every round, `ledger check` is clean, and each player's
balance is exactly what the studio's own record of the rounds the hub accepted says."""

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from adapters.money import from_scaled_units
from adapters.reelhouse.adapter import UNITS_PER_MAJOR
from hub.ledger.check import check
from hub.ledger.rounds import RoundLedger
from hub.ledger.schema import rounds
from hub.reconciler import Reconciler
from mock_providers.reelhouse.server import STUDIO, Faults, start_server
from tests.e2e.play_client import PlayStream, opened_stream
from tests.e2e.test_reelhouse_e2e import SECRET, hub_with_studio
from tests.support import Client

GAME = "reelhouse:fruit-classic"
PLAYERS, ROUNDS, STAKE, DEPOSIT = 8, 15, 100, 50_000
# 503 before acting (retried by the hub), act then hang past the hub's 0.5 s deadline, and a late answer on
# every request. Seeded; the interleaving of 8 streams still varies which request draws which fault.
FAULTS = {"latency_ms": 15, "error_rate": 0.2, "timeout_rate": 0.06, "hang_s": 1.0, "seed": 11}
FORGED = {"cheat_next": 2, "bad_signature_next": 2}  # answers the hub must refuse (it refunds the stake)


async def rounds_of(hub: Client, player_id: str) -> dict[str, str]:
    """round id -> status, for one player."""
    result = await hub.server.hub.db.run(lambda uow: uow.conn.execute(
        select(rounds.c.round_id, rounds.c.status).where(
            rounds.c.operator_id == hub.operator_id, rounds.c.player_id == player_id)).all())
    return {row.round_id: row.status for row in result}


async def play(stream: PlayStream, player_id: str) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for i in range(ROUNDS):
        stream.bet(STAKE, f"{player_id}-{i}")
        last = (await stream.until("settled", "error"))[-1]
        outcomes["settled" if last.WhichOneof("event") == "settled" else last.error.error.reason] += 1
    await stream.close()
    return outcomes


async def test_balances_match_the_studios_record_after_a_faulty_run(database_url: str) -> None:
    runner, port = await start_server(port=0, secret=SECRET, faults=Faults())
    studio = runner.app[STUDIO]
    hub = await hub_with_studio(database_url, f"http://127.0.0.1:{port}", breaker_open_s=2.0)
    try:
        players = [await hub.new_player(deposit=DEPOSIT) for _ in range(PLAYERS)]
        streams = [await opened_stream(hub, token, GAME) for _, token in players]
        studio.faults.update({**FAULTS, **FORGED})  # launched cleanly; the faults start with the first spin
        outcomes = sum(await asyncio.gather(*(play(s, p) for s, (p, _) in zip(streams, players, strict=True))),
                       Counter())
        studio.faults.update({"error_rate": 0.0, "timeout_rate": 0.0, "latency_ms": 0})
        await asyncio.sleep(FAULTS["hang_s"])  # the last hung answers are written off
        guard = hub.server.hub.adapters["reelhouse"]
        while not guard.accepting():  # under load the circuit may have opened: the reconciler asks once it lets
            await asyncio.sleep(0.1)  # a probe through (after breaker_open_s), as the hub's own reconciler would later

        reconciler = Reconciler(hub.server.hub.db, hub.server.hub.engine, hub.server.hub.catalog, RoundLedger(8),
                                timedelta(0), hub.server.hub.play.reconciled)
        report = await reconciler.run_once(hub.operator_id)
        summary = f"{sum(outcomes.values())} bets: {dict(outcomes)}; reconcile: {report.render()}"
        # Every answer lost after the studio played goes to the reconciler, which settles it by the record.
        assert outcomes["PROVIDER_TIMEOUT"] > 0 and len(report.settled) == outcomes["PROVIDER_TIMEOUT"], summary
        assert (report.rolled_back, report.flagged) == ([], []), summary
        assert outcomes["settled"] > 0, summary  # not more: under load the circuit may open for a while

        refused_answers = 0
        for player_id, _ in players:
            statuses = await rounds_of(hub, player_id)
            assert "OPEN" not in statuses.values(), statuses
            settled = [r for r, status in statuses.items() if status == "SETTLED"]
            # The studio's record (its true answer, not the forged copy the hub refused) of each settled round.
            expected = DEPOSIT + sum(from_scaled_units("USD", studio.rounds[r][1]["win"], UNITS_PER_MAJOR) - STAKE
                                     for r in settled)
            assert await hub.balance(player_id) == expected, (player_id, summary)
            refused_answers += sum(1 for r, status in statuses.items() if status == "ROLLED_BACK" and r in studio.rounds)
        # Inflated wins and forged signatures on spin answers: played by the studio, refused and refunded by
        # the hub. (A forged signature on a 503 changes nothing, and a forged answer that hangs is never read.)
        assert 0 < refused_answers == outcomes["PROVIDER_OUTCOME_INVALID"], (refused_answers, summary)
        [ledger] = check(hub.database_url, hub.operator_id)
        assert ledger.ok, ledger.render()
        print(f"\nreelhouse under faults: {summary}; studio rounds {len(studio.rounds)}; "
              f"studio answers refused {refused_answers}; ledger check ok")
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)
        await runner.cleanup()
