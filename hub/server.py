"""The hub's gRPC server: services, health, reflection, and a graceful stop."""

import asyncio
import contextlib
import signal

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from adapters.base import ProviderAdapter
from casinohub.provider.v1 import provider_wallet_service_pb2, provider_wallet_service_pb2_grpc
from casinohub.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
    game_service_pb2,
    game_service_pb2_grpc,
    player_service_pb2,
    player_service_pb2_grpc,
    report_service_pb2,
    report_service_pb2_grpc,
    wallet_service_pb2,
    wallet_service_pb2_grpc,
)
from hub.auth.admin import OperatorAdmin
from hub.auth.credentials import Authenticator
from hub.bootstrap import Hub, bootstrap
from hub.config import Config
from hub.inbound import InboundServer, inbound_adapters
from hub.metrics import MetricsServer
from hub.page_tokens import load as load_page_tokens, shared_secret
from hub.reality import RealityChecks
from hub.servicers.admin import AdminServicer, AuthServicer
from hub.servicers.admission import Admission, OperatorLimits
from hub.servicers.authentication import Authentication
from hub.servicers.edge import RequestChecks
from hub.servicers.game import GameServicer
from hub.servicers.player import PlayerServicer
from hub.servicers.provider_wallet import ProviderWalletServicer
from hub.servicers.report import ReportServicer
from hub.servicers.wallet import WalletServicer
from hub.transport import connection_options, server_credentials, tls_files

log = structlog.get_logger(__name__)
SERVICE_DESCRIPTORS = [
    game_service_pb2.DESCRIPTOR.services_by_name["GameService"],
    wallet_service_pb2.DESCRIPTOR.services_by_name["WalletService"],
    player_service_pb2.DESCRIPTOR.services_by_name["PlayerService"],
    report_service_pb2.DESCRIPTOR.services_by_name["ReportService"],
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"],
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
    provider_wallet_service_pb2.DESCRIPTOR.services_by_name["ProviderWalletService"],
]
SERVICES = [service.full_name for service in SERVICE_DESCRIPTORS]
NONCE_SWEEP_INTERVAL_S = 60.0  # seen request nonces past the timestamp window are deleted this often
# grpc.aio takes new calls from core one at a time; in a burst the rest wait in core's queue, and past its
# default limits (1000 / 3000 pending) core fails them itself, unlogged, with INTERNAL or CANCELLED
# (4000 Play streams at once over 16 connections: ~1,150 of them). A deep queue lets every call reach
# Admission, which refuses the surplus at once with OVERLOADED, so the queue drains quickly.
CORE_OPTIONS = [("grpc.server.max_pending_requests", 10_000), ("grpc.server.max_pending_requests_hard_limit", 30_000)]


