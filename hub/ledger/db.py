"""Engines for SQLite (embedded default) and MariaDB, and the thread pool that keeps the event loop free.

The drivers (sqlite3, pymysql) are blocking, so a whole unit of work runs in one worker thread:
one hop off the event loop per transaction rather than per statement.
"""

import asyncio
import fcntl
import functools
import pathlib
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from hub import deadline
from hub.ledger.uow import UnitOfWork

T = TypeVar("T")
log = structlog.get_logger(__name__)

# MariaDB: deadlock found (1213), lock wait timeout (1205). Both leave nothing applied; rerun the unit.
_RETRYABLE_MYSQL = {1213, 1205}
ATTEMPTS = 8
ENGINE_WRITERS = 1  # the settlement engine's writer threads (hub.ledger.engine)


def prepare_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder (var/ on a fresh clone)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        pathlib.Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, pool_size: int = 8, lock_wait_s: int | None = None) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        prepare_sqlite_folder(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=pool_size, max_overflow=0)
        _sqlite_write_transactions(engine)
        return engine
    # Socket timeouts: without them a connection whose peer went silent (a network partition) blocks its
    # worker thread forever, and with it graceful shutdown. 60 s outlasts InnoDB's 50 s lock wait.
    connect_args: dict[str, object] = {"connect_timeout": 5, "read_timeout": 60, "write_timeout": 60}
    if lock_wait_s is not None:
        connect_args["init_command"] = f"SET SESSION innodb_lock_wait_timeout = {int(lock_wait_s)}"
    return create_engine(url, pool_size=pool_size, max_overflow=4, pool_pre_ping=True, pool_recycle=3600,
                         isolation_level="READ COMMITTED", connect_args=connect_args)


def make_probe_engine(url: str) -> Engine:
    """One short-timeout connection for health checks: an answer within seconds, or "unreachable"."""
    if make_url(url).get_backend_name() == "sqlite":
        return create_engine(url, pool_size=1, max_overflow=0, connect_args={"timeout": 5})
    return create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=False,
                         connect_args={"connect_timeout": 3, "read_timeout": 5, "write_timeout": 5})


def _sqlite_write_transactions(engine: Engine) -> None:
    """WAL for concurrent readers; BEGIN IMMEDIATE so two writers queue instead of failing to upgrade.

    Writers of a database file also queue on an flock of `<file>.lock` before BEGIN: SQLite's own busy
    handler polls, sleeping up to 100 ms between tries, so with several hub processes a writer sat idle
    long after the lock was free (make run's two workers: p99 1.3 s against 0.3 s for one worker). The
    kernel hands an flock to the next waiter at once. The lock is released when the transaction ends,
    and by the kernel if the process dies."""
    database = engine.url.database
    lock_path = f"{database}.lock" if database and database != ":memory:" else None

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged commit survives a crash
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        if lock_path:  # one open file per connection: flocks of two open files exclude each other
            record.info["writer_lock"] = open(lock_path, "a+b")  # noqa: SIM115 - closed with the connection

    @event.listens_for(engine, "close")
    def _close(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        lock = record.info.pop("writer_lock", None)
        if lock is not None:
            lock.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        lock = conn.connection.info.get("writer_lock")
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _unlock(conn)
            raise

    def _unlock(conn: Connection) -> None:
        lock = conn.connection.info.get("writer_lock") if not conn.closed else None
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)

    event.listen(engine, "commit", _unlock)
    event.listen(engine, "rollback", _unlock)

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        lock = record.info.get("writer_lock")  # a transaction that ended without commit or rollback
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)


def is_transient(exc: DBAPIError) -> bool:
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    return isinstance(exc, OperationalError) and code in _RETRYABLE_MYSQL


def is_unreachable(exc: BaseException) -> bool:
    """The database is down or dropped the connection, so every statement would fail alike: a disconnect
    SQLAlchemy recognised (pymysql's InterfaceError on a socket the server closed is one, and is not an
    OperationalError), or an OperationalError no retry on the same server cures."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError) and not is_transient(exc)


class Database:
    """Runs units of work (reads, non-money writes) in worker threads, and holds the engines the
    settlement engine writes with: with it, the only way hub code touches the database."""

    def __init__(self, engine: Engine, workers: int = 8):
        self.engine = engine
        url = engine.url.render_as_string(hide_password=False)
        self._probe = make_probe_engine(url)
        # Side connections create accounts (committed at once) for a settlement batch holding locks; SQLite
        # needs none. A batch waiting on its side connection is a wait InnoDB cannot see: if the side
        # connection waits on a lock of a transaction that waits on the batch, deadlock detection never
        # ends it. A 1 s lock wait there turns that into a lock-wait error (1205), which reruns the batch
        # with every lock released.
        self._side = engine if self.dialect == "sqlite" else make_engine(url, pool_size=workers, lock_wait_s=1)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")

    @classmethod
    def from_url(cls, url: str, workers: int = 8) -> "Database":
        # One connection per worker thread, and one for each of the settlement engine's writers.
        return cls(make_engine(url, pool_size=workers + ENGINE_WRITERS), workers)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def side_engine(self) -> Engine:
        """Connections for work that must commit on its own while a transaction holds locks (new accounts)."""
        return self._side

    @property
    def engines(self) -> tuple[Engine, ...]:
        """Every engine units of work use (the main one and the side one for new accounts): to instrument."""
        return (self.engine, self._side)

    async def run(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run fn(uow) in a worker thread. fn must call uow.commit() for its changes to stay.

        Deadlocks and key races (IntegrityError) rerun fn from scratch in a fresh transaction: a
        rerun sees the winner's committed rows (e.g. a concurrent request's idempotency record).

        Work for a call (see hub.deadline) is dropped with CallerGone, nothing applied, when the call's
        deadline has passed or the call has ended by the time a worker would start it: a queue behind
        busy workers must not spend them on answers nobody will read.
        """
        caller = deadline.current()
        if caller is not None:
            caller.check()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._run_sync, fn, caller))

    def _run_sync(self, fn: Callable[[UnitOfWork], T], caller: deadline.Caller | None = None) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            if caller is not None:
                caller.check()  # before each transaction: a rerun's predecessor rolled back, nothing applied
            try:
                with UnitOfWork(self.engine) as uow:
                    return fn(uow)
            except IntegrityError:
                if attempt == ATTEMPTS:
                    raise
                log.info("db.retry_after_conflict", attempt=attempt)
            except DBAPIError as exc:
                if not is_transient(exc) or attempt == ATTEMPTS:
                    raise
                log.info("db.retry_after_deadlock", attempt=attempt)
            # Jittered exponential backoff, so the transactions that collided do not collide again.
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    async def ping(self) -> bool:
        """Can the database answer a query within seconds? Runs beside, not in, the ledger's workers."""

        def _ping() -> bool:
            with self._probe.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True

        try:
            return await asyncio.to_thread(_ping)
        except Exception as exc:  # any failure means "not serving"
            log.warning("db.ping_failed", error=str(exc).splitlines()[0])
            self._probe.dispose()  # do not reuse a connection that just failed
            return False

    def close(self) -> None:
        """Wait for in-flight units of work (settlements finish), then release connections."""
        self._executor.shutdown(wait=True)
        self.engine.dispose()
        self._side.dispose()
        self._probe.dispose()
