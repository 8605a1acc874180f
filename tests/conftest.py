"""Shared fixtures: both databases (MariaDB mandatory when CI=true), a live hub on port 0, stubs.
Helpers (Client, start_hub, hub_config, throwaway_mariadb_database, ...) are in tests/support.py."""

import pathlib
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from hub.migrate import upgrade
from tests.fakes import FakeStudio
from tests.support import Client, start_hub, throwaway_mariadb_database


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A throwaway database, migrated once per test session; tests share it, isolated by operator."""
    for url in throwaway_mariadb_database():
        upgrade(url)
        yield url


@pytest.fixture
def empty_mariadb_url() -> Iterator[str]:
    """A brand-new, unmigrated throwaway database."""
    yield from throwaway_mariadb_database()


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A SQLite database migrated once per test session, for tests to copy: migrating costs ~0.1 s a test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "hub.db"
    upgrade(f"sqlite:///{path}")
    assert not path.with_name("hub.db-wal").exists()  # the whole database is in the one file being copied
    return path


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A migrated database: on SQLite a brand-new one per test (a copy of the session's migrated file), on
    MariaDB the session's (tests share it, isolated by operator)."""
    if request.param == "sqlite":
        path = tmp_path / "hub.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_file"), path)
        return f"sqlite:///{path}"
    return request.getfixturevalue("mariadb_url")


@pytest.fixture
def studio() -> FakeStudio:
    return FakeStudio()


@pytest.fixture
async def hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    client = await start_hub(database_url, {"fake": studio})
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)
