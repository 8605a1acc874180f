"""The push-style studios the push conformance kit (test_push_kit.py) runs against: studios that move money by
calling the hub's wallet themselves. For each, how to start its mock studio on port 0 with its studio key,
how a player plays a round at it, what it believes it settled (its record), and how to work its fault knobs.
A new push studio joins the kit by adding its PushStudioUnderTest to PUSH_STUDIOS.

The fault vocabulary the kit arms (each for the studio's next occasions of it):
  duplicate            a wallet call delivered twice
  timeout              a wallet call acted on by the hub, its answer lost, the same call sent again
  win_before_bet       a win delivered before the bet it pays (the hub answers BET_NOT_FOUND until the bet comes)
  rollback_before_bet  a bet's rollback delivered before the bet (the hub then refuses the bet)
  bad_signature        a wallet call first sent with a signature not the studio's (refused), then properly
  replay               a wallet call's signed headers sent again (refused: the nonce is spent)
"""

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from casinohub.v1 import game_service_pb2 as gpb
from hub.auth.admin import OperatorAdmin
from hub.ledger.db import Database
from hub.page_tokens import load
from mock_providers.livehouse.server import TABLE, start_server as start_livehouse

SECRET = "push-kit-secret"


@dataclass(frozen=True)
class PushGame:
    game_id: str  # the studio's id; the catalog's is "<adapter>:<game_id>"
    game_type: int  # casinohub.v1.GameType
    currency: str = "USD"
    stake_minor: int = 100
    picks: tuple[str, ...] = ("",)  # what a player may back; the kit alternates them to see wins and losses


@dataclass(frozen=True)
class Played:
    round_id: str  # the studio's round id ("" when the bet was refused before a round took it)
    transaction_id: str
    refused: str = ""  # why the studio or the hub refused the bet; "" when it stands


@dataclass(frozen=True)
class Record:
    """What the studio believes it settled with one player in one currency."""

    bets: int = 0
    wins: int = 0
    rollbacks: int = 0
    voided: int = 0
    net_minor: int = 0  # wins and refunds minus stakes: the player's balance moved by exactly this


async def studio_key(database_url: str, studio_id: str) -> tuple[str, bytes]:
    """A studio key (id, private key PEM), made as AdminService.CreateStudioKey makes it, before the hub
    exists (the hub reads the studio's catalog as it starts, so the studio must be up first)."""
    db = Database.from_url(database_url, workers=1)
    try:
        new = await OperatorAdmin(db, await load(db)).create_studio_key(studio_id, generate_signing_key=True)
    finally:
        db.close()
    return new.key.key_id, new.private_key_pem.encode()


class PushStudioUnderTest(Protocol):
    adapter: str  # its entry point in the casinohub.adapters group
    game: PushGame
    demo_play: bool  # whether a demo launch plays (else the hub refuses it DEMO_NOT_AVAILABLE)
    # A currency, a stake as the studio's player states it, and the hub minor units it must come to exactly;
    # and a stake in that currency that is no whole number of minor units (refused before the hub hears of it).
    exact: tuple[str, str, int]
    inexact: str

    async def start(self, key_id: str, private_key_pem: bytes) -> str: ...  # the url its adapter is given

    def connect(self, hub: str) -> None: ...  # where the hub listens, once it does (it reads the catalog first)

    async def stop(self) -> None: ...

    async def play(self, session: str, pick: str, stake: int | str | None = None) -> Played: ...

    async def settled(self, played: Played) -> None: ...  # returns once the studio finished settling it

    async def record(self, player_id: str, currency: str) -> Record: ...

    async def arm(self, fault: str, count: int = 1) -> None: ...

    async def delay_results(self, seconds: float) -> None: ...

    async def counters(self) -> dict[str, Any]: ...  # wallet_calls, faults_injected, refusals (by reason)


class Livehouse:
    """The live red-or-black table: a player joins the next betting window; rounds settle on its clock."""

    adapter = "livehouse"
    game = PushGame("red-or-black", gpb.GAME_TYPE_LIVE, picks=("red", "black"))
    demo_play = False
    exact = ("BTC", "0.00001", 1_000)  # 0.00001 BTC = 1,000 satoshi
    inexact = "0.000000001"  # a tenth of a satoshi
    window_s = 0.5

    async def start(self, key_id: str, private_key_pem: bytes) -> str:
        self._runner, port = await start_livehouse(secret=SECRET, hub="", key_id=key_id,
                                                   private_key_pem=private_key_pem, window_s=self.window_s)
        self._url = f"http://127.0.0.1:{port}"
        self._http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {SECRET}"})
        return self._url

    def connect(self, hub: str) -> None:
        self._runner.app[TABLE].hub = hub

    async def stop(self) -> None:
        await self._http.close()
        await self._runner.cleanup()

    async def _json(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
        async with self._http.request(method, self._url + path, json=body) as response:
            return response.status, await response.json()

    async def play(self, session: str, pick: str, stake: int | str | None = None) -> Played:
        """Bet in the next open window: a closed one answers 409 BETTING_CLOSED, so wait and bet again."""
        amount = {"amount": stake} if isinstance(stake, str) else {"amount_minor": stake or self.game.stake_minor}
        for _ in range(200):
            status, answer = await self._json("POST", "/v1/bets", {"session_token": session, "colour": pick, **amount})
            if status in (200, 202):
                return Played(str(answer["round"]), answer["transaction_id"])
            if answer.get("error") != "BETTING_CLOSED":
                return Played("", "", refused=str(answer.get("error")))
            await asyncio.sleep(0.03)
        raise AssertionError("the table never opened a betting window")

    async def settled(self, played: Played) -> None:
        for _ in range(400):
            status, answer = await self._json("GET", f"/v1/rounds/{played.round_id}")
            if status == 200 and answer["settled"]:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"round {played.round_id} never settled")

    async def record(self, player_id: str, currency: str) -> Record:
        _, answer = await self._json("GET", "/v1/record")
        found = answer["players"].get(player_id, {}).get(currency)
        if found is None:
            return Record()
        return Record(found["bets"], found["wins"], found["rollbacks"], found["voided"], found["net_minor"])

    async def arm(self, fault: str, count: int = 1) -> None:
        status, answer = await self._json("POST", "/_admin/faults", {f"{fault}_next": count})
        assert status == 200, answer

    async def delay_results(self, seconds: float) -> None:
        status, answer = await self._json("POST", "/_admin/faults", {"result_delay_s": seconds})
        assert status == 200, answer

    async def counters(self) -> dict[str, Any]:
        _, answer = await self._json("GET", "/v1/record")
        return {k: answer[k] for k in ("wallet_calls", "faults_injected", "refusals")}


PUSH_STUDIOS: dict[str, type[PushStudioUnderTest]] = {"livehouse": Livehouse}
