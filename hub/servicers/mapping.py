"""Protobuf <-> the domain, in one place: a request's fields become the domain's arguments, the domain's
answers (hub.events, hub.receipts and the services' views) become responses, and a DomainError becomes a
status with ErrorInfo. Below the edge nothing sees protobuf.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from adapters.base import Proof
from casinohub.provider.v1 import provider_wallet_service_pb2 as studio_pb
from casinohub.v1 import (
    common_pb2,
    game_service_pb2 as game_pb,
    player_service_pb2 as player_pb,
    report_service_pb2 as report_pb,
    wallet_service_pb2 as wallet_pb,
)
from hub.catalog import GameQuery, ListedGame
from hub.errors import DomainError, Reason, State
from hub.events import (
    ActionRequired,
    BetAccepted,
    Outcome,
    PlayError,
    PlayEvent,
    RealityCheck,
    RoundOpened,
    SessionClosed,
    SessionOpened,
    Settled,
)
from hub.money import Money
from hub.play import LaunchedGame, RoundView
from hub.players import Session, SessionPage
from hub.provider_wallet import StudioReceipt
from hub.receipts import Bonus, BonusGrant, DepositReceipt, FreeRoundGrant, WithdrawalReceipt
from hub.reports import CurrencyTotals
from hub.responsible import Limit, PlayerLimits, SelfExclusion
from hub.wallet import Balance, TransactionPage, TransactionQuery, WithdrawalDecision

DOMAIN = "casinohub"  # ErrorInfo.domain
GAME_TYPES = {"slot": game_pb.GAME_TYPE_SLOT, "table": game_pb.GAME_TYPE_TABLE, "live": game_pb.GAME_TYPE_LIVE,
              "sports": game_pb.GAME_TYPE_SPORTS, "instant": game_pb.GAME_TYPE_INSTANT}
GAME_TYPE_NAMES = {v: k for k, v in GAME_TYPES.items()}
TRANSACTION_KINDS = {
    "deposit": wallet_pb.TRANSACTION_KIND_DEPOSIT, "withdrawal": wallet_pb.TRANSACTION_KIND_WITHDRAWAL,
    "withdrawal_paid": wallet_pb.TRANSACTION_KIND_WITHDRAWAL_PAID,
    "withdrawal_released": wallet_pb.TRANSACTION_KIND_WITHDRAWAL_RELEASED,
    "bet": wallet_pb.TRANSACTION_KIND_BET, "win": wallet_pb.TRANSACTION_KIND_WIN,
    "rollback": wallet_pb.TRANSACTION_KIND_ROLLBACK, "bonus_granted": wallet_pb.TRANSACTION_KIND_BONUS_GRANTED,
    "bonus_converted": wallet_pb.TRANSACTION_KIND_BONUS_CONVERTED,
    "bonus_expired": wallet_pb.TRANSACTION_KIND_BONUS_EXPIRED,
    "bonus_forfeited": wallet_pb.TRANSACTION_KIND_BONUS_FORFEITED,
    "promo_win": wallet_pb.TRANSACTION_KIND_PROMO_WIN,
}
TRANSACTION_KIND_NAMES = {v: k for k, v in TRANSACTION_KINDS.items()}
WITHDRAWAL_STATUSES = {"PENDING": wallet_pb.WITHDRAWAL_STATUS_PENDING,
                       "APPROVED": wallet_pb.WITHDRAWAL_STATUS_APPROVED,
                       "REJECTED": wallet_pb.WITHDRAWAL_STATUS_REJECTED}

# grpc's enum values carry the google.rpc.Code numbers packed into statuses and error events.
assert grpc.StatusCode.NOT_FOUND.value[0] == code_pb2.NOT_FOUND


# -- errors ------------------------------------------------------------------------------------------------

def status(err: DomainError) -> grpc.Status:
    """The status a refused call ends with: its code and message, and an ErrorInfo detail."""
    info = error_details_pb2.ErrorInfo(
        reason=err.reason.name, domain=DOMAIN,
        metadata={**err.metadata, "retryable": str(err.reason.retryable).lower(), "state": err.state.value})
    status_ = status_pb2.Status(code=err.reason.code.value[0], message=err.message)
    status_.details.add().Pack(info)
    return rpc_status.to_status(status_)


def error_detail(reason: Reason, message: str, state: State) -> common_pb2.ErrorDetail:
    """The same information for an error event inside a stream."""
    return common_pb2.ErrorDetail(code=reason.code.value[0], reason=reason.name, message=message,
                                  retryable=reason.retryable,
                                  state=common_pb2.ApplyState.Value(f"APPLY_STATE_{state.value}"))


# -- values --------------------------------------------------------------------------------------------------

def money(value: Money) -> common_pb2.Money:
    return common_pb2.Money(currency=value.currency, amount_minor=value.amount_minor)


def money_in(message: common_pb2.Money) -> Money:
    """A request's amount, unchecked (an absent one is zero of no currency: the domain refuses it)."""
    return Money(message.currency, message.amount_minor)


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.replace(tzinfo=UTC))
    return stamp


