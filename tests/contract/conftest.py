"""Live mock studios (Reelhouse, Tablehouse) on free ports, and adapters pointed at them with a short timeout."""

from dataclasses import dataclass

import pytest

from adapters.base import ProviderConfig
from adapters.reelhouse import ReelhouseAdapter
from adapters.tablehouse import TablehouseAdapter
from mock_providers.reelhouse.server import STUDIO, Faults, Studio, start_server
from mock_providers.tablehouse.server import (
    Faults as TableFaults,
    Studio as TableStudio,
    start_server as start_table_server,
)

SECRET = "contract-test-secret"


@dataclass
class RunningStudio:
    url: str
    state: Studio

    @property
    def faults(self) -> Faults:
        return self.state.faults


@pytest.fixture
async def studio():
    runner, port = await start_server(port=0, secret=SECRET)
    yield RunningStudio(url=f"http://127.0.0.1:{port}", state=runner.app[STUDIO])
    await runner.cleanup()


@pytest.fixture
async def make_adapter():
    """Builds adapters for any url/secret; every one is closed after the test."""
    made: list[ReelhouseAdapter] = []

    def make(url: str, secret: str = SECRET, timeout_s: float = 0.5) -> ReelhouseAdapter:
        config = ProviderConfig(name="reelhouse", url=url, secret=secret, timeout_s=timeout_s)
        made.append(ReelhouseAdapter(config))
        return made[-1]

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
def adapter(studio, make_adapter) -> ReelhouseAdapter:
    return make_adapter(studio.url)


# --- Tablehouse (gRPC) ----------------------------------------------------------------------------------


@dataclass
class RunningTableStudio:
    url: str
    state: TableStudio

    @property
    def faults(self) -> TableFaults:
        return self.state.faults


@pytest.fixture
async def table_studio():
    server, port, state = await start_table_server(port=0, secret=SECRET)
    yield RunningTableStudio(url=f"grpc://127.0.0.1:{port}", state=state)
    await server.stop(None)


@pytest.fixture
async def make_table_adapter():
    """Builds Tablehouse adapters for any url/secret; every one is closed after the test."""
    made: list[TablehouseAdapter] = []

    def make(url: str, secret: str = SECRET, timeout_s: float = 0.5) -> TablehouseAdapter:
        made.append(TablehouseAdapter(ProviderConfig(name="tablehouse", url=url, secret=secret,
                                                     timeout_s=timeout_s)))
        return made[-1]

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
def table_adapter(table_studio, make_table_adapter) -> TablehouseAdapter:
    return make_table_adapter(table_studio.url)
