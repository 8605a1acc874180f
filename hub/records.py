"""Every format the hub stores for later answers, and the one place that writes and reads them.

Rows written now must read the same after any upgrade, so the formats below are a contract like the
proto: change one only by adding a version whose decoder still reads every older one, or by a migration
converting the rows (0010 converted the protobuf encodings used before into these). Golden tests
(tests/unit/test_records.py) pin the exact bytes of each.

Encoding: one JSON object, compact (no whitespace), keys sorted, ASCII (other characters escaped as
\\uXXXX), with "v" (the format version, 1) and "type" (which record). Money is an integer of minor units
under the field's name; the record's amounts share one "currency" (a nested bonus has its own). Times
are UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ", or null when absent. Enums are their names.

play_events.payload: one Play event (hub.events); every one has "seq" and "replay_of_seq" (0 unless a
replayed bet's copy of the event with that seq):
  session_opened  game_session_id, game_id, currency, balance, bonus_balance, free_rounds_left
  round_opened    round_id, idempotency_key
  bet_accepted    round_id, transaction_id, currency, amount, balance, bonus_balance, free_round (bool),
                  free_rounds_left
  outcome         round_id, result, currency, win, proof {client_seed, nonce, server_seed, server_seed_hash}
  settled         round_id, transaction_ids [..], currency, win, balance, bonus_balance
  error           idempotency_key, round_id ("" if no round opened), reason (an ErrorReason name, e.g.
                  "INSUFFICIENT_FUNDS"), message, state (APPLIED | NOT_APPLIED | UNKNOWN), currency, balance
  session_closed  game_session_id
  action_required round_id, step, actions [{action, extra_stake}], hand, currency, stake, idempotency_key,
                  balance
  e.g. {"currency":"USD","proof":{"client_seed":"seed","nonce":7,"server_seed":"","server_seed_hash":"abab"},
  "replay_of_seq":0,"result":"SEVEN|SEVEN|BAR","round_id":"r-1","seq":4,"type":"outcome","v":1,"win":250}
  (one line when stored).

idempotency_keys.response: the answer stored with an effect, given again on a replay of its key
(hub.receipts):
  deposit           transaction_id, currency, balance
  withdrawal        transaction_id, currency, balance, withdrawal_id, status ("PENDING")
  bonus_grant       transaction_id, bonus {bonus_id, player_id, currency, amount, balance,
                    wagering_requirement, wagered, status, expires_at, created_at, closed_at,
                    closing_transaction_id}
  free_round_grant  grant_id, player_id, game_id, currency, bet, rounds, rounds_left, expires_at, created_at
  action            round_id, step, action (a Play RoundAction's claim of its round's step)
  Bets, wins and rollbacks of rounds store the round ledger's receipt instead, written by
  hub.ledger.rounds.Receipt (the ledger sits below this module, so it keeps its own encoder): JSON with
  sorted keys and default separators, no version or type (0010 left these rows as they were):
  {"balance": 900, "bonus_balance": 0, "currency": "USD", "free_round": false, "round_id": "r1",
  "transaction_id": "t1"}. A NULL response is a key an older hub claimed before deciding
  (hub.ledger.idempotency).

rounds.proof: the round's provably-fair proof, type "proof": client_seed, nonce, server_seed,
server_seed_hash.
"""

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from adapters.base import Proof
from hub.errors import Reason, State
from hub.events import (
    ActionChoice,
    ActionRequired,
    BetAccepted,
    Outcome,
    PlayError,
    RoundOpened,
    SessionClosed,
    SessionOpened,
    Settled,
)
from hub.money import Money
from hub.receipts import ActionReceipt, Bonus, BonusGrant, DepositReceipt, FreeRoundGrant, WithdrawalReceipt

VERSION = 1
R = TypeVar("R")
Fields = dict[str, Any]


def encode(record: object) -> bytes:
    """The stored form of a record of any type above."""
    tag, write = _WRITERS[type(record)]
    fields = write(record)
    fields["v"] = VERSION
    fields["type"] = tag
    return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()


def decode(raw: bytes | str, expected: type[R]) -> R:
    """The record stored as raw, which must be an `expected` (e.g. PlayEvent, DepositReceipt)."""
    fields = json.loads(raw)
    if fields.get("v") != VERSION:
        raise ValueError(f"stored record of unknown version {fields.get('v')!r}")
    record = _READERS[fields["type"]](fields)
    if not isinstance(record, expected):
        raise ValueError(f"stored {fields['type']} record where a {expected.__name__} was expected")
    return record


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds") + "Z"


def _read_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.removesuffix("Z"))


def _required_time(text: str) -> datetime:
    value = _read_time(text)
    assert value is not None
    return value


# -- Play events -------------------------------------------------------------------------------------------

