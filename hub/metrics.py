"""The hub's Prometheus metrics: every refusal it answers, counted where an operator of the hub can see it.

- casinohub_refusals_total{rpc, code, reason}: each call, Play bet or action, studio wallet call and inbound
  studio call the hub refused, once: rpc is the method ("Deposit", "Play", "Bet"; "inbound:<studio>" for a
  studio's own wallet protocol, hub.inbound), code the gRPC status name, reason the ErrorInfo reason.
- casinohub_internal_errors_total{rpc}: calls answered INTERNAL (a hub bug, logged as rpc.failed). Not a
  refusal: nothing the client sent should produce one.

Label values are bounded: rpc comes from the server's own method table (a handler's name, a registered
method's path) or the configured studios, code and reason from hub.errors.Reason; never from a client.

A single hub counts in its memory (prometheus_client's default registry) and serves GET /metrics on
metrics_listen from an aiohttp server on its event loop. Under `hub serve --workers N` each worker writes its
counts to files in PROMETHEUS_MULTIPROC_DIR, set in its environment by the parent before it starts
(prometheus_client picks where values live when it is first imported), and the parent alone serves /metrics,
adding every worker's counts up (hub.workers).
"""

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest

from hub import http_site
from hub.errors import Reason

log = structlog.get_logger(__name__)

REFUSALS = Counter("casinohub_refusals", "Calls, Play bets and actions and studio calls the hub refused",
                   ["rpc", "code", "reason"])
INTERNAL_ERRORS = Counter("casinohub_internal_errors", "Calls answered INTERNAL (a hub bug; logged as rpc.failed)",
                          ["rpc"])


def refused(rpc: str, reason: Reason) -> None:
    """Count one refusal: rpc is a method name of the server's (or inbound:<studio>), never client input."""
    REFUSALS.labels(rpc, reason.code.name, reason.name).inc()


def failed(rpc: str) -> None:
    INTERNAL_ERRORS.labels(rpc).inc()


async def _exposition(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


class MetricsServer:
    """GET /metrics of this process, on the hub's event loop (rendering the counters takes microseconds)."""

    def __init__(self, runner: web.AppRunner, port: int):
        self._runner = runner
        self.port = port

    @classmethod
    async def start(cls, listen: str) -> "MetricsServer":
        app = web.Application()
        app.router.add_get("/metrics", _exposition)
        runner = web.AppRunner(app, access_log=None)
        bound = await http_site.serve(runner, listen, "the metrics server")
        log.info("hub.metrics_serving", listen=listen, port=bound)
        return cls(runner, bound)

    async def stop(self) -> None:
        await self._runner.cleanup()
