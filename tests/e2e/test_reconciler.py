"""Rounds left OPEN, as a hub killed between debit and settlement leaves them, closed by the reconciler
against the provider's record: a scripted studio for each answer, then the real Reelhouse studio."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from adapters.base import PlayInput, ProviderUnavailable, RoundStatusResult
from hub.clock import utcnow
from hub.ledger.check import check
from hub.ledger.rounds import Bet, RoundLedger
from hub.ledger.schema import rounds
from hub.ledger.uow import UnitOfWork
from hub.reconciler import Reconciler
from mock_providers.reelhouse.server import start_server
from tests.e2e.test_reelhouse_e2e import hub_with_studio
from tests.fakes import FakeStudio
from tests.support import Client


async def open_round(hub: Client, player_id: str, amount: int, game_id: str = "fake:coin-flip",
                     age: timedelta = timedelta(minutes=10), game_session_id: str | None = None) -> str:
    """A debited round with no outcome, opened `age` ago: what a crash mid-round leaves behind."""
    round_id = str(uuid.uuid4())

    await hub.server.hub.engine.submit(RoundLedger(8).bet, Bet(
        hub.operator_id, player_id, "USD", round_id, game_id, f"bet-{round_id}", amount, game_session_id))

    def _age(uow: UnitOfWork) -> None:
        uow.conn.execute(update(rounds).where(rounds.c.operator_id == hub.operator_id, rounds.c.round_id == round_id)
                         .values(opened_at=utcnow() - age))
        uow.commit()

    await hub.server.hub.db.run(_age)
    return round_id


async def status_of(hub: Client, round_id: str) -> str:
    return await hub.server.hub.db.run(lambda uow: uow.conn.execute(select(rounds.c.status).where(
        rounds.c.operator_id == hub.operator_id, rounds.c.round_id == round_id)).scalar_one())


def reconciler(hub: Client, older_than: timedelta = timedelta(minutes=5)) -> Reconciler:
    return Reconciler(hub.server.hub.db, hub.server.hub.engine, hub.server.hub.catalog, RoundLedger(8), older_than,
                      hub.server.hub.play.reconciled)


async def test_open_rounds_are_settled_refunded_or_flagged_by_what_the_studio_says(
        hub: Client, studio: FakeStudio) -> None:
    player_id, _ = await hub.new_player(deposit=1_000)
    won = await open_round(hub, player_id, 100)
    never_played = await open_round(hub, player_id, 200)
    young = await open_round(hub, player_id, 50, age=timedelta(seconds=1))
    studio.statuses[won] = RoundStatusResult(status="settled", win_minor=300)
    assert await hub.balance(player_id) == 650

    report = await reconciler(hub).run_once(hub.operator_id)
    assert (report.examined, report.settled, report.rolled_back, report.flagged) == (2, [won], [never_played], [])
    assert (await status_of(hub, won), await status_of(hub, never_played), await status_of(hub, young)) == (
        "SETTLED", "ROLLED_BACK", "OPEN")
    assert await hub.balance(player_id) == 1_000 - 100 + 300 - 50
    assert (await reconciler(hub).run_once(hub.operator_id)).examined == 0  # nothing left to do
    report_, = check(hub.database_url, hub.operator_id)
    assert report_.ok, report_.render()


async def test_a_studio_that_cannot_answer_leaves_the_round_open_and_flagged(hub: Client, studio: FakeStudio) -> None:
    player_id, _ = await hub.new_player(deposit=500)
    stuck = await open_round(hub, player_id, 100)
    studio.status_error = ProviderUnavailable("connection refused")
    report = await reconciler(hub).run_once(hub.operator_id)
    assert [r for r, _ in report.flagged] == [stuck] and not report.settled and not report.rolled_back
    assert await status_of(hub, stuck) == "OPEN" and await hub.balance(player_id) == 400
    studio.status_error = None  # the studio is back: the next pass closes it
    assert (await reconciler(hub).run_once(hub.operator_id)).rolled_back == [stuck]
    assert await hub.balance(player_id) == 500


async def test_two_reconcilers_at_once_pay_each_round_once(hub: Client, studio: FakeStudio) -> None:
    player_id, _ = await hub.new_player(deposit=1_000)
    round_ids = [await open_round(hub, player_id, 100) for _ in range(4)]
    for round_id in round_ids[:2]:
        studio.statuses[round_id] = RoundStatusResult(status="settled", win_minor=250)
    await asyncio.gather(reconciler(hub).run_once(hub.operator_id), reconciler(hub).run_once(hub.operator_id))
    assert await hub.balance(player_id) == 1_000 - 2 * 100 + 2 * 250
    assert {await status_of(hub, r) for r in round_ids} == {"SETTLED", "ROLLED_BACK"}
    report_, = check(hub.database_url, hub.operator_id)
    assert report_.ok, report_.render()


@pytest.fixture
async def reelhouse_hub(database_url: str) -> AsyncIterator[Client]:
    runner, port = await start_server(port=0, secret="reconcile-secret")
    client = await hub_with_studio(database_url, f"http://127.0.0.1:{port}", secret="reconcile-secret")
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)
    await runner.cleanup()


async def test_a_round_the_studio_played_is_settled_with_the_studios_win(reelhouse_hub: Client) -> None:
    hub = reelhouse_hub
    player_id, token = await hub.new_player(deposit=100_000)
    adapter = hub.server.hub.adapters["reelhouse"]
    played = await open_round(hub, player_id, 1_000, game_id="reelhouse:lucky-sevens")
    launched = await hub.server.hub.play.launch(hub.operator_id, token, "reelhouse:lucky-sevens", "USD", "seed")
    # The studio plays the round, then the hub "dies" before crediting it.
    result = await adapter.play(PlayInput(
        round_id=played, game_session_id=launched.game_session_id, provider_game_id="lucky-sevens",
        operator_id=hub.operator_id, player_id=player_id, currency="USD", bet_minor=1_000))
    unseen = await open_round(hub, player_id, 1_000, game_id="reelhouse:lucky-sevens")

    report = await reconciler(hub).run_once(hub.operator_id)
    assert (report.settled, report.rolled_back, report.flagged) == ([played], [unseen], [])
    assert await hub.balance(player_id) == 100_000 - 1_000 + result.win_minor
