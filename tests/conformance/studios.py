"""The studios the conformance kit runs against: for each registered adapter, how to start its mock studio
on port 0 and work that mock's fault knobs. A new adapter joins the kit by adding its StudioUnderTest here
(a third party's package keeps its own, and runs tests/conformance/test_kit.py with it)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.base import ProviderConfig
from mock_providers.reelhouse.server import STUDIO, start_server as start_reelhouse
from mock_providers.tablehouse.server import start_server as start_tablehouse

SECRET = "conformance-kit-secret"


@dataclass(frozen=True)
class Game:
    game_id: str
    currency: str = "USD"
    bet_minor: int = 100
    params: Mapping[str, str] = field(default_factory=dict)


class StudioUnderTest(Protocol):
    adapter: str  # its entry point in the casinohub.adapters group
    single_step: Game  # a game whose round finishes in one call
    multi_step: Game | None  # a game with several steps per round, if the studio has one
    # A currency and two stakes in its minor units: one the studio's scale holds exactly, one it cannot.
    exact: tuple[str, int]
    inexact: tuple[str, int]

    async def start(self) -> str: ...  # the url its adapter is configured with

    async def stop(self) -> None: ...

    def calls_seen(self) -> int: ...  # requests that reached the studio

    def fail_next(self, mode: str) -> None: ...  # "error": refuse before acting; "timeout": act, then hang

    def forge_next_answer(self) -> bool: ...  # the next answer is untrustworthy; False if it cannot


def config(studio: StudioUnderTest, url: str, secret: str = SECRET, timeout_s: float = 0.5) -> ProviderConfig:
    return ProviderConfig(name=studio.adapter, url=url, secret=secret, timeout_s=timeout_s)


class Reelhouse:
    adapter = "reelhouse"
    single_step = Game("fruit-classic")
    multi_step = None
    exact = ("BTC", 1_000)  # 1/100,000 BTC = 1,000 satoshi
    inexact = ("BTC", 1)

    async def start(self) -> str:
        self._runner, port = await start_reelhouse(port=0, secret=SECRET)
        self._state: Any = self._runner.app[STUDIO]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._runner.cleanup()

    def calls_seen(self) -> int:
        return int(self._state.requests_seen)

    def fail_next(self, mode: str) -> None:
        self._state.faults.update({"fail_next": 1, "fail_mode": mode})

    def forge_next_answer(self) -> bool:
        self._state.faults.update({"bad_signature_next": 1})
        return True


class Tablehouse:
    adapter = "tablehouse"
    single_step = Game("european-roulette")
    multi_step = Game("blackjack", bet_minor=200)
    exact = ("BTC", 300)  # whole micro-bitcoin: 100 satoshi
    inexact = ("BTC", 150)

    async def start(self) -> str:
        self._server, port, self._state = await start_tablehouse(port=0, secret=SECRET)
        return f"grpc://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._server.stop(None)

    def calls_seen(self) -> int:
        return int(self._state.calls_seen)

    def fail_next(self, mode: str) -> None:
        self._state.faults.fail_next, self._state.faults.fail_mode = 1, mode

    def forge_next_answer(self) -> bool:
        self._state.faults.cheat_next = 1
        return True


STUDIOS: dict[str, type[StudioUnderTest]] = {"reelhouse": Reelhouse, "tablehouse": Tablehouse}
