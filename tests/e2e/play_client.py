"""Driving a Play stream from a test the way an operator's service would."""

import asyncio
from collections.abc import AsyncIterator

from casinohub.v1 import common_pb2, game_service_pb2 as pb
from tests.support import Client


class PlayStream:
    """A bidirectional Play call: send() queues a request, next() reads one event."""

    def __init__(self, hub: Client, timeout: float | None = None):
        self._outbox: asyncio.Queue[pb.PlayRequest | None] = asyncio.Queue()
        self.call = hub.games.Play(self._requests(), metadata=hub.metadata, timeout=timeout)

    async def _requests(self) -> AsyncIterator[pb.PlayRequest]:
        while (request := await self._outbox.get()) is not None:
            yield request

    def send(self, request: pb.PlayRequest) -> None:
        self._outbox.put_nowait(request)

    def open(self, game_session_id: str, token: str) -> None:
        self.send(pb.PlayRequest(open=pb.OpenAction(game_session_id=game_session_id, session_token=token)))

    def resume(self, game_session_id: str, token: str, last_seen_seq: int) -> None:
        self.send(pb.PlayRequest(resume=pb.ResumeAction(
            game_session_id=game_session_id, session_token=token, last_seen_seq=last_seen_seq)))

    def bet(self, amount: int, key: str, currency: str = "USD", layout: str = "") -> None:
        self.send(pb.PlayRequest(bet=pb.BetAction(
            amount=common_pb2.Money(currency=currency, amount_minor=amount), idempotency_key=key, layout=layout)))

    async def next(self, timeout: float = 10) -> pb.PlayResponse:
        return await asyncio.wait_for(self.call.read(), timeout)

    async def until(self, *kinds: str) -> list[pb.PlayResponse]:
        """Read events until one of the given kinds arrives (inclusive)."""
        events = []
        while True:
            event = await self.next()
            events.append(event)
            if event.WhichOneof("event") in kinds:
                return events

    async def close(self) -> None:
        self._outbox.put_nowait(None)
        self.call.cancel()


async def launch(hub: Client, token: str, game_id: str = "fake:coin-flip", currency: str = "USD") -> str:
    response = await hub.games.LaunchGame(
        pb.LaunchGameRequest(session_token=token, game_id=game_id, currency=currency), metadata=hub.metadata)
    return response.game_session_id


async def opened_stream(hub: Client, token: str, game_id: str = "fake:coin-flip") -> PlayStream:
    stream = PlayStream(hub)
    stream.open(await launch(hub, token, game_id), token)
    assert (await stream.next()).WhichOneof("event") == "session_opened"
    return stream


def kinds(events: list[pb.PlayResponse]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


def without_seqs(event: pb.PlayResponse) -> bytes:
    """An event's content, whichever seq it was sent with."""
    copy = pb.PlayResponse()
    copy.CopyFrom(event)
    copy.ClearField("seq")
    copy.ClearField("replay_of_seq")
    return copy.SerializeToString(deterministic=True)
