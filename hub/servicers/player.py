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
