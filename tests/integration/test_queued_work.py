"""Work queued behind busy database workers, or behind the settlement engine's batch, is dropped, unapplied,
when its caller no longer waits."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest

from hub import deadline
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.uow import UnitOfWork


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(database_url, workers=1)
    yield database
    database.close()


async def queued_behind_a_busy_worker(db: Database, caller: deadline.Caller, hold_s: float) -> list[str]:
    """Run a unit of work for caller while the only worker is busy for hold_s; returns what ran."""
    ran: list[str] = []
    started = threading.Event()

    def _hold(_uow: UnitOfWork) -> None:
        started.set()
        time.sleep(hold_s)

    holder = asyncio.create_task(db.run(_hold))
    while not started.is_set():
        await asyncio.sleep(0.005)
    deadline.bind(caller)  # this test's task only: the holder above was created before
    try:
        await db.run(lambda uow: ran.append("queued work"))
    finally:
        await holder
    return ran


async def test_work_whose_deadline_passes_while_queued_never_starts(db: Database) -> None:
    caller = deadline.Caller(time.monotonic() + 0.1)
    with pytest.raises(deadline.CallerGone) as gone:
        assert await queued_behind_a_busy_worker(db, caller, hold_s=0.3) == []
    assert gone.value.deadline_exceeded


async def test_work_whose_call_ended_while_queued_never_starts(db: Database) -> None:
    caller = deadline.Caller(None)
    asyncio.get_running_loop().call_later(0.1, caller.gone.set)
    with pytest.raises(deadline.CallerGone) as gone:
        await queued_behind_a_busy_worker(db, caller, hold_s=0.3)
    assert not gone.value.deadline_exceeded


async def test_work_with_time_left_runs(db: Database) -> None:
    assert await queued_behind_a_busy_worker(db, deadline.Caller(time.monotonic() + 5), hold_s=0.05) == [
        "queued work"]


async def queued_behind_a_busy_batch(db: Database, caller: deadline.Caller, hold_s: float) -> list[str]:
    """Submit a command for caller while the engine's writer is busy with a batch for hold_s."""
    engine = SettlementEngine(db)
    ran: list[str] = []
    started = threading.Event()

    def _hold(_book: object, _command: None) -> None:
        started.set()
        time.sleep(hold_s)

    holder = asyncio.create_task(engine.submit(_hold, None))
    while not started.is_set():
        await asyncio.sleep(0.005)
    deadline.bind(caller)
    try:
        await engine.submit(lambda _book, _command: ran.append("queued command"), None)
    finally:
        await holder
        engine.close()
    return ran


async def test_a_command_whose_deadline_passes_while_queued_is_never_applied(db: Database) -> None:
    caller = deadline.Caller(time.monotonic() + 0.1)
    with pytest.raises(deadline.CallerGone) as gone:
        assert await queued_behind_a_busy_batch(db, caller, hold_s=0.3) == []
    assert gone.value.deadline_exceeded


async def test_a_command_with_time_left_is_applied(db: Database) -> None:
    assert await queued_behind_a_busy_batch(db, deadline.Caller(time.monotonic() + 5), hold_s=0.05) == [
        "queued command"]