def _session_opened(e: SessionOpened) -> Fields:
    return {"seq": e.seq, "replay_of_seq": e.replay_of_seq, "game_session_id": e.game_session_id,
            "game_id": e.game_id, "currency": e.balance.currency, "balance": e.balance.amount_minor,
            "bonus_balance": e.bonus_balance.amount_minor, "free_rounds_left": e.free_rounds_left}


def _read_session_opened(f: Fields) -> SessionOpened:
    c = f["currency"]
    return SessionOpened(f["seq"], f["game_session_id"], f["game_id"], Money(c, f["balance"]),
                         Money(c, f["bonus_balance"]), f["free_rounds_left"], replay_of_seq=f["replay_of_seq"])


def _round_opened(e: RoundOpened) -> Fields:
    return {"seq": e.seq, "replay_of_seq": e.replay_of_seq, "round_id": e.round_id,
            "idempotency_key": e.idempotency_key}


def _read_round_opened(f: Fields) -> RoundOpened:
    return RoundOpened(f["seq"], f["round_id"], f["idempotency_key"], replay_of_seq=f["replay_of_seq"])


def _bet_accepted(e: BetAccepted) -> Fields:
    return {"seq": e.seq, "replay_of_seq": e.replay_of_seq, "round_id": e.round_id,
            "transaction_id": e.transaction_id, "currency": e.amount.currency, "amount": e.amount.amount_minor,
            "balance": e.balance.amount_minor, "bonus_balance": e.bonus_balance.amount_minor,
            "free_round": e.free_round, "free_rounds_left": e.free_rounds_left}


def _read_bet_accepted(f: Fields) -> BetAccepted:
    c = f["currency"]
    return BetAccepted(f["seq"], f["round_id"], f["transaction_id"], Money(c, f["amount"]), Money(c, f["balance"]),
                       Money(c, f["bonus_balance"]), f["free_round"], f["free_rounds_left"],
                       replay_of_seq=f["replay_of_seq"])


def _proof(p: Proof) -> Fields:
    return {"server_seed_hash": p.server_seed_hash, "client_seed": p.client_seed, "nonce": p.nonce,
            "server_seed": p.server_seed}


def _read_proof(f: Fields) -> Proof:
    return Proof(f["server_seed_hash"], f["client_seed"], f["nonce"], f["server_seed"])


def _outcome(e: Outcome) -> Fields:
    return {"seq": e.seq, "replay_of_seq": e.replay_of_seq, "round_id": e.round_id, "result": e.result,
            "currency": e.win.currency, "win": e.win.amount_minor, "proof": _proof(e.proof)}


def _read_outcome(f: Fields) -> Outcome:
    return Outcome(f["seq"], f["round_id"], f["result"], Money(f["currency"], f["win"]), _read_proof(f["proof"]),
                   replay_of_seq=f["replay_of_seq"])


def _settled(e: Settled) -> Fields:
    return {"seq": e.seq, "replay_of_seq": e.replay_of_seq, "round_id": e.round_id,
            "transaction_ids": list(e.transaction_ids), "currency": e.win.currency, "win": e.win.amount_minor,
            "balance": e.balance.amount_minor, "bonus_balance": e.bonus_balance.amount_minor}


def _read_settled(f: Fields) -> Settled:
    c = f["currency"]
    return Settled(f["seq"], f["round_id"], tuple(f["transaction_ids"]), Money(c, f["win"]), Money(c, f["balance"]),
                   Money(c, f["bonus_balance"]), replay_of_seq=f["replay_of_seq"])


def _error(e: PlayError) -> Fields:
    return {"seq": e.seq, "replay_of_seq": e.replay_of_seq, "idempotency_key": e.idempotency_key,
            "round_id": e.round_id, "reason": e.reason.name, "message": e.message, "state": e.state.value,
            "currency": e.balance.currency, "balance": e.balance.amount_minor}


def _read_error(f: Fields) -> PlayError:
    return PlayError(f["seq"], f["idempotency_key"], f["round_id"], Reason[f["reason"]], f["message"],
                     State(f["state"]), Money(f["currency"], f["balance"]), replay_of_seq=f["replay_of_seq"])


def _session_closed(e: SessionClosed) -> Fields:
    return {"seq": e.seq, "replay_of_seq": e.replay_of_seq, "game_session_id": e.game_session_id}


def _read_session_closed(f: Fields) -> SessionClosed:
    return SessionClosed(f["seq"], f["game_session_id"], replay_of_seq=f["replay_of_seq"])


def _action_required(e: ActionRequired) -> Fields:
    return {"seq": e.seq, "replay_of_seq": e.replay_of_seq, "round_id": e.round_id, "step": e.step,
            "actions": [{"action": a.action, "extra_stake": a.extra_stake} for a in e.actions], "hand": e.hand,
            "currency": e.stake.currency, "stake": e.stake.amount_minor, "idempotency_key": e.idempotency_key,
            "balance": e.balance.amount_minor}


