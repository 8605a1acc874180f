"""The inbound HTTP server's per-studio cap on calls in flight (hub.inbound.InFlightLimit), with real
concurrent HTTP calls: past the cap a call is refused at once with 503 and Retry-After, never queued, and its
handler never runs; a slot frees when its call ends, also when the handler fails."""

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from hub.inbound import InFlightLimit


async def test_calls_past_the_cap_are_refused_at_once_and_slots_free_when_calls_end() -> None:
    release = asyncio.Event()
    entered: list[str] = []

    async def held(request: web.Request) -> web.Response:
        entered.append(request.path)
        await release.wait()
        return web.json_response({"ok": True})

    async def failing(request: web.Request) -> web.Response:
        raise web.HTTPBadRequest()

    limit = InFlightLimit("studio-a", 2)
    app = web.Application(middlewares=[limit.middleware])
    app.router.add_post("/held", held)
    app.router.add_post("/failing", failing)
    async with TestClient(TestServer(app)) as client:
        first = asyncio.create_task(client.post("/held"))
        second = asyncio.create_task(client.post("/held"))
        while limit.in_flight < 2:
            await asyncio.sleep(0.01)
        with capture_logs() as logs:
            refused = [await client.post("/held") for _ in range(3)]
        assert [(r.status, r.headers["Retry-After"]) for r in refused] == [(503, "1")] * 3
        assert len(entered) == 2  # the refused calls never reached the handler
        assert [e["event"] for e in logs] == ["inbound.overloaded"]  # counted, logged once a second
        assert logs[0]["studio"] == "studio-a" and logs[0]["limit"] == 2
        release.set()
        assert [(await t).status for t in (first, second)] == [200, 200]
        assert limit.in_flight == 0
        assert (await client.post("/failing")).status == 400
        assert limit.in_flight == 0  # a failed call frees its slot too
        assert (await client.post("/held")).status == 200
