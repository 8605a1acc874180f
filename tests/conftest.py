"""Shared fixtures: both databases (MariaDB mandatory when CI=true), a live hub on port 0, stubs.
Helpers (Client, start_hub, hub_config, throwaway_mariadb_database, ...) are in tests/support.py."""

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


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/hub.db"
        upgrade(url)
        return url
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