class HubServer:
    """A started-or-startable hub: the gRPC server plus what it owns."""

    def __init__(self, server: grpc.aio.Server, hub: Hub, health_servicer: health.aio.HealthServicer,
                 admission: Admission, authenticator: Authenticator, operator_limits: OperatorLimits):
        self.grpc = server
        self.admission = admission
        self.operator_limits = operator_limits
        self.authenticator = authenticator
        self.hub = hub
        self._health = health_servicer
        self._background: list[asyncio.Task[None]] = []
        self.inbound: InboundServer | None = None  # studios' own wallet protocols, when an adapter serves one
        self.metrics: MetricsServer | None = None  # GET /metrics, when metrics_listen is set

    @property
    def inbound_port(self) -> int:
        return self.inbound.port if self.inbound is not None else 0

    @property
    def metrics_port(self) -> int:
        return self.metrics.port if self.metrics is not None else 0

    async def start(self) -> None:
        await self._set_health(await self.hub.db.ping())  # answer health correctly from the first call
        await self.grpc.start()
        self._background.append(asyncio.create_task(self._watch_database()))
        self._background.append(asyncio.create_task(self._sweep_nonces()))
        if self.hub.config.reconcile_interval_s > 0:
            self._background.append(asyncio.create_task(self._reconcile_periodically()))

    async def _reconcile_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.hub.config.reconcile_interval_s)
            try:
                await self.hub.reconciler.run_once()
                await self.hub.promotions.expire_due()
            except Exception:
                log.warning("reconcile.failed", exc_info=True)

    async def _sweep_nonces(self) -> None:
        while True:
            await asyncio.sleep(NONCE_SWEEP_INTERVAL_S)
            try:
                await self.authenticator.sweep_nonces()
            except Exception:
                log.warning("auth.nonce_sweep_failed", exc_info=True)

    async def _watch_database(self) -> None:
        """Health follows the database: NOT_SERVING while it cannot be reached."""
        while True:
            await asyncio.sleep(self.hub.config.health_interval_s)
            await self._set_health(await self.hub.db.ping())

    async def _set_health(self, serving: bool) -> None:
        self.admission.database_up = serving
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICES):
            await self._health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let in-flight calls and rounds finish, then release everything."""
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._health.enter_graceful_shutdown()
        if self.inbound is not None:  # studio calls in flight finish first: each is one engine command
            await self.inbound.stop()
        await self.grpc.stop(self.hub.config.shutdown_grace_s if grace is None else grace)
        if self.metrics is not None:  # scraped until the last call has been answered (and counted)
            await self.metrics.stop()
        await self.hub.close()


async def create_server(config: Config, adapters: dict[str, ProviderAdapter] | None = None) -> tuple[HubServer, int]:
    """Build the hub and bind it to config.listen (port 0 picks a free port). Call start() to serve."""
    tls = await asyncio.to_thread(tls_files, config)  # a bad TLS setting stops the hub before any other work
    hub = await bootstrap(config, adapters)
    # No maximum_concurrent_rpcs: Admission is the limit (grpc's answered some refusals with INTERNAL).
    admission = Admission(config.max_calls_in_flight, config.max_play_streams, config.overload_pushback_ms)
    # Workers share one port, said explicitly; a single hub does not (grpc's Linux default would let a second
    # hub started by mistake on the same port silently take half the connections).
    options = [*CORE_OPTIONS, *connection_options(config), ("grpc.so_reuseport", 1 if config.workers > 1 else 0)]
    if config.token_key and len(config.token_key) < 32:
        await hub.close()
        raise ValueError("token_key must be at least 32 characters (or empty: a generated key)")
    token_key = config.token_key.encode() if config.token_key else await shared_secret(hub.db, "access_tokens")
    authenticator = Authenticator(hub.db, token_key, config.token_ttl_s, config.signature_window_s,
                                  config.admin_token, config.environment, config.sandbox_operator_id,
                                  hashing=hub.hashing)
    # Admission first (a flood is refused before any credential check), then who is calling, then that
    # operator's own limits (they need the operator), then the request.
    authentication = Authentication(authenticator, SERVICE_DESCRIPTORS)
    operator_limits = OperatorLimits(hub.limits, config.workers, config.overload_pushback_ms,
                                     config.token_issue_per_s, config.token_issue_burst,
                                     config.studio_rate_limit_per_s, config.studio_rate_limit_burst)
    server = grpc.aio.server(interceptors=[admission, authentication, operator_limits, RequestChecks()],
                             options=options)
    game_service_pb2_grpc.add_GameServiceServicer_to_server(
        GameServicer(hub.catalog, hub.play, hub.promotions, hub.operators, hub.demo, RealityChecks(hub.db),
                     config.reality_check_poll_s), server)
    wallet_service_pb2_grpc.add_WalletServiceServicer_to_server(
        WalletServicer(hub.wallet, hub.promotions, hub.operators), server)
    player_service_pb2_grpc.add_PlayerServiceServicer_to_server(
        PlayerServicer(hub.players, hub.operators, hub.responsible), server)
    report_service_pb2_grpc.add_ReportServiceServicer_to_server(
        ReportServicer(hub.reports, hub.operators), server)
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(authenticator), server)
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminServicer(OperatorAdmin(hub.db, await load_page_tokens(hub.db), hub.hashing), hub.catalog,
                      hub.limits), server)
    provider_wallet_service_pb2_grpc.add_ProviderWalletServiceServicer_to_server(
        ProviderWalletServicer(hub.provider_wallet), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server)
    try:
        port = (server.add_secure_port(config.listen, server_credentials(tls)) if tls is not None
                else server.add_insecure_port(config.listen))
    except RuntimeError:  # grpc's "Failed to bind"
        port = 0
    if port == 0:
        await hub.close()
        raise OSError(f"could not bind {config.listen}: in use, or not an address of this host")
    hub_server = HubServer(server, hub, health_servicer, admission, authenticator, operator_limits)
    inbound = inbound_adapters(hub.adapters)
    if inbound and config.inbound_listen:
        try:
            hub_server.inbound = await InboundServer.start(config.inbound_listen, inbound, hub.provider_wallet,
                                                           config.shutdown_grace_s,
                                                           config.inbound_max_calls_in_flight)
        except OSError:
            await server.stop(None)
            await hub.close()
            raise
    if config.metrics_listen:
        try:
            hub_server.metrics = await MetricsServer.start(config.metrics_listen)
        except OSError:
            if hub_server.inbound is not None:
                await hub_server.inbound.stop()
            await server.stop(None)
            await hub.close()
            raise
    return hub_server, port


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server, port = await create_server(config)
    await server.start()
    log.info("hub.serving", port=port, listen=config.listen, transport=_transport(config),
             database=_redact(config.database_url),
             providers=sorted(server.hub.adapters))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("hub.stopping", grace_s=config.shutdown_grace_s)
    await server.stop()
    log.info("hub.stopped")


def _transport(config: Config) -> str:
    if config.tls_client_ca_file:
        return "mtls"
    return "tls" if config.tls_cert_file else "plaintext"


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)