def time_in(request: Message, name: str) -> datetime | None:
    """A request's time as the hub keeps it (naive UTC), None if absent; one no datetime can hold (e.g.
    beyond year 9999) is INVALID_ARGUMENT."""
    if not request.HasField(name):
        return None
    try:
        value: datetime = getattr(request, name).ToDatetime()
    except (ValueError, OverflowError):
        raise DomainError(Reason.INVALID_ARGUMENT, f"{name} is not a valid time") from None
    return value


def proof(value: Proof) -> game_pb.ProvablyFairProof:
    return game_pb.ProvablyFairProof(server_seed_hash=value.server_seed_hash, client_seed=value.client_seed,
                                     nonce=value.nonce, server_seed=value.server_seed)


# -- GameService ---------------------------------------------------------------------------------------------

def game_type_in(request: game_pb.ListGamesRequest) -> str:
    if request.game_type and request.game_type not in GAME_TYPE_NAMES:
        raise DomainError(Reason.INVALID_ARGUMENT, f"unknown game_type {request.game_type}")
    return GAME_TYPE_NAMES.get(request.game_type, "")


def game_query(request: game_pb.ListGamesRequest) -> GameQuery:
    return GameQuery(game_type=game_type_in(request), provider=request.provider, currency=request.currency,
                     features=tuple(request.features), text=request.text, locale=request.locale,
                     country=request.country)


def games(page: list[ListedGame], next_token: str) -> game_pb.ListGamesResponse:
    return game_pb.ListGamesResponse(next_page_token=next_token, games=[
        game_pb.Game(game_id=g.game.game_id, provider=g.game.provider, name=g.name,
                     game_type=GAME_TYPES.get(g.game.info.game_type, game_pb.GAME_TYPE_UNSPECIFIED),
                     rtp_basis_points=g.rtp_basis_points, max_win_multiplier=g.game.info.max_win_multiplier,
                     currencies=g.game.info.currencies, features=g.game.info.features, locale=g.locale,
                     rtp_variant=g.rtp_variant)
        for g in page])


def launched(game: LaunchedGame) -> game_pb.LaunchGameResponse:
    return game_pb.LaunchGameResponse(game_session_id=game.game_session_id, launch_url=game.launch_url,
                                      server_seed_hash=game.server_seed_hash, expires_at=timestamp(game.expires_at),
                                      demo=game.demo_balance is not None,
                                      demo_balance=money(game.demo_balance) if game.demo_balance else None)


