from collections.abc import AsyncIterator

import grpc
import structlog

from casinohub.v1 import game_service_pb2 as pb, game_service_pb2_grpc
from hub.catalog import Catalog
from hub.errors import DomainError, Reason
from hub.operators import Operators
from hub.play import GameSession, Play
from hub.promotions import Promotions
from hub.servicers.calls import abort, abort_unexpected, bind_call, unary

log = structlog.get_logger("hub.rpc")
GAME_TYPES = {"slot": pb.GAME_TYPE_SLOT, "table": pb.GAME_TYPE_TABLE, "live": pb.GAME_TYPE_LIVE,
              "sports": pb.GAME_TYPE_SPORTS}
GAME_TYPE_NAMES = {v: k for k, v in GAME_TYPES.items()}


class GameServicer(game_service_pb2_grpc.GameServiceServicer):
    def __init__(self, catalog: Catalog, play: Play, promotions: Promotions, operators: Operators,
                 default_operator: str):
        self.catalog = catalog
        self.play = play
        self.promotions = promotions
        self.operators = operators
        self.default_operator = default_operator

    @unary
    async def GrantFreeRounds(self, operator_id: str, request: pb.GrantFreeRoundsRequest,
                              context: grpc.aio.ServicerContext) -> pb.GrantFreeRoundsResponse:
        return await self.promotions.grant_free_rounds(operator_id, request)

    @unary
    async def ListGames(self, operator_id: str, request: pb.ListGamesRequest,
                        context: grpc.aio.ServicerContext) -> pb.ListGamesResponse:
        if request.game_type and request.game_type not in GAME_TYPE_NAMES:
            raise DomainError(Reason.INVALID_ARGUMENT, f"unknown game_type {request.game_type}")
        games, next_token = await self.catalog.list(
            operator_id=operator_id, game_type=GAME_TYPE_NAMES.get(request.game_type, ""), provider=request.provider,
            currency=request.currency, page_size=request.page_size, page_token=request.page_token)
        return pb.ListGamesResponse(next_page_token=next_token, games=[
            pb.Game(game_id=g.game_id, provider=g.provider, name=g.info.name,
                    game_type=GAME_TYPES.get(g.info.game_type, pb.GAME_TYPE_UNSPECIFIED),
                    rtp_basis_points=g.info.rtp_basis_points, max_win_multiplier=g.info.max_win_multiplier,
                    currencies=g.info.currencies)
            for g in games])

    @unary
    async def LaunchGame(self, operator_id: str, request: pb.LaunchGameRequest,
                         context: grpc.aio.ServicerContext) -> pb.LaunchGameResponse:
        return await self.play.launch(operator_id, request.session_token, request.game_id, request.currency,
                                      request.client_seed)

    @unary
    async def GetRound(self, operator_id: str, request: pb.GetRoundRequest,
                       context: grpc.aio.ServicerContext) -> pb.GetRoundResponse:
        return pb.GetRoundResponse(round=await self.play.get_round(operator_id, request.round_id))

    async def Play(self, requests: AsyncIterator[pb.PlayRequest],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[pb.PlayResponse]:
        """One message at a time: the events of a bet (or of a resume, rounds in play included) are all
        sent before the next message is read, and each write waits for the client (backpressure instead
        of buffering). A stream attaches to one game session once."""
        operator_id = bind_call(context, "Play", self.default_operator)
        session: GameSession | None = None
        try:
            await self.operators.require(operator_id)
            async for request in requests:
                action = request.WhichOneof("action")
                if action in ("open", "resume"):
                    if session is not None:
                        raise DomainError(Reason.STREAM_ALREADY_OPEN,
                                          f"this stream is already attached; send {action} on a new stream")
                    attach = getattr(request, action)
                    session = await self.play.attach(operator_id, attach.game_session_id, attach.session_token)
                    structlog.contextvars.bind_contextvars(game_session=session.game_session_id,
                                                           player=session.player_id)
                    if action == "resume":
                        async for event in self.play.resume(session, attach.last_seen_seq):
                            yield event
                    else:
                        yield await self.play.opened(session)
                elif session is None:
                    raise DomainError(Reason.STREAM_NOT_OPEN, f"send open before {action or 'an empty message'}")
                elif action == "bet":
                    async for event in self.play.bet(session, request.bet.amount, request.bet.idempotency_key):
                        yield event
                elif action == "close":
                    yield await self.play.closed(session)
                    return
                else:
                    raise DomainError(Reason.INVALID_ARGUMENT, "empty PlayRequest")
        except DomainError as err:
            await abort(context, err)
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            await abort_unexpected(context, exc)
