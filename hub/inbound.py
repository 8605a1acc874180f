"""The hub's inbound HTTP server: where studios that speak their own wallet protocol call the hub.

Each adapter that serves one (adapters.base.InboundAdapter) gets its aiohttp application mounted under
/<provider name>/ on one server (config inbound_listen, default 127.0.0.1:8711), and a StudioWallet port
bound to its studio: HubStudioWallet, which runs every call through ProviderWallet, the very domain path
ProviderWalletService runs, so idempotency by the studio's transaction id, rollback before bet, win before
bet and late wins after the session expired mean the same whichever protocol a studio speaks.

With --workers N only worker 0 serves it (hub.cli clears inbound_listen for the others): an adapter's
replay protection remembers nonces in its process, and one process remembering them all keeps it exact.

Each studio may have at most inbound_max_calls_in_flight calls in flight; past it a call is answered at once
with HTTP 503 and Retry-After, before its body is read: nothing applied, and the studio retries with the same
transaction id (every money call is keyed). A studio flooding the hub so keeps the database threads from no
other studio's players.

Both kinds of refusal (a domain refusal, WalletRefused, and the 503) are counted in casinohub_refusals_total
with rpc "inbound:<studio>" (hub.metrics); the 503 as RESOURCE_EXHAUSTED / OVERLOADED.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from aiohttp import web

from adapters.base import InboundAdapter, ProviderAdapter, WalletAnswer, WalletCall, WalletRefused
from hub import http_site, metrics
from hub.errors import DomainError, Reason
from hub.logs import ThrottledCount
from hub.money import Money
from hub.provider_wallet import ProviderWallet, StudioReceipt

log = structlog.get_logger(__name__)
T = TypeVar("T")
RETRY_AFTER_S = 1
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InFlightLimit:
    """aiohttp middleware: at most `limit` calls of one studio in flight (one event loop: a plain counter)."""

    def __init__(self, studio: str, limit: int):
        self.studio = studio
        self.limit = limit
        self.in_flight = 0
        self._refusals = ThrottledCount(log)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.in_flight >= self.limit:
            metrics.refused(f"inbound:{self.studio}", Reason.OVERLOADED)
            self._refusals.add("inbound.overloaded", studio=self.studio, limit=self.limit)
            return web.json_response({"error": f"the hub is at its limit of {self.limit} calls in flight for "
                                               f"this studio; retry with the same transaction id"},
                                     status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1



def _wallet_of(metadata: dict[str, str]) -> WalletAnswer | None:
    """The wallet ProviderWallet attaches to its refusals, when it knew the player."""
    try:
        return WalletAnswer(metadata["currency"], int(metadata["balance_minor"]), int(metadata["bonus_balance_minor"]))
    except (KeyError, ValueError):
        return None


class HubStudioWallet:
    """adapters.base.StudioWallet for one studio, on ProviderWallet; domain refusals become WalletRefused."""

    def __init__(self, wallet: ProviderWallet, studio_id: str):
        self._wallet = wallet
        self._studio = studio_id

    async def _run(self, work: Awaitable[T]) -> T:
        structlog.contextvars.bind_contextvars(studio=self._studio)
        try:
            return await work
        except DomainError as err:
            metrics.refused(f"inbound:{self._studio}", err.reason)
            raise WalletRefused(err.reason.name, err.message, err.reason.retryable, _wallet_of(err.metadata)) from None

    @staticmethod
    def _answer(receipt: StudioReceipt) -> WalletAnswer:
        return WalletAnswer(receipt.currency, receipt.balance, receipt.bonus_balance,
                            transaction_id=receipt.transaction_id)

    async def authenticate(self, call: WalletCall) -> WalletAnswer:
        session, receipt = await self._run(self._wallet.authenticate(self._studio, call.session_token))
        return WalletAnswer(receipt.currency, receipt.balance, receipt.bonus_balance, session.player_id)

    async def balance(self, call: WalletCall) -> WalletAnswer:
        return self._answer(await self._run(self._wallet.balance(self._studio, call.session_token, call.player_id)))

    async def bet(self, call: WalletCall) -> WalletAnswer:
        return self._answer(await self._run(self._wallet.bet(
            self._studio, call.session_token, call.player_id, call.transaction_id, call.round_id,
            Money(call.currency, call.amount_minor), call.round_closed)))

    async def win(self, call: WalletCall) -> WalletAnswer:
        return self._answer(await self._run(self._wallet.win(
            self._studio, call.session_token, call.player_id, call.transaction_id, call.round_id,
            Money(call.currency, call.amount_minor), call.bet_transaction_id, call.round_closed)))

    async def bet_and_win(self, call: WalletCall) -> WalletAnswer:
        return self._answer(await self._run(self._wallet.bet_and_win(
            self._studio, call.session_token, call.player_id, call.transaction_id, call.round_id,
            Money(call.currency, call.amount_minor), Money(call.currency, call.win_minor), call.round_closed)))

    async def rollback(self, call: WalletCall) -> WalletAnswer:
        return self._answer(await self._run(self._wallet.rollback(
            self._studio, call.session_token, call.player_id, call.transaction_id, call.bet_transaction_id,
            call.round_id, call.round_closed)))


def inbound_adapters(adapters: dict[str, ProviderAdapter]) -> dict[str, InboundAdapter]:
    """The adapters (behind their guards) that serve a studio's own wallet protocol."""
    found = {}
    for name, adapter in adapters.items():
        inner = getattr(adapter, "inner", adapter)  # hub.studio_guard.GuardedAdapter wraps each
        if isinstance(inner, InboundAdapter):
            found[name] = inner
    return found


class InboundServer:
    """One aiohttp server for every inbound adapter; stopped gracefully with the hub."""

    def __init__(self, runner: web.AppRunner, port: int, limits: dict[str, InFlightLimit]):
        self._runner = runner
        self.port = port
        self.limits = limits  # per studio

    @classmethod
    async def start(cls, listen: str, adapters: dict[str, InboundAdapter], wallet: ProviderWallet,
                    grace_s: float, max_calls_in_flight: int = 64) -> "InboundServer":
        """Bind and serve; at stop, calls in flight get grace_s seconds to finish."""
        root = web.Application()
        limits = {name: InFlightLimit(name, max_calls_in_flight) for name in adapters}
        for name, adapter in sorted(adapters.items()):
            app = adapter.wallet_app(HubStudioWallet(wallet, name))
            if not isinstance(app, web.Application):
                raise TypeError(f"adapter {name!r}: wallet_app must answer an aiohttp web.Application")
            app.middlewares.insert(0, limits[name].middleware)  # outermost: before the body is read
            root.add_subapp(f"/{name}/", app)
        runner = web.AppRunner(root, handler_cancellation=True, access_log=None, shutdown_timeout=grace_s)
        bound = await http_site.serve(runner, listen, "the inbound HTTP server")
        log.info("hub.inbound_serving", listen=listen, port=bound, studios=sorted(adapters))
        return cls(runner, bound, limits)

    async def stop(self) -> None:
        """Stop accepting, let calls in flight finish (up to the grace), then close."""
        await self._runner.cleanup()
