import grpc

from casinohub.v1 import player_service_pb2 as pb, player_service_pb2_grpc
from hub.ledger.limits import DEPOSIT, LOSS
from hub.operators import Operators
from hub.players import Players
from hub.responsible import ResponsibleGaming
from hub.servicers import mapping
from hub.servicers.calls import unary


class PlayerServicer(player_service_pb2_grpc.PlayerServiceServicer):
    def __init__(self, players: Players, operators: Operators, responsible: ResponsibleGaming):
        self.players = players
        self.operators = operators
        self.responsible = responsible

    @unary
    async def RegisterPlayer(self, operator_id: str, request: pb.RegisterPlayerRequest,
                             context: grpc.aio.ServicerContext) -> pb.RegisterPlayerResponse:
        player_id = await self.players.register(operator_id, request.username, request.password)
        return pb.RegisterPlayerResponse(player_id=player_id)

    @unary
    async def Login(self, operator_id: str, request: pb.LoginRequest,
                    context: grpc.aio.ServicerContext) -> pb.LoginResponse:
        return mapping.logged_in(await self.players.login(operator_id, request.username, request.password))

    @unary
    async def RefreshSession(self, operator_id: str, request: pb.RefreshSessionRequest,
                             context: grpc.aio.ServicerContext) -> pb.RefreshSessionResponse:
        return mapping.refreshed(await self.players.refresh(operator_id, request.refresh_token))

    @unary
    async def Logout(self, operator_id: str, request: pb.LogoutRequest,
                     context: grpc.aio.ServicerContext) -> pb.LogoutResponse:
        await self.players.logout(operator_id, request.session_token)
        return pb.LogoutResponse()

    @unary
    async def ListSessions(self, operator_id: str, request: pb.ListSessionsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListSessionsResponse:
        return mapping.session_page(await self.players.sessions(operator_id, request.player_id, request.page_size,
                                                                request.page_token))

    @unary
    async def SelfExclude(self, operator_id: str, request: pb.SelfExcludeRequest,
                          context: grpc.aio.ServicerContext) -> pb.SelfExcludeResponse:
        return pb.SelfExcludeResponse(self_exclusion=mapping.self_exclusion(await self.responsible.self_exclude(
            operator_id, request.player_id, request.days, request.indefinite)))

    @unary
    async def SetDepositLimit(self, operator_id: str, request: pb.SetDepositLimitRequest,
                              context: grpc.aio.ServicerContext) -> pb.SetDepositLimitResponse:
        return pb.SetDepositLimitResponse(limit=mapping.money_limit(await self.responsible.set_money_limit(
            operator_id, request.player_id, DEPOSIT, mapping.period_in(request.period),
            mapping.money_in(request.amount))))

    @unary
    async def SetLossLimit(self, operator_id: str, request: pb.SetLossLimitRequest,
                           context: grpc.aio.ServicerContext) -> pb.SetLossLimitResponse:
        return pb.SetLossLimitResponse(limit=mapping.money_limit(await self.responsible.set_money_limit(
            operator_id, request.player_id, LOSS, mapping.period_in(request.period),
            mapping.money_in(request.amount))))

    @unary
    async def SetSessionTimeLimit(self, operator_id: str, request: pb.SetSessionTimeLimitRequest,
                                  context: grpc.aio.ServicerContext) -> pb.SetSessionTimeLimitResponse:
        return pb.SetSessionTimeLimitResponse(limit=mapping.session_time_limit(
            await self.responsible.set_session_time_limit(operator_id, request.player_id, request.minutes)))

    @unary
    async def SetRealityCheckInterval(self, operator_id: str, request: pb.SetRealityCheckIntervalRequest,
                                      context: grpc.aio.ServicerContext) -> pb.SetRealityCheckIntervalResponse:
        return pb.SetRealityCheckIntervalResponse(reality_check=mapping.reality_check_interval(
            await self.responsible.set_reality_check_interval(operator_id, request.player_id, request.minutes)))

    @unary
    async def GetPlayerLimits(self, operator_id: str, request: pb.GetPlayerLimitsRequest,
                              context: grpc.aio.ServicerContext) -> pb.GetPlayerLimitsResponse:
        return mapping.player_limits(await self.responsible.get(operator_id, request.player_id))
