"""The settlement engine's batching rules, on SQLite and MariaDB: commands waiting together share one
transaction; a refused command leaves no trace and fails no neighbour; a command that breaks (a bug, a
database error) fails alone; nothing submitted is ever left waiting."""

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from hub.clock import utcnow
from hub.errors import DomainError, Reason
from hub.ledger.book import Book
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.schema import hub_keys
from hub.migrate import upgrade


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[SettlementEngine]:
    await asyncio.to_thread(upgrade, database_url)
    db = Database.from_url(database_url, workers=2)
    engine = SettlementEngine(db)
    yield engine
    engine.close()
    db.close()


@dataclass(frozen=True)
class Note:
    """Write a row named name, then fail as told."""

    name: str
    then: str = "ok"  # ok | refuse | break


def write_note(book: Book, cmd: Note) -> str:
    book.insert(hub_keys, {"name": cmd.name, "secret": "x", "created_at": utcnow()})
    if cmd.then == "refuse":
        raise DomainError(Reason.INSUFFICIENT_FUNDS, "refused after writing")
    if cmd.then == "break":
        raise ValueError("a bug after writing")
    return cmd.name


async def held(engine: SettlementEngine, then: Callable[[], Any]) -> list[Any]:
    """Run then() (which submits commands) while the writer is busy, so what it submits forms one batch."""
    started, release = threading.Event(), threading.Event()

    def hold(_book: Book, _cmd: None) -> None:
        started.set()
        release.wait(10)

    holder = asyncio.create_task(engine.submit(hold, None))
    while not started.is_set():
        await asyncio.sleep(0.005)
    tasks = then()
    await asyncio.sleep(0.05)  # every submit is queued
    release.set()
    await holder
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def notes_in(engine: SettlementEngine, names: list[str]) -> set[str]:
    db: Database = engine._db  # noqa: SLF001 - the test reads what the engine wrote
    return db._run_sync(lambda uow: set(uow.conn.execute(  # noqa: SLF001
        select(hub_keys.c.name).where(hub_keys.c.name.in_(names))).scalars()))


async def test_commands_waiting_together_commit_in_one_batch_and_a_refusal_leaves_no_trace(
        engine: SettlementEngine) -> None:
    tag = uuid.uuid4().hex[:8]
    notes = [Note(f"{tag}-{i}", "refuse" if i == 2 else "ok") for i in range(5)]
    batches = engine.stats.batches
    results = await held(engine, lambda: [asyncio.ensure_future(engine.submit(write_note, n)) for n in notes])
    assert engine.stats.batches == batches + 2  # the holder's batch, then all five together
    assert isinstance(results[2], DomainError) and results[2].reason is Reason.INSUFFICIENT_FUNDS
    assert [r for i, r in enumerate(results) if i != 2] == [n.name for i, n in enumerate(notes) if i != 2]
    assert notes_in(engine, [n.name for n in notes]) == {n.name for i, n in enumerate(notes) if i != 2}


async def test_a_command_that_breaks_fails_alone(engine: SettlementEngine) -> None:
    tag = uuid.uuid4().hex[:8]
    notes = [Note(f"{tag}-{i}", "break" if i == 1 else "ok") for i in range(4)]
    results = await held(engine, lambda: [asyncio.ensure_future(engine.submit(write_note, n)) for n in notes])
    assert isinstance(results[1], ValueError)
    assert [r for i, r in enumerate(results) if i != 1] == [n.name for i, n in enumerate(notes) if i != 1]
    assert notes_in(engine, [n.name for n in notes]) == {n.name for i, n in enumerate(notes) if i != 1}


async def test_a_duplicate_key_inside_a_batch_fails_only_its_command(engine: SettlementEngine) -> None:
    """Two commands writing one primary key: the database refuses the batch, the engine retries and then
    applies them one by one, so the first stands and only the second fails."""
    name = f"{uuid.uuid4().hex[:8]}-dup"
    results = await held(engine, lambda: [asyncio.ensure_future(engine.submit(write_note, Note(name)))
                                          for _ in range(2)])
    assert results[0] == name and isinstance(results[1], Exception), results
    assert notes_in(engine, [name]) == {name}


async def test_commands_submitted_as_the_engine_closes_are_answered(engine: SettlementEngine) -> None:
    tag = uuid.uuid4().hex[:8]
    first = asyncio.ensure_future(engine.submit(write_note, Note(f"{tag}-a")))
    await asyncio.sleep(0)  # queued
    await asyncio.to_thread(engine.close)
    assert await first == f"{tag}-a"  # submitted before close: applied
    with pytest.raises(RuntimeError):
        await engine.submit(write_note, Note(f"{tag}-b"))
