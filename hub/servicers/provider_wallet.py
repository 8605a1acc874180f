"""ProviderWalletService: the studio wallet API push-style studios call, signed with their own keys.

The authentication interceptor verified the studio's signature and bound a studio principal (the scope
studio:wallet is a studio key's alone); the studio it names decides which game sessions the call reaches.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog

from casinohub.provider.v1 import provider_wallet_service_pb2 as pb, provider_wallet_service_pb2_grpc
from hub.auth import principal as principals
from hub.errors import DomainError, Reason
from hub.provider_wallet import ProviderWallet
from hub.servicers import mapping
from hub.servicers.calls import answered, bind_call

Handler = Callable[[Any, str, Any, grpc.aio.ServicerContext], Awaitable[Any]]


def studio_call(handler: Handler) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    """Wrap handler(self, studio_id, request, context): logs bound, the studio principal required, errors
    mapped to statuses (calls.unary's mapping, without an operator)."""

    @functools.wraps(handler)
    async def call(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        bind_call(context, handler.__name__)
        principal = principals.current_or_none()

        async def work() -> Any:
            if principal is None or principal.how != "studio":  # the interceptor's scope check makes this moot
                raise DomainError(Reason.SCOPE_MISSING, "ProviderWalletService takes a studio's key",
                                  metadata={"scope": principals.STUDIO_SCOPE})
            structlog.contextvars.bind_contextvars(studio=principal.studio_id)
            return await handler(self, principal.studio_id, request, context)

        return await answered(context, handler.__name__, work())

    return call


class ProviderWalletServicer(provider_wallet_service_pb2_grpc.ProviderWalletServiceServicer):
    def __init__(self, wallet: ProviderWallet):
        self.wallet = wallet

    @studio_call
    async def Authenticate(self, studio_id: str, request: pb.AuthenticateRequest,
                           context: grpc.aio.ServicerContext) -> pb.AuthenticateResponse:
        session, wallet = await self.wallet.authenticate(studio_id, request.session_token)
        answer = mapping.studio_answer(wallet, pb.AuthenticateResponse)
        answer.player_id, answer.currency, answer.game_id = session.player_id, session.currency, session.game_id
        return answer  # type: ignore[no-any-return]

    @studio_call
    async def GetBalance(self, studio_id: str, request: pb.GetBalanceRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetBalanceResponse:
        return mapping.studio_answer(await self.wallet.balance(studio_id, request.session_token, request.player_id),
                                     pb.GetBalanceResponse)  # type: ignore[no-any-return]

    @studio_call
    async def Bet(self, studio_id: str, request: pb.BetRequest,
                  context: grpc.aio.ServicerContext) -> pb.BetResponse:
        return mapping.studio_answer(await self.wallet.bet(
            studio_id, request.session_token, request.player_id, request.transaction_id, request.round_id,
            mapping.money_in(request.amount), request.round_closed), pb.BetResponse)  # type: ignore[no-any-return]

    @studio_call
    async def Win(self, studio_id: str, request: pb.WinRequest,
                  context: grpc.aio.ServicerContext) -> pb.WinResponse:
        return mapping.studio_answer(await self.wallet.win(
            studio_id, request.session_token, request.player_id, request.transaction_id, request.round_id,
            mapping.money_in(request.amount), request.bet_transaction_id, request.round_closed),
            pb.WinResponse)  # type: ignore[no-any-return]

    @studio_call
    async def BetAndWin(self, studio_id: str, request: pb.BetAndWinRequest,
                        context: grpc.aio.ServicerContext) -> pb.BetAndWinResponse:
        return mapping.studio_answer(await self.wallet.bet_and_win(
            studio_id, request.session_token, request.player_id, request.transaction_id, request.round_id,
            mapping.money_in(request.bet), mapping.money_in(request.win), request.round_closed),
            pb.BetAndWinResponse)  # type: ignore[no-any-return]

    @studio_call
    async def Rollback(self, studio_id: str, request: pb.RollbackRequest,
                       context: grpc.aio.ServicerContext) -> pb.RollbackResponse:
        return mapping.studio_answer(await self.wallet.rollback(
            studio_id, request.session_token, request.player_id, request.transaction_id,
            request.bet_transaction_id, request.round_id, request.round_closed),
            pb.RollbackResponse)  # type: ignore[no-any-return]

    @studio_call
    async def EndRound(self, studio_id: str, request: pb.EndRoundRequest,
                       context: grpc.aio.ServicerContext) -> pb.EndRoundResponse:
        return mapping.studio_answer(await self.wallet.end_round(
            studio_id, request.session_token, request.player_id, request.round_id),
            pb.EndRoundResponse)  # type: ignore[no-any-return]

    @studio_call
    async def PromoWin(self, studio_id: str, request: pb.PromoWinRequest,
                       context: grpc.aio.ServicerContext) -> pb.PromoWinResponse:
        return mapping.studio_answer(await self.wallet.promo_win(
            studio_id, request.session_token, request.player_id, request.transaction_id,
            mapping.money_in(request.amount), mapping.promo_kind_in(request.kind), request.campaign_id),
            pb.PromoWinResponse)  # type: ignore[no-any-return]
