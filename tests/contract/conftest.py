"""A live Reelhouse studio on a free port, and adapters pointed at it with a short timeout."""

from dataclasses import dataclass

import pytest

from adapters.base import ProviderConfig
from adapters.reelhouse import ReelhouseAdapter
from mock_providers.reelhouse.server import STUDIO, Faults, Studio, start_server

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