def round_(view: RoundView) -> game_pb.GetRoundResponse:
    return game_pb.GetRoundResponse(round=game_pb.Round(
        round_id=view.round_id, game_id=view.game_id, player_id=view.player_id,
        game_session_id=view.game_session_id, status=game_pb.RoundStatus.Value(f"ROUND_STATUS_{view.status}"),
        bet=money(view.bet), win=money(view.win), result=view.result,
        proof=proof(view.proof) if view.proof is not None else None, transaction_ids=view.transaction_ids,
        opened_at=timestamp(view.opened_at), closed_at=timestamp(view.closed_at), replay_url=view.replay_url,
        entries=[game_pb.RoundEntry(kind=_ENTRY_KINDS[e.kind], amount=money(e.amount), key=e.key,
                                    time=timestamp(e.time), transaction_id=e.transaction_id) for e in view.entries]))


_ENTRY_KINDS = {"bet": game_pb.ROUND_ENTRY_KIND_BET, "win": game_pb.ROUND_ENTRY_KIND_WIN,
                "refund": game_pb.ROUND_ENTRY_KIND_REFUND}


def free_round_grant(grant: FreeRoundGrant) -> common_pb2.FreeRoundGrant:
    return common_pb2.FreeRoundGrant(
        grant_id=grant.grant_id, player_id=grant.player_id, game_id=grant.game_id, bet=money(grant.bet),
        rounds=grant.rounds, rounds_left=grant.rounds_left, expires_at=timestamp(grant.expires_at),
        created_at=timestamp(grant.created_at))


def free_rounds_granted(grant: FreeRoundGrant) -> game_pb.GrantFreeRoundsResponse:
    return game_pb.GrantFreeRoundsResponse(grant=free_round_grant(grant))


# -- Play events: one message per event, converted as it is sent --------------------------------------------

def _session_opened(e: SessionOpened) -> game_pb.PlayResponse:
    return game_pb.PlayResponse(seq=e.seq, replay_of_seq=e.replay_of_seq, session_opened=game_pb.SessionOpened(
        game_session_id=e.game_session_id, game_id=e.game_id, balance=money(e.balance),
        bonus_balance=money(e.bonus_balance), free_rounds_left=e.free_rounds_left))


def _round_opened(e: RoundOpened) -> game_pb.PlayResponse:
    return game_pb.PlayResponse(seq=e.seq, replay_of_seq=e.replay_of_seq, round_opened=game_pb.RoundOpened(
        round_id=e.round_id, idempotency_key=e.idempotency_key))


def _bet_accepted(e: BetAccepted) -> game_pb.PlayResponse:
    return game_pb.PlayResponse(seq=e.seq, replay_of_seq=e.replay_of_seq, bet_accepted=game_pb.BetAccepted(
        round_id=e.round_id, transaction_id=e.transaction_id, amount=money(e.amount), balance=money(e.balance),
        bonus_balance=money(e.bonus_balance), free_round=e.free_round, free_rounds_left=e.free_rounds_left))


def _outcome(e: Outcome) -> game_pb.PlayResponse:
    return game_pb.PlayResponse(seq=e.seq, replay_of_seq=e.replay_of_seq, outcome=game_pb.Outcome(
        round_id=e.round_id, result=e.result, win=money(e.win), proof=proof(e.proof)))


def _settled(e: Settled) -> game_pb.PlayResponse:
    return game_pb.PlayResponse(seq=e.seq, replay_of_seq=e.replay_of_seq, settled=game_pb.Settled(
        round_id=e.round_id, transaction_ids=e.transaction_ids, win=money(e.win), balance=money(e.balance),
        bonus_balance=money(e.bonus_balance)))


def _error(e: PlayError) -> game_pb.PlayResponse:
    return game_pb.PlayResponse(seq=e.seq, replay_of_seq=e.replay_of_seq, error=game_pb.PlayError(
        idempotency_key=e.idempotency_key, round_id=e.round_id, error=error_detail(e.reason, e.message, e.state),
        balance=money(e.balance)))


