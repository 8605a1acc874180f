"""The settlement engine: the one writer of money.

Every money movement is a command (a frozen dataclass) applied by a handler, `handler(book, command)`,
submitted with `await engine.submit(handler, command)`. A writer thread takes whatever commands are
waiting (up to max_batch; no linger: the next batch forms while one commits) and, in one database
transaction:

  1. locks the wallets the commands name (their `wallets` attribute) in one statement per operator, so
     batches take player rows in one order and cannot deadlock on them;
  2. applies each command in arrival order on the batch's Book (hub.ledger.book), each all or nothing:
     a command refused with a DomainError is undone in memory and answered with its error, and its
     neighbours go on;
  3. writes the batch (multi-row statements; house, promotion and external shards last, one summed
     change each), commits once, and only then answers each caller.

Exactly once: idempotency records are written in the same commit as their effects. A batch that fails
on a transient error (deadlock, lock wait, a key another process inserted first) is decided again from
scratch: a duplicate then finds the winner's stored response. A batch the database refuses outright
(unreachable) fails whole, at once. A batch that fails otherwise is retried one command per
transaction, so one broken command cannot fail its neighbours.
"""

import asyncio
import queue
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError

from hub import deadline
from hub.errors import DomainError
from hub.ledger import postings
from hub.ledger.book import Book, Need
from hub.ledger.db import ATTEMPTS, ENGINE_WRITERS, Database, is_transient, is_unreachable
from hub.ledger.rows import row_store

C = TypeVar("C")
R = TypeVar("R")
log = structlog.get_logger(__name__)
MAX_BATCH = 256


@dataclass
class _Pending:
    handler: Callable[[Book, Any], Any]
    command: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    caller: deadline.Caller | None


@dataclass
class Stats:
    batches: int = 0
    commands: int = 0
    statements: int = 0  # written at flush (reads are counted by the engines' own instrumentation)
    retries: int = 0

    @property
    def mean_batch(self) -> float:
        return self.commands / self.batches if self.batches else 0.0


