"""Schema migrations through alembic, configured in code so `hub migrate` needs no alembic.ini."""

import contextlib
import fcntl
import pathlib
from collections.abc import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hub.ledger.db import prepare_sqlite_folder

MIGRATIONS = pathlib.Path(__file__).parent / "migrations"
LOCK_WAIT_S = 120


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database at url to the newest schema (idempotent). Hub processes started together
    (replicas, `serve` migrating at start-up) take turns instead of racing to create the same tables."""
    prepare_sqlite_folder(url)
    with _migration_lock(url):
        command.upgrade(alembic_config(url), "head")


@contextlib.contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            yield
            return
        with open(f"{parsed.database}.migrate-lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if the process dies
            yield
        return
    # A MariaDB named lock is server-wide, so the name carries the database; it dies with the connection.
    name = f"casinohub-migrate:{parsed.database}"[:64]
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": LOCK_WAIT_S}).scalar() != 1:
                raise TimeoutError(f"another process held the migration lock for {LOCK_WAIT_S} s")
            try:
                yield
            finally:
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
    finally:
        engine.dispose()
