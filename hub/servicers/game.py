import asyncio
from collections.abc import AsyncIterator

import grpc
import structlog

from casinohub.v1 import game_service_pb2 as pb, game_service_pb2_grpc
from hub import metrics
from hub.catalog import Catalog
from hub.demo import DemoSessions
from hub.errors import DomainError, Reason
from hub.events import PlayError, PlayEvent
from hub.operators import Operators
from hub.play import GameSession, Play
from hub.promotions import Promotions
from hub.reality import RealityChecks, Reminder
from hub.servicers import mapping
from hub.servicers.calls import abort, abort_unexpected, bind_call, tenancy_checked, unary

log = structlog.get_logger("hub.rpc")


def answer(event: PlayEvent) -> pb.PlayResponse:
    """A bet's or an action's event as sent; a refusal (PlayError) counted, unless it is the copy of one
    already sent (a bet retried with its key). Resume's backlog is not counted either: sent before."""
    if isinstance(event, PlayError) and not event.replay_of_seq:
        metrics.refused("Play", event.reason)
    return mapping.play_response(event)


class GameServicer(game_service_pb2_grpc.GameServiceServicer):
    def __init__(self, catalog: Catalog, play: Play, promotions: Promotions, operators: Operators,
                 demo: DemoSessions, reality: RealityChecks, reality_poll_s: float):
        self.catalog = catalog
        self.reality = reality
        self.reality_poll_s = reality_poll_s
        self.play = play
        self.demo = demo
        self.promotions = promotions
        self.operators = operators

    @unary
    async def GrantFreeRounds(self, operator_id: str, request: pb.GrantFreeRoundsRequest,
                              context: grpc.aio.ServicerContext) -> pb.GrantFreeRoundsResponse:
        return mapping.free_rounds_granted(await self.promotions.grant_free_rounds(
            operator_id, request.player_id, request.game_id, mapping.money_in(request.bet), request.rounds,
            mapping.time_in(request, "expires_at"), request.idempotency_key))

    @unary
    async def ListGames(self, operator_id: str, request: pb.ListGamesRequest,
                        context: grpc.aio.ServicerContext) -> pb.ListGamesResponse:
        games, next_token = await self.catalog.list(
            operator_id=operator_id, query=mapping.game_query(request), page_size=request.page_size,
            page_token=request.page_token)
        return mapping.games(games, next_token)

    @unary
    async def LaunchGame(self, operator_id: str, request: pb.LaunchGameRequest,
                         context: grpc.aio.ServicerContext) -> pb.LaunchGameResponse:
        launch = self.demo.launch if request.demo else self.play.launch
        return mapping.launched(await launch(operator_id, request.session_token, request.game_id, request.currency,
                                             request.client_seed, request.country))

    @unary
    async def GetRound(self, operator_id: str, request: pb.GetRoundRequest,
                       context: grpc.aio.ServicerContext) -> pb.GetRoundResponse:
        return mapping.round_(await self.play.get_round(operator_id, request.round_id))

    async def Play(self, requests: AsyncIterator[pb.PlayRequest],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[pb.PlayResponse]:
        """One message at a time: the events of a bet (or of a resume, rounds in play included) are all
        sent before the next message is read, and each write waits for the client (backpressure instead
        of buffering). A stream attaches to one game session once. A player with a reality-check interval
        gets RealityCheck events (hub.reality) between messages, looked for before each message and every
        reality_poll_s while the stream waits for one."""
        operator_id = bind_call(context, "Play")
        session: GameSession | None = None
        player: Play | DemoSessions = self.play  # who plays the attached session: real money or fun money
        reminder: Reminder | None = None
        incoming = aiter(requests)
        next_request: asyncio.Future[pb.PlayRequest] | None = None
        request: pb.PlayRequest | None = None
        try:
            await self.operators.require(operator_id)
            while True:
                try:
                    if reminder is None and next_request is None:
                        request = await anext(incoming)
                    else:  # read the next message while looking for due checks (one read in flight at most)
                        next_request = next_request or asyncio.ensure_future(anext(incoming))
                        done, _ = await asyncio.wait({next_request}, timeout=self.reality_poll_s if reminder else None)
                        if reminder is not None:
                            check, reminder = await self.reality.check(reminder)
                            if check is not None:
                                yield mapping.play_response(check)
                        if not done:
                            continue
                        request, next_request = next_request.result(), None
                except StopAsyncIteration:
                    return
                action = request.WhichOneof("action")
                if action in ("open", "resume"):
                    if session is not None:
                        raise DomainError(Reason.STREAM_ALREADY_OPEN,
                                          f"this stream is already attached; send {action} on a new stream")
                    attach = getattr(request, action)
                    if self.demo.holds(operator_id, attach.game_session_id):
                        player = self.demo
                    session = await player.attach(operator_id, attach.game_session_id, attach.session_token)
                    structlog.contextvars.bind_contextvars(game_session=session.game_session_id,
                                                           player=session.player_id)
                    if action == "resume":
                        async for event in player.resume(session, attach.last_seen_seq):
                            yield mapping.play_response(event)
                    else:
                        yield mapping.play_response(await player.opened(session))
                    reminder = await self.reality.start(session)
                elif session is None:
                    raise DomainError(Reason.STREAM_NOT_OPEN, f"send open before {action or 'an empty message'}")
                elif action == "bet":
                    bet = request.bet
                    async for event in player.bet(session, mapping.money_in(bet.amount), bet.idempotency_key,
                                                       bet.layout):
                        yield answer(event)
                elif action == "act":
                    act = request.act
                    async for event in player.act(session, act.round_id, mapping.action_in(act.action),
                                                  act.idempotency_key):
                        yield answer(event)
                elif action == "close":
                    yield mapping.play_response(await player.closed(session))
                    return
                else:
                    raise DomainError(Reason.INVALID_ARGUMENT, "empty PlayRequest")
        except DomainError as err:
            try:
                checked = await tenancy_checked(self.operators, operator_id, "Play", request, err)
            except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
                await abort_unexpected(context, "Play", exc)
            await abort(context, "Play", checked)
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            await abort_unexpected(context, "Play", exc)
        finally:
            if next_request is not None:
                next_request.cancel()