class SettlementEngine:
    def __init__(self, db: Database, max_batch: int = MAX_BATCH, writers: int | None = None):
        self._db = db
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self._closing = threading.Lock()  # no command slips in after close() has stopped the writers
        self._count = threading.Lock()
        self.stats = Stats()
        # One writer: measured on MariaDB (bench.engine_alone, C=16/64), 2 writers gave 0.9/0.8x the
        # rounds/s of one and 4 writers 0.6x: smaller batches, and the writers wait on each other for the
        # GIL and for the house shards they all lock at flush. SQLite has one writer at a time anyway.
        self._threads = [threading.Thread(target=self._run, name=f"settlement-{n}", daemon=True)
                         for n in range(writers or ENGINE_WRITERS)]
        for thread in self._threads:
            thread.start()

    async def submit(self, handler: Callable[[Book, C], R], command: C) -> R:
        """Apply command with handler in the next batch; its result once the batch has committed.

        Work for a call (hub.deadline) whose caller is gone or out of time by the moment its batch
        forms is dropped with CallerGone, nothing applied."""
        caller = deadline.current()
        if caller is not None:
            caller.check()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._closing:
            if self._closed:
                raise RuntimeError("the settlement engine is closed")
            self._queue.put(_Pending(handler, command, loop, future, caller))
        return await future

    def close(self) -> None:
        """Finish the batches already submitted, then stop the writer."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)  # one stop for each writer, after every command already queued
        for thread in self._threads:
            thread.join()
        log.info("engine.stopped", batches=self.stats.batches, commands=self.stats.commands,
                 mean_batch=round(self.stats.mean_batch, 2), retries=self.stats.retries)

    # -- the writer thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                wanted = [p for p in batch if self._still_wanted(p)]
                if wanted:
                    self._settle(wanted)
            except BaseException as exc:  # the writer must outlive any one batch, or every caller hangs
                log.error("engine.batch_crashed", exc_info=exc)
                for pending in batch:
                    _answer(pending, RuntimeError("the settlement engine failed this batch"), failed=True)

    @staticmethod
    def _still_wanted(pending: _Pending) -> bool:
        if pending.future.cancelled():
            return False
        if pending.caller is not None:
            try:
                pending.caller.check()
            except deadline.CallerGone as gone:
                _answer(pending, gone, failed=True)
                return False
        return True

    def _settle(self, batch: list[_Pending]) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                outcomes = self._apply(batch)
            except IntegrityError:
                if attempt == ATTEMPTS:
                    return self._one_by_one(batch)
                log.info("engine.retry_after_conflict", attempt=attempt, size=len(batch))
            except DBAPIError as exc:
                if is_unreachable(exc):  # the database is down or refusing: all would fail alike
                    log.warning("engine.database_unavailable", size=len(batch), error=str(exc).splitlines()[0][:200])
                    for pending in batch:
                        _answer(pending, exc, failed=True)
                    return None
                if not is_transient(exc) or attempt == ATTEMPTS:
                    return self._one_by_one(batch, exc)
                log.info("engine.retry_after_deadlock", attempt=attempt, size=len(batch))
            except Exception as exc:
                return self._one_by_one(batch, exc)
            else:
                for pending, (failed, outcome) in zip(batch, outcomes, strict=True):
                    _answer(pending, outcome, failed)
                return None
            with self._count:
                self.stats.retries += 1
            # Jittered exponential backoff, so the transactions that collided do not collide again.
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
        return None

    def _one_by_one(self, batch: list[_Pending], exc: BaseException | None = None) -> None:
        """A batch failed for a reason that is not a command's refusal: give each command a transaction
        of its own, so only the command at fault fails (with its own error)."""
        if len(batch) == 1:
            log.error("engine.command_failed", handler=getattr(batch[0].handler, "__qualname__", "?"),
                      exc_info=exc)
            _answer(batch[0], exc or RuntimeError("the command failed"), failed=True)
            return
        log.warning("engine.batch_failed", size=len(batch), error=repr(exc)[:200])
        for pending in batch:
            self._settle([pending])

    def _apply(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        with self._db.engine.connect() as conn:
            with conn.begin():
                book = Book(row_store(conn, self._db.side_engine))
                wallets: dict[str, set[postings.AccountRef]] = defaultdict(set)
                for pending in batch:
                    for operator_id, player_id, currency in getattr(pending.command, "wallets", ()):
                        wallets[operator_id].update((postings.player_cash(player_id, currency),
                                                     postings.player_bonus(player_id, currency)))
                for operator_id in sorted(wallets):  # accounts a command creates are locked when it does
                    book.lock_accounts(operator_id, wallets[operator_id], create=False)
                _prefetch(book, [need for p in batch for need in getattr(p.command, "needs", ())])
                outcomes: list[tuple[bool, Any]] = []
                for pending in batch:
                    try:
                        with book.attempt():
                            outcomes.append((False, pending.handler(book, pending.command)))
                    except DomainError as err:
                        outcomes.append((True, err))
                statements = book.flush()
        with self._count:
            self.stats.statements += statements
            self.stats.batches += 1
            self.stats.commands += len(batch)
        return outcomes


def _prefetch(book: Book, needs: list[Need]) -> None:
    """Read every row the batch's commands said they need: one statement per table and shape, in one
    order for every batch (after the wallets), so batches lock rows in the same order."""
    locked = {(n.table.name, n.columns, n.value) for n in needs if n.lock}
    shapes: dict[tuple[str, tuple[str, ...] | None, bool], list[Need]] = defaultdict(list)
    for need in needs:
        if need.lock or (need.table.name, need.columns, need.value) not in locked:  # one read, locked
            shapes[need.table.name, need.columns, need.lock].append(need)
    for (_, columns, lock), group in sorted(shapes.items(), key=lambda item: (item[0][0], item[0][1] or (), item[0][2])):
        table = group[0].table
        if columns is None:
            book.prefetch(table, [n.value for n in group], lock)
        else:
            book.prefetch_groups(table, columns, [n.value for n in group], lock)


def _answer(pending: _Pending, outcome: Any, failed: bool) -> None:
    def resolve() -> None:
        if pending.future.done():  # the caller stopped waiting; the effect (if any) stays committed
            return
        if failed:
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)

    pending.loop.call_soon_threadsafe(resolve)