_ACTION_KINDS = {"hit": game_pb.ACTION_KIND_HIT, "stand": game_pb.ACTION_KIND_STAND,
                 "double": game_pb.ACTION_KIND_DOUBLE, "split": game_pb.ACTION_KIND_SPLIT}
_ACTION_NAMES: dict[int, str] = {kind: name for name, kind in _ACTION_KINDS.items()}


def action_in(kind: int) -> str:
    """A RoundAction's action as Play names it; UNSPECIFIED (or a number this hub does not know) is refused."""
    if kind not in _ACTION_NAMES:
        raise DomainError(Reason.INVALID_ARGUMENT, "act.action must be HIT, STAND, DOUBLE or SPLIT")
    return _ACTION_NAMES[kind]


def _action_required(e: ActionRequired) -> game_pb.PlayResponse:
    c = e.stake.currency
    return game_pb.PlayResponse(seq=e.seq, replay_of_seq=e.replay_of_seq, action_required=game_pb.ActionRequired(
        round_id=e.round_id, step=e.step, hand=e.hand, stake=money(e.stake), idempotency_key=e.idempotency_key,
        balance=money(e.balance), actions=[game_pb.ActionChoice(
            action=_ACTION_KINDS.get(a.action, game_pb.ACTION_KIND_UNSPECIFIED),
            extra_stake=money(Money(c, a.extra_stake))) for a in e.actions]))


def _session_closed(e: SessionClosed) -> game_pb.PlayResponse:
    return game_pb.PlayResponse(seq=e.seq, replay_of_seq=e.replay_of_seq,
                                session_closed=game_pb.SessionClosed(game_session_id=e.game_session_id))


def _reality_check(e: RealityCheck) -> game_pb.PlayResponse:
    return game_pb.PlayResponse(seq=e.seq, reality_check=game_pb.RealityCheck(
        elapsed_seconds=e.elapsed_seconds, net_result=money(e.net_result), bet_count=e.bet_count,
        interval_minutes=e.interval_minutes))


_PLAY_RESPONSES: dict[type, Callable[[Any], game_pb.PlayResponse]] = {
    SessionOpened: _session_opened, RoundOpened: _round_opened, BetAccepted: _bet_accepted, Outcome: _outcome,
    Settled: _settled, PlayError: _error, SessionClosed: _session_closed, ActionRequired: _action_required,
    RealityCheck: _reality_check}


def play_response(event: PlayEvent) -> game_pb.PlayResponse:
    return _PLAY_RESPONSES[type(event)](event)


# -- WalletService -------------------------------------------------------------------------------------------

def deposited(receipt: DepositReceipt) -> wallet_pb.DepositResponse:
    return wallet_pb.DepositResponse(transaction_id=receipt.transaction_id, balance=money(receipt.balance))


def withdrawn(receipt: WithdrawalReceipt) -> wallet_pb.WithdrawResponse:
    return wallet_pb.WithdrawResponse(transaction_id=receipt.transaction_id, balance=money(receipt.balance),
                                      withdrawal_id=receipt.withdrawal_id,
                                      status=WITHDRAWAL_STATUSES[receipt.status])


def approved(decision: WithdrawalDecision) -> wallet_pb.ApproveWithdrawalResponse:
    return wallet_pb.ApproveWithdrawalResponse(transaction_id=decision.transaction_id,
                                               status=WITHDRAWAL_STATUSES[decision.status])


def rejected(decision: WithdrawalDecision) -> wallet_pb.RejectWithdrawalResponse:
    return wallet_pb.RejectWithdrawalResponse(transaction_id=decision.transaction_id,
                                              status=WITHDRAWAL_STATUSES[decision.status],
                                              balance=money(decision.balance))


