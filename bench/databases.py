"""The databases the bench runs on: SQLite in a temp dir, a throwaway MariaDB database (dropped afterwards),
and the MariaDB server's own statement and commit counters."""

import contextlib
import pathlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pymysql

from tests.support import IN_CI, MARIADB_SERVER


@dataclass(frozen=True)
class MariaDB:
    host: str
    port: int
    user: str
    database: str

    @property
    def url(self) -> str:
        return f"mysql+pymysql://{self.user}@{self.host}:{self.port}/{self.database}?charset=utf8mb4"

    def connect(self, database: str | None = None, autocommit: bool = False,
                init_command: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(host=self.host, port=self.port, user=self.user, password="", database=database,
                               connect_timeout=5, autocommit=autocommit, init_command=init_command)


def mariadb_server() -> tuple[str, int, str]:
    user, _, hostport = MARIADB_SERVER.partition("@")
    host, _, port = hostport.partition(":")
    return host, int(port or 3306), user


@contextlib.contextmanager
def throwaway_mariadb() -> Iterator[MariaDB | None]:
    """A fresh database `casinohub_bench_<random>` on CASINOHUB_TEST_MARIADB, dropped afterwards; None when
    the server is unreachable (an error under CI=true, where MariaDB is required)."""
    host, port, user = mariadb_server()
    try:
        admin = pymysql.connect(host=host, port=port, user=user, password="", connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        if IN_CI:
            raise RuntimeError(f"MariaDB at {MARIADB_SERVER} is required in CI and unreachable: {exc}") from exc
        print(f"mariadb: skipped, {MARIADB_SERVER} unreachable ({exc})")
        yield None
        return
    db = MariaDB(host, port, user, f"casinohub_bench_{uuid.uuid4().hex[:12]}")
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db.database} CHARACTER SET utf8mb4")
    try:
        yield db
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {db.database}")
        admin.close()


def sqlite_url(folder: pathlib.Path) -> str:
    return f"sqlite:///{folder}/hub.db"


# Server-wide counters: the machine's MariaDB serves nothing but the bench while it runs, so their change
# over a phase is the bench's traffic (plus the hub's health probes).
STATUS = ("Questions", "Com_commit", "Com_rollback")


class ServerCounters:
    """SHOW GLOBAL STATUS before and after a phase, on a connection of its own."""

    def __init__(self, db: MariaDB):
        self._conn = db.connect()

    def read(self) -> dict[str, int]:
        with self._conn.cursor() as cur:
            names = ", ".join(f"'{name}'" for name in STATUS)
            cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
            return {name: int(value) for name, value in cur.fetchall()}

    @staticmethod
    def per_round(before: dict[str, int], after: dict[str, int], rounds: int) -> dict[str, float] | None:
        """Each counter's change per round; Questions less the second SHOW (counted while it runs)."""
        if not rounds:
            return None
        return {name: (after[name] - before[name] - (name == "Questions")) / rounds for name in STATUS}

    def close(self) -> None:
        self._conn.close()
