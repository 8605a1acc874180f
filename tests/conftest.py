"""Shared fixtures: both databases (MariaDB mandatory when CI=true), a live hub on port 0, stubs.
Helpers (Client, start_hub, hub_config, throwaway_mariadb_database, ...) are in tests/support.py."""

import os
import pathlib
import shutil
import tempfile
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


# The hub runs SQLite with synchronous=FULL: every commit waits for an fsync, which on this shared disk cost
# most of a SQLite test's time. A memory file system makes fsync free; no test here outlives an OS crash
# (a killed process loses nothing that reached the page cache), so none proves less on it.
MEMORY_FS = pathlib.Path("/dev/shm")


@pytest.fixture(scope="session")
def sqlite_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """Where the SQLite databases of `database_url` live: in memory (/dev/shm) where there is one."""
    if not (MEMORY_FS.is_dir() and os.access(MEMORY_FS, os.W_OK)):
        yield tmp_path_factory.mktemp("sqlite")
        return
    folder = pathlib.Path(tempfile.mkdtemp(prefix="casinohub-test-", dir=MEMORY_FS))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def database_url(request: pytest.FixtureRequest, sqlite_folder: pathlib.Path) -> Iterator[str]:
    """A migrated database: on SQLite a brand-new one per test (a copy of the session's migrated file, in
    sqlite_folder, removed after the test), on MariaDB the session's (tests share it, isolated by operator)."""
    if request.param != "sqlite":
        yield request.getfixturevalue("mariadb_url")
        return
    folder = pathlib.Path(tempfile.mkdtemp(dir=sqlite_folder))
    shutil.copyfile(request.getfixturevalue("migrated_sqlite_file"), folder / "hub.db")
    yield f"sqlite:///{folder / 'hub.db'}"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def studio() -> FakeStudio:
    return FakeStudio()


@pytest.fixture
async def hub(database_url: str, studio: FakeStudio) -> AsyncIterator[Client]:
    client = await start_hub(database_url, {"fake": studio})
    yield client
    await client.channel.close()
    await client.server.stop(grace=1)