def bonus(view: Bonus) -> wallet_pb.Bonus:
    return wallet_pb.Bonus(
        bonus_id=view.bonus_id, player_id=view.player_id, amount=money(view.amount), balance=money(view.balance),
        wagering_requirement=money(view.wagering_requirement), wagered=money(view.wagered),
        status=wallet_pb.BonusStatus.Value(f"BONUS_STATUS_{view.status}"), expires_at=timestamp(view.expires_at),
        created_at=timestamp(view.created_at), closed_at=timestamp(view.closed_at),
        closing_transaction_id=view.closing_transaction_id)


def bonus_granted(grant: BonusGrant) -> wallet_pb.GrantBonusResponse:
    return wallet_pb.GrantBonusResponse(transaction_id=grant.transaction_id, bonus=bonus(grant.bonus))


def balance(view: Balance) -> wallet_pb.GetBalanceResponse:
    return wallet_pb.GetBalanceResponse(
        balance=money(view.cash), bonus_balance=money(view.bonus),
        active_bonus=bonus(view.active_bonus) if view.active_bonus is not None else None,
        free_rounds=[free_round_grant(g) for g in view.free_rounds])


def transaction_query(request: wallet_pb.ListTransactionsRequest) -> TransactionQuery:
    # An unknown kind goes on as its number, for the wallet to refuse with the other filters' checks.
    kind = TRANSACTION_KIND_NAMES.get(request.kind, str(request.kind)) if request.kind else ""
    return TransactionQuery(
        player_id=request.player_id, currency=request.currency, round_id=request.round_id, kind=kind,
        created_after=time_in(request, "created_after"), created_before=time_in(request, "created_before"),
        page_size=request.page_size, page_token=request.page_token)


def transactions(page: TransactionPage) -> wallet_pb.ListTransactionsResponse:
    return wallet_pb.ListTransactionsResponse(next_page_token=page.next_page_token, transactions=[
        wallet_pb.Transaction(
            transaction_id=t.transaction_id, kind=TRANSACTION_KINDS[t.kind], player_id=t.player_id,
            amount=money(t.amount), balance_after=money(t.balance_after), round_id=t.round_id,
            idempotency_key=t.idempotency_key, created_at=timestamp(t.created_at),
            bonus_amount=money(t.bonus_amount), bonus_balance_after=money(t.bonus_balance_after))
        for t in page.transactions])


# -- PlayerService, ReportService ---------------------------------------------------------------------------

def logged_in(session: Session) -> player_pb.LoginResponse:
    return player_pb.LoginResponse(
        player_id=session.player_id, session_token=session.token, expires_at=timestamp(session.expires_at),
        refresh_token=session.refresh_token, refresh_expires_at=timestamp(session.refresh_expires_at),
        session_id=session.session_id)


def refreshed(session: Session) -> player_pb.RefreshSessionResponse:
    return player_pb.RefreshSessionResponse(
        player_id=session.player_id, session_token=session.token, expires_at=timestamp(session.expires_at),
        refresh_token=session.refresh_token, refresh_expires_at=timestamp(session.refresh_expires_at),
        session_id=session.session_id)


def session_page(page: SessionPage) -> player_pb.ListSessionsResponse:
    return player_pb.ListSessionsResponse(next_page_token=page.next_page_token, sessions=[
        player_pb.PlayerSession(session_id=s.session_id, created_at=timestamp(s.created_at),
                                last_used_at=timestamp(s.last_used_at), expires_at=timestamp(s.expires_at),
                                idle_expires_at=timestamp(s.idle_expires_at))
        for s in page.sessions])


_PERIODS: dict[int, str] = {player_pb.LIMIT_PERIOD_DAY: "day", player_pb.LIMIT_PERIOD_WEEK: "week",
                            player_pb.LIMIT_PERIOD_MONTH: "month"}
_PERIODS_OUT = {name: player_pb.LimitPeriod.ValueType(value) for value, name in _PERIODS.items()}


def period_in(value: int) -> str:
    """A limit period's name; "" for UNSPECIFIED or an unknown number (the domain refuses it)."""
    return _PERIODS.get(value, "")