def _read_action_required(f: Fields) -> ActionRequired:
    c = f["currency"]
    return ActionRequired(f["seq"], f["round_id"], f["step"],
                          tuple(ActionChoice(a["action"], a["extra_stake"]) for a in f["actions"]), f["hand"],
                          Money(c, f["stake"]), f["idempotency_key"], Money(c, f["balance"]),
                          replay_of_seq=f["replay_of_seq"])


# -- idempotent responses ------------------------------------------------------------------------------------

def _deposit(r: DepositReceipt) -> Fields:
    return {"transaction_id": r.transaction_id, "currency": r.balance.currency, "balance": r.balance.amount_minor}


def _read_deposit(f: Fields) -> DepositReceipt:
    return DepositReceipt(f["transaction_id"], Money(f["currency"], f["balance"]))


def _withdrawal(r: WithdrawalReceipt) -> Fields:
    return {"transaction_id": r.transaction_id, "currency": r.balance.currency, "balance": r.balance.amount_minor,
            "withdrawal_id": r.withdrawal_id, "status": r.status}


def _read_withdrawal(f: Fields) -> WithdrawalReceipt:
    return WithdrawalReceipt(f["transaction_id"], Money(f["currency"], f["balance"]), f["withdrawal_id"], f["status"])


def _bonus(b: Bonus) -> Fields:
    return {"bonus_id": b.bonus_id, "player_id": b.player_id, "currency": b.amount.currency,
            "amount": b.amount.amount_minor, "balance": b.balance.amount_minor,
            "wagering_requirement": b.wagering_requirement.amount_minor, "wagered": b.wagered.amount_minor,
            "status": b.status, "expires_at": _time(b.expires_at), "created_at": _time(b.created_at),
            "closed_at": _time(b.closed_at), "closing_transaction_id": b.closing_transaction_id}


def _read_bonus(f: Fields) -> Bonus:
    c = f["currency"]
    return Bonus(f["bonus_id"], f["player_id"], Money(c, f["amount"]), Money(c, f["balance"]),
                 Money(c, f["wagering_requirement"]), Money(c, f["wagered"]), f["status"],
                 _required_time(f["expires_at"]), _required_time(f["created_at"]), _read_time(f["closed_at"]),
                 f["closing_transaction_id"])


def _bonus_grant(r: BonusGrant) -> Fields:
    return {"transaction_id": r.transaction_id, "bonus": _bonus(r.bonus)}


def _read_bonus_grant(f: Fields) -> BonusGrant:
    return BonusGrant(f["transaction_id"], _read_bonus(f["bonus"]))


def _free_round_grant(g: FreeRoundGrant) -> Fields:
    return {"grant_id": g.grant_id, "player_id": g.player_id, "game_id": g.game_id, "currency": g.bet.currency,
            "bet": g.bet.amount_minor, "rounds": g.rounds, "rounds_left": g.rounds_left,
            "expires_at": _time(g.expires_at), "created_at": _time(g.created_at)}


def _read_free_round_grant(f: Fields) -> FreeRoundGrant:
    return FreeRoundGrant(f["grant_id"], f["player_id"], f["game_id"], Money(f["currency"], f["bet"]), f["rounds"],
                          f["rounds_left"], _required_time(f["expires_at"]), _required_time(f["created_at"]))


def _action(r: ActionReceipt) -> Fields:
    return {"round_id": r.round_id, "step": r.step, "action": r.action}


def _read_action(f: Fields) -> ActionReceipt:
    return ActionReceipt(f["round_id"], f["step"], f["action"])


# type -> (its "type" tag, its fields); tag -> the record read back.
_WRITERS: dict[type, tuple[str, Callable[[Any], Fields]]] = {
    SessionOpened: ("session_opened", _session_opened),
    RoundOpened: ("round_opened", _round_opened),
    BetAccepted: ("bet_accepted", _bet_accepted),
    Outcome: ("outcome", _outcome),
    Settled: ("settled", _settled),
    PlayError: ("error", _error),
    SessionClosed: ("session_closed", _session_closed),
    ActionRequired: ("action_required", _action_required),
    ActionReceipt: ("action", _action),
    DepositReceipt: ("deposit", _deposit),
    WithdrawalReceipt: ("withdrawal", _withdrawal),
    BonusGrant: ("bonus_grant", _bonus_grant),
    FreeRoundGrant: ("free_round_grant", _free_round_grant),
    Proof: ("proof", _proof),
}
_READERS: dict[str, Callable[[Fields], object]] = {
    "session_opened": _read_session_opened,
    "round_opened": _read_round_opened,
    "bet_accepted": _read_bet_accepted,
    "outcome": _read_outcome,
    "settled": _read_settled,
    "error": _read_error,
    "session_closed": _read_session_closed,
    "action_required": _read_action_required,
    "action": _read_action,
    "deposit": _read_deposit,
    "withdrawal": _read_withdrawal,
    "bonus_grant": _read_bonus_grant,
    "free_round_grant": _read_free_round_grant,
    "proof": _read_proof,
}
assert {tag for tag, _ in _WRITERS.values()} == _READERS.keys()
