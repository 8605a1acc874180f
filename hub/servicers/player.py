import grpc

from casinohub.v1 import player_service_pb2 as pb, player_service_pb2_grpc
from hub.operators import Operators
from hub.players import Players
from hub.servicers import mapping
from hub.servicers.calls import unary


class PlayerServicer(player_service_pb2_grpc.PlayerServiceServicer):
    def __init__(self, players: Players, operators: Operators):
        self.players = players
        self.operators = operators

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