def self_exclusion(e: SelfExclusion) -> player_pb.SelfExclusion:
    return player_pb.SelfExclusion(started_at=timestamp(e.started_at), ends_at=timestamp(e.ends_at),
                                   indefinite=e.ends_at is None)


def money_limit(limit: Limit) -> player_pb.MoneyLimit:
    pending = limit.pending_amount is not None
    return player_pb.MoneyLimit(
        period=_PERIODS_OUT[limit.period], amount=money(Money(limit.currency, limit.amount)),
        pending_amount=money(Money(limit.currency, limit.pending_amount or 0)) if pending else None,
        pending_from=timestamp(limit.pending_from))


def session_time_limit(limit: Limit | None) -> player_pb.SessionTimeLimit:
    if limit is None:
        return player_pb.SessionTimeLimit()
    return player_pb.SessionTimeLimit(minutes=limit.amount // 60, pending_minutes=(limit.pending_amount or 0) // 60,
                                      pending_from=timestamp(limit.pending_from))


def reality_check_interval(limit: Limit) -> player_pb.RealityCheckInterval:
    return player_pb.RealityCheckInterval(minutes=limit.amount // 60)


def player_limits(found: PlayerLimits) -> player_pb.GetPlayerLimitsResponse:
    session = next((lim for lim in found.limits if lim.kind == "session_time"), None)
    reality = next((lim for lim in found.limits if lim.kind == "reality_check" and lim.amount), None)
    return player_pb.GetPlayerLimitsResponse(
        self_exclusion=self_exclusion(found.self_exclusion) if found.self_exclusion else None,
        deposit_limits=[money_limit(lim) for lim in found.limits if lim.kind == "deposit"],
        loss_limits=[money_limit(lim) for lim in found.limits if lim.kind == "loss"],
        session_time_limit=session_time_limit(session),
        reality_check=reality_check_interval(reality) if reality is not None else None)


def _totals(t: CurrencyTotals) -> report_pb.CurrencyTotals:
    def amount(minor: int) -> common_pb2.Money:
        return money(Money(t.currency, minor))

    return report_pb.CurrencyTotals(
        currency=t.currency, house=amount(t.house), house_shards=t.house_shards,
        player_cash=amount(t.player_cash), player_hold=amount(t.player_hold),
        player_bonus=amount(t.player_bonus), promotion=amount(t.promotion), external=amount(t.external),
        net=amount(t.net))


def ledger_totals(totals: list[CurrencyTotals]) -> report_pb.GetLedgerTotalsResponse:
    return report_pb.GetLedgerTotalsResponse(totals=[_totals(t) for t in totals])



# -- the studio wallet (ProviderWalletService) ----------------------------------------------------------------

PROMO_KINDS = {studio_pb.PROMO_KIND_FREE_SPINS: "free_spins", studio_pb.PROMO_KIND_TOURNAMENT: "tournament",
               studio_pb.PROMO_KIND_JACKPOT: "jackpot"}


def promo_kind_in(value: studio_pb.PromoKind.ValueType) -> str:
    return PROMO_KINDS.get(value, "")  # "" is refused by the service


def studio_answer(receipt: StudioReceipt, response: type[Message], with_round: bool = True) -> Any:
    """A ProviderWalletService response: every one carries the wallet, the money calls their transaction and
    the round's status."""
    fields: dict[str, Any] = {"balance": money(Money(receipt.currency, receipt.balance)),
                              "bonus_balance": money(Money(receipt.currency, receipt.bonus_balance))}
    names = response.DESCRIPTOR.fields_by_name
    if "transaction_id" in names:
        fields["transaction_id"] = receipt.transaction_id
    if with_round and "round_status" in names:
        fields["round_status"] = (game_pb.RoundStatus.Value(f"ROUND_STATUS_{receipt.round_status}")
                                  if receipt.round_status else game_pb.ROUND_STATUS_UNSPECIFIED)
    return response(**fields)
